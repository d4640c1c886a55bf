//! Key rotation during a rolling deploy: two instances share one store, one already on the new key
//! K2 (K1 previous), one still on K1 (K2 previous, so it understands what the new ones write). Sent
//! codes and authenticators work whichever instance a request lands on; `twofactor keys reseal`
//! moves every authenticator secret to the current key, after which K1 can be dropped.

use reqwest::Method;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{
    LONG_ADMIN_TOKEN, StoreKind, TEST_KEY, TestApp, admin_tokens, authenticator, free_port,
    output_text, rand_u64, redis, run_cli, spawn_app_sharing, spawn_app_with, twofactor_command,
    unix_now,
};
use crate::live_settings::settings_call_as;

/// The old key, current before the deploy.
const K1: &str = TEST_KEY;
/// The new key.
const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

/// `[security]` with `current` and the `previous` keys, plus the admin API.
fn keys(current: &str, previous: &[&str]) -> String {
    let previous: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "{}[security]\nencryption_key = \"{current}\"\nprevious_encryption_keys = [{}]\n",
        admin_tokens(),
        previous.join(", ")
    )
}

/// Step 1 of the deploy (A: K1 current, K2 known) and step 2 (B: K2 current, K1 known), on one store.
async fn instances_mid_rotation(kind: StoreKind) -> (TestApp, TestApp) {
    let a = spawn_app_with(kind, &keys(K1, &[K2])).await;
    let b = spawn_app_sharing(&a, &keys(K2, &[K1])).await;
    assert_eq!(a.prefix, b.prefix, "one deployment, one store");
    assert_ne!(
        a.state.keyring.current_id(),
        b.state.keyring.current_id(),
        "the two instances seal under different keys"
    );
    (a, b)
}

async fn sent_codes_cross_instances(kind: StoreKind) {
    // Arrange
    let (a, b) = instances_mid_rotation(kind).await;
    a.add_alice().await;

    // Act: a code sent through the old instance is keyed on the new one, and the other way round.
    assert_eq!(a.send("1001", "Email").await.xml_status(), "success");
    let from_a = a.last_code_to("alice@example.com");
    let checked_on_b = b
        .verify_with("1001", &from_a, &[("TwoFactorAuthSelectedMethod", "Email")])
        .await;
    assert_eq!(b.send("1001", "SMS").await.xml_status(), "success");
    let from_b = b.last_code_to("447911123456");
    let checked_on_a = a
        .verify_with("1001", &from_b, &[("TwoFactorAuthSelectedMethod", "SMS")])
        .await;

    // Assert
    assert_eq!(
        checked_on_b.xml_status(),
        "success",
        "a code sent under K1 verifies on the K2 instance: {}",
        checked_on_b.body
    );
    assert_eq!(
        checked_on_a.xml_status(),
        "success",
        "a code sent under K2 verifies on the K1 instance: {}",
        checked_on_a.body
    );
}
both_stores!(
    sent_codes_verify_on_either_instance_during_rotation,
    sent_codes_cross_instances
);

