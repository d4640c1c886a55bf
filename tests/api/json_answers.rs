//! JSON answers (Genesys Cloud Data Actions): every shape, asked for by `Accept` or by `format`
//! in the query or the body, with renamed statuses, each checked against its schema under
//! `fixtures/json/`; and the XML GIA gets stays as it was when JSON is not asked for.

use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::{
    Answer, METHODS, SEND, StoreKind, TestApp, VERIFY, assert_json_schema, first_code, fixture,
    spawn_app_with, wrong_code,
};

/// Every status renamed, so a test sees the configured string and not a default.
const RENAMED: &str = r#"
[statuses]
success = "ok path"
not_found = "nobody"
incorrect_code = "wrong"
code_expired = "stale"
locked = "barred"
send_limited = "slow down"
error = "fault"
[lockout]
max_failures = 2
[codes]
max_sends = 2
"#;

const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// GET `path` with `Accept: application/json`.
async fn get_json(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Answer {
    let res = app
        .client
        .get(format!("{}{path}", app.address))
        .header("accept", "application/json")
        .query(params)
        .send()
        .await
        .unwrap();
    read(res).await
}

async fn read(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.text().await.unwrap();
    assert!(status < 500, "{status}: {body}");
    Answer {
        status,
        content_type,
        body,
    }
}

/// The answer is JSON of `schema`'s shape, 200; its body.
fn json_200(a: &Answer, schema: &str) -> Value {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.content_type, "application/json", "{a:?}");
    assert_json_schema(schema, &a.body)
}

async fn every_answer_shape_in_json_with_renamed_statuses(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, RENAMED).await;
    app.add_customer(
        "1001",
        Some("alice@example.com"),
        Some("+447911123456"),
        Some(TOTP_SECRET),
    )
    .await;
    app.add_customer("1002", None, Some("+447911123457"), None)
        .await;

    // Act + Assert: check-verified-contact-methods, all three methods, in the XML's order.
    let all = json_200(
        &get_json(&app, METHODS, &[("CustomerId", "1001")]).await,
        "check_methods",
    );
    assert_eq!(
        all,
        json!({
            "status": "ok path",
            "methods": [
                {"name": "email", "value": "alice@example.com"},
                {"name": "authenticator"},
                {"name": "SMS", "value": "447911123456"}
            ],
            "email": "alice@example.com",
            "sms": "447911123456",
            "authenticator": true
        })
    );
    // The flat fields are there, empty, for what a customer lacks.
    let sms_only = json_200(
        &app.get(METHODS, &[("CustomerId", "1002"), ("format", "json")])
            .await,
        "check_methods",
    );
    assert_eq!(
        sms_only,
        json!({
            "status": "ok path",
            "methods": [{"name": "SMS", "value": "447911123457"}],
            "email": "",
            "sms": "447911123457",
            "authenticator": false
        })
    );
    let nobody = json_200(
        &get_json(&app, METHODS, &[("CustomerId", "4040")]).await,
        "check_methods",
    );
    assert_eq!(
        nobody,
        json!({"status": "nobody", "methods": [], "email": "", "sms": "", "authenticator": false})
    );

    // send-authentication-code: success by query format, by form body format, not found.
    let sent = app
        .get(
            SEND,
            &[
                ("CustomerId", "1002"),
                ("TwoFactorAuthSelectedMethod", "SMS"),
                ("format", "json"),
            ],
        )
        .await;
    assert_eq!(json_200(&sent, "status"), json!({"status": "ok path"}));
    let code = first_code(&app.outbox_messages().last().unwrap()["body"].to_string());
    let resent = app
        .post_form(
            SEND,
            &[
                ("CustomerId", "1002"),
                ("TwoFactorAuthSelectedMethod", "SMS"),
                ("format", "JSON"),
            ],
        )
        .await;
    assert_eq!(json_200(&resent, "status"), json!({"status": "ok path"}));
    let code = {
        let latest = first_code(&app.outbox_messages().last().unwrap()["body"].to_string());
        assert_eq!(code.len(), latest.len());
        latest
    };
    // codes.max_sends = 2: the third send is limited.
    let limited = get_json(
        &app,
        SEND,
        &[
            ("CustomerId", "1002"),
            ("TwoFactorAuthSelectedMethod", "SMS"),
        ],
    )
    .await;
    assert_eq!(json_200(&limited, "status")["status"], "slow down");
    let unknown = get_json(
        &app,
        SEND,
        &[
            ("CustomerId", "4040"),
            ("TwoFactorAuthSelectedMethod", "Email"),
        ],
    )
    .await;
    assert_eq!(json_200(&unknown, "status"), json!({"status": "nobody"}));

    // code-authentication: wrong, right, then the used code is gone (stale).
    let wrong = get_json(
        &app,
        VERIFY,
        &[
            ("CustomerId", "1002"),
            ("authCode_nbest1", &wrong_code(&code)),
        ],
    )
    .await;
    assert_eq!(json_200(&wrong, "status"), json!({"status": "wrong"}));
    let right = get_json(
        &app,
        VERIFY,
        &[("CustomerId", "1002"), ("authCode_nbest1", &code)],
    )
    .await;
    assert_eq!(json_200(&right, "status"), json!({"status": "ok path"}));
    let again = get_json(
        &app,
        VERIFY,
        &[("CustomerId", "1002"), ("authCode_nbest1", &code)],
    )
    .await;
    assert_eq!(json_200(&again, "status"), json!({"status": "stale"}));

    // lockout.max_failures = 2: the attempt after that answers locked, with the message the XML
    // carries in <message>.
    let mut last = Value::Null;
    for _ in 0..3 {
        let a = get_json(
            &app,
            VERIFY,
            &[("CustomerId", "1001"), ("authCode_nbest1", "000000")],
        )
        .await;
        last = json_200(&a, "status");
    }
    assert_eq!(last["status"], "barred", "{last}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(message.contains("locked"), "{last}");
    let xml = app.verify("1001", "000000").await;
    assert_eq!(
        xml.message(),
        message,
        "JSON and XML carry the same message"
    );
}
both_stores!(
    every_shape,
    every_answer_shape_in_json_with_renamed_statuses
);

