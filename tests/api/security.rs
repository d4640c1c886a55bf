//! Who may call: Basic credentials, allowed networks, and TLS termination in the server itself.

use crate::both_stores;
use crate::helpers::{StoreKind, spawn_app_with};

const BASIC: &str = r#"
[security]
auth_scheme = "basic"
user_id = "gia"
password = "s3cret:pass"
"#;

async fn basic_auth_guards_every_callflow_endpoint(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, BASIC).await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    let url = |p: &str| {
        format!(
            "{}/v1/{p}?CustomerId=1001&TwoFactorAuthSelectedMethod=Email&authCode_nbest1=1",
            app.address
        )
    };
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, u16);
    let cases: [Case; 5] = [
        ("no credentials", None, 401),
        ("wrong password", Some(("gia", "wrong")), 401),
        ("wrong user id", Some(("other", "s3cret:pass")), 401),
        ("password prefix", Some(("gia", "s3cret")), 401),
        ("right credentials", Some(("gia", "s3cret:pass")), 200),
    ];
    for (path, root) in [
        (
            "check-verified-contact-methods",
            "checkVerifiedContactMethods",
        ),
        ("send-authentication-code", "sendAuthenticationCode"),
        ("code-authentication", "codeAuthentication"),
    ] {
        for (what, creds, want) in &cases {
            // Act
            let mut req = app.client.get(url(path));
            if let Some((u, p)) = creds {
                req = req.basic_auth(u, Some(p));
            }
            let res = req.send().await.unwrap();

            // Assert
            assert_eq!(res.status().as_u16(), *want, "{path}, {what}");
            if *want == 401 {
                let challenge = res.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_string();
                assert!(
                    challenge.starts_with("Basic "),
                    "{path}, {what}: {challenge}"
                );
                let body = res.text().await.unwrap();
                assert!(
                    body.starts_with(&format!("<{root}><status>error</status><message>")),
                    "{path}, {what}: {body}"
                );
            }
        }
    }
    // Health stays open for the orchestrator.
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
both_stores!(basic_auth, basic_auth_guards_every_callflow_endpoint);

async fn allowed_networks_refuse_other_addresses(kind: StoreKind) {
    let outside = spawn_app_with(
        kind,
        "[security]\nallowed_networks = [\"10.0.0.0/8\", \"192.168.1.7\"]",
    )
    .await;
    let refused = outside.methods("1001").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.xml_status(), "error");
    assert!(
        refused.body.starts_with("<checkVerifiedContactMethods>"),
        "{}",
        refused.body
    );

    let inside = spawn_app_with(
        kind,
        "[security]\nallowed_networks = [\"10.0.0.0/8\", \"127.0.0.0/8\"]",
    )
    .await;
    inside
        .add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    let allowed = inside.methods("1001").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.xml_status(), "success");
}
both_stores!(allowed_networks, allowed_networks_refuse_other_addresses);

async fn tls_serves_https_only(kind: StoreKind) {
    // Arrange: a self-signed certificate for 127.0.0.1 and localhost.
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(
        kind,
        &format!(
            "[server]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            cert_file.display(),
            key_file.display()
        ),
    )
    .await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();

    // Act
    let https = trusting
        .get(format!(
            "https://localhost:{}/v1/check-verified-contact-methods?CustomerId=1001",
            app.port
        ))
        .send()
        .await;
    let plain = app
        .client
        .get(format!(
            "http://127.0.0.1:{}/v1/check-verified-contact-methods?CustomerId=1001",
            app.port
        ))
        .send()
        .await;
    let untrusting = reqwest::Client::new()
        .get(format!("https://localhost:{}/healthz", app.port))
        .send()
        .await;

    // Assert
    let https = https.expect("a client trusting the certificate gets through");
    assert_eq!(https.status().as_u16(), 200);
    assert!(
        https
            .text()
            .await
            .unwrap()
            .contains("<status>success</status>")
    );
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");
    assert!(
        untrusting.is_err(),
        "a client that does not trust the certificate must fail"
    );
}
both_stores!(tls, tls_serves_https_only);

async fn invalid_utf8_in_percent_escapes_is_refused(kind: StoreKind) {
    let app = spawn_app_with(kind, "").await;
    for (what, res) in [
        (
            "query",
            app.client
                .get(format!(
                    "{}/v1/check-verified-contact-methods?CustomerId=%FF%FE",
                    app.address
                ))
                .send()
                .await
                .unwrap(),
        ),
        (
            "form body",
            app.client
                .post(format!("{}/v1/send-authentication-code", app.address))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("CustomerId=1001&TwoFactorAuthSelectedMethod=%C3%28")
                .send()
                .await
                .unwrap(),
        ),
    ] {
        assert_eq!(res.status().as_u16(), 400, "{what}");
        let body = res.text().await.unwrap();
        assert!(
            body.contains("<status>error</status><message>parameter"),
            "{what}: {body}"
        );
        assert!(body.contains("not valid UTF-8"), "{what}: {body}");
    }
}
both_stores!(
    invalid_utf8_escapes,
    invalid_utf8_in_percent_escapes_is_refused
);
