//! `directory.source = "http"`: customers looked up in a bank's REST API at call time, with wiremock
//! standing in for the CRM and its OAuth token endpoint. The whole callflow runs against it on both
//! stores; the cache, the token's single flight and refresh, and the failure paths are checked by
//! what a caller (or the source) would notice.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_stores;
use crate::helpers::{
    StoreKind, TestApp, admin_tokens, authenticator, metric_value, output_text, redis,
    run_cli_with_env, spawn_app_with, twofactor_command, unix_now,
};

pub const EMAIL: &str = "alice@example.com";
pub const PHONE: &str = "+447911123456";
/// How the SMS outbox (no plus symbol) names `PHONE`.
pub const PHONE_TO: &str = "447911123456";

/// The CRM's answer for a customer, in a shape of its own.
pub fn crm_customer(email: &str, phone: &str, email_ok: bool, phone_ok: bool) -> serde_json::Value {
    json!({
        "id": "1001",
        "name": "Alice",
        "contact": {
            "email": email,
            "mobile": phone,
            "emailVerified": email_ok,
            "mobileVerified": phone_ok,
        }
    })
}

/// `[directory]` for the CRM at `crm`, with `extra` lines in `[directory.http]` and `top` lines in
/// `[directory]` (the cache TTL).
pub fn http_source(crm: &MockServer, top: &str, extra: &str) -> String {
    format!(
        r#"
[directory]
source = "http"
{top}
[directory.http]
url = "{}/api/customers/{{customer_id}}"
email_pointer = "/contact/email"
phone_pointer = "/contact/mobile"
email_verified_pointer = "/contact/emailVerified"
phone_verified_pointer = "/contact/mobileVerified"
{extra}
"#,
        crm.uri()
    )
}

async fn crm_answering(id: &str, answer: ResponseTemplate) -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/api/customers/{id}")))
        .respond_with(answer)
        .mount(&crm)
        .await;
    crm
}

/// A CRM answering customer 1001 with `EMAIL` and `PHONE`, both verified.
async fn crm_with_alice() -> MockServer {
    crm_answering(
        "1001",
        ResponseTemplate::new(200).set_body_json(crm_customer(EMAIL, PHONE, true, true)),
    )
    .await
}

pub async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

/// The methods answer offering `EMAIL` and `PHONE_TO`.
fn both_methods() -> String {
    format!(
        "<checkVerifiedContactMethods><status>success</status><methods>\
         <method name=\"email\" value=\"{EMAIL}\"/><method name=\"SMS\" value=\"{PHONE_TO}\"/>\
         </methods></checkVerifiedContactMethods>"
    )
}

/// Methods, then a code by email and one by SMS, each verified from the outbox.
pub async fn assert_full_callflow(app: &TestApp, id: &str) {
    let methods = app.methods(id).await;
    assert_eq!(methods.body, both_methods());
    assert_eq!(app.send(id, "Email").await.xml_status(), "success");
    let code = app.last_code_to(EMAIL);
    assert_eq!(app.verify(id, &code).await.xml_status(), "success");
    assert_eq!(app.send(id, "SMS").await.xml_status(), "success");
    let code = app.last_code_to(PHONE_TO);
    assert_eq!(
        app.verify(id, "000000").await.xml_status(),
        "incorrect code"
    );
    assert_eq!(app.verify(id, &code).await.xml_status(), "success");
}

async fn full_callflow_with_basic_auth(kind: StoreKind) {
    // Arrange: a CRM behind Basic auth, asked with a header of the deployment's own.
    let crm = crm_with_alice().await;
    let app = spawn_app_with(
        kind,
        &http_source(
            &crm,
            "",
            "auth = \"basic\"\nusername = \"twofactor\"\npassword = \"s3cret pass\"\n\
             request_headers = [\"X-Customer: {customer_id}\"]",
        ),
    )
    .await;

    // Act + Assert
    assert_full_callflow(&app, "1001").await;
    let asked = requests_to(&crm, "/api/customers/1001").await;
    assert!(!asked.is_empty());
    let auth = asked[0].headers.get("authorization").unwrap();
    // base64("twofactor:s3cret pass")
    assert_eq!(auth, "Basic dHdvZmFjdG9yOnMzY3JldCBwYXNz");
    assert_eq!(asked[0].headers.get("x-customer").unwrap(), "1001");
}
both_stores!(full_callflow_against_a_crm, full_callflow_with_basic_auth);

