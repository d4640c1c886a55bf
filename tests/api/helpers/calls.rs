//! Typed requests to the three endpoints, the admin API and health, and reading their answers,
//! the outbox, fixtures and metrics.

use super::*;

/// A response: HTTP status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    /// The `<status>` text.
    pub fn xml_status(&self) -> String {
        between(&self.body, "<status>", "</status>").unwrap_or_default()
    }
    pub fn message(&self) -> String {
        between(&self.body, "<message>", "</message>").unwrap_or_default()
    }
}

pub fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(s[start..end].to_string())
}

impl TestApp {
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Customer 1001 with email `alice@example.com` and SMS `+447911123456`.
    pub async fn add_alice(&self) {
        self.add_customer(
            "1001",
            Some("alice@example.com"),
            Some("+447911123456"),
            None,
        )
        .await;
    }

    /// Adds a customer the way the seed file does.
    pub async fn add_customer(
        &self,
        id: &str,
        email: Option<&str>,
        phone: Option<&str>,
        totp_secret: Option<&str>,
    ) {
        let json = serde_json::json!([{ "id": id, "email": email, "phone": phone, "totp_secret": totp_secret }]);
        self.state
            .directory
            .import_json(&json.to_string())
            .await
            .expect("customer imports");
    }

    async fn answer(&self, res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = res.text().await.expect("body");
        assert!(status < 500, "server answered {status}: {body}");
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// GET `path` with query parameters.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let res = self
            .client
            .get(format!("{}{path}", self.address))
            .query(params)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    /// POST `path` with a form body.
    pub async fn post_form(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let res = self
            .client
            .post(format!("{}{path}", self.address))
            .form(params)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    /// POST `path` with a raw body and content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let res = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    pub async fn methods(&self, customer: &str) -> Answer {
        self.get(
            "/v1/check-verified-contact-methods",
            &[("CustomerId", customer)],
        )
        .await
    }

    pub async fn send(&self, customer: &str, method: &str) -> Answer {
        self.get(
            "/v1/send-authentication-code",
            &[
                ("CustomerId", customer),
                ("TwoFactorAuthSelectedMethod", method),
            ],
        )
        .await
    }

    pub async fn verify(&self, customer: &str, code: &str) -> Answer {
        self.get(
            "/v1/code-authentication",
            &[("CustomerId", customer), ("authCode_nbest1", code)],
        )
        .await
    }

    /// Every outbox message, oldest first.
    pub fn outbox_messages(&self) -> Vec<serde_json::Value> {
        let Ok(file) = std::fs::File::open(&self.outbox) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map(|l| serde_json::from_str(&l.expect("line")).expect("outbox line is JSON"))
            .collect()
    }

    /// The code in the newest outbox message to `to`.
    pub fn last_code_to(&self, to: &str) -> String {
        let msg = self
            .outbox_messages()
            .into_iter()
            .rev()
            .find(|m| m["to"] == to)
            .unwrap_or_else(|| {
                panic!(
                    "no outbox message to {to} in {}: {:?}",
                    self.outbox.display(),
                    std::fs::read_to_string(&self.outbox)
                )
            });
        first_code(msg["body"].as_str().expect("body"))
    }
}

/// The first run of 4 to 10 digits in a message.
pub fn first_code(text: &str) -> String {
    let re = regex::Regex::new(r"\b\d{4,10}\b").expect("regex");
    re.find(text)
        .map(|m| m.as_str().to_string())
        .expect("a code in the message")
}

/// A file under `fixtures/`, found from the crate root so tests do not depend on the working directory.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// A text fixture. Fixture files end with exactly one newline (as editors save them), which is
/// not part of the document: it is stripped here, and a file without it is refused so the rule
/// stays the same for every fixture.
pub fn fixture(relative: &str) -> String {
    let path = fixture_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    let doc = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("fixture {} must end with one newline", path.display()));
    assert!(
        !doc.ends_with('\n') && !doc.ends_with('\r'),
        "fixture {} must end with exactly one newline",
        path.display()
    );
    doc.to_string()
}

/// The three callflow paths.
pub const METHODS: &str = "/v1/check-verified-contact-methods";
pub const SEND: &str = "/v1/send-authentication-code";
pub const VERIFY: &str = "/v1/code-authentication";