/// Enrols `id` through `app`'s admin API and answers the secret.
async fn enrol(app: &TestApp, id: &str) -> String {
    let put = app
        .admin_call(
            Method::PUT,
            &format!("/admin/v1/customers/{id}"),
            Some(json!({"email": format!("c{id}@example.com")})),
        )
        .await;
    assert!(put.status == 201 || put.status == 200, "{}", put.body);
    let res = app
        .admin_call(
            Method::POST,
            &format!("/admin/v1/customers/{id}/totp"),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["secret"]
        .as_str()
        .expect("the enrolment answers the secret")
        .to_string()
}

/// `id`'s authenticator code now, checked as an authenticator code on `app`.
async fn check_authenticator(app: &TestApp, id: &str, secret: &str) -> String {
    let code = authenticator(secret, 6).generate(unix_now()).to_string();
    app.verify_with(
        id,
        &code,
        &[("TwoFactorAuthSelectedMethod", "Authenticator")],
    )
    .await
    .xml_status()
}

async fn authenticator_crosses_instances(kind: StoreKind) {
    // Arrange
    let (a, b) = instances_mid_rotation(kind).await;

    // Act: enrolled (and sealed under K1) through A, used through B.
    let secret = enrol(&a, "2001").await;
    let on_b = check_authenticator(&b, "2001", &secret).await;

    // Assert
    assert_eq!(on_b, "success", "B opens a secret A sealed under K1");
}
both_stores!(
    authenticator_enrolled_on_old_instance_verifies_on_new_one,
    authenticator_crosses_instances
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reseal_moves_every_secret_to_the_current_key() {
    // Arrange: three authenticators sealed under K1, and a customer without one.
    let prefix = format!("reseal{:016x}:", rand_u64());
    let on_prefix = format!("[store]\nkey_prefix = \"{prefix}\"\n");
    let a = spawn_app_with(StoreKind::Redis, &format!("{on_prefix}{}", keys(K1, &[K2]))).await;
    let ids = ["2001", "2002", "2003"];
    let mut secrets = Vec::new();
    for id in ids {
        secrets.push(enrol(&a, id).await);
    }
    a.add_customer("2004", Some("plain@example.com"), None, None)
        .await;
    // Before the reseal, an instance that knows only K2 cannot open them.
    let d = spawn_app_sharing(&a, &keys(K2, &[])).await;
    let before = check_authenticator(&d, "2001", &secrets[0]).await;

    // Act
    let first = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let second = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let c = spawn_app_sharing(&a, &keys(K2, &[])).await;
    let mut after = Vec::new();
    for (id, secret) in ids.iter().zip(&secrets) {
        after.push(check_authenticator(&c, id, secret).await);
    }

    // Assert
    assert_ne!(
        before, "success",
        "without K1 a K1-sealed secret cannot be opened"
    );
    let (first_out, second_out) = (output_text(&first), output_text(&second));
    assert!(first.status.success(), "{first_out}");
    assert!(
        first_out.contains("resealed 3 secrets") && first_out.contains("(3 authenticator secrets"),
        "every enrolled customer is resealed, no one else: {first_out}"
    );
    assert!(second.status.success(), "{second_out}");
    assert!(
        regex::Regex::new(r"\bresealed 0\b")
            .expect("regex")
            .is_match(&second_out),
        "a second run has nothing left to do: {second_out}"
    );
    assert_eq!(
        after,
        ["success", "success", "success"],
        "after the reseal K1 is no longer needed"
    );
}

/// An SMS gateway on `gw` in the file's settings, with no credential of its own: the key comes from
/// the live settings.
fn sms_to(gw: &str) -> String {
    format!(
        "[sms]\nmethod = \"POST\"\nurl = \"{gw}/send?to={{recipient}}\"\nrequest_body = \"{{message}}\"\ntimeout_ms = 10000\n"
    )
}

/// A settings request through `app` with the admin token (or `token`), `If-Match` and, when
/// `replace`, `X-Replace-Unreadable: true`: the status, the ETag and the JSON body.
async fn settings_request(
    app: &TestApp,
    method: Method,
    token: &str,
    if_match: Option<&str>,
    replace: bool,
    body: Option<serde_json::Value>,
) -> (u16, String, serde_json::Value) {
    let headers: &[(&str, &str)] = if replace {
        &[("X-Replace-Unreadable", "true")]
    } else {
        &[]
    };
    let path = "/admin/v1/settings";
    let reply = settings_call_as(app, method, path, token, if_match, headers, body).await;
    (reply.status, reply.etag, reply.body)
}

/// Patches the live settings through `app` over the version it shows; answers the new ETag.
async fn patch_live(app: &TestApp, patch: serde_json::Value) -> String {
    let (_, etag, _) =
        settings_request(app, Method::GET, LONG_ADMIN_TOKEN, None, false, None).await;
    let (status, etag, body) = settings_request(
        app,
        Method::PATCH,
        LONG_ADMIN_TOKEN,
        Some(&etag),
        false,
        Some(patch),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    etag
}

/// `/readyz`'s status and warnings.
async fn readiness(app: &TestApp) -> (u16, Vec<String>) {
    let (status, body) = app.readyz().await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let warnings = body["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, warnings)
}

// Redis only: the overlay lives in the shared store, and the instance that proves the old key is
// no longer needed must be a new one; with the memory store a new process starts with no overlay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reseal_keeps_the_live_settings_through_a_rotation() {
    // Arrange: the gateway accepts only the key set live, through an instance on K1.
    let gw = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::header("X-Api-Key", "live-secret-9"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&gw)
        .await;
    let prefix = format!("reseal{:016x}:", rand_u64());
    let file = format!("[store]\nkey_prefix = \"{prefix}\"\n{}", sms_to(&gw.uri()));
    let a = spawn_app_with(StoreKind::Redis, &format!("{file}{}", keys(K1, &[]))).await;
    a.add_alice().await;
    patch_live(
        &a,
        json!({"sms": {"request_headers": ["X-Api-Key: live-secret-9"]}}),
    )
    .await;

    // Act: the three documented steps. 1: K2 known everywhere; 2: K2 current, K1 previous;
    // 3: keys reseal, then K1 dropped.
    let step1 = spawn_app_sharing(&a, &format!("{file}{}", keys(K1, &[K2]))).await;
    let step2 = spawn_app_sharing(&a, &format!("{file}{}", keys(K2, &[K1]))).await;
    let first = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let second = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let only_k2 = spawn_app_sharing(&a, &format!("{file}{}", keys(K2, &[]))).await;
    let sent = only_k2.send("1001", "SMS").await;

    // Assert
    for app in [&step1, &step2] {
        assert_eq!(
            readiness(app).await,
            (200, vec![]),
            "mid-rotation instances"
        );
    }
    let (first_out, second_out) = (output_text(&first), output_text(&second));
    assert!(first.status.success(), "{first_out}");
    assert!(
        first_out.contains("resealed 1 secrets") && first_out.contains("1 live settings values"),
        "the overlay's sealed header is resealed: {first_out}"
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).starts_with("resealed 0 "),
        "a second run has nothing left to do, and says so first on stdout (logs go to stderr), \
         so a script can loop until it reads 0: {second_out}"
    );
    assert_eq!(
        readiness(&only_k2).await,
        (200, vec![]),
        "the instance with only K2 opens the live settings"
    );
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let received = gw.received_requests().await.expect("recording is on");
    let keys_sent: Vec<String> = received
        .iter()
        .map(|r| {
            r.headers
                .get("x-api-key")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(keys_sent, ["live-secret-9"], "what the gateway received");
}

/// A token of role `read`, beside the admin one.
const VIEWER: &str = "viewer-read-only-token-5e1f2a9b77c3d4e0";

/// Only K2, and the admin API with an `admin` and a `read` token.
fn only_k2_with_viewer() -> String {
    format!(
        "[admin]\ntokens = [\"{LONG_ADMIN_TOKEN}\", \"viewer:read:{VIEWER}\"]\n[security]\nencryption_key = \"{K2}\"\n"
    )
}

/// The newest entry of the settings history, through `app`.
async fn newest_change(app: &TestApp) -> serde_json::Value {
    let history = app
        .admin_call(Method::GET, "/admin/v1/settings/history", None)
        .await;
    assert_eq!(history.status, 200, "{}", history.body);
    history.json()["changes"][0].clone()
}

/// Polls `app`'s readiness warnings for up to 2 s until one contains `text`.
async fn warned_within_two_seconds(app: &TestApp, text: &str) -> (u16, Vec<String>) {
    let started = std::time::Instant::now();
    loop {
        let (status, warnings) = readiness(app).await;
        if warnings.iter().any(|w| w.contains(text)) || started.elapsed().as_secs() >= 2 {
            return (status, warnings);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn unreadable_overlay_is_reported_and_replaceable(kind: StoreKind) {
    // Arrange: live settings sealed under K1 (8 digits, a gateway key), and an instance that holds
    // only K2 (an operator who dropped K1 without `keys reseal`).
    let file = sms_to("http://127.0.0.1:9");
    let a = spawn_app_with(kind, &format!("{file}{}", keys(K1, &[]))).await;
    patch_live(
        &a,
        json!({"codes": {"digits": 8}, "sms": {"request_headers": ["X-Api-Key: live-secret-9"]}}),
    )
    .await;
    let b = spawn_app_sharing(&a, &format!("{file}{}", only_k2_with_viewer())).await;
    let digits = json!({"codes": {"digits": 7}});

    // Act
    let (ready, warnings) = readiness(&b).await;
    let (_, etag, shown) =
        settings_request(&b, Method::GET, LONG_ADMIN_TOKEN, None, false, None).await;
    let refused = settings_request(
        &b,
        Method::PATCH,
        LONG_ADMIN_TOKEN,
        Some(&etag),
        false,
        Some(digits.clone()),
    )
    .await;
    let by_viewer = settings_request(
        &b,
        Method::PATCH,
        VIEWER,
        Some(&etag),
        true,
        Some(digits.clone()),
    )
    .await;
    let replaced = settings_request(
        &b,
        Method::PATCH,
        LONG_ADMIN_TOKEN,
        Some(&etag),
        true,
        Some(digits.clone()),
    )
    .await;
    let after = readiness(&b).await;
    let entry = newest_change(&b).await;

    // Assert: ready, but saying why the live settings are not in effect; the file's settings serve.
    assert_eq!(ready, 200);
    assert!(
        warnings.iter().any(|w| w.contains("settings")
            && w.contains("sms.request_headers is sealed under a key this instance does not hold")),
        "{warnings:?}"
    );
    assert_eq!(etag, "\"1\"");
    assert_eq!(shown["codes"]["digits"], 6, "the file's settings: {shown}");
    assert!(
        shown["problem"]
            .as_str()
            .is_some_and(|p| p.contains("cannot be opened")),
        "{shown}"
    );
    // A plain patch is refused with what to do, never a 5xx.
    assert_eq!(refused.0, 409, "{}", refused.2);
    assert_eq!(refused.2["error"], "settings-unreadable");
    let message = refused.2["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("X-Replace-Unreadable: true") && message.contains("If-Match: \"1\""),
        "{message}"
    );
    assert_eq!(
        by_viewer.0, 403,
        "a read token may not replace: {}",
        by_viewer.2
    );
    // The explicit replacement works, is in effect at once, and is in the history.
    assert_eq!(replaced.0, 200, "{}", replaced.2);
    assert_eq!(replaced.1, "\"2\"");
    assert_eq!(replaced.2["codes"]["digits"], 7);
    assert_eq!(
        replaced.2["secrets"]["sms.request_headers.X-Api-Key"],
        serde_json::Value::Null,
        "the unreadable gateway key is gone: {}",
        replaced.2
    );
    assert_eq!(after, (200, vec![]), "no warning once replaced");
    assert_eq!(entry["by"], "token-1", "{entry}");
    assert_eq!(entry["version"], 2, "{entry}");
    assert!(
        entry["note"].as_str().is_some_and(|n| n
            .contains("replaced an overlay this instance could not open")
            && n.contains("does not hold")),
        "{entry}"
    );
    assert!(
        entry["changes"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["key"] == "codes.digits" && c["new"] == "7")),
        "{entry}"
    );

    // Act: an overlay whose JSON does not parse (written by hand), whose version still shows.
    let key = format!("{}settings:overlay", a.prefix);
    a.store()
        .set(&key, r#"{"version": 5, "id": 3, "doc": {}}"#, None)
        .await
        .expect("written");
    let (ready, warnings) = warned_within_two_seconds(&b, "JSON is unreadable").await;
    let refused = settings_request(
        &b,
        Method::PATCH,
        LONG_ADMIN_TOKEN,
        Some("\"5\""),
        false,
        Some(digits.clone()),
    )
    .await;
    let replaced = settings_request(
        &b,
        Method::PATCH,
        LONG_ADMIN_TOKEN,
        Some("\"5\""),
        true,
        Some(json!({"codes": {"digits": 5}})),
    )
    .await;

    // Assert
    assert_eq!(ready, 200);
    assert!(
        warnings.iter().any(|w| w.contains("(version 5)")),
        "{warnings:?}"
    );
    assert_eq!(refused.0, 409, "{}", refused.2);
    assert_eq!(replaced.0, 200, "{}", replaced.2);
    assert_eq!(replaced.1, "\"6\"");
    assert_eq!(b.state.snapshot().settings.codes.digits, 5);
}
both_stores!(
    an_overlay_sealed_under_a_dropped_key_is_reported_and_can_be_replaced,
    unreadable_overlay_is_reported_and_replaceable
);

/// The sample value of `series` in Prometheus text, if the series is there.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The child process, killed and reaped on every path.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Redis only: the overlay must outlive the instance that wrote it and reach another process.
// A process of its own, because the settings gauges are per process (the test binary runs many
// instances at once) and so are its log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_open_the_live_settings_says_so_from_the_start() {
    // Arrange: live settings sealed under K1.
    let prefix = format!("unread{:016x}:", rand_u64());
    let a = spawn_app_with(
        StoreKind::Redis,
        &format!("[store]\nkey_prefix = \"{prefix}\"\n{}", keys(K1, &[])),
    )
    .await;
    patch_live(
        &a,
        json!({"sms": {"url": "http://127.0.0.1:9/send?to={recipient}", "request_headers": ["X-Api-Key: live-secret-9"]}}),
    )
    .await;

    // Act: the real binary, holding only K2.
    let port = free_port();
    let log_path = a.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let served = Served(
        twofactor_command()
            .arg("serve")
            .env("TFA__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("TFA__STORE__URL", redis().url())
            .env("TFA__STORE__KEY_PREFIX", &prefix)
            .env("TFA__SECURITY__ENCRYPTION_KEY", K2)
            .env("TFA__LOG__FILTER", "info")
            .env("TFA__LOG__FORMAT", "json")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("the binary starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while a
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed().as_secs() < 30,
            "the service did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = a
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let ready = a
        .client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    let ready_status = ready.status().as_u16();
    let ready_body = ready.text().await.expect("readyz body");
    // Several re-reads (one a second) of the same unreadable overlay.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    drop(served);
    let without_k1 = run_cli(&prefix, K2, &[], &["check-config"]).await;
    let with_k1 = run_cli(&prefix, K2, &[K1], &["check-config"]).await;

    // Assert
    assert_eq!(
        sample(&metrics, "twofactor_settings_stale"),
        Some(1.0),
        "stale from the first moment: {metrics}"
    );
    assert_eq!(sample(&metrics, "twofactor_settings_version"), Some(0.0));
    assert_eq!(ready_status, 200, "{ready_body}");
    assert!(
        ready_body.contains("cannot be opened") && ready_body.contains("sms.url"),
        "{ready_body}"
    );
    let logs = std::fs::read_to_string(&log_path).expect("log");
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("settings overlay"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line, not one per re-read: {logs}"
    );
    assert!(!logs.contains("live-secret-9"), "{logs}");
    let (out_without, out_with) = (output_text(&without_k1), output_text(&with_k1));
    assert!(!without_k1.status.success(), "{out_without}");
    assert!(
        out_without.contains("cannot be opened") && out_without.contains("does not hold"),
        "{out_without}"
    );
    assert!(with_k1.status.success(), "{out_with}");
    assert!(
        out_with.contains("version 1 opens and applies"),
        "{out_with}"
    );
}
