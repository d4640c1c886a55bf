//! Every way a callflow can pass parameters: query string (GET or POST), form body, XML body
//! (`application/xml`, `text/xml`), JSON body. Body over query, names in any case, the configurable
//! customer id names, call and method binding, and code normalisation, end to end.

use crate::both_stores;
use crate::helpers::wrong_code;
use crate::helpers::{
    Answer, METHODS, SEND, StoreKind, TestApp, VERIFY, fixture, spawn_app_with, text_of,
};

/// How the parameters travel.
#[derive(Debug, Clone, Copy)]
enum Enc {
    /// GET with a query string.
    Get,
    /// POST with a query string and no body.
    PostQuery,
    Form,
    Xml(&'static str),
    Json,
}

const ALL: [Enc; 6] = [
    Enc::Get,
    Enc::PostQuery,
    Enc::Form,
    Enc::Xml("application/xml"),
    Enc::Xml("text/xml; charset=utf-8"),
    Enc::Json,
];

fn root_of(path: &str) -> &'static str {
    match path {
        METHODS => "checkVerifiedContactMethods",
        SEND => "sendAuthenticationCode",
        _ => "codeAuthentication",
    }
}

fn xml_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// `<root><Name>value</Name>…</root>`, as the contract describes XML bodies.
fn xml_doc(root: &str, params: &[(&str, &str)]) -> String {
    let mut doc = format!("<{root}>");
    for (k, v) in params {
        doc.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
    }
    doc.push_str(&format!("</{root}>"));
    doc
}

