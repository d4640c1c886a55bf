//! Property tests: arbitrary strings at the parsers and arbitrary bytes at the server (body and query
//! string) never make a 5xx or a panic.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::both_stores;
use crate::helpers::{StoreKind, spawn_app_with};

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn xml_parser_never_panics(doc in "(<[a-zA-Z!?/&;#\\[\\]\"= x0-9-]{0,12}>?|[^<]{0,8}){0,24}") {
        let _ = twofactor::xml::parse_params(&doc);
    }

    #[test]
    fn xml_parser_never_panics_on_any_string(doc in any::<String>()) {
        let _ = twofactor::xml::parse_params(&doc);
    }

    #[test]
    fn normaliser_yields_digits_or_nothing_for_any_string(raw in any::<String>()) {
        if let Some(code) = twofactor::codes::normalise_code(&raw) {
            prop_assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()), "{raw:?} gave {code:?}");
        }
    }

    #[test]
    fn normaliser_yields_digits_or_nothing(raw in "\\PC{0,40}") {
        if let Some(code) = twofactor::codes::normalise_code(&raw) {
            prop_assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()), "{raw:?} gave {code:?}");
        }
    }

    #[test]
    fn separators_and_spoken_digits_do_not_change_a_code(
        digits in proptest::collection::vec(0usize..10, 4..=10),
        seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just(". "), Just(" - ")], 10),
        spoken in proptest::collection::vec(any::<bool>(), 10),
    ) {
        const WORDS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
        let mut raw = String::new();
        for (i, d) in digits.iter().enumerate() {
            if spoken[i] {
                if !raw.is_empty() { raw.push(' '); }
                raw.push_str(WORDS[*d]);
                raw.push(' ');
            } else {
                raw.push_str(&d.to_string());
            }
            raw.push_str(seps[i]);
        }
        let want: String = digits.iter().map(|d| d.to_string()).collect();
        prop_assert_eq!(twofactor::codes::normalise_code(&raw), Some(want), "input {:?}", raw);
    }
}

/// Any of the three callflow endpoints.
fn endpoints() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("/v1/check-verified-contact-methods"),
        Just("/v1/send-authentication-code"),
        Just("/v1/code-authentication")
    ]
}

/// HTTP status, content type and body.
async fn answer(res: reqwest::Response) -> (u16, Option<String>, String) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, ct, res.text().await.unwrap())
}

/// No 5xx, and the answer is the endpoint's own XML.
fn endpoint_xml(
    path: &str,
    status: u16,
    ct: Option<String>,
    text: &str,
    what: &str,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let root = twofactor::xml::Endpoint::from_path(path).unwrap().root();
    prop_assert!(status < 500, "{path} {what} answered {status}: {text}");
    prop_assert_eq!(ct.as_deref(), Some("application/xml; charset=utf-8"));
    prop_assert!(
        text.starts_with(&format!("<{root}><status>")),
        "{path} {what}: {}",
        text
    );
    Ok(())
}

/// Arbitrary bodies under each content type, and arbitrary query strings, at every endpoint.
async fn arbitrary_requests_never_fail_the_server(kind: StoreKind) {
    let app = spawn_app_with(kind, "[server]\nmax_body_bytes = 2048").await;
    app.add_alice().await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let strategy = (
        endpoints(),
        prop_oneof![
            Just("application/xml"),
            Just("text/xml; charset=utf-8"),
            Just("application/json"),
            Just("application/x-www-form-urlencoded"),
            Just("text/plain"),
            Just("multipart/form-data; boundary=x")
        ],
        proptest::collection::vec(any::<u8>(), 0..3000),
        "[a-zA-Z0-9_=&%+. -]{0,200}",
    );
    tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(path, content_type, body, query)| {
                let (status, ct, text) = handle.block_on(async {
                    let res = app
                        .client
                        .post(format!("{}{path}?{query}", app.address))
                        .header("content-type", content_type)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    answer(res).await
                });
                endpoint_xml(path, status, ct, &text, content_type)
            })
            .unwrap();
    });
}
both_stores!(arbitrary_requests, arbitrary_requests_never_fail_the_server);

/// Every byte percent-encoded except `&` and `=`, so arbitrary bytes keep making an arbitrary
/// structure of parameters (names and values any bytes, UTF-8 or not) in a URL that stays valid.
const QUERY_BYTES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'&').remove(b'=');

/// Arbitrary bytes in the query string of a GET, after no, some or all of a valid request's
/// parameters, at every endpoint.
async fn arbitrary_query_bytes_never_fail_the_server(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "").await;
    app.add_alice().await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let strategy = (
        endpoints(),
        prop_oneof![
            Just(""),
            Just("CustomerId=1001&"),
            Just("CustomerId=1001&TwoFactorAuthSelectedMethod=Email&authCode_nbest1="),
        ],
        proptest::collection::vec(any::<u8>(), 0..600),
    );

    // Act / Assert
    tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(path, valid, bytes)| {
                let query = format!(
                    "{valid}{}",
                    percent_encoding::percent_encode(&bytes, QUERY_BYTES)
                );
                let (status, ct, text) = handle.block_on(async {
                    let res = app
                        .client
                        .get(format!("{}{path}?{query}", app.address))
                        .send()
                        .await
                        .unwrap();
                    answer(res).await
                });
                endpoint_xml(path, status, ct, &text, &query)
            })
            .unwrap();
    });
}
both_stores!(
    arbitrary_query_bytes,
    arbitrary_query_bytes_never_fail_the_server
);
