//! The admin API's first part: the bearer guard, customers in the seed file's JSON shape, and JSON
//! errors for every bad input.

use reqwest::Method;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, spawn_app_with};

pub const ADMIN_TOKEN: &str = "test-admin-token-4f1c2a9e";
/// Two tokens, so a test can show that any configured one works.
pub const ADMIN: &str = r#"
[admin]
tokens = ["test-admin-token-4f1c2a9e", "second-admin-token-77d0"]
"#;

#[derive(Debug)]
pub struct AdminAnswer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl AdminAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

impl AdminAnswer {
    /// Sends `req` and keeps what came back; any 5xx fails the test.
    pub async fn of(req: reqwest::RequestBuilder) -> AdminAnswer {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.expect("body");
        assert!(status < 500, "server answered {status}: {body}");
        AdminAnswer {
            status,
            headers,
            body,
        }
    }
}

/// One admin request; `body` is (content type, text). Any 5xx fails the test.
pub async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> AdminAnswer {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((ct, text)) = body {
        req = req.header("content-type", ct).body(text.to_string());
    }
    AdminAnswer::of(req).await
}

pub async fn put_customer(app: &TestApp, id: &str, body: serde_json::Value) -> AdminAnswer {
    admin(
        app,
        Method::PUT,
        &format!("/admin/v1/customers/{id}"),
        Some(ADMIN_TOKEN),
        Some(("application/json", &body.to_string())),
    )
    .await
}