fn json_doc(params: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

async fn call(app: &TestApp, enc: Enc, path: &str, params: &[(&str, &str)]) -> Answer {
    match enc {
        Enc::Get => app.get(path, params).await,
        Enc::PostQuery => app.request(reqwest::Method::POST, path, params, None).await,
        Enc::Form => app.post_form(path, params).await,
        Enc::Xml(ct) => app.post_raw(path, ct, xml_doc(root_of(path), params)).await,
        Enc::Json => {
            app.post_raw(path, "application/json", json_doc(params))
                .await
        }
    }
}

async fn app_with_customers(kind: StoreKind, extra: &str) -> TestApp {
    // A case that tunes [codes] itself says max_sends too (one table per layer).
    let overrides = if extra.contains("[codes]") {
        extra.to_string()
    } else {
        format!("[codes]\nmax_sends = 50\n{extra}")
    };
    let app = spawn_app_with(kind, &overrides).await;
    app.add_alice().await;
    app
}

async fn every_encoding_runs_the_whole_flow(kind: StoreKind) {
    let app = spawn_app_with(kind, "").await;
    for (i, enc) in ALL.iter().enumerate() {
        // Arrange: one customer per encoding, so no state leaks between cases.
        let id = format!("enc-{i}");
        let email = format!("enc{i}@example.com");
        app.add_customer(&id, Some(&email), None, None).await;

        // Act
        let methods = call(&app, *enc, METHODS, &[("CustomerId", &id)]).await;
        let sent = call(
            &app,
            *enc,
            SEND,
            &[
                ("CustomerId", &id),
                ("TwoFactorAuthSelectedMethod", "Email"),
            ],
        )
        .await;
        let code = app.last_code_to(&email);
        let refused = call(
            &app,
            *enc,
            VERIFY,
            &[("CustomerId", &id), ("authCode_nbest1", &wrong_code(&code))],
        )
        .await;
        let verified = call(
            &app,
            *enc,
            VERIFY,
            &[("CustomerId", &id), ("authCode_nbest1", &code)],
        )
        .await;

        // Assert
        assert_eq!(
            methods.body,
            format!(
                "<checkVerifiedContactMethods><status>success</status><methods>\
                 <method name=\"email\" value=\"{email}\"/></methods></checkVerifiedContactMethods>"
            ),
            "methods over {enc:?}"
        );
        assert_eq!(sent.xml_status(), "success", "send over {enc:?}: {sent:?}");
        assert_eq!(
            refused.xml_status(),
            "incorrect code",
            "wrong code over {enc:?}"
        );
        assert_eq!(
            verified.xml_status(),
            "success",
            "verify over {enc:?}: {verified:?}"
        );
        for a in [&methods, &sent, &refused, &verified] {
            assert_eq!(a.status, 200, "{enc:?}: {a:?}");
            assert_eq!(a.content_type, "application/xml; charset=utf-8", "{enc:?}");
        }
    }
}
both_stores!(
    every_encoding_runs_the_whole_flow_on,
    every_encoding_runs_the_whole_flow
);

/// The sample request documents in fixtures/xml/requests, filled in.
fn request_fixture(name: &str, fill: &[(&str, &str)]) -> String {
    let mut doc = fixture(&format!("xml/requests/{name}"));
    for (k, v) in fill {
        doc = doc.replace(&format!("{{{k}}}"), v);
    }
    assert!(
        !doc.contains('{'),
        "{name}: a placeholder was left unfilled"
    );
    doc
}

async fn sample_xml_requests_work_as_both_xml_types(kind: StoreKind) {
    let app = app_with_customers(kind, "").await;
    for ct in ["application/xml", "text/xml"] {
        // Act
        let methods = app
            .post_raw(
                METHODS,
                ct,
                request_fixture("check_methods.xml", &[("customer", "1001")]),
            )
            .await;
        let fill = [
            ("customer", "1001"),
            ("call", "call-7"),
            ("method", "SMS"),
            ("code", ""),
        ];
        let sent = app
            .post_raw(
                SEND,
                ct,
                request_fixture("send_authentication_code.xml", &fill[..3]),
            )
            .await;
        let code = app.last_code_to("447911123456");
        let verified = app
            .post_raw(
                VERIFY,
                ct,
                request_fixture(
                    "code_authentication.xml",
                    &[fill[0], fill[1], fill[2], ("code", code.as_str())],
                ),
            )
            .await;
        app.send("1001", "Email").await;
        let email_code = app.last_code_to("alice@example.com");
        let cdata = app
            .post_raw(
                VERIFY,
                ct,
                request_fixture(
                    "code_authentication_cdata.xml",
                    &[("customer", "1001"), ("code", email_code.as_str())],
                ),
            )
            .await;

        // Assert
        assert_eq!(methods.xml_status(), "success", "{ct}: {methods:?}");
        assert_eq!(sent.xml_status(), "success", "{ct}: {sent:?}");
        assert_eq!(verified.xml_status(), "success", "{ct}: {verified:?}");
        assert_eq!(cdata.xml_status(), "success", "{ct} with CDATA: {cdata:?}");
    }
}
both_stores!(
    sample_xml_requests_work_as_both_xml_types_on,
    sample_xml_requests_work_as_both_xml_types
);

async fn body_wins_over_query(kind: StoreKind) {
    // Arrange
    let app = app_with_customers(kind, "").await;
    let query = [("CustomerId", "9999")];
    let body = [("CustomerId", "1001")];

    // Act / Assert: the query names an unknown customer, the body a known one.
    for (what, answer) in [
        (
            "form",
            app.client
                .post(format!("{}{METHODS}", app.address))
                .query(&query)
                .form(&body)
                .send()
                .await
                .unwrap(),
        ),
        (
            "xml",
            app.client
                .post(format!("{}{METHODS}", app.address))
                .query(&query)
                .header("content-type", "application/xml")
                .body(xml_doc(root_of(METHODS), &body))
                .send()
                .await
                .unwrap(),
        ),
        (
            "json",
            app.client
                .post(format!("{}{METHODS}", app.address))
                .query(&query)
                .header("content-type", "application/json")
                .body(json_doc(&body))
                .send()
                .await
                .unwrap(),
        ),
    ] {
        let text = answer.text().await.unwrap();
        assert!(
            text.contains("<status>success</status>"),
            "{what} body should win over the query: {text}"
        );
    }

    // A wrong code in the query does not hide the right one in the body; parameters the body
    // lacks still come from the query.
    app.send("1001", "Email").await;
    let code = app.last_code_to("alice@example.com");
    let res = text_of(
        app.client
            .post(format!("{}{VERIFY}", app.address))
            .query(&[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &wrong_code(&code)),
            ])
            .form(&[("authCode_nbest1", code.as_str())]),
    )
    .await;
    assert!(res.contains("<status>success</status>"), "{res}");
}
both_stores!(body_wins_over_query_on, body_wins_over_query);

