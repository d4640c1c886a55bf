//! After a full run of the real binary — every flow, wrong codes, a lockout — neither its logs nor the
//! Redis keyspace hold a code, a secret or a password, and emails and numbers appear only masked.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{TEST_KEY, first_code, free_port, rand_u64, redis};

const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const PASSWORD: &str = "caller-pw-6f1c2b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_keyspace_hold_no_code_secret_or_password() {
    // Arrange: the binary on Redis, Basic auth, a seed with all three methods, debug logs as JSON.
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("customers.json");
    std::fs::write(
        &seed,
        serde_json::json!([
            { "id": "1001", "email": "alice@example.com", "phone": "+447911123456", "totp_secret": TOTP_SECRET },
            { "id": "1002", "email": "bob@example.com" }
        ])
        .to_string(),
    )
    .unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let port = free_port();
    let prefix = format!("leak{:x}:", rand_u64());
    let child = Command::new(env!("CARGO_BIN_EXE_twofactor"))
        .arg("serve")
        .env("TFA__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("TFA__STORE__URL", redis().url())
        .env("TFA__STORE__KEY_PREFIX", &prefix)
        .env("TFA__SECURITY__ENCRYPTION_KEY", TEST_KEY)
        .env("TFA__SECURITY__AUTH_SCHEME", "basic")
        .env("TFA__SECURITY__USER_ID", "gia")
        .env("TFA__SECURITY__PASSWORD", PASSWORD)
        .env("TFA__DIRECTORY__SEED_FILE", &seed)
        .env("TFA__DELIVERY__OUTBOX_FILE", &outbox)
        .env("TFA__CODES__DIGITS", "8")
        .env("TFA__TOTP__DIGITS", "8")
        .env("TFA__LOCKOUT__MAX_FAILURES", "3")
        .env("TFA__LOG__FORMAT", "json")
        .env("TFA__LOG__FILTER", "debug")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = |path: &'static str, params: Vec<(&'static str, String)>| {
        let req = client
            .post(format!("{base}/v1/{path}"))
            .basic_auth("gia", Some(PASSWORD))
            .form(&params);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let id = |s: &str| ("CustomerId", s.to_string());

    // Act: every flow.
    let mut codes = Vec::new();
    call("check-verified-contact-methods", vec![id("1001")]).await;
    for (method, to) in [("Email", "alice@example.com"), ("SMS", "447911123456")] {
        call(
            "send-authentication-code",
            vec![id("1001"), ("TwoFactorAuthSelectedMethod", method.into())],
        )
        .await;
        let sent = std::fs::read_to_string(&outbox).unwrap();
        let line = sent.lines().rev().find(|l| l.contains(to)).unwrap();
        let code = first_code(line);
        let answer = call(
            "code-authentication",
            vec![id("1001"), ("authCode_nbest1", code.clone())],
        )
        .await;
        assert!(
            answer.contains("<status>success</status>"),
            "{method}: {answer}"
        );
        codes.push(code);
    }
    call(
        "send-authentication-code",
        vec![
            id("1001"),
            ("TwoFactorAuthSelectedMethod", "Authenticator".into()),
        ],
    )
    .await;
    let totp = totp_rs::Builder::new()
        .with_digits(8)
        .with_secret(totp_rs::Secret::try_from_base32(TOTP_SECRET).unwrap())
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let totp_code = totp.generate(now).to_string();
    let answer = call(
        "code-authentication",
        vec![id("1001"), ("authCode_nbest1", totp_code.clone())],
    )
    .await;
    assert!(
        answer.contains("<status>success</status>"),
        "authenticator: {answer}"
    );
    codes.push(totp_code);
    // Wrong codes up to a lockout, with a code pending for bob.
    call(
        "send-authentication-code",
        vec![id("1002"), ("TwoFactorAuthSelectedMethod", "email".into())],
    )
    .await;
    let bob = first_code(
        std::fs::read_to_string(&outbox)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    );
    for _ in 0..3 {
        call(
            "code-authentication",
            vec![id("1002"), ("authCode_nbest1", "12345678".into())],
        )
        .await;
    }
    codes.push(bob);

    let store = twofactor::store::connect(&redis().url()).await.unwrap();
    let keyspace = format!("{:?}", store.dump(&prefix).await.unwrap());
    let stopped = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    let output = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Assert
    assert!(
        output.status.success(),
        "SIGTERM stops the service cleanly: {:?}",
        output.status
    );
    assert!(
        logs.contains("\"event\":\"send\""),
        "audit lines are there to scan: {logs}"
    );
    assert!(
        logs.contains("a***@example.com") || logs.contains("\"customer\""),
        "{logs}"
    );
    let raw_secret = totp_rs::Secret::try_from_base32(TOTP_SECRET)
        .unwrap()
        .as_ref()
        .to_vec();
    let mut forbidden = vec![
        TOTP_SECRET.to_string(),
        String::from_utf8_lossy(&raw_secret).to_string(),
        raw_secret.iter().map(|b| format!("{b:02x}")).collect(),
        PASSWORD.to_string(),
        base64_of(&format!("gia:{PASSWORD}")),
        TEST_KEY.to_string(),
    ];
    forbidden.extend(codes.iter().cloned());
    for secret in &forbidden {
        assert!(!logs.contains(secret.as_str()), "logs hold {secret:?}");
        assert!(
            !keyspace.contains(secret.as_str()),
            "keyspace holds {secret:?}: {keyspace}"
        );
    }
    for contact in ["alice@example.com", "bob@example.com", "447911123456"] {
        assert!(!logs.contains(contact), "logs hold {contact} unmasked");
    }
    assert!(
        keyspace.contains("code:") || keyspace.contains("failures:") || keyspace.contains("lock:"),
        "{keyspace}"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
