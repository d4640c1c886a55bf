//! `directory.source = "http"`: contacts looked up per call in any REST API that answers a customer
//! as JSON, mapped with JSON Pointers (RFC 6901). Genesys Cloud (`genesys_cloud.rs`) is this same
//! machinery, preset.
//!
//! A 404, or an answer where no pointer finds a value, is an unknown customer; any other failure
//! (a status, a timeout, an answer that is not JSON) is an error, logged with its cause and never
//! with contact data.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::oauth::ClientCredentials;
use super::{Contacts, Customer, Source, SourceError};
use crate::config::directory::{DirectoryAuth, DirectoryHttp};
use crate::domain::{CustomerId, Email, PhoneNumber};
use crate::outbound::{cause, client, read_capped};

/// RFC 3986 unreserved characters stay; everything else in an id is percent-encoded.
const ID_IN_URL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Larger answers are refused: a customer record is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How the source is authenticated.
pub enum Auth {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
    OAuth(Arc<ClientCredentials>),
}

/// Where the contacts are in an answer. Each list is tried in order; the first value found wins.
pub struct Mapping {
    pub email: Vec<String>,
    pub phone: Vec<String>,
    /// When set, the contact is offered only if the value there is `true` (or `"true"`).
    pub email_verified: Option<String>,
    pub phone_verified: Option<String>,
}

/// Which document of the answer is the customer.
pub enum Select {
    /// The answer itself.
    Whole,
    /// The one element of the array at `list` whose value at `key` equals the customer id (a
    /// search answers every keyword match; only an exact one is the customer).
    Search { list: String, key: String },
}

pub struct HttpSource {
    pub name: &'static str,
    pub client: reqwest::Client,
    pub method: reqwest::Method,
    /// `{customer_id}` is replaced, percent-encoded.
    pub url: String,
    /// Values are templates too; `{customer_id}` is replaced as it is, line breaks dropped.
    pub headers: Vec<(reqwest::header::HeaderName, String)>,
    pub timeout: Duration,
    pub auth: Auth,
    pub mapping: Mapping,
    pub select: Select,
    pub default_region: Option<phonenumber::country::Id>,
}

impl HttpSource {
    pub fn from_settings(
        h: &DirectoryHttp,
        default_region: Option<phonenumber::country::Id>,
    ) -> anyhow::Result<HttpSource> {
        let timeout = Duration::from_millis(h.timeout_ms);
        let client = client(timeout)?;
        let auth = match h.auth {
            DirectoryAuth::None => Auth::None,
            DirectoryAuth::Basic => Auth::Basic {
                username: h.username.clone(),
                password: h.password.clone(),
            },
            DirectoryAuth::Bearer => Auth::Bearer(h.token.clone()),
            DirectoryAuth::Oauth => Auth::OAuth(Arc::new(ClientCredentials::new(
                client.clone(),
                h.token_url.clone(),
                h.client_id.clone(),
                h.client_secret.clone(),
                h.scope.clone(),
            ))),
        };
        let nonempty = |p: &str| (!p.is_empty()).then(|| p.to_string());
        Ok(HttpSource {
            name: "http",
            client,
            method: h.method.0.clone(),
            url: h.url.clone(),
            headers: h
                .request_headers
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
            timeout,
            auth,
            mapping: Mapping {
                email: nonempty(&h.email_pointer).into_iter().collect(),
                phone: nonempty(&h.phone_pointer).into_iter().collect(),
                email_verified: nonempty(&h.email_verified_pointer),
                phone_verified: nonempty(&h.phone_verified_pointer),
            },
            select: Select::Whole,
            default_region,
        })
    }

    /// The OAuth token source, when the source uses one (`check-config --probe`).
    pub fn oauth(&self) -> Option<&ClientCredentials> {
        match &self.auth {
            Auth::OAuth(c) => Some(c),
            _ => None,
        }
    }

    fn fail(&self, cause: impl Into<String>) -> SourceError {
        SourceError {
            source_name: self.name,
            cause: cause.into(),
        }
    }

    /// One request; with OAuth, a 401 drops the token and the request is made once more with a
    /// fresh one (a token revoked or rotated early).
    async fn fetch(&self, id: &CustomerId) -> Result<(u16, Vec<u8>), SourceError> {
        let (status, body, used) = self.send(id).await?;
        if status == 401
            && let (Auth::OAuth(oauth), Some(used)) = (&self.auth, used)
        {
            oauth.refused(&used).await;
            let (status, body, _) = self.send(id).await?;
            return Ok((status, body));
        }
        Ok((status, body))
    }