async fn names_match_in_any_case(kind: StoreKind) {
    let app = app_with_customers(kind, "").await;
    let cases: [(&str, &str, &str, Enc); 4] = [
        (
            "customerid",
            "twofactorauthselectedmethod",
            "authcode_nbest1",
            Enc::Get,
        ),
        (
            "CUSTOMERID",
            "TWOFACTORAUTHSELECTEDMETHOD",
            "AUTHCODE_NBEST1",
            Enc::Form,
        ),
        (
            "customerId",
            "twoFactorAuthSelectedMethod",
            "AuthCode_Nbest1",
            Enc::Json,
        ),
        (
            "CustomerID",
            "TwoFactorAuthSelectedmethod",
            "authCode_NBEST1",
            Enc::Xml("text/xml"),
        ),
    ];
    for (customer, method, code_name, enc) in cases {
        // Act
        let methods = call(&app, enc, METHODS, &[(customer, "1001")]).await;
        let sent = call(&app, enc, SEND, &[(customer, "1001"), (method, "Email")]).await;
        let code = app.last_code_to("alice@example.com");
        let verified = call(&app, enc, VERIFY, &[(customer, "1001"), (code_name, &code)]).await;

        // Assert
        let names = format!("{customer}/{method}/{code_name} over {enc:?}");
        assert_eq!(methods.xml_status(), "success", "{names}: {methods:?}");
        assert_eq!(sent.xml_status(), "success", "{names}: {sent:?}");
        assert_eq!(verified.xml_status(), "success", "{names}: {verified:?}");
    }
}
both_stores!(names_match_in_any_case_on, names_match_in_any_case);

async fn method_values_match_in_any_case(kind: StoreKind) {
    let app = app_with_customers(kind, "").await;
    for (value, to) in [
        ("Email", Some("alice@example.com")),
        ("email", Some("alice@example.com")),
        ("EMAIL", Some("alice@example.com")),
        (" eMaIl ", Some("alice@example.com")),
        ("SMS", Some("447911123456")),
        ("sms", Some("447911123456")),
        ("Sms", Some("447911123456")),
    ] {
        // Arrange
        let before = to.map_or(0, |t| app.messages_to(t));

        // Act
        let sent = app.send("1001", value).await;

        // Assert
        assert_eq!(sent.xml_status(), "success", "method {value:?}: {sent:?}");
        if let Some(t) = to {
            assert_eq!(
                app.messages_to(t),
                before + 1,
                "method {value:?} sends to {t}"
            );
        }
    }
}
both_stores!(
    method_values_match_in_any_case_on,
    method_values_match_in_any_case
);

async fn authenticator_in_any_case_is_recorded_and_checked(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "").await;
    app.add_customer(
        "1003",
        Some("carol@example.com"),
        None,
        Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
    )
    .await;
    let secret = twofactor::totp::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    let totp =
        twofactor::totp::build(&app.state.snapshot().settings.totp, &secret, "test").unwrap();
    let now = app.state.clock.now_unix();

    for value in ["authenticator", "AUTHENTICATOR", "Authenticator"] {
        // Act
        let sent = app.send("1003", value).await;
        // Assert
        assert_eq!(sent.xml_status(), "success", "{value:?}");
    }
    // Nothing is sent for the authenticator; the remembered choice makes verify check the TOTP.
    assert_eq!(app.outbox_messages().len(), 0);
    let verified = app.verify("1003", &totp.generate(now).to_string()).await;
    assert_eq!(verified.xml_status(), "success", "{verified:?}");
}
both_stores!(
    authenticator_in_any_case_is_recorded_and_checked_on,
    authenticator_in_any_case_is_recorded_and_checked
);

/// Request parameters in a table of cases.
type Pairs<'a> = &'a [(&'a str, &'a str)];

