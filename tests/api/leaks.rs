//! After a full run of the real binary — every flow, wrong codes, a lockout — neither its logs nor the
//! Redis keyspace hold a code, a secret or a password, and emails and numbers appear only masked.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TEST_KEY, first_code, rand_u64, redis};
use crate::helpers::{authenticator, unix_now};

const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const PASSWORD: &str = "caller-pw-6f1c2b";
const ADMIN_TOKEN: &str = "leaks-admin-token-5b0e9d27c14f3a86";
/// Secrets set through the live settings: SMTP password, gateway URL password, API key header.
const SETTINGS_SECRETS: [&str; 3] = ["smtp-pw-4e1f0c", "gw-pw-9a7b3d", "api-key-2c8e6f"];
/// A number outside the allowed countries: its refusal is logged, with the number masked.
const REFUSED_PHONE: &str = "+14155552671";
/// How long the binary gets to start, and to stop after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(20);

/// The service process, killed if the test ends (or panics) while it still runs.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Both log files, stdout then stderr.
fn read_logs(stdout: &Path, stderr: &Path) -> String {
    format!(
        "{}{}",
        std::fs::read_to_string(stdout).unwrap_or_default(),
        std::fs::read_to_string(stderr).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_keyspace_hold_no_code_secret_or_password() {
    // Arrange: the binary on Redis, Basic auth, a seed with all three methods, debug logs as JSON.
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("customers.json");
    std::fs::write(
        &seed,
        serde_json::json!([
            { "id": "1001", "email": "alice@example.com", "phone": "+447911123456", "totp_secret": TOTP_SECRET },
            { "id": "1002", "email": "bob@example.com" },
            { "id": "1003", "phone": REFUSED_PHONE }
        ])
        .to_string(),
    )
    .unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let (stdout_path, stderr_path) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
    let prefix = format!("leak{:x}:", rand_u64());
    // Port 0: the service binds a free port itself and logs it, so no other process can take it
    // between choosing and binding.
    let child = Command::new(env!("CARGO_BIN_EXE_twofactor"))
        .arg("serve")
        .env("TFA__SERVER__BIND", "127.0.0.1:0")
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
        .env("TFA__SMS__ALLOWED_COUNTRY_CODES", "[\"44\"]")
        .env(
            "TFA__ADMIN__TOKENS",
            format!("[\"ops:admin:{ADMIN_TOKEN}\"]"),
        )
        .env("TFA__LOG__FORMAT", "json")
        .env("TFA__LOG__FILTER", "debug")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        // Files, not pipes: nothing reads a pipe while the test runs, and a full one would block
        // the service.
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut service = Service(child);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port_re = regex::Regex::new(r#""port":(\d+)"#).unwrap();
    let started = Instant::now();
    let mut base = None;
    while started.elapsed() < DEADLINE {
        if let Some(status) = service.0.try_wait().unwrap() {
            panic!(
                "the service exited at start ({status}): {}",
                read_logs(&stdout_path, &stderr_path)
            );
        }
        let logs = read_logs(&stdout_path, &stderr_path);
        let port = logs
            .lines()
            .filter(|l| l.contains("\"listening\""))
            .find_map(|l| port_re.captures(l)?[1].parse::<u16>().ok());
        if let Some(port) = port {
            let url = format!("http://127.0.0.1:{port}");
            let healthy = client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                base = Some(url);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(base) = base else {
        panic!(
            "the service was not healthy within {DEADLINE:?}: {}",
            read_logs(&stdout_path, &stderr_path)
        );
    };
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
    let totp = authenticator(TOTP_SECRET, 8);
    let now = unix_now();
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
    // From a caller number, which feeds the per-line limit: keyed by a digest, logged masked.
    for _ in 0..3 {
        call(
            "code-authentication",
            vec![
                id("1002"),
                ("authCode_nbest1", "12345678".into()),
                ("ANI", "+441632960001".into()),
            ],
        )
        .await;
    }
    codes.push(bob);

    // A refused SMS: the one place this run logs a contact, which must be masked.
    let refused = call(
        "send-authentication-code",
        vec![id("1003"), ("TwoFactorAuthSelectedMethod", "SMS".into())],
    )
    .await;
    assert!(
        refused.contains("<status>error</status>"),
        "a country outside the allow-list is refused (send_limited, `error` by default): {refused}"
    );

    // The admin page's session: a wrong login, a login, a change refused for its missing CSRF
    // token, one made with it. Neither the token, the session id nor the CSRF token may be logged.
    let session =
        |method: reqwest::Method, path: &str| client.request(method, format!("{base}{path}"));
    let wrong = session(reqwest::Method::POST, "/admin/session")
        .json(&serde_json::json!({ "token": format!("{ADMIN_TOKEN}x") }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let login = session(reqwest::Method::POST, "/admin/session")
        .json(&serde_json::json!({ "token": ADMIN_TOKEN }))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    for (csrf, status) in [("", 403), (csrf.as_str(), 200)] {
        let put = session(reqwest::Method::PUT, "/admin/v1/customers/1002")
            .header("cookie", &cookie)
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({ "email": "bob@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), status);
    }

    // Live settings with secrets in them: an SMTP password, a gateway URL's password and an API
    // key header. The store keeps them sealed, and no answer or log line holds them.
    let bearer = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
    };
    let shown = bearer(reqwest::Method::GET, "/admin/v1/settings")
        .send()
        .await
        .unwrap();
    let etag = shown.headers()["etag"].to_str().unwrap().to_string();
    let patched = bearer(reqwest::Method::PATCH, "/admin/v1/settings")
        .header("if-match", etag)
        .header("content-type", "application/merge-patch+json")
        .body(
            serde_json::json!({
                "email": {"smtp": {"password": SETTINGS_SECRETS[0]}},
                "sms": {
                    "url": format!("https://gw:{}@sms.example/send", SETTINGS_SECRETS[1]),
                    "request_headers": [format!("X-Api-Key: {}", SETTINGS_SECRETS[2])]
                }
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let mut answers = patched.text().await.unwrap();
    for path in ["/admin/v1/settings", "/admin/v1/settings/history"] {
        answers.push_str(
            &bearer(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    for secret in SETTINGS_SECRETS {
        assert!(
            !answers.contains(secret),
            "an answer holds {secret}: {answers}"
        );
    }

    let store = twofactor::store::connect(&redis().url()).await.unwrap();
    let keyspace = format!("{:?}", store.dump(&prefix).await.unwrap());
    let pid = service.0.id().to_string();
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(&pid)
        .status()
        .unwrap();
    assert!(signalled.success(), "kill -TERM {pid}");
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > DEADLINE {
            // Dropping `service` kills it.
            panic!(
                "the service did not stop within {DEADLINE:?} of SIGTERM: {}",
                read_logs(&stdout_path, &stderr_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let logs = read_logs(&stdout_path, &stderr_path);

    // Assert
    assert!(
        status.success(),
        "SIGTERM stops the service cleanly: {status:?}"
    );
    let audit: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"event\":\"send\""))
        .collect();
    assert!(!audit.is_empty(), "audit lines are there to scan: {logs}");
    for customer in ["1001", "1002", "1003"] {
        assert!(
            audit
                .iter()
                .any(|l| l.contains(&format!("\"customer\":\"{customer}\""))),
            "a send audit line names customer {customer}: {audit:#?}"
        );
    }
    let masked = twofactor::domain::PhoneNumber::parse(REFUSED_PHONE)
        .unwrap()
        .masked();
    assert!(
        logs.lines()
            .any(|l| l.contains("SMS send refused") && l.contains(&masked)),
        "the refusal names the number masked as {masked}: {logs}"
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
    let session_id = cookie.trim_start_matches("tfa_admin=").to_string();
    forbidden.extend([ADMIN_TOKEN.to_string(), session_id]);
    forbidden.extend(SETTINGS_SECRETS.iter().map(|s| s.to_string()));
    assert!(!logs.contains(&csrf), "logs hold the CSRF token");
    assert!(
        logs.lines()
            .any(|l| l.contains("\"event\":\"admin-login\"") && l.contains("\"admin\":\"ops\"")),
        "the login is audited by name: {logs}"
    );
    for secret in &forbidden {
        assert!(!logs.contains(secret.as_str()), "logs hold {secret:?}");
        assert!(
            !keyspace.contains(secret.as_str()),
            "keyspace holds {secret:?}: {keyspace}"
        );
    }
    for contact in [
        "alice@example.com",
        "bob@example.com",
        "447911123456",
        "14155552671",
        "441632960001",
    ] {
        assert!(!logs.contains(contact), "logs hold {contact} unmasked");
    }
    assert!(
        !keyspace.contains("441632960001"),
        "the keyspace holds the caller number: {keyspace}"
    );
    assert!(
        keyspace.contains("caller:failures:"),
        "the caller's line was counted: {keyspace}"
    );
    assert!(
        keyspace.contains("code:") || keyspace.contains("failures:") || keyspace.contains("lock:"),
        "{keyspace}"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
