//! Malformed requests: every class answers 4xx (never 5xx) with the endpoint's own root element,
//! `<status>error</status>`, a non-empty `<message>` naming the problem, and the XML content type.

use reqwest::Method;

use crate::both_stores;
use crate::helpers::{Answer, METHODS, SEND, StoreKind, VERIFY, spawn_app_with};

const ALL: &[&str] = &[METHODS, SEND, VERIFY];
/// The endpoints that read `TwoFactorAuthSelectedMethod` and the call id.
const SEND_VERIFY: &[&str] = &[SEND, VERIFY];

const BODY_LIMIT: usize = 4096;

fn root_of(path: &str) -> &'static str {
    match path {
        METHODS => "checkVerifiedContactMethods",
        SEND => "sendAuthenticationCode",
        _ => "codeAuthentication",
    }
}

struct Case {
    name: &'static str,
    endpoints: &'static [&'static str],
    method: Method,
    query: Vec<(String, String)>,
    /// Content type (if any) and bytes.
    body: Option<(Option<&'static str>, Vec<u8>)>,
    http: u16,
    /// A word the message must hold (case-insensitive), so it names the problem.
    says: &'static str,
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn xml(body: &str) -> Option<(Option<&'static str>, Vec<u8>)> {
    Some((Some("application/xml"), body.as_bytes().to_vec()))
}

fn cases() -> Vec<Case> {
    let customer = q(&[("CustomerId", "1001")]);
    let long = "9".repeat(600);
    let nested = format!(
        "<codeAuthentication><CustomerId>{}1001{}</CustomerId></codeAuthentication>",
        "<a>".repeat(400),
        "</a>".repeat(400)
    );
    let many: String = (0..70).map(|i| format!("p{i}=x&")).collect();
    let case = |name, endpoints, query, body, http, says| Case {
        name,
        endpoints,
        method: Method::POST,
        query,
        body,
        http,
        says,
    };
    vec![
        case("missing customer id", ALL, vec![], None, 400, "customer id"),
        case(
            "blank customer id",
            ALL,
            q(&[("CustomerId", "  ")]),
            None,
            400,
            "customer id",
        ),
        case(
            "customer id too long",
            ALL,
            q(&[("CustomerId", &"7".repeat(65))]),
            None,
            400,
            "customer id",
        ),
        case(
            "customer id with braces",
            ALL,
            q(&[("CustomerId", "{1001}")]),
            None,
            400,
            "customer id",
        ),
        case(
            "unknown method",
            SEND_VERIFY,
            q(&[
                ("CustomerId", "1001"),
                ("TwoFactorAuthSelectedMethod", "Fax"),
                ("authCode_nbest1", "123456"),
            ]),
            None,
            400,
            "TwoFactorAuthSelectedMethod",
        ),
        case(
            "missing method",
            &[SEND],
            customer.clone(),
            None,
            400,
            "TwoFactorAuthSelectedMethod",
        ),
        case(
            "missing code",
            &[VERIFY],
            customer.clone(),
            None,
            400,
            "authCode_nbest1",
        ),
        case(
            "call id with a control character",
            SEND_VERIFY,
            q(&[
                ("CustomerId", "1001"),
                ("CallId", "a\u{7}b"),
                ("TwoFactorAuthSelectedMethod", "Email"),
            ]),
            None,
            400,
            "call id",
        ),
        case(
            "bad XML: mismatched tag",
            ALL,
            vec![],
            xml("<r><CustomerId>1001</r>"),
            400,
            "XML",
        ),
        case(
            "bad XML: not closed",
            ALL,
            vec![],
            xml("<r><CustomerId>1001</CustomerId>"),
            400,
            "XML",
        ),
        case(
            "bad XML: two roots",
            ALL,
            vec![],
            xml("<r/><s/>"),
            400,
            "XML",
        ),
        case(
            "bad XML: text beside parameters",
            ALL,
            vec![],
            xml("<r>hi<CustomerId>1</CustomerId></r>"),
            400,
            "XML",
        ),
        case(
            "bad XML: not XML at all",
            ALL,
            vec![],
            xml("CustomerId=1001"),
            400,
            "XML",
        ),
        case(
            "deeply nested XML",
            ALL,
            vec![],
            xml(&nested),
            400,
            "nested",
        ),
        case(
            "XML internal DTD entity",
            ALL,
            vec![],
            xml("<!DOCTYPE r [<!ENTITY id \"1001\">]><r><CustomerId>&id;</CustomerId></r>"),
            400,
            "DTD",
        ),
        case(
            "XML external SYSTEM entity",
            ALL,
            vec![],
            xml(
                "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><r><CustomerId>&xxe;</CustomerId></r>",
            ),
            400,
            "DTD",
        ),
        case(
            "XML billion laughs",
            ALL,
            vec![],
            xml(concat!(
                "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">",
                "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">",
                "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">",
                "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>",
                "<r><CustomerId>&lol3;</CustomerId></r>"
            )),
            400,
            "DTD",
        ),
        case(
            "XML undefined entity",
            ALL,
            vec![],
            xml("<r><CustomerId>&xxe;</CustomerId></r>"),
            400,
            "entity",
        ),
        case(
            "bad JSON",
            ALL,
            vec![],
            Some((Some("application/json"), b"{\"CustomerId\": ".to_vec())),
            400,
            "JSON",
        ),
        case(
            "JSON array",
            ALL,
            vec![],
            Some((Some("application/json"), b"[\"1001\"]".to_vec())),
            400,
            "JSON",
        ),
        case(
            "JSON string",
            ALL,
            vec![],
            Some((Some("application/json"), b"\"1001\"".to_vec())),
            400,
            "JSON",
        ),
        case(
            "JSON number",
            ALL,
            vec![],
            Some((Some("application/json"), b"1001".to_vec())),
            400,
            "JSON",
        ),
        case(
            "JSON nested value",
            ALL,
            vec![],
            Some((
                Some("application/json"),
                br#"{"CustomerId": {"id": "1001"}}"#.to_vec(),
            )),
            400,
            "JSON",
        ),
        case(
            "wrong content type",
            ALL,
            vec![],
            Some((Some("text/plain"), b"CustomerId=1001".to_vec())),
            415,
            "content type",
        ),
        case(
            "multipart body",
            ALL,
            vec![],
            Some((
                Some("multipart/form-data; boundary=x"),
                b"--x\r\n\r\n1001\r\n--x--".to_vec(),
            )),
            415,
            "content type",
        ),
        case(
            "body without a content type",
            ALL,
            vec![],
            Some((None, b"CustomerId=1001".to_vec())),
            415,
            "Content-Type",
        ),
        case(
            "oversized body",
            ALL,
            vec![],
            Some((
                Some("application/x-www-form-urlencoded"),
                format!("CustomerId=1001&pad={}", "x".repeat(BODY_LIMIT)).into_bytes(),
            )),
            413,
            "larger than",
        ),
        case(
            "invalid UTF-8 form body",
            ALL,
            vec![],
            Some((
                Some("application/x-www-form-urlencoded"),
                b"CustomerId=10\xff\xfe01".to_vec(),
            )),
            400,
            "UTF-8",
        ),
        case(
            "invalid UTF-8 XML body",
            ALL,
            vec![],
            Some((
                Some("application/xml"),
                b"<r><CustomerId>\xc3\x28</CustomerId></r>".to_vec(),
            )),
            400,
            "UTF-8",
        ),
        case(
            "parameter repeated in the query",
            ALL,
            q(&[("CustomerId", "1001"), ("CustomerId", "1002")]),
            None,
            400,
            "more than once",
        ),
        case(
            "parameter repeated in another case",
            ALL,
            q(&[("CustomerId", "1001"), ("customerid", "1002")]),
            None,
            400,
            "more than once",
        ),
        case(
            "parameter repeated in a form body",
            ALL,
            vec![],
            Some((
                Some("application/x-www-form-urlencoded"),
                b"CustomerId=1001&CustomerId=1002".to_vec(),
            )),
            400,
            "more than once",
        ),
        case(
            "parameter repeated in an XML body",
            ALL,
            vec![],
            xml("<r><CustomerId>1001</CustomerId><CustomerId>1002</CustomerId></r>"),
            400,
            "more than once",
        ),
        case(
            "parameter repeated in a JSON body",
            ALL,
            vec![],
            Some((
                Some("application/json"),
                br#"{"CustomerId": "1001", "CustomerId": "1002"}"#.to_vec(),
            )),
            400,
            "more than once",
        ),
        case(
            "huge parameter value in the query",
            ALL,
            q(&[("CustomerId", &long)]),
            None,
            400,
            "longer than",
        ),
        case(
            "huge parameter value in the body",
            ALL,
            vec![],
            Some((
                Some("application/x-www-form-urlencoded"),
                format!("CustomerId=1001&authCode_nbest1={long}").into_bytes(),
            )),
            400,
            "longer than",
        ),
        case(
            "huge parameter name",
            ALL,
            q(&[(&"N".repeat(200), "1")]),
            None,
            400,
            "longer than",
        ),
        case(
            "too many parameters",
            ALL,
            vec![],
            Some((Some("application/x-www-form-urlencoded"), many.into_bytes())),
            400,
            "parameters",
        ),
        Case {
            method: Method::PUT,
            ..case("PUT", ALL, customer.clone(), None, 405, "GET or POST")
        },
        Case {
            method: Method::DELETE,
            ..case("DELETE", ALL, customer.clone(), None, 405, "GET or POST")
        },
        Case {
            method: Method::PATCH,
            ..case("PATCH", ALL, customer, None, 405, "GET or POST")
        },
    ]
}

/// What is wrong with answer `a` to `case` on `path`, if anything.
fn check(case: &Case, path: &str, a: &Answer) -> Result<(), String> {
    let root = root_of(path);
    let what = format!("{} on {path}", case.name);
    if a.status != case.http {
        return Err(format!(
            "{what}: HTTP {} instead of {}: {}",
            a.status, case.http, a.body
        ));
    }
    if a.content_type != "application/xml; charset=utf-8" {
        return Err(format!("{what}: content type {:?}", a.content_type));
    }
    if !(a
        .body
        .starts_with(&format!("<{root}><status>error</status><message>"))
        && a.body.ends_with(&format!("</message></{root}>")))
    {
        return Err(format!(
            "{what}: not the endpoint's error document: {}",
            a.body
        ));
    }
    let message = a.message();
    if !message.to_lowercase().contains(&case.says.to_lowercase()) {
        return Err(format!(
            "{what}: message {message:?} should mention {:?}",
            case.says
        ));
    }
    if message.len() >= 300 {
        return Err(format!(
            "{what}: message should name the problem, not echo the input: {message:?}"
        ));
    }
    Ok(())
}

async fn every_malformed_request_is_a_4xx_in_the_endpoints_xml(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &format!("[server]\nmax_body_bytes = {BODY_LIMIT}")).await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;

    let mut failures = Vec::new();
    for case in cases() {
        for path in case.endpoints {
            // Act
            let query: Vec<(&str, &str)> = case
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let a = app
                .request(case.method.clone(), path, &query, case.body.clone())
                .await;

            // Assert (collected, so one run lists every class that is wrong)
            if let Err(e) = check(&case, path, &a) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        app.outbox_messages().is_empty(),
        "a malformed request sent a code"
    );
}
both_stores!(
    every_malformed_request_is_a_4xx_in_the_endpoints_xml_on,
    every_malformed_request_is_a_4xx_in_the_endpoints_xml
);

async fn method_not_allowed_names_the_allowed_ones(kind: StoreKind) {
    let app = spawn_app_with(kind, "").await;
    for path in ALL {
        let res = app
            .client
            .put(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "{path}");
        assert_eq!(res.headers()["allow"], "GET, POST", "{path}");
    }
}
both_stores!(
    method_not_allowed_names_the_allowed_ones_on,
    method_not_allowed_names_the_allowed_ones
);

/// A chunked body has no Content-Length to refuse up front: the limit must hold while reading.
async fn an_oversized_chunked_body_is_refused(kind: StoreKind) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Arrange
    let app = spawn_app_with(kind, &format!("[server]\nmax_body_bytes = {BODY_LIMIT}")).await;
    let chunk = "x".repeat(1000);
    let mut request = format!(
        "POST {SEND} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..(BODY_LIMIT / 1000 + 2) {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");

    // Act
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);

    // Assert
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("<sendAuthenticationCode><status>error</status><message>"),
        "{response}"
    );
}
both_stores!(
    an_oversized_chunked_body_is_refused_on,
    an_oversized_chunked_body_is_refused
);
