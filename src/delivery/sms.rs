//! SMS through an HTTP gateway shaped entirely by settings, as GIA's own `SMS.*` settings shape it:
//! any method, and URL, headers and body as templates. Each substituted value is escaped for where it
//! lands: percent-encoded in the URL, form-encoded, JSON- or XML-escaped in the body according to the
//! Content-Type sent, and stripped of line breaks in a header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use super::{
    CodeMessage, DeliveryError, SmsSender, StatusMatcher, error_chain, excerpt, redact, render,
};
use crate::config::Settings;
use crate::domain::PhoneNumber;
use crate::outbound::{is_link_local, sample_values, url_escape};

/// How much of a gateway's answer is kept: enough for any error text, bounded against a bad gateway.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// What stands in for a credential a gateway echoes back.
const REDACTED: &str = "[redacted]";
/// Headers that describe the message rather than authenticate it (as the live settings judge them).
const PLAIN_HEADERS: [&str; 4] = ["content-type", "accept", "accept-language", "user-agent"];

/// How values are escaped in the body, from the Content-Type sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Xml,
    Text,
}

impl BodyKind {
    pub fn from_content_type(content_type: &str) -> BodyKind {
        let ct = content_type.to_ascii_lowercase();
        if ct.contains("json") {
            BodyKind::Json
        } else if ct.contains("x-www-form-urlencoded") {
            BodyKind::Form
        } else if ct.contains("xml") {
            BodyKind::Xml
        } else {
            BodyKind::Text
        }
    }

    /// The Content-Type to send when `sms.request_headers` names none, guessed from the body's shape.
    fn guess(body: &str) -> (BodyKind, &'static str) {
        let t = body.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            (BodyKind::Json, "application/json")
        } else if t.starts_with('<') {
            (BodyKind::Xml, "application/xml; charset=utf-8")
        } else if t.contains('=') {
            (BodyKind::Form, "application/x-www-form-urlencoded")
        } else {
            (BodyKind::Text, "text/plain; charset=utf-8")
        }
    }

    pub fn escape(self, v: &str) -> String {
        match self {
            BodyKind::Json => json_escape(v),
            BodyKind::Form => form_urlencoded::byte_serialize(v.as_bytes()).collect(),
            BodyKind::Xml => xml_escape(v),
            BodyKind::Text => v.to_string(),
        }
    }
}