impl TestApp {
    /// Any method, query and optional body (content type, bytes): for the cases the typed helpers
    /// cannot express (PUT, bodies without a content type, bytes that are not UTF-8).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(Option<&str>, Vec<u8>)>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .query(query);
        if let Some((content_type, bytes)) = body {
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req = req.body(bytes);
        }
        let res = req.send().await.expect("request");
        self.answer(res).await
    }

    /// The number of outbox messages to `to`.
    pub fn messages_to(&self, to: &str) -> usize {
        self.outbox_messages()
            .iter()
            .filter(|m| m["to"] == to)
            .count()
    }
}

/// A wrong code of the same length as `code` (each digit moved on by one).
pub fn wrong_code(code: &str) -> String {
    code.chars()
        .map(|c| if c == '9' { '0' } else { (c as u8 + 1) as char })
        .collect()
}

/// Seconds since the Unix epoch, by the real clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An authenticator app for a base32 secret (SHA1, 30 s, `digits` digits), as the caller holds it.
pub fn authenticator(secret_b32: &str, digits: usize) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_digits(digits as u8)
        .with_secret(totp_rs::Secret::try_from_base32(secret_b32).expect("base32 secret"))
        .build()
        .expect("a valid TOTP")
}

/// An admin token long enough for production (32+ characters), for tests that drive the admin API.
pub const LONG_ADMIN_TOKEN: &str = "lifecycle-rotation-admin-token-8d41c07e";

/// The `[admin]` table that turns the admin API on with `LONG_ADMIN_TOKEN`.
pub fn admin_tokens() -> String {
    format!("[admin]\ntokens = [\"{LONG_ADMIN_TOKEN}\"]\n")
}

impl TestApp {
    /// One admin request with `LONG_ADMIN_TOKEN` and an optional JSON body. Any 5xx fails the test.
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> crate::admin::AdminAnswer {
        let text = body.map(|b| b.to_string());
        crate::admin::admin(
            self,
            method,
            path,
            Some(LONG_ADMIN_TOKEN),
            text.as_deref().map(|t| ("application/json", t)),
        )
        .await
    }

    /// send-authentication-code with extra parameters (a call id, a caller number).
    pub async fn send_with(&self, customer: &str, method: &str, extra: &[(&str, &str)]) -> Answer {
        let mut params = vec![
            ("CustomerId", customer),
            ("TwoFactorAuthSelectedMethod", method),
        ];
        params.extend_from_slice(extra);
        self.get(SEND, &params).await
    }

    /// code-authentication with extra parameters (a method, a call id, a caller number).
    pub async fn verify_with(&self, customer: &str, code: &str, extra: &[(&str, &str)]) -> Answer {
        let mut params = vec![("CustomerId", customer), ("authCode_nbest1", code)];
        params.extend_from_slice(extra);
        self.get(VERIFY, &params).await
    }
}

impl TestApp {
    /// GET /readyz: its HTTP status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .expect("readyz");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }
}

/// Parses `body` as JSON and checks it against `fixtures/json/<schema>.schema.json` (draft
/// 2020-12), naming every violation.
pub fn assert_json_schema(schema: &str, body: &str) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {body}"));
    let schema_doc: serde_json::Value =
        serde_json::from_str(&fixture(&format!("json/{schema}.schema.json")))
            .unwrap_or_else(|e| panic!("schema {schema} is not JSON: {e}"));
    assert_valid(&schema_doc, &value, schema);
    value
}

/// Checks `value` against the JSON Schema `schema` (any draft its `$schema` names).
pub fn assert_valid(schema: &serde_json::Value, value: &serde_json::Value, what: &str) {
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("schema of {what} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not satisfy {what}: {errors:?}"
    );
}

/// Sends `req` and reads the answer's body as text.
pub async fn text_of(req: reqwest::RequestBuilder) -> String {
    req.send().await.unwrap().text().await.unwrap()
}

/// The value of the `/metrics` sample line that starts with `series` (name and labels), 0 when the
/// series is not there yet.
pub async fn metric_value(app: &TestApp, series: &str) -> f64 {
    let metrics = text_of(app.client.get(format!("{}/metrics", app.address))).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series} has no number: {v:?} ({e})"))
        })
        .unwrap_or(0.0)
}
