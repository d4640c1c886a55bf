//! Production never falls back to the outbox: a channel with no transport configured is not offered
//! to the callflow, sending on it is an error, and nothing lands in an outbox file. An outbox asked
//! for explicitly is still refused at start. Redis only: production refuses the memory store.

use crate::helpers::{StoreKind, TEST_KEY, TestApp, free_port, redis, spawn_app_with};

/// Production with callers checked by network, as the rules require.
const PRODUCTION: &str = r#"
[server]
environment = "production"
[security]
allowed_networks = ["127.0.0.1/32"]
"#;

/// Production with SMTP configured (nothing listens there; nothing here sends email) and no SMS URL.
fn email_only() -> String {
    format!(
        "{PRODUCTION}[email.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
        free_port()
    )
}

/// No file at all in the app's directory, where its outbox would be.
fn assert_no_outbox(app: &TestApp) {
    let files: Vec<_> = std::fs::read_dir(app.dir.path())
        .expect("the app's directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        files.is_empty() && !app.outbox.exists(),
        "production wrote an outbox: {files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_offers_only_channels_with_a_transport() {
    // Arrange
    let app = spawn_app_with(StoreKind::Redis, &email_only()).await;
    app.add_alice().await;
    app.add_customer("1002", None, Some("+447911123457"), None)
        .await;

    // Act
    let both = app.methods("1001").await;
    let phone_only = app.methods("1002").await;
    let sms = app.send("1001", "SMS").await;

    // Assert
    assert_eq!(both.xml_status(), "success", "{}", both.body);
    assert!(
        both.body
            .contains("<method name=\"email\" value=\"alice@example.com\"/>"),
        "email has a transport, so it is offered: {}",
        both.body
    );
    assert!(
        !both.body.contains("name=\"SMS\""),
        "SMS has no transport, so it is not offered: {}",
        both.body
    );
    assert_eq!(
        phone_only.xml_status(),
        "not found",
        "a customer whose only method cannot be delivered has no usable method: {}",
        phone_only.body
    );
    assert_eq!(
        sms.xml_status(),
        "error",
        "a send on a channel with no transport fails: {}",
        sms.body
    );
    assert_no_outbox(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_without_transports_offers_no_sent_code() {
    // Arrange: neither SMTP nor an SMS gateway.
    let app = spawn_app_with(StoreKind::Redis, PRODUCTION).await;
    app.add_customer("1002", None, Some("+447911123457"), None)
        .await;
    app.add_customer("1003", Some("bob@example.com"), None, None)
        .await;

    // Act
    let phone_only = app.methods("1002").await;
    let email_only = app.methods("1003").await;
    let email_send = app.send("1003", "Email").await;

    // Assert
    assert_eq!(phone_only.xml_status(), "not found", "{}", phone_only.body);
    assert_eq!(email_only.xml_status(), "not found", "{}", email_only.body);
    assert_ne!(email_send.xml_status(), "success", "{}", email_send.body);
    assert_no_outbox(&app);
}

#[test]
fn production_refuses_an_explicit_outbox() {
    // Arrange: a production configuration that loads, and the same with the outbox asked for.
    let base = loadable_production();

    // Act
    let without = twofactor::config::Settings::from_layers(&[&base]);
    let with =
        twofactor::config::Settings::from_layers(&[&base, "[email]\ntransport = \"outbox\"\n"]);

    // Assert
    assert!(
        without.is_ok(),
        "production without transports starts: {:?}",
        without.err()
    );
    let err = with.expect_err("an explicit outbox in production is refused");
    assert!(
        err.to_string().contains("email.transport"),
        "the error names the key: {err}"
    );
}

/// A production configuration that loads, for adding one rule's settings to.
fn loadable_production() -> String {
    format!(
        r#"
[server]
environment = "production"
[store]
url = "{}"
[security]
encryption_key = "{TEST_KEY}"
allowed_networks = ["127.0.0.1/32"]
"#,
        redis().url()
    )
}

#[test]
fn production_refuses_credentials_in_clear_except_towards_loopback() {
    // Arrange: each delivery setting, and the key production refuses it under (None: accepted).
    let cases = [
        ("[sms]\nurl = \"http://gw.example/send\"\n", Some("sms.url")),
        ("[sms]\nurl = \"HTTP://gw.example/send\"\n", Some("sms.url")),
        ("[sms]\nurl = \"https://gw.example/send\"\n", None),
        ("[sms]\nurl = \"http://127.0.0.1:9000/send\"\n", None),
        ("[sms]\nurl = \"http://127.8.0.1:9000/send\"\n", None),
        ("[sms]\nurl = \"http://localhost:9000/send\"\n", None),
        ("[sms]\nurl = \"http://[::1]:9000/send\"\n", None),
        (
            "[email.smtp]\nhost = \"mail.example\"\nsecurity = \"none\"\n",
            Some("email.smtp.security"),
        ),
        (
            "[email.smtp]\nhost = \"mail.example\"\nsecurity = \"starttls\"\n",
            None,
        ),
        (
            "[email.smtp]\nhost = \"mail.example\"\nsecurity = \"tls\"\n",
            None,
        ),
        (
            "[email.smtp]\nhost = \"localhost\"\nsecurity = \"none\"\n",
            None,
        ),
        (
            "[email.smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
            None,
        ),
    ];
    let base = loadable_production();

    for (layer, refused_as) in cases {
        // Act
        let loaded = twofactor::config::Settings::from_layers(&[&base, layer]);
        let in_development = twofactor::config::Settings::from_toml(layer);

        // Assert
        match refused_as {
            None => assert!(loaded.is_ok(), "{layer}: {:?}", loaded.err()),
            Some(key) => {
                let err = loaded.map(|_| ()).expect_err(layer).to_string();
                assert!(err.contains(key), "{layer}: the error names {key}: {err}");
            }
        }
        assert!(
            in_development.is_ok(),
            "development accepts {layer}: {:?}",
            in_development.err()
        );
    }
}

async fn production_patch(app: &TestApp, patch: serde_json::Value) -> (u16, serde_json::Value) {
    let url = format!("{}/admin/v1/settings", app.address);
    let token = crate::helpers::LONG_ADMIN_TOKEN;
    let current = app
        .client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET settings");
    let etag = current
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let res = app
        .client
        .patch(&url)
        .bearer_auth(token)
        .header("If-Match", etag)
        .header("Content-Type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .expect("PATCH settings");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_credentials_in_clear_set_live() {
    // Arrange
    let app = spawn_app_with(
        StoreKind::Redis,
        &format!("{PRODUCTION}{}", crate::helpers::admin_tokens()),
    )
    .await;

    // Act
    let http = production_patch(
        &app,
        serde_json::json!({"sms": {"url": "http://gw.bank.example/send?to={recipient}"}}),
    )
    .await;
    let plain = production_patch(
        &app,
        serde_json::json!({"email": {"smtp": {"host": "mail.bank.example", "security": "none"}}}),
    )
    .await;
    let https = production_patch(
        &app,
        serde_json::json!({"sms": {"url": "https://gw.bank.example/send?to={recipient}"},
                           "email": {"smtp": {"host": "mail.bank.example", "security": "starttls"}}}),
    )
    .await;

    // Assert
    assert_eq!(http.0, 400, "{}", http.1);
    assert_eq!(http.1["key"], "sms.url", "{}", http.1);
    assert_eq!(plain.0, 400, "{}", plain.1);
    assert_eq!(plain.1["key"], "email.smtp.security", "{}", plain.1);
    assert_eq!(https.0, 200, "{}", https.1);
}
