//! Golden responses: every response shape a callflow sees, compared byte for byte with
//! `fixtures/xml/responses/*.xml`, on the compiled-in default statuses (what GIA gets out of the box),
//! refusals included: each malformed-request class (400, 405, 413, 415) and the caller checks (401,
//! 403), `<message>` and all.
//! Also: renamed statuses show up in every answer, 4xx ones included.

use crate::both_stores;
use crate::helpers::wrong_code;
use crate::helpers::{
    Answer, METHODS, SEND, StoreKind, TestApp, VERIFY, fixture, fixture_path, spawn_app_with,
};

/// Back to the compiled-in statuses (the harness makes each outcome distinct).
const DEFAULT_STATUSES: &str = r#"
[statuses]
success = "success"
not_found = "not found"
incorrect_code = "incorrect code"
code_expired = "incorrect code"
locked = "incorrect code"
send_limited = "error"
error = "error"
"#;

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Every golden file this suite compares against; a fixture not listed here is stale.
const GOLDEN: &[&str] = &[
    "check_methods_success.xml",
    "check_methods_success_plus_symbol.xml",
    "check_methods_success_sms_only.xml",
    "check_methods_not_found.xml",
    "check_methods_error_missing_customer_id.xml",
    "send_success.xml",
    "send_not_found.xml",
    "send_error.xml",
    "send_error_missing_method.xml",
    "send_error_method_not_allowed.xml",
    "code_success.xml",
    "code_incorrect_code.xml",
    "code_error_missing_code.xml",
    "send_error_body_too_large.xml",
    "code_error_unsupported_content_type.xml",
    "check_methods_error_bad_xml.xml",
    "send_error_bad_json.xml",
    "send_error_unknown_method.xml",
    "code_error_unauthorized.xml",
    "check_methods_error_forbidden.xml",
];

async fn app(kind: StoreKind, extra: &str) -> TestApp {
    let app = spawn_app_with(
        kind,
        &format!("{DEFAULT_STATUSES}\n[codes]\nmax_sends = 1\n{extra}"),
    )
    .await;
    app.add_customer(
        "1003",
        Some("carol@example.com"),
        Some("+447911123456"),
        Some(SECRET),
    )
    .await;
    app.add_customer("1002", None, Some("+14155552671"), None)
        .await;
    app
}

/// Checks one answer against its golden file, its HTTP status and content type.
fn assert_golden(file: &str, http: u16, answer: &Answer) {
    assert_eq!(
        answer.body,
        fixture(&format!("xml/responses/{file}")),
        "body differs from fixtures/xml/responses/{file}"
    );
    assert_eq!(answer.status, http, "HTTP status for {file}");
    assert_eq!(
        answer.content_type, "application/xml; charset=utf-8",
        "content type for {file}"
    );
}