async fn malformed_requests_answer_json_errors(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, RENAMED).await;
    let url = |p: &str| format!("{}{p}", app.address);
    let json_error = |a: &Answer, code: u16| -> String {
        assert_eq!(a.status, code, "{a:?}");
        assert_eq!(a.content_type, "application/json", "{a:?}");
        let v = assert_json_schema("error", &a.body);
        assert_eq!(v["status"], "fault", "{v}");
        v["message"].as_str().unwrap().to_string()
    };

    // Act + Assert
    let missing_id = get_json(&app, METHODS, &[]).await;
    assert!(json_error(&missing_id, 400).contains("missing customer id"));
    let unknown_method = get_json(
        &app,
        SEND,
        &[
            ("CustomerId", "1"),
            ("TwoFactorAuthSelectedMethod", "Pigeon"),
        ],
    )
    .await;
    json_error(&unknown_method, 400);
    let missing_code = app
        .get(VERIFY, &[("CustomerId", "1"), ("format", "json")])
        .await;
    assert!(json_error(&missing_code, 400).contains("authCode_nbest1"));
    // A bad format value is refused in the shape Accept asked for.
    let bad_format = get_json(&app, METHODS, &[("CustomerId", "1"), ("format", "yaml")]).await;
    assert!(json_error(&bad_format, 400).contains("format"));
    let bad_json = read(
        app.client
            .post(url(SEND))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body("{\"CustomerId\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(json_error(&bad_json, 400).contains("JSON"));
    let too_big = read(
        app.client
            .post(url(SEND))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("CustomerId={}", "1".repeat(20_000)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    json_error(&too_big, 413);
    let put = read(
        app.client
            .put(url(VERIFY))
            .query(&[("format", "json")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    json_error(&put, 405);
    // format in a JSON body, the way a Data Action can send it.
    let in_body = read(
        app.client
            .post(url(SEND))
            .header("content-type", "application/json")
            .body(r#"{"CustomerId": "1", "format": "json"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(json_error(&in_body, 400).contains("TwoFactorAuthSelectedMethod"));
    // format in the query and the body is no repeat: the body wins, as for every parameter.
    let both = read(
        app.client
            .post(url(METHODS))
            .query(&[("format", "xml")])
            .form(&[("CustomerId", "4040"), ("format", "json")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(json_200(&both, "check_methods")["status"], "nobody");
}
both_stores!(malformed_json, malformed_requests_answer_json_errors);

async fn xml_stays_the_default_byte_for_byte(kind: StoreKind) {
    // Arrange: the golden fixtures' settings (default statuses).
    let app = spawn_app_with(kind, "").await;
    app.add_customer(
        "1001",
        Some("carol@example.com"),
        Some("+447911123456"),
        Some(TOTP_SECRET),
    )
    .await;

    // Act: no Accept, Accept */*, a browser's list, Accept XML, and format=xml over Accept JSON.
    let mut answers = vec![app.methods("1001").await];
    for accept in [
        "*/*",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "application/xml",
    ] {
        let res = app
            .client
            .get(format!("{}{METHODS}", app.address))
            .header("accept", accept)
            .query(&[("CustomerId", "1001")])
            .send()
            .await
            .unwrap();
        answers.push(read(res).await);
    }
    answers.push(get_json(&app, METHODS, &[("CustomerId", "1001"), ("format", "xml")]).await);

    // Assert
    let golden = fixture("xml/responses/check_methods_success.xml");
    for a in answers {
        assert_eq!(a.status, 200);
        assert_eq!(a.content_type, "application/xml; charset=utf-8");
        assert_eq!(a.body, golden);
    }
    let missing = app.get(SEND, &[("CustomerId", "1001")]).await;
    assert_eq!(
        missing.body,
        fixture("xml/responses/send_error_missing_method.xml")
    );
}
both_stores!(xml_default, xml_stays_the_default_byte_for_byte);

async fn caller_guard_refusals_come_in_json(kind: StoreKind) {
    // Arrange
    let basic = spawn_app_with(
        kind,
        "[security]\nauth_scheme = \"basic\"\nuser_id = \"gia\"\npassword = \"pw\"\n[statuses]\nerror = \"fault\"",
    )
    .await;
    let fenced = spawn_app_with(
        kind,
        "[security]\nallowed_networks = [\"10.9.9.0/24\"]\n[statuses]\nerror = \"fault\"",
    )
    .await;

    // Act
    let unauthorized = get_json(&basic, VERIFY, &[("CustomerId", "1")]).await;
    let forbidden = fenced
        .get(METHODS, &[("CustomerId", "1"), ("format", "json")])
        .await;

    // Assert
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.content_type, "application/json");
    let v = assert_json_schema("error", &unauthorized.body);
    assert_eq!(v["status"], "fault");
    assert_eq!(forbidden.status, 403);
    let v = assert_json_schema("error", &forbidden.body);
    assert_eq!(v["message"], "caller address is not allowed");
}
both_stores!(guard_json, caller_guard_refusals_come_in_json);