    async fn send(
        &self,
        id: &CustomerId,
    ) -> Result<(u16, Vec<u8>, Option<SecretString>), SourceError> {
        let encoded = utf8_percent_encode(id.as_str(), ID_IN_URL).to_string();
        let url = self.url.replace("{customer_id}", &encoded);
        let mut req = self
            .client
            .request(self.method.clone(), url)
            .header("accept", "application/json");
        for (name, template) in &self.headers {
            let value: String = template
                .replace("{customer_id}", id.as_str())
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            req = req.header(name.clone(), value);
        }
        let mut used = None;
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
            Auth::Bearer(token) => req.bearer_auth(token.expose_secret()),
            Auth::OAuth(oauth) => {
                let token = oauth.token().await.map_err(|e| self.fail(e))?;
                let req = req.bearer_auth(token.expose_secret());
                used = Some(token);
                req
            }
        };
        let res = req
            .send()
            .await
            .map_err(|e| self.fail(format!("lookup: {}", cause(&e))))?;
        let status = res.status().as_u16();
        let body = read_capped(res, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| self.fail(e))?;
        Ok((status, body, used))
    }

    async fn lookup_inner(&self, id: &CustomerId) -> Result<Option<Contacts>, SourceError> {
        let (status, body) = self.fetch(id).await?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            // The body may hold personal data: only the status is told.
            return Err(self.fail(format!("answered HTTP {status}")));
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|_| {
            self.fail(format!(
                "answered HTTP {status} with a body that is not JSON"
            ))
        })?;
        let doc = match &self.select {
            Select::Whole => &doc,
            Select::Search { list, key } => {
                let entries = doc
                    .pointer(list)
                    .and_then(Value::as_array)
                    .ok_or_else(|| self.fail(format!("the answer has no list at {list}")))?;
                let mut found = entries
                    .iter()
                    .filter(|e| e.pointer(key).is_some_and(|v| same_id(v, id)));
                match (found.next(), found.next()) {
                    (None, _) => return Ok(None),
                    (Some(one), None) => one,
                    (Some(_), Some(_)) => {
                        return Err(self.fail(format!(
                            "more than one contact has this id at {key}: fix the data, since \
                             any of them could be the caller"
                        )));
                    }
                }
            }
        };
        Ok(self.mapping.contacts(doc, id, self.default_region))
    }
}

fn same_id(v: &Value, id: &CustomerId) -> bool {
    match v {
        Value::String(s) => s.trim() == id.as_str(),
        Value::Number(n) => n.to_string() == id.as_str(),
        _ => false,
    }
}

impl Mapping {
    /// The contacts in `doc`; `None` when no pointer finds anything (not a customer record).
    /// A value that is not a valid address or number, or is not verified, is not offered.
    pub fn contacts(
        &self,
        doc: &Value,
        id: &CustomerId,
        region: Option<phonenumber::country::Id>,
    ) -> Option<Contacts> {
        let email_raw = first(doc, &self.email);
        let phone_raw = first(doc, &self.phone);
        if email_raw.is_none() && phone_raw.is_none() {
            return None;
        }
        let verified = |p: &Option<String>| {
            p.as_deref().is_none_or(|p| {
                matches!(doc.pointer(p), Some(Value::Bool(true)))
                    || doc
                        .pointer(p)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("true"))
            })
        };
        let email = email_raw
            .filter(|_| verified(&self.email_verified))
            .and_then(|raw| match Email::parse(&raw) {
                Ok(e) => Some(e),
                Err(why) => {
                    tracing::warn!(customer = %id, why, "directory email not offered");
                    None
                }
            });
        let phone = phone_raw
            .filter(|_| verified(&self.phone_verified))
            .and_then(|raw| match PhoneNumber::parse_in(&raw, region) {
                Ok(p) => Some(p),
                Err(why) => {
                    tracing::warn!(customer = %id, why, "directory phone number not offered");
                    None
                }
            });
        Some(Contacts { email, phone })
    }
}

/// The first non-empty string (or number) at any of `pointers`.
fn first(doc: &Value, pointers: &[String]) -> Option<String> {
    pointers.iter().find_map(|p| match doc.pointer(p)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[async_trait::async_trait]
impl Source for HttpSource {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn lookup(
        &self,
        id: &CustomerId,
        _stored: Option<&Customer>,
    ) -> Result<Option<Contacts>, SourceError> {
        // In a URL path "." and ".." are dot segments (even percent-encoded): they would walk the
        // path to another resource with the service's credentials. No source has such a customer.
        if matches!(id.as_str(), "." | "..") {
            return Ok(None);
        }
        // One budget for everything a lookup does: the token, the request, a retry and the body.
        match tokio::time::timeout(self.timeout, self.lookup_inner(id)).await {
            Ok(answer) => answer,
            Err(_) => Err(self.fail(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            email: vec!["/workEmail".into(), "/personalEmail".into()],
            phone: vec!["/cellPhone/e164".into()],
            email_verified: None,
            phone_verified: Some("/cellPhone/verified".into()),
        }
    }

    #[test]
    fn pointers_map_an_answer_to_contacts() {
        let id = CustomerId::parse("1").expect("an id");
        let m = mapping();
        let cases = [
            (
                serde_json::json!({"personalEmail": "a@example.com", "cellPhone": {"e164": "+447911123456", "verified": true}}),
                Some((Some("a@example.com"), Some("+447911123456"))),
                "second email pointer, verified phone",
            ),
            (
                serde_json::json!({"workEmail": "w@example.com", "cellPhone": {"e164": "+447911123456"}}),
                Some((Some("w@example.com"), None)),
                "phone without its verified flag is not offered",
            ),
            (
                serde_json::json!({"workEmail": "not an address"}),
                Some((None, None)),
                "an invalid address is not offered",
            ),
            (
                serde_json::json!({"name": "x"}),
                None,
                "nothing mapped: not a customer",
            ),
        ];
        for (doc, want, what) in cases {
            let got = m.contacts(&doc, &id, None).map(|c| {
                (
                    c.email.map(String::from),
                    c.phone.map(|p| p.e164().to_string()),
                )
            });
            let want = want.map(|(e, p)| (e.map(str::to_string), p.map(str::to_string)));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn ids_are_percent_encoded_in_urls() {
        let s = utf8_percent_encode("a b/c?d&e+f~g", ID_IN_URL).to_string();
        assert_eq!(s, "a%20b%2Fc%3Fd%26e%2Bf~g");
    }
}