pub async fn enrol(app: &TestApp, id: &str) -> AdminAnswer {
    admin(
        app,
        Method::POST,
        &format!("/admin/v1/customers/{id}/totp"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
}

async fn admin_without_or_with_wrong_token_is_401(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, ADMIN).await;
    app.add_customer("2001", Some("a@example.com"), None, None)
        .await;
    let cases: [(&str, Method, &str, Option<&str>); 7] = [
        ("no token", Method::GET, "/admin/v1/customers/2001", None),
        (
            "wrong token",
            Method::GET,
            "/admin/v1/customers/2001",
            Some("test-admin-token-4f1c2a9"),
        ),
        (
            "longer token",
            Method::GET,
            "/admin/v1/customers/2001",
            Some("test-admin-token-4f1c2a9eX"),
        ),
        (
            "empty-ish token",
            Method::GET,
            "/admin/v1/customers/2001",
            Some(" "),
        ),
        (
            "no token, delete",
            Method::DELETE,
            "/admin/v1/customers/2001",
            None,
        ),
        (
            "no token, enrol",
            Method::POST,
            "/admin/v1/customers/2001/totp",
            None,
        ),
        (
            "no token, unknown path",
            Method::GET,
            "/admin/v1/nothing-here",
            None,
        ),
    ];

    for (what, method, path, token) in cases {
        // Act
        let res = admin(&app, method, path, token, None).await;
        // Assert
        assert_eq!(res.status, 401, "{what}: {}", res.body);
        assert!(
            res.header("www-authenticate").starts_with("Bearer"),
            "{what}: {:?}",
            res.headers
        );
        assert_eq!(res.json()["error"], "unauthorized", "{what}");
    }

    // A Basic header with the right token as password is still not a bearer token.
    let basic = app
        .client
        .get(format!("{}/admin/v1/customers/2001", app.address))
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status().as_u16(), 401);

    // Nothing was deleted or enrolled by the refused requests, and both tokens work.
    for token in [ADMIN_TOKEN, "second-admin-token-77d0"] {
        let ok = admin(
            &app,
            Method::GET,
            "/admin/v1/customers/2001",
            Some(token),
            None,
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(ok.json()["totp_enrolled"], false);
    }
}
both_stores!(
    admin_auth_refuses_missing_and_wrong_tokens,
    admin_without_or_with_wrong_token_is_401
);

async fn admin_disabled_without_tokens(kind: StoreKind) {
    let app = spawn_app_with(kind, "").await;
    for token in [None, Some(ADMIN_TOKEN), Some("")] {
        let res = admin(&app, Method::GET, "/admin/v1/customers/2001", token, None).await;
        assert_eq!(res.status, 403, "{token:?}: {}", res.body);
        assert_eq!(res.json()["error"], "admin-disabled");
    }
}
both_stores!(
    admin_api_is_403_when_no_tokens_are_configured,
    admin_disabled_without_tokens
);

async fn customer_round_trip(kind: StoreKind) {
    let app = spawn_app_with(kind, ADMIN).await;
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let path = "/admin/v1/customers/2002";

    // Create, with a secret.
    let created = put_customer(
        &app,
        "2002",
        json!({"email": "bob@example.com", "phone": "+447911123456", "totp_secret": secret}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("cache-control"), "no-store");
    assert_eq!(
        created.json(),
        json!({"id": "2002", "email": "bob@example.com", "phone": "+447911123456", "totp_enrolled": true, "locked": false, "locked_seconds_left": null, "needs_desk": false, "failures": 0, "failures_in_a_row": 0, "pending": null})
    );

    // Read back: never the secret.
    let got = admin(&app, Method::GET, path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), created.json());
    assert!(!got.body.contains(secret) && !got.body.contains("totp_secret"));

    // The callflow sees what the admin wrote.
    let methods = app.methods("2002").await;
    assert!(
        methods.body.contains("<method name=\"authenticator\"/>"),
        "{}",
        methods.body
    );

    // Replace without a secret: contact details change, the authenticator stays.
    let replaced = put_customer(
        &app,
        "2002",
        json!({"id": "2002", "email": "bob2@example.com"}),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(
        replaced.json(),
        json!({"id": "2002", "email": "bob2@example.com", "phone": null, "totp_enrolled": true, "locked": false, "locked_seconds_left": null, "needs_desk": false, "failures": 0, "failures_in_a_row": 0, "pending": null})
    );

    // Delete, then it is gone.
    let deleted = admin(&app, Method::DELETE, path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    let missing = admin(&app, Method::GET, path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not-found");
    let again = admin(&app, Method::DELETE, path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(again.status, 404);
    assert_eq!(app.methods("2002").await.xml_status(), "not found");
}
both_stores!(customer_put_get_delete_round_trip, customer_round_trip);

/// A seed file of `ids`, each with an email of its own.
fn seed_of(ids: impl Iterator<Item = String>) -> String {
    let list: Vec<serde_json::Value> = ids
        .map(|id| json!({"id": id, "email": format!("{id}@example.com")}))
        .collect();
    serde_json::Value::Array(list).to_string()
}

async fn a_restart_seeds_only_what_the_store_lacks(kind: StoreKind) {
    // Arrange: a seed of 200 customers loaded once (more than are written at a time), then an
    // admin change to one of them.
    let app = spawn_app_with(kind, ADMIN).await;
    let first = seed_of((0..200).map(|i| format!("s{i:03}")));
    let loaded = app.state.directory.seed_json(&first).await.expect("seed");
    assert_eq!(loaded, 200);
    let changed = put_customer(&app, "s007", json!({"email": "moved@example.com"})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);

    // Act: the seed again, as the next start loads it, with one customer more.
    let again = seed_of((0..201).map(|i| format!("s{i:03}")));
    let added = app.state.directory.seed_json(&again).await.expect("seed");

    // Assert
    assert_eq!(added, 1, "only the new customer is written");
    let kept = admin(
        &app,
        Method::GET,
        "/admin/v1/customers/s007",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        kept.json()["email"],
        "moved@example.com",
        "the admin's change survives the restart"
    );
    for id in ["s000", "s199", "s200"] {
        let got = admin(
            &app,
            Method::GET,
            &format!("/admin/v1/customers/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert_eq!(got.json()["email"], format!("{id}@example.com"), "{id}");
    }
}
both_stores!(
    a_restart_seeds_only_customers_the_store_lacks,
    a_restart_seeds_only_what_the_store_lacks
);

async fn bad_input_is_a_json_400(kind: StoreKind) {
    let app = spawn_app_with(kind, ADMIN).await;
    let json_ct = "application/json";
    let long_id = "9".repeat(65);
    // (what, id in the path, body as (content type, text), status, the message mentions)
    type Case<'a> = (&'a str, String, Option<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "not JSON",
            "2003".into(),
            Some((json_ct, "{email:".into())),
            400,
            "invalid JSON",
        ),
        (
            "a list",
            "2003".into(),
            Some((json_ct, "[]".into())),
            400,
            "invalid JSON",
        ),
        (
            "unknown field",
            "2003".into(),
            Some((json_ct, r#"{"mail": "a@example.com"}"#.into())),
            400,
            "unknown field",
        ),
        (
            "bad email",
            "2003".into(),
            Some((json_ct, r#"{"email": "not-an-address"}"#.into())),
            400,
            "",
        ),
        (
            "bad phone",
            "2003".into(),
            Some((json_ct, r#"{"phone": "12"}"#.into())),
            400,
            "",
        ),
        (
            "secret not base32",
            "2003".into(),
            Some((json_ct, r#"{"totp_secret": "not base32!"}"#.into())),
            400,
            "base32",
        ),
        (
            "secret too short",
            "2003".into(),
            Some((json_ct, r#"{"totp_secret": "JBSWY3DP"}"#.into())),
            400,
            "160",
        ),
        (
            "ids differ",
            "2003".into(),
            Some((
                json_ct,
                r#"{"id": "2004", "email": "a@example.com"}"#.into(),
            )),
            400,
            "differs",
        ),
        (
            "id too long",
            long_id,
            Some((json_ct, r#"{"email": "a@example.com"}"#.into())),
            400,
            "64",
        ),
        (
            "wrong content type",
            "2003".into(),
            Some(("text/plain", r#"{"email": "a@example.com"}"#.into())),
            415,
            "application/json",
        ),
        (
            "too large",
            "2003".into(),
            Some((json_ct, format!(r#"{{"email": "{}"}}"#, "a".repeat(20_000)))),
            413,
            "larger",
        ),
        (
            "empty body",
            "2003".into(),
            Some((json_ct, String::new())),
            400,
            "invalid JSON",
        ),
        (
            "no body, no type",
            "2003".into(),
            None,
            415,
            "application/json",
        ),
    ];
    for (what, id, body, status, mention) in cases {
        let res = admin(
            &app,
            Method::PUT,
            &format!("/admin/v1/customers/{id}"),
            Some(ADMIN_TOKEN),
            body.as_ref().map(|(ct, b)| (*ct, b.as_str())),
        )
        .await;
        assert_eq!(res.status, status, "{what}: {}", res.body);
        let err = res.json();
        assert!(err["error"].is_string(), "{what}: {}", res.body);
        let message = err["message"].as_str().unwrap_or_default();
        assert!(message.contains(mention), "{what}: {message}");
    }
    // Nothing bad was stored.
    let res = admin(
        &app,
        Method::GET,
        "/admin/v1/customers/2003",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(res.status, 404);

    // Wrong methods are a JSON 405 naming the allowed ones.
    let res = admin(
        &app,
        Method::PATCH,
        "/admin/v1/customers/2003",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), "GET, PUT, DELETE");
    let res = admin(
        &app,
        Method::GET,
        "/admin/v1/customers/2003/totp",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), "POST, DELETE");
}
both_stores!(admin_bad_input_answers_json_4xx, bad_input_is_a_json_400);

async fn enrolling_unknown_customer(kind: StoreKind) {
    let app = spawn_app_with(kind, ADMIN).await;
    let res = enrol(&app, "2999").await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert_eq!(res.json()["error"], "not-found");
    let dump = app.store().dump(&app.prefix).await.expect("dump");
    assert!(
        dump.is_empty(),
        "enrolling nobody stored something: {dump:?}"
    );
}
both_stores!(
    enrolling_an_unknown_customer_is_404,
    enrolling_unknown_customer
);
