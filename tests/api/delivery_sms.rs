//! SMS through the HTTP gateway end to end, with wiremock standing in for the gateway: the request is
//! exactly what the settings describe, values are escaped for where they land, and every way the
//! gateway can fail answers `error` fast and leaves no usable code.

use std::time::{Duration, Instant};

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, first_code, spawn_app_with};

/// The gateway timeout for every exchange expected to succeed, or to fail for a reason other than a
/// timeout: long enough that a loaded machine never turns a success into a timeout.
const TIMEOUT_MS: u64 = 10_000;
/// The gateway timeout for the gateway that never answers: short, so the timeout itself is tested.
const SILENT_TIMEOUT_MS: u64 = 500;
/// The slack "fast" allows on top of a test's own timeout.
const SLACK: Duration = Duration::from_secs(2);

/// A sender name with each character that needs escaping somewhere: `+`, `&`, `"`, and non-ASCII.
const SENDER: &str = "Bänk & \"Co\" +1";
/// `SENDER` as a TOML basic string.
const SENDER_TOML: &str = r#""Bänk & \"Co\" +1""#;

const PHONE: &str = "+447911123456";

async fn gateway(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// The only request the gateway received.
async fn only_request(server: &MockServer) -> wiremock::Request {
    let mut received = server.received_requests().await.expect("recording is on");
    assert_eq!(received.len(), 1, "the gateway got one request");
    received.remove(0)
}

fn header(req: &wiremock::Request, name: &str) -> String {
    req.headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

async fn app_with_sms(kind: StoreKind, sms: &str) -> TestApp {
    let app = spawn_app_with(kind, sms).await;
    app.add_customer("3001", None, Some(PHONE), None).await;
    app
}

async fn json_gateway_gets_exactly_the_configured_request(kind: StoreKind) {
    // Arrange: a JSON API with a bearer header; plus symbol on.
    let gw = gateway(ResponseTemplate::new(201).set_body_string(r#"{"id":"m-1"}"#)).await;
    let app = app_with_sms(
        kind,
        &format!(
            r#"
[sms]
method = "POST"
url = "{}/v1/messages?from={{from}}&to={{recipient}}"
request_headers = ["Authorization: Bearer tok-123", "Content-Type: application/json", "X-Recipient: {{recipient}}", "X-From: {{from}}"]
request_body = '{{"to":"{{recipient}}","from":"{{from}}","text":"{{message}}"}}'
from = {SENDER_TOML}
message = "{{from}}: code {{code}}, {{minutes}} min"
plus_symbol_before_recipient_number = true
timeout_ms = {TIMEOUT_MS}
"#,
            gw.uri()
        ),
    )
    .await;

    // Act
    let methods = app.methods("3001").await;
    let sent = app.send("3001", "SMS").await;

    // Assert
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    assert!(
        methods
            .body
            .contains(r#"<method name="SMS" value="+447911123456"/>"#),
        "the methods answer agrees with the plus symbol: {}",
        methods.body
    );
    let req = only_request(&gw).await;
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), "/v1/messages");
    assert_eq!(
        req.url.query(),
        Some("from=B%C3%A4nk%20%26%20%22Co%22%20%2B1&to=%2B447911123456")
    );
    assert_eq!(header(&req, "authorization"), "Bearer tok-123");
    assert_eq!(header(&req, "content-type"), "application/json");
    assert_eq!(header(&req, "x-recipient"), "+447911123456");
    assert_eq!(
        req.headers["x-from"].as_bytes(),
        SENDER.as_bytes(),
        "a header carries the sender name as it is, UTF-8 included"
    );
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("the body is JSON");
    let text = body["text"].as_str().expect("text");
    let code = first_code(text);
    assert_eq!(
        body,
        serde_json::json!({
            "to": "+447911123456",
            "from": SENDER,
            "text": format!("{SENDER}: code {code}, 5 min"),
        })
    );
    assert_eq!(app.verify("3001", &code).await.xml_status(), "success");
}
both_stores!(
    json_gateway_gets_exactly_the_configured_request_,
    json_gateway_gets_exactly_the_configured_request
);

async fn form_gateway_gets_exactly_the_configured_request(kind: StoreKind) {
    // Arrange: a form POST with basic credentials in the URL; plus symbol off.
    let gw = gateway(ResponseTemplate::new(200).set_body_string("OK")).await;
    let address = gw.uri().replace("http://", "http://acct:p%40ss@");
    let app = app_with_sms(
        kind,
        &format!(
            r#"
[sms]
method = "post"
url = "{address}/send"
request_headers = ["Content-Type: application/x-www-form-urlencoded"]
request_body = "To={{recipient}}&From={{from}}&Body={{message}}"
from = {SENDER_TOML}
message = "Code {{code}} & more"
plus_symbol_before_recipient_number = false
timeout_ms = {TIMEOUT_MS}
"#
        ),
    )
    .await;

    let methods = app.methods("3001").await;
    let sent = app.send("3001", "sms").await;

    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    assert!(
        methods
            .body
            .contains(r#"<method name="SMS" value="447911123456"/>"#),
        "{}",
        methods.body
    );
    let req = only_request(&gw).await;
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), "/send");
    assert_eq!(req.url.query(), None);
    // base64("acct:p@ss")
    assert_eq!(header(&req, "authorization"), "Basic YWNjdDpwQHNz");
    assert_eq!(
        header(&req, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let body = String::from_utf8(req.body.clone()).expect("UTF-8 body");
    let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let code = first_code(&fields[2].1);
    assert_eq!(
        body,
        format!("To=447911123456&From=B%C3%A4nk+%26+%22Co%22+%2B1&Body=Code+{code}+%26+more")
    );
    assert_eq!(
        fields,
        vec![
            ("To".to_string(), "447911123456".to_string()),
            ("From".to_string(), SENDER.to_string()),
            ("Body".to_string(), format!("Code {code} & more")),
        ]
    );
    assert_eq!(app.verify("3001", &code).await.xml_status(), "success");
}
both_stores!(
    form_gateway_gets_exactly_the_configured_request_,
    form_gateway_gets_exactly_the_configured_request
);

async fn get_gateway_carries_everything_in_the_url(kind: StoreKind) {
    let gw = gateway(ResponseTemplate::new(200).set_body_string("ID: 77")).await;
    let app = app_with_sms(
        kind,
        &format!(
            r#"
[sms]
method = "GET"
url = "{}/api/{{from}}/send?to={{recipient}}&text={{message}}"
from = {SENDER_TOML}
message = "Code: {{code}}"
plus_symbol_before_recipient_number = true
timeout_ms = {TIMEOUT_MS}
"#,
            gw.uri()
        ),
    )
    .await;

    let sent = app.send("3001", "SMS").await;

    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let req = only_request(&gw).await;
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(
        req.url.path(),
        "/api/B%C3%A4nk%20%26%20%22Co%22%20%2B1/send"
    );
    let query: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let code = first_code(&query[1].1);
    assert_eq!(
        req.url.query(),
        Some(format!("to=%2B447911123456&text=Code%3A%20{code}").as_str())
    );
    assert!(req.body.is_empty());
    assert_eq!(app.verify("3001", &code).await.xml_status(), "success");
}
both_stores!(
    get_gateway_carries_everything_in_the_url_,
    get_gateway_carries_everything_in_the_url
);

async fn xml_gateway_gets_exactly_the_configured_request(kind: StoreKind) {
    // Arrange: an XML API; the sender name carries a line break that would start a new header.
    let gw = gateway(ResponseTemplate::new(200).set_body_string("<ok/>")).await;
    let app = app_with_sms(
        kind,
        &format!(
            r#"
[sms]
method = "POST"
url = "{}/xml"
request_headers = ["Content-Type: text/xml", "X-From: {{from}}"]
request_body = "<sms><to>{{recipient}}</to><from>{{from}}</from><text>{{message}}</text></sms>"
from = "Bänk & Co \"+\"\r\nX-Evil: 1"
message = "Code {{code}} < {{minutes}} min & 'safe'"
timeout_ms = {TIMEOUT_MS}
"#,
            gw.uri()
        ),
    )
    .await;

    // Act
    let sent = app.send("3001", "SMS").await;

    // Assert
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let req = only_request(&gw).await;
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), "/xml");
    assert_eq!(header(&req, "content-type"), "text/xml");
    assert_eq!(
        req.headers["x-from"].as_bytes(),
        "Bänk & Co \"+\"X-Evil: 1".as_bytes(),
        "a header value loses its line breaks, so it cannot start another header"
    );
    assert!(req.headers.get("x-evil").is_none(), "no injected header");
    let body = String::from_utf8(req.body.clone()).expect("UTF-8 body");
    let code = first_code(&body);
    assert_eq!(
        body,
        format!(
            "<sms><to>447911123456</to><from>Bänk &amp; Co &quot;+&quot;&#13;\nX-Evil: 1</from>\
             <text>Code {code} &lt; 5 min &amp; &apos;safe&apos;</text></sms>"
        ),
        "each value is XML-escaped where it lands (a CR as &#13;, which XML's line-end handling keeps)"
    );
    assert_eq!(app.verify("3001", &code).await.xml_status(), "success");
}
both_stores!(
    xml_gateway_gets_exactly_the_configured_request_,
    xml_gateway_gets_exactly_the_configured_request
);

/// Gateway settings for the failure cases: a JSON body carrying the code, so the test can see which
/// code was issued and check that it no longer works.
fn failing_settings(gw: &MockServer, extra: &str) -> String {
    failing_settings_timing_out_after(gw, TIMEOUT_MS, extra)
}

/// The same, with `sms.timeout_ms` set to `timeout_ms`.
fn failing_settings_timing_out_after(gw: &MockServer, timeout_ms: u64, extra: &str) -> String {
    format!(
        r#"
[sms]
url = "{}/send"
request_headers = ["Content-Type: application/json"]
request_body = '{{"to":"{{recipient}}","text":"{{message}}"}}'
timeout_ms = {timeout_ms}
{extra}
"#,
        gw.uri()
    )
}

/// The code the gateway was asked to send.
async fn code_seen_by(gw: &MockServer) -> String {
    let req = only_request(gw).await;
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
    first_code(body["text"].as_str().expect("text"))
}

/// Sends, and asserts the send failed within `timeout_ms` (the test's configured gateway timeout)
/// plus slack and left no usable code.
async fn assert_fails_cleanly(app: &TestApp, gw: &MockServer, timeout_ms: u64) {
    let started = Instant::now();
    let sent = app.send("3001", "SMS").await;
    let elapsed = started.elapsed();

    assert_eq!(sent.xml_status(), "error", "{}", sent.body);
    assert!(
        elapsed < Duration::from_millis(timeout_ms) + SLACK,
        "the failure took {elapsed:?}, over sms.timeout_ms = {timeout_ms} plus {SLACK:?}"
    );
    let code = code_seen_by(gw).await;
    assert_eq!(
        app.verify("3001", &code).await.xml_status(),
        "expired",
        "the code of a failed delivery must not work"
    );
}

async fn gateway_500_answers_error(kind: StoreKind) {
    let gw = gateway(ResponseTemplate::new(500).set_body_string("boom")).await;
    let app = app_with_sms(kind, &failing_settings(&gw, "")).await;
    assert_fails_cleanly(&app, &gw, TIMEOUT_MS).await;
}
both_stores!(gateway_500_answers_error_, gateway_500_answers_error);

async fn gateway_200_with_error_body_answers_error(kind: StoreKind) {
    let gw = gateway(
        ResponseTemplate::new(200).set_body_string(r#"{"status": "error", "reason": "no credit"}"#),
    )
    .await;
    let app = app_with_sms(
        kind,
        &failing_settings(&gw, r#"failure_body_pattern = '"status"\s*:\s*"error"'"#),
    )
    .await;
    assert_fails_cleanly(&app, &gw, TIMEOUT_MS).await;
}
both_stores!(
    gateway_200_with_error_body_answers_error_,
    gateway_200_with_error_body_answers_error
);

async fn gateway_status_outside_success_statuses_answers_error(kind: StoreKind) {
    // Only 202 means queued for this gateway; a 200 is something else.
    let gw = gateway(ResponseTemplate::new(200).set_body_string("maintenance")).await;
    let app = app_with_sms(
        kind,
        &failing_settings(&gw, r#"success_statuses = ["202"]"#),
    )
    .await;
    assert_fails_cleanly(&app, &gw, TIMEOUT_MS).await;
}
both_stores!(
    gateway_status_outside_success_statuses_answers_error_,
    gateway_status_outside_success_statuses_answers_error
);

async fn gateway_that_never_answers_times_out(kind: StoreKind) {
    let gw = gateway(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let app = app_with_sms(
        kind,
        &failing_settings_timing_out_after(&gw, SILENT_TIMEOUT_MS, ""),
    )
    .await;
    let started = Instant::now();
    assert_fails_cleanly(&app, &gw, SILENT_TIMEOUT_MS).await;
    assert!(
        started.elapsed() >= Duration::from_millis(SILENT_TIMEOUT_MS),
        "it waited for the configured timeout"
    );
}
both_stores!(
    gateway_that_never_answers_times_out_,
    gateway_that_never_answers_times_out
);

async fn failed_sms_does_not_count_against_the_send_limit(kind: StoreKind) {
    let gw = gateway(ResponseTemplate::new(503)).await;
    let app = app_with_sms(kind, &failing_settings(&gw, "[codes]\nmax_sends = 1")).await;

    let failed = app.send("3001", "SMS").await;
    gw.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&gw)
        .await;
    let sent = app.send("3001", "SMS").await;
    let over_limit = app.send("3001", "SMS").await;

    assert_eq!(failed.xml_status(), "error");
    assert_eq!(
        sent.xml_status(),
        "success",
        "the failed send was given back"
    );
    assert_eq!(over_limit.xml_status(), "send limited");
    let code = code_seen_by(&gw).await;
    assert_eq!(app.verify("3001", &code).await.xml_status(), "success");
}
both_stores!(
    failed_sms_does_not_count_against_the_send_limit_,
    failed_sms_does_not_count_against_the_send_limit
);

#[tokio::test]
async fn gateway_errors_hide_the_code_and_the_number() {
    // A gateway that echoes the whole request back in its error.
    let gw = gateway(
        ResponseTemplate::new(400)
            .set_body_string("bad request: to=447911123456 text=Your code is 424242"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::test_settings(
        StoreKind::Memory,
        dir.path(),
        "direct:",
        &format!(
            "[sms]\nurl = \"{}/send?key=SECRETKEY&to={{recipient}}\"\nrequest_body = \"to={{recipient}}&text={{message}}\"",
            gw.uri()
        ),
    );
    let sender = twofactor::delivery::sms::HttpSms::new(&settings).unwrap();
    let code = secrecy::SecretString::from("424242");
    let to = twofactor::domain::PhoneNumber::parse(PHONE).unwrap();

    let err = twofactor::delivery::SmsSender::send(
        &sender,
        &to,
        &twofactor::delivery::CodeMessage {
            code: &code,
            minutes: 5,
        },
    )
    .await
    .expect_err("a 400 is a failure")
    .to_string();

    assert!(err.contains("answered 400"), "{err}");
    assert!(err.contains("+44******456"), "the number is masked: {err}");
    for secret in ["424242", "447911123456", "SECRETKEY"] {
        assert!(!err.contains(secret), "{secret} leaked: {err}");
    }
}

#[tokio::test]
async fn gateway_answers_hide_the_number_in_national_and_spaced_formats() {
    // A gateway that writes the number back in every format it knows.
    let gw =
        gateway(ResponseTemplate::new(200).set_body_string(
            "queued for 07911 123456 (07911123456, +44 7911 123456, 447911123456)",
        ))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::test_settings(
        StoreKind::Memory,
        dir.path(),
        "direct:",
        &format!("[sms]\nurl = \"{}/send?to={{recipient}}\"", gw.uri()),
    );
    let sender = twofactor::delivery::sms::HttpSms::new(&settings).unwrap();
    let code = secrecy::SecretString::from("424242");
    let to = twofactor::domain::PhoneNumber::parse(PHONE).unwrap();

    let answer = twofactor::delivery::SmsSender::send(
        &sender,
        &to,
        &twofactor::delivery::CodeMessage {
            code: &code,
            minutes: 5,
        },
    )
    .await
    .expect("a 200 is sent");

    assert!(answer.contains("+44******456"), "{answer}");
    let digits: String = answer.chars().filter(char::is_ascii_digit).collect();
    for secret in ["7911123456", "07911", "123456"] {
        assert!(!digits.contains(secret), "{secret} leaked: {answer}");
    }
}

/// The gateway's host answers a redirect to another server: following it would hand that server the
/// body (the code) and the headers (the API key).
async fn gateway_redirect_is_a_failed_delivery(kind: StoreKind) {
    // Arrange
    let elsewhere = gateway(ResponseTemplate::new(200)).await;
    let gw = gateway(ResponseTemplate::new(307).insert_header(
        "Location",
        format!("{}/collect?token=loc-secret-91", elsewhere.uri()),
    ))
    .await;
    let settings = format!(
        r#"
[sms]
url = "{}/send"
request_headers = ["Content-Type: application/json", "X-Api-Key: key-e71c"]
request_body = '{{"to":"{{recipient}}","text":"{{message}}"}}'
timeout_ms = {TIMEOUT_MS}
"#,
        gw.uri()
    );
    let app = app_with_sms(
        kind,
        &format!("{}{settings}", crate::helpers::admin_tokens()),
    )
    .await;

    // Act (and Assert: `error` fast, and the code the gateway was asked to send does not work)
    assert_fails_cleanly(&app, &gw, TIMEOUT_MS).await;
    let test_send = app
        .admin_call(
            reqwest::Method::POST,
            "/admin/v1/test-sms",
            Some(serde_json::json!({"to": PHONE})),
        )
        .await;

    // Assert
    assert!(
        elsewhere
            .received_requests()
            .await
            .expect("recording")
            .is_empty(),
        "the redirect was followed"
    );
    let body = test_send.json();
    assert_eq!(body["sent"], false, "{body}");
    let answer = body["answer"].as_str().unwrap_or_default();
    assert!(answer.contains("307"), "the status is named: {answer}");
    assert!(
        !answer.contains("loc-secret-91") && !answer.contains("collect"),
        "the Location stays out: {answer}"
    );
}
both_stores!(
    gateway_redirect_is_a_failed_delivery_,
    gateway_redirect_is_a_failed_delivery
);

#[test]
fn redirect_statuses_never_count_as_sent() {
    for listed in ["3xx", "302", "307"] {
        let err = twofactor::config::Settings::from_toml(&format!(
            "[sms]\nurl = \"https://gw.example/send\"\nsuccess_statuses = [\"2xx\", \"{listed}\"]\n"
        ))
        .expect_err("a redirect listed as success is refused")
        .to_string();
        assert!(
            err.contains("sms.success_statuses") && err.contains("redirect"),
            "{listed}: {err}"
        );
    }
}

/// A gateway whose answer echoes its API key, an account number and a long tail.
async fn test_sms_shows_the_status_and_a_short_masked_excerpt(kind: StoreKind) {
    // Arrange
    let answer = format!(
        "invalid request for key live-key-7f3a9c: account 123456789012 over quota; {}END-OF-BODY",
        "details ".repeat(60)
    );
    let gw = gateway(ResponseTemplate::new(402).set_body_string(answer)).await;
    let app = app_with_sms(
        kind,
        &format!(
            "{}[sms]\nurl = \"{}/send?to={{recipient}}\"\nrequest_headers = [\"X-Api-Key: live-key-7f3a9c\"]\ntimeout_ms = {TIMEOUT_MS}\n",
            crate::helpers::admin_tokens(),
            gw.uri()
        ),
    )
    .await;

    // Act
    let sent = app
        .admin_call(
            reqwest::Method::POST,
            "/admin/v1/test-sms",
            Some(serde_json::json!({"to": PHONE})),
        )
        .await;

    // Assert
    let body = sent.json();
    assert_eq!(body["sent"], false, "{body}");
    let shown = body["answer"].as_str().unwrap_or_default();
    assert!(shown.contains("402"), "the status is shown: {shown}");
    assert!(
        shown.contains("account **********12"),
        "long digit runs are masked but their last 2: {shown}"
    );
    for leaked in ["live-key-7f3a9c", "123456789012", "END-OF-BODY"] {
        assert!(!shown.contains(leaked), "{leaked} shown: {shown}");
    }
    let excerpt = shown.split_once(": ").map_or("", |(_, rest)| rest);
    assert!(
        excerpt.chars().count() <= 121,
        "the gateway's words are cut short: {} characters in {shown}",
        excerpt.chars().count()
    );
}
both_stores!(
    test_sms_shows_the_status_and_a_short_masked_excerpt_,
    test_sms_shows_the_status_and_a_short_masked_excerpt
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sms_prints_the_status_and_a_short_masked_excerpt() {
    // Arrange: a gateway that accepts and echoes its API key and a long reference number.
    let gw = gateway(ResponseTemplate::new(200).set_body_string(format!(
        "queued with key live-key-7f3a9c, ref 123456789012 {}END-OF-BODY",
        "x".repeat(300)
    )))
    .await;
    let env = [
        (
            "TFA__SMS__URL",
            format!("{}/send?to={{recipient}}", gw.uri()),
        ),
        (
            "TFA__SMS__REQUEST_HEADERS",
            r#"["X-Api-Key: live-key-7f3a9c"]"#.to_string(),
        ),
    ];

    // Act
    let out = crate::helpers::run_cli_with_env(
        &format!("cli{:08x}:", crate::helpers::rand_u64() as u32),
        &env,
        &["send-test-sms", PHONE],
    )
    .await;

    // Assert
    let text = crate::helpers::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("gateway answered: 200 OK: queued with key [redacted], ref **********12"),
        "{text}"
    );
    for leaked in ["live-key-7f3a9c", "123456789012", "END-OF-BODY"] {
        assert!(!text.contains(leaked), "{leaked} printed: {text}");
    }
}