async fn customer_id_names_follow_the_configuration(kind: StoreKind) {
    // Arrange: defaults.
    let app = app_with_customers(kind, "").await;

    // Act / Assert: (parameters, expected status, why)
    let cases: [(Pairs, &str, &str); 5] = [
        (
            &[("AccountNumber", "1001")],
            "success",
            "AccountNumber is the fallback",
        ),
        (
            &[("accountnumber", "1001")],
            "success",
            "the fallback in any case",
        ),
        (
            &[("CustomerId", "1001"), ("AccountNumber", "9999")],
            "success",
            "CustomerId comes first",
        ),
        (
            &[("CustomerId", "9999"), ("AccountNumber", "1001")],
            "not found",
            "CustomerId comes first",
        ),
        (
            &[("CustomerId", " "), ("AccountNumber", "1001")],
            "success",
            "a blank CustomerId is absent",
        ),
    ];
    for (params, want, why) in cases {
        let a = app.get(METHODS, params).await;
        assert_eq!(a.xml_status(), want, "{params:?}: {why}: {a:?}");
    }

    // Arrange: custom names.
    let custom =
        app_with_customers(kind, "[gia]\ncustomer_id_params = [\"AcctNo\", \"Caller\"]").await;
    let cases: [(Pairs, u16, &str, &str); 4] = [
        (
            &[("AcctNo", "1001")],
            200,
            "success",
            "the first configured name",
        ),
        (
            &[("Caller", "1001")],
            200,
            "success",
            "the second configured name",
        ),
        (
            &[("Caller", "9999"), ("AcctNo", "1001")],
            200,
            "success",
            "order of configuration, not of request",
        ),
        (
            &[("CustomerId", "1001")],
            400,
            "error",
            "CustomerId is no longer read",
        ),
    ];
    for (params, http, want, why) in cases {
        let a = custom.get(METHODS, params).await;
        assert_eq!(
            (a.status, a.xml_status().as_str()),
            (http, want),
            "{params:?}: {why}: {a:?}"
        );
    }
    let missing = custom.get(METHODS, &[("CustomerId", "1001")]).await;
    assert!(
        missing.message().contains("AcctNo, Caller"),
        "the message names the configured parameters: {}",
        missing.message()
    );
}
both_stores!(
    customer_id_names_follow_the_configuration_on,
    customer_id_names_follow_the_configuration
);

async fn a_code_is_bound_to_its_call(kind: StoreKind) {
    // Arrange
    let app = app_with_customers(kind, "[codes]\nmax_verify_attempts = 5").await;
    let sent = app
        .get(
            SEND,
            &[
                ("CustomerId", "1001"),
                ("TwoFactorAuthSelectedMethod", "Email"),
                ("CallId", "A"),
            ],
        )
        .await;
    assert_eq!(sent.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");

    // Act
    let other_call = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("CallId", "B"),
            ],
        )
        .await;
    let no_call = app.verify("1001", &code).await;
    let other_name = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("ConversationId", "B"),
            ],
        )
        .await;
    let same_call = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("CallId", "A"),
            ],
        )
        .await;

    // Assert
    assert_eq!(
        other_call.xml_status(),
        "incorrect code",
        "another call: {other_call:?}"
    );
    assert_eq!(
        no_call.xml_status(),
        "incorrect code",
        "no call id: {no_call:?}"
    );
    assert_eq!(
        other_name.xml_status(),
        "incorrect code",
        "ConversationId B: {other_name:?}"
    );
    assert_eq!(
        same_call.xml_status(),
        "success",
        "the same call: {same_call:?}"
    );

    // ConversationId is the same binding under its other name.
    app.get(
        SEND,
        &[
            ("CustomerId", "1001"),
            ("TwoFactorAuthSelectedMethod", "Email"),
            ("ConversationId", "conv-1"),
        ],
    )
    .await;
    let code = app.last_code_to("alice@example.com");
    let by_call_id = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("CallId", "conv-1"),
            ],
        )
        .await;
    assert_eq!(by_call_id.xml_status(), "success", "{by_call_id:?}");
}
both_stores!(a_code_is_bound_to_its_call_on, a_code_is_bound_to_its_call);

