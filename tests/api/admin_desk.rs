//! The support desk's part of the admin API: a customer's lock and pending code, unlocking, paging
//! through customers, importing a list, and test messages with the live settings.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::{Value, json};
use twofactor::domain::CustomerId;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::admin::AdminAnswer;
use crate::both_stores;
use crate::delivery_email::start_smtp;
use crate::helpers::{
    OwnRedis, StoreKind, TestApp, admin_tokens, free_port, own_redis, spawn_app_customised,
    spawn_app_with, wrong_code,
};

/// Three wrong codes lock for a minute; the per-code limit is higher, so the lock is what stops.
const LOCKOUT: &str = r#"
[codes]
max_verify_attempts = 10
[lockout]
max_failures = 3
window_seconds = 60
duration_seconds = 60
"#;

async fn app(kind: StoreKind, extra: &str) -> TestApp {
    spawn_app_with(kind, &format!("{}{extra}", admin_tokens())).await
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> AdminAnswer {
    app.admin_call(method, path, body).await
}

async fn detail(app: &TestApp, id: &str) -> Value {
    let got = call(app, Method::GET, &format!("/admin/v1/customers/{id}"), None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.json()
}

async fn customer_shows_lock_and_pending_code_and_unlocks(kind: StoreKind) {
    // Arrange
    let app = app(kind, LOCKOUT).await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    let idle = detail(&app, "1001").await;

    // Act: a code is sent, then one wrong try, then two more that lock.
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    let pending = detail(&app, "1001").await;
    let wrong = wrong_code(&code);
    app.verify("1001", &wrong).await;
    let one_wrong = detail(&app, "1001").await;
    app.verify("1001", &wrong).await;
    app.verify("1001", &wrong).await;
    let locked = detail(&app, "1001").await;
    let still_locked = app.verify("1001", &code).await.xml_status();
    let unlock = call(&app, Method::DELETE, "/admin/v1/customers/1001/lock", None).await;
    let unlocked = detail(&app, "1001").await;

    // Assert
    assert_eq!(
        idle,
        json!({"id": "1001", "email": "alice@example.com", "phone": null, "totp_enrolled": false,
               "locked": false, "locked_seconds_left": null, "needs_desk": false, "failures": 0,
               "failures_in_a_row": 0, "pending": null})
    );
    assert_eq!(pending["pending"]["method"], "email", "{pending}");
    let left = pending["pending"]["expires_in_seconds"].as_u64().unwrap();
    assert!((290..=300).contains(&left), "{pending}");
    assert!(
        !pending.to_string().contains(&code),
        "never the code: {pending}"
    );
    assert_eq!(one_wrong["failures"], 1, "{one_wrong}");
    assert_eq!(one_wrong["locked"], false, "{one_wrong}");
    assert_eq!(locked["locked"], true, "{locked}");
    let left = locked["locked_seconds_left"].as_u64().unwrap();
    assert!((50..=60).contains(&left), "{locked}");
    assert_eq!(locked["pending"], Value::Null, "a lock discards the code");
    assert_eq!(still_locked, "locked");
    assert_eq!(unlock.status, 204, "{}", unlock.body);
    assert_eq!(unlocked["locked"], false, "{unlocked}");
    assert_eq!(unlocked["failures"], 0, "{unlocked}");
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    assert_eq!(
        app.verify("1001", &code).await.xml_status(),
        "success",
        "the right code works again after the unlock"
    );
}
both_stores!(
    customer_detail_and_unlock,
    customer_shows_lock_and_pending_code_and_unlocks
);

const CALLER_SCOPE: &str = r#"
[codes]
max_verify_attempts = 10
[lockout]
scope = "caller"
max_failures = 3
"#;
const STRANGER: &str = "+447700900123";

async fn unlock_lifts_caller_number_locks_too(kind: StoreKind) {
    // Arrange: a line keys three wrong codes for 1001 and is locked out of it.
    let app = app(kind, CALLER_SCOPE).await;
    app.add_alice().await;
    app.add_customer("10010", Some("other@example.com"), None, None)
        .await;
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let code = app.last_code_to("447911123456");
    for _ in 0..3 {
        app.verify_with("1001", &wrong_code(&code), &[("ANI", STRANGER)])
            .await;
    }
    let lock = app.state.keys.lock(&CustomerId::parse("1001").unwrap());
    let pair_keys = app.store().keys_with_prefix(&format!("{lock}:")).await;
    assert_eq!(
        app.verify_with("1001", &code, &[("ANI", STRANGER)])
            .await
            .xml_status(),
        "locked"
    );

    // Act
    let unlock = call(&app, Method::DELETE, "/admin/v1/customers/1001/lock", None).await;
    let unknown = call(&app, Method::DELETE, "/admin/v1/customers/999/lock", None).await;
    let wrong_method = call(&app, Method::GET, "/admin/v1/customers/1001/lock", None).await;

    // Assert
    assert_eq!(pair_keys.unwrap().len(), 1, "the line's lock on 1001");
    assert_eq!(unlock.status, 204, "{}", unlock.body);
    assert!(
        app.store()
            .keys_with_prefix(&format!("{lock}:"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.verify_with("1001", &code, &[("ANI", STRANGER)])
            .await
            .xml_status(),
        "success",
        "the pending code survived the line's lock and works once it is lifted"
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"], "not-found");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), "DELETE");
}
both_stores!(unlock_caller_pairs, unlock_lifts_caller_number_locks_too);

/// Every id a listing gives, page by page, with the query's other parameters in `query`.
async fn walk(app: &TestApp, query: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/customers?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let page = call(app, Method::GET, &path, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.header("cache-control"), "no-store");
        let body = page.json();
        for c in body["customers"].as_array().unwrap() {
            let keys: HashSet<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                HashSet::from(["id", "email", "phone", "totp_enrolled"]),
                "{c}"
            );
            ids.push(c["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10_000, "the walk ends");
    }
    (ids, pages)
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_each_once(mut got: Vec<String>, mut wanted: Vec<String>) {
    got.sort();
    wanted.sort();
    assert_eq!(got, wanted);
}

async fn listing_pages_through_every_customer_once(kind: StoreKind) {
    // Arrange: a Redis of the test's own, so no other test resizes its table mid-walk (SCAN may
    // then list a key twice).
    let mut own: Option<OwnRedis> = None;
    let mut extra = String::new();
    if kind == StoreKind::Redis {
        let port = free_port();
        own = Some(own_redis(port, &[]).await);
        extra = format!("[store]\nurl = \"redis://127.0.0.1:{port}/\"\n");
    }
    let app = app(kind, &extra).await;
    let list: Vec<Value> = (1..=120)
        .map(|i| json!({"id": format!("c{i:03}"), "email": format!("c{i}@example.com")}))
        .collect();
    let imported = call(
        &app,
        Method::POST,
        "/admin/v1/customers:import",
        Some(Value::Array(list)),
    )
    .await;
    assert_eq!(imported.json(), json!({"imported": 120}));
    // Keys that are not customers are never listed.
    app.send("c001", "Email").await;
    let every: Vec<String> = (1..=120).map(|i| format!("c{i:03}")).collect();

    // Act
    let (all, pages) = walk(&app, "limit=7").await;
    let (default_limit, _) = walk(&app, "").await;
    let (c1, _) = walk(&app, "prefix=c1&limit=5").await;
    let (none, none_pages) = walk(&app, "prefix=zz").await;

    // Assert
    assert_each_once(all, every.clone());
    // Memory pages hold exactly the limit; a Redis SCAN step holds about as many, more or fewer.
    if kind == StoreKind::Memory {
        assert_eq!(pages, 120_usize.div_ceil(7), "pages of 7");
    } else {
        assert!(pages >= 120 / 7 / 2, "pages of about 7: {pages}");
    }
    assert_each_once(default_limit, every.clone());
    assert_each_once(
        c1,
        every
            .into_iter()
            .filter(|id| id.starts_with("c1"))
            .collect(),
    );
    assert!(none.is_empty());
    if kind == StoreKind::Memory {
        assert_eq!(none_pages, 1);
    }
    drop(own);
}
both_stores!(listing_pages, listing_pages_through_every_customer_once);

async fn listing_refuses_bad_parameters(kind: StoreKind) {
    let app = app(kind, "").await;
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "prefix=%7B",
        "prefix=a%20b",
        "colour=red",
    ] {
        let res = call(
            &app,
            Method::GET,
            &format!("/admin/v1/customers?{query}"),
            None,
        )
        .await;
        assert_eq!(res.status, 400, "{query}: {}", res.body);
        assert_eq!(res.json()["error"], "bad-request", "{query}");
    }
    let ok = call(&app, Method::GET, "/admin/v1/customers?limit=500", None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // On the shared test Redis one SCAN step may not reach the end: only the memory store's is known.
    assert_eq!(ok.json()["customers"], json!([]), "{}", ok.body);
    if kind == StoreKind::Memory {
        assert_eq!(ok.json(), json!({"customers": [], "next_cursor": null}));
    }
    if kind == StoreKind::Redis {
        let bad = call(&app, Method::GET, "/admin/v1/customers?cursor=xyz", None).await;
        assert_eq!(bad.status, 400, "{}", bad.body);
    }
}
both_stores!(listing_bad_parameters, listing_refuses_bad_parameters);

async fn import_is_all_or_nothing(kind: StoreKind) {
    // Arrange
    let app = app(kind, "").await;
    let bad = json!([
        {"id": "x1", "email": "x1@example.com"},
        {"id": "x2", "email": "not an address"},
        {"email": "noid@example.com"},
        {"id": "x1", "phone": "+447911123456"},
    ]);
    let good = json!([
        {"id": "x1", "email": "x1@example.com"},
        {"id": "x2", "phone": "+447911123456"},
    ]);

    // Act
    let refused = call(&app, Method::POST, "/admin/v1/customers:import", Some(bad)).await;
    let after_refusal = call(&app, Method::GET, "/admin/v1/customers/x1", None).await;
    let not_a_list = call(
        &app,
        Method::POST,
        "/admin/v1/customers:import",
        Some(json!({"id": "x1"})),
    )
    .await;
    let imported = call(&app, Method::POST, "/admin/v1/customers:import", Some(good)).await;
    let wrong_method = call(&app, Method::GET, "/admin/v1/customers:import", None).await;

    // Assert
    assert_eq!(refused.status, 400, "{}", refused.body);
    let message = refused.json()["message"].as_str().unwrap().to_string();
    for part in ["entry 2 (x2)", "entry 3 (no id)", "entry 4 (x1)"] {
        assert!(message.contains(part), "{part} in {message}");
    }
    assert!(!message.contains("entry 1"), "{message}");
    assert_eq!(after_refusal.status, 404, "nothing stored");
    assert_eq!(not_a_list.status, 400, "{}", not_a_list.body);
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert_eq!(imported.json(), json!({"imported": 2}));
    assert_eq!(detail(&app, "x2").await["phone"], "+447911123456");
    assert_eq!(wrong_method.status, 405);
}
both_stores!(import_all_or_nothing, import_is_all_or_nothing);

async fn test_email_reports_what_the_server_said(kind: StoreKind) {
    // Arrange
    let smtp = start_smtp(None);
    let app = app(kind, &smtp.settings("none", "", "")).await;

    // Act
    let sent = call(
        &app,
        Method::POST,
        "/admin/v1/test-email",
        Some(json!({"to": "desk@example.com"})),
    )
    .await;
    smtp.refuse_recipients.store(true, Ordering::SeqCst);
    let refused = call(
        &app,
        Method::POST,
        "/admin/v1/test-email",
        Some(json!({"to": "gone@example.com"})),
    )
    .await;
    smtp.refuse_recipients.store(false, Ordering::SeqCst);
    let bad = call(
        &app,
        Method::POST,
        "/admin/v1/test-email",
        Some(json!({"to": "not an address"})),
    )
    .await;
    let no_to = call(&app, Method::POST, "/admin/v1/test-email", Some(json!({}))).await;

    // Assert
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.header("cache-control"), "no-store");
    let body = sent.json();
    assert_eq!(body["sent"], true, "{body}");
    assert!(
        body["answer"].as_str().unwrap().starts_with("250"),
        "{body}"
    );
    assert!(body["elapsed_ms"].is_u64(), "{body}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["desk@example.com"]);
    assert!(
        String::from_utf8_lossy(&messages[0].data).contains("000000"),
        "the test code is all zeros"
    );
    assert_eq!(refused.status, 200, "{}", refused.body);
    let body = refused.json();
    assert_eq!(body["sent"], false, "{body}");
    let answer = body["answer"].as_str().unwrap();
    assert!(answer.contains("550"), "{answer}");
    assert!(!answer.contains("gone@example.com"), "masked: {answer}");
    assert!(answer.chars().count() <= 301, "{answer}");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.json()["message"].as_str().unwrap().starts_with("to:"),
        "{}",
        bad.body
    );
    assert_eq!(no_to.status, 400, "{}", no_to.body);
}
both_stores!(test_email, test_email_reports_what_the_server_said);

async fn gateway(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

fn sms_settings(gw: &MockServer) -> String {
    format!(
        r#"
[sms]
method = "POST"
url = "{}/send"
request_body = '{{"to":"{{recipient}}","text":"{{message}}"}}'
message = "Test code {{code}}"
timeout_ms = 10000
"#,
        gw.uri()
    )
}

async fn test_sms_reports_what_the_gateway_said(kind: StoreKind) {
    // Arrange
    let ok = gateway(ResponseTemplate::new(201).set_body_string(r#"{"id":"m-1"}"#)).await;
    let broke = gateway(ResponseTemplate::new(402).set_body_string("no credit left")).await;
    let app = app(kind, &sms_settings(&ok)).await;
    let broke_app = self::app(kind, &sms_settings(&broke)).await;

    // Act
    let sent = call(
        &app,
        Method::POST,
        "/admin/v1/test-sms",
        Some(json!({"to": "+447911123456"})),
    )
    .await;
    let refused = call(
        &broke_app,
        Method::POST,
        "/admin/v1/test-sms",
        Some(json!({"to": "+447911123456"})),
    )
    .await;
    let bad = call(
        &app,
        Method::POST,
        "/admin/v1/test-sms",
        Some(json!({"to": "12"})),
    )
    .await;

    // Assert
    assert_eq!(sent.status, 200, "{}", sent.body);
    let body = sent.json();
    assert_eq!(body["sent"], true, "{body}");
    assert_eq!(body["answer"], r#"201 Created: {"id":"m-1"}"#, "{body}");
    let requests = ok.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let text: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(text["text"], "Test code 000000");
    let body = refused.json();
    assert_eq!(body["sent"], false, "{body}");
    let answer = body["answer"].as_str().unwrap();
    assert!(
        answer.contains("402") && answer.contains("no credit left"),
        "{answer}"
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}
both_stores!(test_sms, test_sms_reports_what_the_gateway_said);

async fn test_send_says_when_a_channel_is_not_offered(kind: StoreKind) {
    // Arrange: the live snapshot offers neither channel (production without a transport).
    let app = spawn_app_customised(kind, &admin_tokens(), |state| {
        let settings = state.snapshot().settings.clone();
        state.live.store(twofactor::live::Snapshot {
            settings,
            email: None,
            sms: None,
        });
    })
    .await;

    // Act
    let email = call(
        &app,
        Method::POST,
        "/admin/v1/test-email",
        Some(json!({"to": "desk@example.com"})),
    )
    .await;
    let sms = call(
        &app,
        Method::POST,
        "/admin/v1/test-sms",
        Some(json!({"to": "+447911123456"})),
    )
    .await;

    // Assert
    assert_eq!(
        (email.status, email.json()),
        (
            200,
            json!({"sent": false, "answer": "email is not offered: production has no transport for it (set email.smtp.host)", "elapsed_ms": 0})
        )
    );
    assert_eq!(
        (sms.status, sms.json()),
        (
            200,
            json!({"sent": false, "answer": "SMS is not offered: production has no transport for it (set sms.url)", "elapsed_ms": 0})
        )
    );
}
both_stores!(
    test_send_not_offered,
    test_send_says_when_a_channel_is_not_offered
);