/// A JSON string's contents, without the surrounding quotes (the template has them).
pub fn json_escape(v: &str) -> String {
    let quoted = serde_json::Value::String(v.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn xml_escape(v: &str) -> String {
    quick_xml::escape::escape(v).into_owned()
}

/// Header values cannot carry line breaks (they would start a new header).
fn header_escape(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

pub struct HttpSms {
    client: reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: Vec<(HeaderName, String)>,
    body: String,
    body_kind: BodyKind,
    /// Set when the settings name no Content-Type and there is a body.
    default_content_type: Option<&'static str>,
    timeout: Duration,
    plus_symbol: bool,
    from: String,
    message: String,
    success: Vec<StatusMatcher>,
    failure_pattern: Option<regex::Regex>,
    /// Credentials written into the settings (header values, URL password and query values), so
    /// that a gateway echoing them back never gets them shown.
    credentials: Vec<String>,
}

impl HttpSms {
    pub fn new(settings: &Settings) -> anyhow::Result<HttpSms> {
        let sms = &settings.sms;
        let timeout = Duration::from_millis(sms.timeout_ms);
        let method = sms.method.0.clone();
        let headers: Vec<(HeaderName, String)> = sms
            .request_headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let content_type = headers
            .iter()
            .find(|(n, _)| *n == CONTENT_TYPE)
            .map(|(_, v)| v.as_str());
        let (body_kind, default_content_type) = match content_type {
            Some(ct) => (BodyKind::from_content_type(ct), None),
            None if sms.request_body.is_empty() => (BodyKind::Text, None),
            None => {
                let (kind, ct) = BodyKind::guess(&sms.request_body);
                (kind, Some(ct))
            }
        };
        // Catch a URL template that can never work now rather than at the first caller.
        let sample = render(&sms.url, &sample_values(), url_escape);
        reqwest::Url::parse(&sample).map_err(|e| {
            anyhow::anyhow!("sms.url: does not make a valid URL ({e}); write it like https://gateway.example/send?to={{recipient}}")
        })?;
        let success = sms.success_statuses.clone();
        let failure_pattern = sms.failure_body_pattern.regex.clone();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would carry the body (the code) and headers (the API key) wherever the
            // gateway's host points; it is a failed delivery instead (see `exchange`).
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(NoLinkLocal))
            .user_agent(concat!("twofactor/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the SMS gateway HTTP client")?;
        Ok(HttpSms {
            client,
            method,
            url: sms.url.clone(),
            headers,
            body: sms.request_body.clone(),
            body_kind,
            default_content_type,
            timeout,
            plus_symbol: sms.plus_symbol_before_recipient_number,
            from: sms.from.clone(),
            message: sms.message.clone(),
            success: if success.is_empty() {
                vec![StatusMatcher::Class(2)]
            } else {
                success
            },
            failure_pattern,
            credentials: credentials(&sms.url, &sms.request_headers),
        })
    }

    /// The request the settings describe for `to` and `message`.
    fn request(
        &self,
        to: &PhoneNumber,
        message: &CodeMessage<'_>,
    ) -> Result<reqwest::Request, DeliveryError> {
        let minutes = message.minutes.to_string();
        let recipient = to.for_recipient(self.plus_symbol);
        let base = [
            ("code", message.code.expose_secret()),
            ("minutes", minutes.as_str()),
            ("recipient", recipient),
            ("from", self.from.as_str()),
        ];
        let text = render(&self.message, &base, str::to_string);
        let values = [
            base[0],
            base[1],
            base[2],
            base[3],
            ("message", text.as_str()),
        ];
        let url = render(&self.url, &values, url_escape);
        let url = reqwest::Url::parse(&url).map_err(|e| {
            DeliveryError::Transport(format!("sms.url does not render to a valid URL: {e}"))
        })?;
        let mut builder = self.client.request(self.method.clone(), url);
        for (name, template) in &self.headers {
            let value = render(template, &values, header_escape);
            let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                DeliveryError::Transport(format!(
                    "sms.request_headers: {name} renders to an invalid value"
                ))
            })?;
            builder = builder.header(name.clone(), value);
        }
        if let Some(ct) = self.default_content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        if !self.body.is_empty() {
            let kind = self.body_kind;
            builder = builder.body(render(&self.body, &values, |v| kind.escape(v)));
        }
        builder.build().map_err(|e| {
            DeliveryError::Transport(format!(
                "cannot build the gateway request: {}",
                e.without_url()
            ))
        })
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
        secrets: &[(&str, String)],
    ) -> Result<String, DeliveryError> {
        let host = request
            .url()
            .host_str()
            .map(|h| match request.url().port_or_known_default() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .unwrap_or_default();
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| self.explain(&host, e))?;
        let status = response.status();
        // Never followed (see the client), never a success whatever sms.success_statuses says; the
        // Location stays out of the message, since its query may carry what the gateway echoed.
        if status.is_redirection() {
            return Err(DeliveryError::Rejected(format!(
                "gateway {host} answered {status}, a redirect: redirects are not followed, so nothing was sent (point sms.url at the address that takes the message)"
            )));
        }
        let body = read_capped(response)
            .await
            .map_err(|e| self.explain(&host, e))?;
        let shown = match body.trim() {
            "" => "(empty answer)".to_string(),
            b => excerpt(b, secrets),
        };
        if !self.success.iter().any(|m| m.matches(status.as_u16())) {
            return Err(DeliveryError::Rejected(format!(
                "gateway {host} answered {status}, which sms.success_statuses does not count as sent: {shown}"
            )));
        }
        if let Some(re) = &self.failure_pattern
            && re.is_match(&body)
        {
            return Err(DeliveryError::Rejected(format!(
                "gateway {host} answered {status} but its answer matches sms.failure_body_pattern: {shown}"
            )));
        }
        Ok(format!("{status}: {shown}"))
    }

    fn explain(&self, host: &str, e: reqwest::Error) -> DeliveryError {
        let ms = self.timeout.as_millis().try_into().unwrap_or(u64::MAX);
        if e.is_timeout() {
            return DeliveryError::Timeout {
                ms,
                hint: format!("gateway {host} did not answer in time (sms.timeout_ms)"),
            };
        }
        // The URL can hold credentials and the message, so it stays out of every message.
        let e = e.without_url();
        let chain = error_chain(&e);
        if e.is_connect() {
            return DeliveryError::Transport(format!(
                "cannot connect to gateway {host} ({chain}): check sms.url and that the gateway accepts connections from here"
            ));
        }
        DeliveryError::Transport(format!("gateway {host}: {chain}"))
    }
}

#[async_trait]
impl SmsSender for HttpSms {
    async fn send(
        &self,
        to: &PhoneNumber,
        message: &CodeMessage<'_>,
    ) -> Result<String, DeliveryError> {
        let request = self.request(to, message)?;
        // Gateways echo the number and sometimes the text in their answers.
        let other_forms = to.other_forms();
        let mut secrets = vec![
            (message.code.expose_secret(), "******".to_string()),
            (to.e164(), to.masked()),
            (to.for_recipient(false), to.masked()),
        ];
        // Gateways also write the number back in national format (`07911 123456`).
        secrets.extend(other_forms.iter().map(|f| (f.as_str(), to.masked())));
        // Credentials come longest first, so a token inside a longer value is not half replaced.
        secrets.extend(
            self.credentials
                .iter()
                .map(|c| (c.as_str(), REDACTED.to_string())),
        );
        // reqwest's timeout covers the exchange; this one also bounds reading the answer and DNS.
        let result =
            match tokio::time::timeout(self.timeout, self.exchange(request, &secrets)).await {
                Ok(r) => r,
                Err(_) => Err(DeliveryError::Timeout {
                    ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                    hint: "the SMS gateway did not answer in time (sms.timeout_ms)".into(),
                }),
            };
        match result {
            Ok(answer) => Ok(redact(&answer, &secrets)),
            Err(DeliveryError::Transport(m)) => Err(DeliveryError::Transport(redact(&m, &secrets))),
            Err(DeliveryError::Rejected(m)) => Err(DeliveryError::Rejected(redact(&m, &secrets))),
            Err(other) => Err(other),
        }
    }
}

/// The body, up to `MAX_ANSWER_BYTES`, decoded lossily.
async fn read_capped(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The credentials the settings write out literally: each header value but those that describe the
/// message (and, for `Scheme token`, the token alone), the URL's password, and each query value that
/// is not only placeholders; 4 characters or more, so short flags like `type=1` stay readable.
fn credentials(url: &str, headers: &[impl AsRef<str>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: &str| {
        let v = v.trim();
        for v in [
            v.to_string(),
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned(),
        ] {
            if v.chars().count() >= 4 && !v.contains('{') && !out.contains(&v) {
                out.push(v);
            }
        }
    };
    for h in headers {
        if let Some((name, value)) = h.as_ref().split_once(':')
            && !PLAIN_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str())
        {
            for part in literal_parts(value) {
                add(part);
                if let Some((_, token)) = part.trim().split_once(' ') {
                    add(token);
                }
            }
        }
    }
    if let Ok(parsed) = reqwest::Url::parse(&render(url, &sample_values(), url_escape))
        && let Some(password) = parsed.password()
    {
        add(password);
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((_, value)) = pair.split_once('=') {
                literal_parts(value).into_iter().for_each(&mut add);
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.len()));
    out
}

/// The text of a template between its `{placeholders}`.
fn literal_parts(template: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        parts.push(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    parts.push(rest);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The system resolver without link-local answers (169.254.0.0/16, fe80::/10): a gateway name that
/// resolves to a cloud metadata service is refused however it got there. Literal addresses in
/// `sms.url` are refused by validation.
pub struct NoLinkLocal;

impl reqwest::dns::Resolve for NoLinkLocal {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| !is_link_local(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves only to link-local addresses (169.254.0.0/16, fe80::/10), which are refused"
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_context_escapes_its_own_way() {
        let v = "+44 & \"Bänk\"";
        assert_eq!(url_escape(v), "%2B44%20%26%20%22B%C3%A4nk%22");
        assert_eq!(BodyKind::Form.escape(v), "%2B44+%26+%22B%C3%A4nk%22");
        assert_eq!(BodyKind::Json.escape(v), "+44 & \\\"Bänk\\\"");
        assert_eq!(BodyKind::Xml.escape(v), "+44 &amp; &quot;Bänk&quot;");
        assert_eq!(header_escape("a\r\nX-Evil: 1"), "aX-Evil: 1");
    }

    #[test]
    fn credentials_are_what_the_settings_write_literally() {
        let found = credentials(
            "https://acct:p%40ss@gw.example/send?key=SECRETKEY&to={recipient}&type=1",
            &[
                "Authorization: Bearer tok-123456".to_string(),
                "X-Api-Key: k-{from}-abcdef".to_string(),
                "Content-Type: application/json".to_string(),
                "X-To: {recipient}".to_string(),
            ],
        );
        for c in [
            "Bearer tok-123456",
            "tok-123456",
            "k-",
            "-abcdef",
            "p%40ss",
            "p@ss",
            "SECRETKEY",
        ] {
            assert_eq!(
                found.contains(&c.to_string()),
                c.len() >= 4,
                "{c}: {found:?}"
            );
        }
        assert!(
            !found.iter().any(|c| c.contains("json") || c == "1"),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_link_local_answers() {
        use reqwest::dns::Resolve;
        let metadata = NoLinkLocal
            .resolve("169.254.169.254".parse().expect("a name"))
            .await;
        let local = NoLinkLocal
            .resolve("127.0.0.1".parse().expect("a name"))
            .await
            .map(|addrs| addrs.map(|a| a.ip().to_string()).collect::<Vec<_>>());
        let err = metadata.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("link-local"), "{err}");
        assert_eq!(local.ok(), Some(vec!["127.0.0.1".to_string()]));
    }

    #[test]
    fn content_type_decides_the_body_escaping() {
        let cases = [
            ("application/json; charset=utf-8", BodyKind::Json),
            ("application/vnd.api+json", BodyKind::Json),
            ("application/x-www-form-urlencoded", BodyKind::Form),
            ("text/xml", BodyKind::Xml),
            ("text/plain", BodyKind::Text),
        ];
        for (ct, kind) in cases {
            assert_eq!(BodyKind::from_content_type(ct), kind, "{ct}");
        }
        assert_eq!(BodyKind::guess("{\"a\":1}").0, BodyKind::Json);
        assert_eq!(BodyKind::guess("to={recipient}").0, BodyKind::Form);
        assert_eq!(BodyKind::guess("hello").0, BodyKind::Text);
    }
}