async fn a_code_is_bound_to_its_method(kind: StoreKind) {
    // Arrange
    let app = app_with_customers(kind, "").await;
    app.send("1001", "SMS").await;
    let code = app.last_code_to("447911123456");

    // Act
    let as_email = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("TwoFactorAuthSelectedMethod", "Email"),
            ],
        )
        .await;
    let as_sms = app
        .get(
            VERIFY,
            &[
                ("CustomerId", "1001"),
                ("authCode_nbest1", &code),
                ("TwoFactorAuthSelectedMethod", "sms"),
            ],
        )
        .await;

    // Assert
    assert_eq!(
        as_email.xml_status(),
        "incorrect code",
        "an SMS code checked as Email: {as_email:?}"
    );
    assert_eq!(as_sms.xml_status(), "success", "{as_sms:?}");
}
both_stores!(
    a_code_is_bound_to_its_method_on,
    a_code_is_bound_to_its_method
);

const WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

fn spoken(code: &str, zero: &str) -> String {
    code.bytes()
        .map(|b| {
            if b == b'0' {
                zero
            } else {
                WORDS[usize::from(b - b'0')]
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn separated(code: &str) -> String {
    let seps = [" ", "-", ".", " - "];
    let mut out = String::new();
    for (i, c) in code.chars().enumerate() {
        if i > 0 {
            out.push_str(seps[i % seps.len()]);
        }
        out.push(c);
    }
    out
}

async fn keyed_and_spoken_codes_are_normalised(kind: StoreKind) {
    // Arrange: 10 digits, and resend until a code holds a 0 so "oh" is exercised.
    let app = app_with_customers(kind, "[codes]\ndigits = 10\nmax_sends = 100").await;
    type Shape = fn(&str) -> String;
    let shapes: [(&str, Shape, Enc); 6] = [
        ("separators", separated, Enc::Get),
        ("separators in a form body", separated, Enc::Form),
        ("spoken words", |c| spoken(c, "zero"), Enc::Json),
        (
            "spoken with oh",
            |c| spoken(c, "oh"),
            Enc::Xml("application/xml"),
        ),
        (
            "mixed case words and digits",
            |c| {
                let s = spoken(c, "Oh");
                s.to_uppercase().replacen("ONE", "1", 1)
            },
            Enc::Get,
        ),
        ("surrounding blanks", |c| format!("  {c}\t"), Enc::Form),
    ];
    for (what, shape, enc) in shapes {
        let mut code = String::new();
        for _ in 0..40 {
            app.send("1001", "Email").await;
            code = app.last_code_to("alice@example.com");
            if code.contains('0') {
                break;
            }
        }
        let said = shape(&code);

        // Act
        let answer = call(
            &app,
            enc,
            VERIFY,
            &[("CustomerId", "1001"), ("authCode_nbest1", &said)],
        )
        .await;

        // Assert
        assert_eq!(
            answer.xml_status(),
            "success",
            "{what}: {said:?} over {enc:?}: {answer:?}"
        );
    }

    // Something that is not a code is a wrong code, not an error.
    app.send("1001", "Email").await;
    for junk in [
        "",
        "abc",
        "one two potato",
        "12345678901234567890123456789012345",
    ] {
        let a = app.verify("1001", junk).await;
        assert_eq!(
            (a.status, a.xml_status().as_str()),
            (200, "incorrect code"),
            "{junk:?}"
        );
        app.send("1001", "Email").await;
    }
}
both_stores!(
    keyed_and_spoken_codes_are_normalised_on,
    keyed_and_spoken_codes_are_normalised
);

async fn json_numbers_are_parameters_too(kind: StoreKind) {
    let app = app_with_customers(kind, "").await;
    let a = app
        .post_raw(METHODS, "application/json", r#"{"CustomerId": 1001}"#)
        .await;
    assert_eq!(a.xml_status(), "success", "{a:?}");
}
both_stores!(
    json_numbers_are_parameters_too_on,
    json_numbers_are_parameters_too
);