async fn unknown_customers(kind: StoreKind) {
    // Arrange: 404 for one id, a record that maps to nothing for another.
    let crm = MockServer::start().await;
    Mock::given(path("/api/customers/404"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such customer"))
        .mount(&crm)
        .await;
    Mock::given(path("/api/customers/empty"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "empty", "contact": {}})),
        )
        .mount(&crm)
        .await;
    let app = spawn_app_with(kind, &http_source(&crm, "", "")).await;

    for id in ["404", "empty"] {
        // Act
        let methods = app.methods(id).await;
        let sent = app.send(id, "Email").await;
        let verified = app.verify(id, "123456").await;

        // Assert: as an unknown customer of the store answers.
        assert_eq!(methods.xml_status(), "not found", "{id}");
        assert_eq!(sent.xml_status(), "not found", "{id}");
        assert_eq!(verified.xml_status(), "expired", "{id}");
    }
}
both_stores!(unknown_customers_are_not_found, unknown_customers);

/// "." and ".." would be dot segments in the URL path and walk it to another resource of the
/// bank's API: they are unknown customers, and the source is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segment_ids_never_reach_the_source() {
    // Arrange: the API answers a customer for any path at all.
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(crm_customer(EMAIL, PHONE, true, true)),
        )
        .mount(&crm)
        .await;
    let app = spawn_app_with(StoreKind::Memory, &http_source(&crm, "", "")).await;

    for id in [".", ".."] {
        // Act
        let methods = app.methods(id).await;

        // Assert
        assert_eq!(methods.xml_status(), "not found", "{id}: {}", methods.body);
    }
    let asked = crm.received_requests().await.expect("recording is on");
    assert!(
        asked.is_empty(),
        "the source was asked: {:?}",
        asked
            .iter()
            .map(|r| r.url.path().to_string())
            .collect::<Vec<_>>()
    );
}

async fn unverified_contact(kind: StoreKind) {
    // Arrange: the CRM holds a number it has not verified.
    let crm = crm_answering(
        "1001",
        ResponseTemplate::new(200).set_body_json(crm_customer(EMAIL, PHONE, true, false)),
    )
    .await;
    let app = spawn_app_with(kind, &http_source(&crm, "", "")).await;

    // Act
    let methods = app.methods("1001").await;
    let sms = app.send("1001", "SMS").await;

    // Assert
    assert_eq!(
        methods.body,
        format!(
            "<checkVerifiedContactMethods><status>success</status><methods>\
             <method name=\"email\" value=\"{EMAIL}\"/></methods></checkVerifiedContactMethods>"
        )
    );
    assert_eq!(sms.xml_status(), "not found");
    assert!(app.outbox_messages().is_empty(), "nothing was sent");
}
both_stores!(an_unverified_contact_is_not_offered, unverified_contact);