async fn every_response_shape_matches_its_golden_file(kind: StoreKind) {
    // Arrange
    let app = app(kind, "").await;
    let plus = app_plus(kind).await;

    // Act: one request per shape, in callflow order where state matters.
    let mut cases: Vec<(&str, u16, Answer)> = vec![
        ("check_methods_success.xml", 200, app.methods("1003").await),
        (
            "check_methods_success_plus_symbol.xml",
            200,
            plus.methods("1003").await,
        ),
        (
            "check_methods_success_sms_only.xml",
            200,
            app.methods("1002").await,
        ),
        (
            "check_methods_not_found.xml",
            200,
            app.methods("9999").await,
        ),
        (
            "check_methods_error_missing_customer_id.xml",
            400,
            app.get(METHODS, &[]).await,
        ),
        ("send_not_found.xml", 200, app.send("9999", "Email").await),
        (
            "send_error_missing_method.xml",
            400,
            app.get(SEND, &[("CustomerId", "1003")]).await,
        ),
        (
            "send_error_method_not_allowed.xml",
            405,
            app.request(reqwest::Method::PUT, SEND, &[("CustomerId", "1003")], None)
                .await,
        ),
        ("send_success.xml", 200, app.send("1003", "Email").await),
    ];
    let code = app.last_code_to("carol@example.com");
    // max_sends = 1: the second send is refused with the send_limited status, "error" by default.
    cases.push(("send_error.xml", 200, app.send("1003", "Email").await));
    let wrong = &wrong_code(&code);
    cases.push((
        "code_incorrect_code.xml",
        200,
        app.verify("1003", wrong).await,
    ));
    cases.push(("code_success.xml", 200, app.verify("1003", &code).await));
    cases.push((
        "code_error_missing_code.xml",
        400,
        app.get(VERIFY, &[("CustomerId", "1003")]).await,
    ));

    // Malformed requests, one per class, as GIA would receive each answer.
    let too_large = "CustomerId=1003&pad=".to_string()
        + &"x".repeat(app.state.snapshot().settings.server.max_body_bytes);
    cases.push((
        "send_error_body_too_large.xml",
        413,
        app.post_raw(SEND, "application/x-www-form-urlencoded", too_large)
            .await,
    ));
    cases.push((
        "code_error_unsupported_content_type.xml",
        415,
        app.post_raw(VERIFY, "text/plain", "CustomerId=1003&authCode_nbest1=1")
            .await,
    ));
    cases.push((
        "check_methods_error_bad_xml.xml",
        400,
        app.post_raw(METHODS, "application/xml", "<r><CustomerId>1003</r>")
            .await,
    ));
    cases.push((
        "send_error_bad_json.xml",
        400,
        app.post_raw(SEND, "application/json", r#"{"CustomerId": "1003","#)
            .await,
    ));
    cases.push((
        "send_error_unknown_method.xml",
        400,
        app.send("1003", "Fax").await,
    ));
    let basic = app_with_security(
        kind,
        "auth_scheme = \"basic\"\nuser_id = \"gia\"\npassword = \"s3cret\"",
    )
    .await;
    cases.push((
        "code_error_unauthorized.xml",
        401,
        basic.verify("1003", "123456").await,
    ));
    let elsewhere = app_with_security(kind, "allowed_networks = [\"10.0.0.0/8\"]").await;
    cases.push((
        "check_methods_error_forbidden.xml",
        403,
        elsewhere.methods("1003").await,
    ));

    // Assert
    for (file, http, answer) in &cases {
        assert_golden(file, *http, answer);
    }
    let covered: Vec<&str> = cases.iter().map(|(f, _, _)| *f).collect();
    for file in GOLDEN {
        assert!(covered.contains(file), "{file} is listed but not checked");
    }
}
both_stores!(
    every_response_shape_matches_its_golden_file_on,
    every_response_shape_matches_its_golden_file
);

/// The golden app with `security` (TOML lines) as its `[security]` table.
async fn app_with_security(kind: StoreKind, security: &str) -> TestApp {
    app(kind, &format!("[security]\n{security}")).await
}

async fn app_plus(kind: StoreKind) -> TestApp {
    app(kind, "[sms]\nplus_symbol_before_recipient_number = true").await
}

#[test]
fn every_golden_fixture_is_checked() {
    let dir = fixture_path("xml/responses");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = GOLDEN.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "fixtures/xml/responses and GOLDEN disagree"
    );
}

async fn renamed_statuses_are_the_ones_answered(kind: StoreKind) {
    // Arrange: every outcome renamed to a path name a callflow designer might use.
    let app = spawn_app_with(
        kind,
        r#"
[statuses]
success = "verified"
not_found = "agent"
incorrect_code = "retry"
code_expired = "resend"
locked = "blocked"
send_limited = "too many"
error = "fault"
[codes]
max_sends = 1
max_verify_attempts = 2
[lockout]
max_failures = 2
"#,
    )
    .await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    app.add_customer("1004", Some("bob@example.com"), None, None)
        .await;

    // Act
    let not_found = app.methods("9999").await;
    let found = app.methods("1001").await;
    let sent = app.send("1001", "Email").await;
    let code = app.last_code_to("alice@example.com");
    let limited = app.send("1001", "Email").await;
    let malformed = app.get(SEND, &[("CustomerId", "1001")]).await;
    let not_allowed = app
        .request(reqwest::Method::DELETE, VERIFY, &[], None)
        .await;
    let wrong = &wrong_code(&code);
    let incorrect = app.verify("1001", wrong).await;
    let verified = app.verify("1001", &code).await;
    let expired = app.verify("1001", &code).await;
    app.send("1004", "Email").await;
    let bob = app.last_code_to("bob@example.com");
    let bob_wrong = &wrong_code(&bob);
    let _ = app.verify("1004", bob_wrong).await;
    let _ = app.verify("1004", bob_wrong).await; // lockout.max_failures = 2
    let locked = app.verify("1004", &bob).await;

    // Assert
    for (what, answer, want) in [
        ("unknown customer", &not_found, "agent"),
        ("methods found", &found, "verified"),
        ("send", &sent, "verified"),
        ("send over the limit", &limited, "too many"),
        ("missing method (400)", &malformed, "fault"),
        ("DELETE (405)", &not_allowed, "fault"),
        ("wrong code", &incorrect, "retry"),
        ("right code", &verified, "verified"),
        ("used code", &expired, "resend"),
        ("locked customer", &locked, "blocked"),
    ] {
        assert_eq!(answer.xml_status(), want, "{what}: {}", answer.body);
        assert!(
            !answer.body.contains("<status>error</status>")
                && !answer.body.contains("<status>success</status>"),
            "{what} still uses a default name: {}",
            answer.body
        );
    }
}
both_stores!(
    renamed_statuses_are_the_ones_answered_on,
    renamed_statuses_are_the_ones_answered
);