/// A source outage answers `error` without using up the caller number's own allowance, so the
/// line is not locked when the source comes back.
async fn outage_spares_the_line(kind: StoreKind) {
    // Arrange: a CRM answering 500, and a line allowed two wrong codes.
    let crm = crm_answering("1001", ResponseTemplate::new(500)).await;
    let app = spawn_app_with(
        kind,
        &format!(
            "{}\n[lockout]\nmax_failures_per_caller = 2\n",
            http_source(&crm, "cache_ttl_seconds = 0", "")
        ),
    )
    .await;
    let line = [("CallerNumber", "+447700900123")];

    // Act: four attempts during the outage, then the CRM is back.
    for _ in 0..4 {
        let during = app.verify_with("1001", "123456", &line).await;
        assert_eq!(during.xml_status(), "error", "{}", during.body);
    }
    crm.reset().await;
    Mock::given(path("/api/customers/1001"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(crm_customer(EMAIL, PHONE, true, true)),
        )
        .mount(&crm)
        .await;
    let after = app.verify_with("1001", "123456", &line).await;

    // Assert: judged as a wrong code, not refused as a locked line.
    assert_eq!(after.xml_status(), "expired", "{}", after.body);
}
both_stores!(
    a_source_outage_does_not_use_up_a_callers_allowance,
    outage_spares_the_line
);

async fn failing_source(kind: StoreKind) {
    // Arrange: a CRM failing, one too slow for timeout_ms, and one nobody listens on.
    let crm = MockServer::start().await;
    Mock::given(path("/api/customers/500"))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("db down for {EMAIL}")))
        .mount(&crm)
        .await;
    Mock::given(path("/api/customers/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crm_customer(EMAIL, PHONE, true, true))
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&crm)
        .await;
    Mock::given(path("/api/customers/html"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>login</html>"))
        .mount(&crm)
        .await;
    let app = spawn_app_with(kind, &http_source(&crm, "", "timeout_ms = 300")).await;
    let closed = crate::helpers::free_port();
    let down = spawn_app_with(
        kind,
        &format!(
            "[directory]\nsource = \"http\"\n[directory.http]\n\
             url = \"http://127.0.0.1:{closed}/c/{{customer_id}}\"\nemail_pointer = \"/email\"\n\
             timeout_ms = 300"
        ),
    )
    .await;

    for (app, id) in [
        (&app, "500"),
        (&app, "slow"),
        (&app, "html"),
        (&down, "1001"),
    ] {
        // Act
        let started = Instant::now();
        let methods = app.methods(id).await;
        let sent = app.send(id, "Email").await;
        let verified = app.verify(id, "123456").await;
        let took = started.elapsed();

        // Assert: the error path, in the endpoints' own shape (200), within the timeouts.
        for (what, answer) in [
            ("methods", &methods),
            ("send", &sent),
            ("verify", &verified),
        ] {
            assert_eq!(answer.status, 200, "{id} {what}");
            assert_eq!(answer.xml_status(), "error", "{id} {what}: {}", answer.body);
        }
        assert!(
            took < Duration::from_millis(3 * 300 + 1500),
            "{id}: three answers took {took:?}"
        );
    }
    assert!(app.outbox_messages().is_empty(), "nothing was sent");
}
both_stores!(a_failing_or_slow_source_answers_error, failing_source);

/// A token endpoint handing out `tokens` in turn, each for `expires_in` seconds.
pub async fn token_endpoint(server: &MockServer, tokens: &[&str], expires_in: u64) {
    for t in tokens {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": t, "token_type": "bearer", "expires_in": expires_in
            })))
            .up_to_n_times(1)
            .mount(server)
            .await;
    }
}

/// A token endpoint handing out `token`, for an hour, to every request.
async fn steady_token_endpoint(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": token, "expires_in": 3600})),
        )
        .mount(server)
        .await;
}

fn oauth(crm: &MockServer) -> String {
    format!(
        "auth = \"oauth\"\ntoken_url = \"{}/oauth/token\"\nclient_id = \"twofactor\"\n\
         client_secret = \"client-secret-9f2\"\nscope = \"customers.read\"",
        crm.uri()
    )
}

/// An app on the memory store asking `crm` (behind OAuth) on every lookup: no cache.
async fn uncached_behind_oauth(crm: &MockServer) -> TestApp {
    spawn_app_with(
        StoreKind::Memory,
        &http_source(crm, "cache_ttl_seconds = 0", &oauth(crm)),
    )
    .await
}

/// The bearer tokens the CRM saw, in order.
async fn bearers(crm: &MockServer) -> Vec<String> {
    requests_to(crm, "/api/customers/1001")
        .await
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_a_burst_of_50_lookups() {
    // Arrange: no cache, so each of the 50 calls asks the CRM.
    let crm = crm_answering(
        "1001",
        ResponseTemplate::new(200)
            .set_body_json(crm_customer(EMAIL, PHONE, true, true))
            .set_delay(Duration::from_millis(20)),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "T1", "expires_in": 3600}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&crm)
        .await;
    let app = uncached_behind_oauth(&crm).await;

    // Act
    let answers = futures_util::future::join_all((0..50).map(|_| app.methods("1001"))).await;

    // Assert
    for a in &answers {
        assert_eq!(a.xml_status(), "success", "{}", a.body);
    }
    let seen = bearers(&crm).await;
    assert_eq!(seen.len(), 50);
    assert!(seen.iter().all(|b| b == "Bearer T1"), "{seen:?}");
    let token_calls = requests_to(&crm, "/oauth/token").await;
    assert_eq!(token_calls.len(), 1, "one token request for the burst");
    let form = String::from_utf8_lossy(&token_calls[0].body).to_string();
    assert_eq!(form, "grant_type=client_credentials&scope=customers.read");
    // base64("twofactor:client-secret-9f2")
    assert_eq!(
        token_calls[0].headers.get("authorization").unwrap(),
        "Basic dHdvZmFjdG9yOmNsaWVudC1zZWNyZXQtOWYy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_renewed_before_it_expires() {
    // Arrange: 4-second tokens are renewed halfway (the margin is 60 s, or half a short life).
    let crm = crm_with_alice().await;
    token_endpoint(&crm, &["T1", "T2"], 4).await;
    let app = uncached_behind_oauth(&crm).await;

    // Act: a lookup, another within the token's first half, one after it (still before expiry).
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.methods("1001").await.xml_status(), "success");

    // Assert
    assert_eq!(bearers(&crm).await, ["Bearer T1", "Bearer T1", "Bearer T2"]);
    assert_eq!(requests_to(&crm, "/oauth/token").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_once() {
    // Arrange: the CRM has revoked T1 early; it accepts T2.
    let crm = MockServer::start().await;
    Mock::given(path("/api/customers/1001"))
        .and(header("authorization", "Bearer T1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&crm)
        .await;
    Mock::given(path("/api/customers/1001"))
        .and(header("authorization", "Bearer T2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(crm_customer(EMAIL, PHONE, true, true)),
        )
        .mount(&crm)
        .await;
    token_endpoint(&crm, &["T1", "T2", "T3"], 3600).await;
    let app = uncached_behind_oauth(&crm).await;

    // Act + Assert: the 401 costs one more token and one more request, not an error.
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    assert_eq!(bearers(&crm).await, ["Bearer T1", "Bearer T2", "Bearer T2"]);
    assert_eq!(requests_to(&crm, "/oauth/token").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_refusing_the_client_answers_error() {
    let crm = crm_with_alice().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&crm)
        .await;
    let app = spawn_app_with(StoreKind::Memory, &http_source(&crm, "", &oauth(&crm))).await;

    assert_eq!(app.methods("1001").await.xml_status(), "error");
    assert!(bearers(&crm).await.is_empty(), "the CRM was not asked");
}

/// Replaces what the CRM answers for 1001.
async fn crm_now_answers(crm: &MockServer, email: &str, phone: &str) {
    crm.reset().await;
    Mock::given(path("/api/customers/1001"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(crm_customer(email, phone, true, true)),
        )
        .mount(crm)
        .await;
}

async fn cache_serves_then_expires(kind: StoreKind) {
    // Arrange
    let crm = MockServer::start().await;
    crm_now_answers(&crm, EMAIL, PHONE).await;
    let app = spawn_app_with(kind, &http_source(&crm, "cache_ttl_seconds = 1", "")).await;

    // Act: two lookups within the TTL, while the CRM's record changes in between.
    let first = app.methods("1001").await;
    crm_now_answers(&crm, "alice.new@example.com", PHONE).await;
    let cached_before = metric_value(&app, CACHED).await;
    let second = app.methods("1001").await;
    let cached_after = metric_value(&app, CACHED).await;
    let asked_within_ttl = requests_to(&crm, "/api/customers/1001").await.len();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let third = app.methods("1001").await;

    // Assert: the second answer came from the cache; the change reached the caller after the TTL.
    assert!(first.body.contains(EMAIL), "{}", first.body);
    assert!(second.body.contains(EMAIL), "cached: {}", second.body);
    assert_eq!(
        asked_within_ttl, 0,
        "the CRM was not asked again within the TTL"
    );
    assert!(
        third.body.contains("alice.new@example.com"),
        "after the TTL: {}",
        third.body
    );
    assert_eq!(requests_to(&crm, "/api/customers/1001").await.len(), 1);
    // Other tests share the process's metrics, so only a rise is certain.
    assert!(cached_after > cached_before, "a cached answer is counted");
}
both_stores!(
    the_cache_serves_within_its_ttl_then_expires,
    cache_serves_then_expires
);

const CACHED: &str = r#"twofactor_directory_lookups_total{source="http",outcome="cached"}"#;

async fn unknown_ids_cached_briefly(kind: StoreKind) {
    let crm = MockServer::start().await;
    Mock::given(path("/api/customers/9999"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&crm)
        .await;
    let app = spawn_app_with(kind, &http_source(&crm, "cache_ttl_seconds = 60", "")).await;

    assert_eq!(app.methods("9999").await.xml_status(), "not found");
    assert_eq!(app.methods("9999").await.xml_status(), "not found");

    assert_eq!(requests_to(&crm, "/api/customers/9999").await.len(), 1);
}
both_stores!(an_unknown_id_is_cached_too, unknown_ids_cached_briefly);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_never_holds_contacts_in_clear() {
    // Arrange: Redis, a customer with an authenticator, a pending SMS code.
    let crm = crm_with_alice().await;
    let app = spawn_app_with(
        StoreKind::Redis,
        &format!("{}{}", admin_tokens(), http_source(&crm, "", "")),
    )
    .await;
    let enrolled = app
        .admin_call(Method::POST, "/admin/v1/customers/1001/totp", None)
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);

    // Act
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let store = twofactor::store::connect(&redis().url()).await.unwrap();
    let dump = store.dump(&app.prefix).await.unwrap();

    // Assert: the cache is there, and nothing in the keyspace reads as the contacts.
    let keyspace = format!("{dump:?}");
    assert!(
        dump.iter().any(|(k, _)| k.contains("directory:{1001}")),
        "the answer is cached: {keyspace}"
    );
    for needle in [EMAIL, "alice", "example.com", PHONE, PHONE_TO, "7911123456"] {
        assert!(
            !keyspace.contains(needle),
            "{needle} in the store: {keyspace}"
        );
    }
}

async fn contact_change_discards_pending(kind: StoreKind) {
    // Arrange: a code sent to the number the CRM holds.
    let crm = MockServer::start().await;
    crm_now_answers(&crm, EMAIL, PHONE).await;
    let app = spawn_app_with(kind, &http_source(&crm, "cache_ttl_seconds = 1", "")).await;
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let code = app.last_code_to(PHONE_TO);

    // Act: the number changes in the CRM; the next lookup after the TTL sees it.
    crm_now_answers(&crm, EMAIL, "+447911123999").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let verified = app.verify("1001", &code).await;

    // Assert: the code died with its number (no pending code, not merely a wrong one).
    assert_eq!(verified.xml_status(), "expired", "{}", verified.body);
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let new_code = app.last_code_to("447911123999");
    assert_eq!(app.verify("1001", &new_code).await.xml_status(), "success");
}
both_stores!(
    a_changed_number_discards_the_pending_code,
    contact_change_discards_pending
);

async fn authenticators_for_source_customers(kind: StoreKind) {
    // Arrange
    let crm = MockServer::start().await;
    crm_now_answers(&crm, EMAIL, PHONE).await;
    Mock::given(path("/api/customers/2002"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&crm)
        .await;
    let app = spawn_app_with(
        kind,
        &format!("{}{}", admin_tokens(), http_source(&crm, "", "")),
    )
    .await;

    // Act
    let enrolled = app
        .admin_call(Method::POST, "/admin/v1/customers/1001/totp", None)
        .await;
    let stranger = app
        .admin_call(Method::POST, "/admin/v1/customers/2002/totp", None)
        .await;
    let put = app
        .admin_call(
            Method::PUT,
            "/admin/v1/customers/1001",
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    let import = app
        .admin_call(
            Method::POST,
            "/admin/v1/customers:import",
            Some(json!([{"id": "3", "email": "x@example.com"}])),
        )
        .await;
    let delete = app
        .admin_call(Method::DELETE, "/admin/v1/customers/1001", None)
        .await;
    let shown = app
        .admin_call(Method::GET, "/admin/v1/customers/1001", None)
        .await;

    // Assert: enrolment works for the CRM's customer, and its app's codes pass.
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let secret = enrolled.json()["secret"].as_str().unwrap().to_string();
    let methods = app.methods("1001").await;
    assert!(
        methods.body.contains("<method name=\"authenticator\"/>"),
        "{}",
        methods.body
    );
    let code = authenticator(&secret, 6).generate(unix_now()).to_string();
    assert_eq!(
        app.verify_with(
            "1001",
            &code,
            &[("TwoFactorAuthSelectedMethod", "Authenticator")]
        )
        .await
        .xml_status(),
        "success"
    );
    assert_eq!(stranger.status, 404, "{}", stranger.body);
    for (what, answer) in [("PUT", &put), ("import", &import), ("DELETE", &delete)] {
        assert_eq!(answer.status, 409, "{what}: {}", answer.body);
        assert_eq!(answer.json()["error"], "read-only-directory", "{what}");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains("directory.source = \"http\""),
            "{what}: {}",
            answer.body
        );
    }
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json()["email"], EMAIL);
    assert_eq!(shown.json()["totp_enrolled"], true);

    // Revoking takes the authenticator away again.
    let revoked = app
        .admin_call(Method::DELETE, "/admin/v1/customers/1001/totp", None)
        .await;
    assert_eq!(revoked.status, 204);
    assert!(!app.methods("1001").await.body.contains("authenticator"));
}
both_stores!(
    authenticators_enrol_for_customers_of_the_source,
    authenticators_for_source_customers
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_test_and_check_config_probe() {
    // Arrange: a CRM behind OAuth, configured through the environment as an operator would.
    let crm = crm_with_alice().await;
    Mock::given(path("/api/customers/2002"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&crm)
        .await;
    steady_token_endpoint(&crm, "T-probe").await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client_secret");
    std::fs::write(&secret_file, "client-secret-from-file\n").unwrap();
    let prefix = format!("t{:016x}:", crate::helpers::rand_u64());
    let env = [
        ("TFA__DIRECTORY__SOURCE", "http".to_string()),
        (
            "TFA__DIRECTORY__HTTP__URL",
            format!("{}/api/customers/{{customer_id}}", crm.uri()),
        ),
        (
            "TFA__DIRECTORY__HTTP__EMAIL_POINTER",
            "/contact/email".into(),
        ),
        (
            "TFA__DIRECTORY__HTTP__PHONE_POINTER",
            "/contact/mobile".into(),
        ),
        ("TFA__DIRECTORY__HTTP__AUTH", "oauth".into()),
        (
            "TFA__DIRECTORY__HTTP__TOKEN_URL",
            format!("{}/oauth/token", crm.uri()),
        ),
        ("TFA__DIRECTORY__HTTP__CLIENT_ID", "twofactor".into()),
        (
            "TFA__DIRECTORY__HTTP__CLIENT_SECRET_FILE",
            secret_file.display().to_string(),
        ),
    ];

    // Act
    let found = run_cli_with_env(&prefix, &env, &["directory", "test", "1001"]).await;
    let unknown = run_cli_with_env(&prefix, &env, &["directory", "test", "2002"]).await;
    let probe = run_cli_with_env(&prefix, &env, &["check-config", "--probe"]).await;

    // Assert: masked contacts and the time taken; never the contacts or the secret.
    let text = output_text(&found);
    assert!(found.status.success(), "{text}");
    assert!(text.contains("source:   http"), "{text}");
    assert!(text.contains("email:    a***@example.com"), "{text}");
    assert!(text.contains("phone:    +44******456"), "{text}");
    assert!(text.contains("took:     "), "{text}");
    assert!(
        !text.contains(EMAIL) && !text.contains("7911123456"),
        "{text}"
    );
    let text = output_text(&unknown);
    assert!(!unknown.status.success(), "{text}");
    assert!(text.contains("does not know customer 2002"), "{text}");
    let text = output_text(&probe);
    assert!(probe.status.success(), "{text}");
    assert!(text.contains("directory: http GET"), "{text}");
    assert!(text.contains("token fetched (expires in 3600 s)"), "{text}");
    assert!(
        !text.contains("client-secret-from-file") && !text.contains("T-probe"),
        "{text}"
    );
    let token_calls = requests_to(&crm, "/oauth/token").await;
    // base64("twofactor:client-secret-from-file"): the file's line break is not part of it.
    assert_eq!(
        token_calls
            .last()
            .unwrap()
            .headers
            .get("authorization")
            .unwrap(),
        "Basic dHdvZmFjdG9yOmNsaWVudC1zZWNyZXQtZnJvbS1maWxl"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_probe_reports_a_refused_client() {
    let crm = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&crm)
        .await;
    let prefix = format!("t{:016x}:", crate::helpers::rand_u64());
    let env = [
        ("TFA__DIRECTORY__SOURCE", "genesys_cloud".to_string()),
        ("TFA__DIRECTORY__GENESYS_CLOUD__LOGIN_URL", crm.uri()),
        ("TFA__DIRECTORY__GENESYS_CLOUD__API_URL", crm.uri()),
        (
            "TFA__DIRECTORY__GENESYS_CLOUD__CLIENT_ID",
            "gc-client".into(),
        ),
        (
            "TFA__DIRECTORY__GENESYS_CLOUD__CLIENT_SECRET",
            "gc-secret-7d1".into(),
        ),
    ];

    let probe = run_cli_with_env(&prefix, &env, &["check-config", "--probe"]).await;

    let text = output_text(&probe);
    assert!(!probe.status.success(), "{text}");
    assert!(
        text.contains("token endpoint answered 401 (invalid_client)"),
        "{text}"
    );
    assert!(!text.contains("gc-secret-7d1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_bearer_token_from_a_file_and_an_id_needing_encoding() {
    // Arrange: an id with characters that mean something in a URL; a national number in the CRM.
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/customers/ACC%2F7%3Fx%23y"))
        .and(header("authorization", "Bearer crm-static-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(crm_customer(
            EMAIL,
            "07911 123456",
            true,
            true,
        )))
        .mount(&crm)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "crm-static-token\n").unwrap();
    let app = spawn_app_with(
        StoreKind::Memory,
        &http_source(
            &crm,
            "default_region = \"GB\"",
            &format!(
                "auth = \"bearer\"\ntoken_file = \"{}\"",
                token_file.display()
            ),
        ),
    )
    .await;

    // Act
    let methods = app.methods("ACC/7?x#y").await;

    // Assert: the number was read in directory.default_region and offered in E.164.
    assert_eq!(methods.body, both_methods());
}

/// The service binary, killed when the test ends however it ends.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_contact_token_or_client_secret() {
    // Arrange: the real binary with debug JSON logs, a CRM behind OAuth answering one customer,
    // failing for another with contact data in its error body, and holding a bad number for a third.
    const SECRET: &str = "client-secret-51ab7e";
    const TOKEN: &str = "access-token-c3d90f";
    let crm = crm_with_alice().await;
    Mock::given(path("/api/customers/1002"))
        .respond_with(
            ResponseTemplate::new(500).set_body_string(format!("cannot serve {EMAIL} {PHONE}")),
        )
        .mount(&crm)
        .await;
    Mock::given(path("/api/customers/1003"))
        .respond_with(ResponseTemplate::new(200).set_body_json(crm_customer(
            EMAIL,
            "+44 7700 900123",
            true,
            true,
        )))
        .mount(&crm)
        .await;
    steady_token_endpoint(&crm, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let log = dir.path().join("service.log");
    let child = twofactor_command()
        .arg("serve")
        .env("TFA__SERVER__BIND", "127.0.0.1:0")
        .env("TFA__STORE__URL", redis().url())
        .env(
            "TFA__STORE__KEY_PREFIX",
            format!("t{:016x}:", crate::helpers::rand_u64()),
        )
        .env("TFA__SECURITY__ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("TFA__DELIVERY__OUTBOX_FILE", &outbox)
        // Eight digits, so the code cannot turn up by chance in a timestamp's microseconds.
        .env("TFA__CODES__DIGITS", "8")
        .env("TFA__LOG__FORMAT", "json")
        .env("TFA__LOG__FILTER", "debug")
        .env("TFA__DIRECTORY__SOURCE", "http")
        .env(
            "TFA__DIRECTORY__HTTP__URL",
            format!("{}/api/customers/{{customer_id}}", crm.uri()),
        )
        .env("TFA__DIRECTORY__HTTP__EMAIL_POINTER", "/contact/email")
        .env("TFA__DIRECTORY__HTTP__PHONE_POINTER", "/contact/mobile")
        .env("TFA__DIRECTORY__HTTP__AUTH", "oauth")
        .env(
            "TFA__DIRECTORY__HTTP__TOKEN_URL",
            format!("{}/oauth/token", crm.uri()),
        )
        .env("TFA__DIRECTORY__HTTP__CLIENT_ID", "twofactor")
        .env("TFA__DIRECTORY__HTTP__CLIENT_SECRET", SECRET)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _service = Service(child);
    let port_re = regex::Regex::new(r#""port":(\d+)"#).unwrap();
    let client = reqwest::Client::new();
    let mut base = None;
    for _ in 0..400 {
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(port) = logs
            .lines()
            .filter(|l| l.contains("\"listening\""))
            .find_map(|l| port_re.captures(l)?[1].parse::<u16>().ok())
        {
            base = Some(format!("http://127.0.0.1:{port}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = base.unwrap_or_else(|| {
        panic!(
            "the service did not start: {:?}",
            std::fs::read_to_string(&log)
        )
    });
    let get = |endpoint: &str, params: Vec<(&str, String)>| {
        let req = client.get(format!("{base}/v1/{endpoint}")).query(&params);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };

    // Act: a whole callflow for 1001, and the failing and the bad-number customers.
    let methods = get(
        "check-verified-contact-methods",
        vec![("CustomerId", "1001".into())],
    )
    .await;
    assert!(methods.contains("success"), "{methods}");
    get(
        "send-authentication-code",
        vec![
            ("CustomerId", "1001".into()),
            ("TwoFactorAuthSelectedMethod", "SMS".into()),
        ],
    )
    .await;
    let sent = std::fs::read_to_string(&outbox).unwrap();
    let code = crate::helpers::first_code(&sent);
    let verified = get(
        "code-authentication",
        vec![
            ("CustomerId", "1001".into()),
            ("authCode_nbest1", code.clone()),
        ],
    )
    .await;
    assert!(verified.contains("success"), "{verified}");
    let failed = get(
        "check-verified-contact-methods",
        vec![("CustomerId", "1002".into())],
    )
    .await;
    assert!(failed.contains("<status>error</status>"), "{failed}");
    let bad_number = get(
        "check-verified-contact-methods",
        vec![("CustomerId", "1003".into())],
    )
    .await;
    assert!(
        !bad_number.contains("SMS"),
        "a fictional number is not offered: {bad_number}"
    );
    let logs = std::fs::read_to_string(&log).unwrap();

    // Assert: the causes are there, the contacts only masked, the credentials nowhere.
    assert!(
        logs.contains("answered HTTP 500"),
        "the cause is logged: {logs}"
    );
    assert!(
        logs.contains("+44******123"),
        "the bad number is logged masked: {logs}"
    );
    for needle in [
        SECRET,
        TOKEN,
        EMAIL,
        PHONE,
        "7911123456",
        "7700900123",
        "7700 900123",
        "cannot serve",
        code.as_str(),
    ] {
        assert!(!logs.contains(needle), "{needle} is in the logs: {logs}");
    }
}
