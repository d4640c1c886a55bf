//! The one place a callflow answer is rendered: XML (GIA's shapes, the default) or JSON (Genesys
//! Cloud Data Actions), chosen per request by `Accept: application/json` or a `format` parameter.
//! Handlers, the caller guard and [`crate::http::error::ApiError`] all come through here, so both shapes
//! always carry the same status, message and HTTP code.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderMap};
use serde::Serialize;

use crate::codes::{Methods, Outcome};
use crate::config::Statuses;
use crate::xml::{self, Endpoint};

/// The content type of XML answers.
pub const XML_CONTENT_TYPE: &str = "application/xml; charset=utf-8";
/// The content type of JSON answers (RFC 8259: UTF-8, no charset parameter).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The shape a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Xml,
    Json,
}

impl Format {
    /// What the headers and the query string ask for. A `format` in the query wins over `Accept`;
    /// a `format` in the body is applied later by [`Format::from_param`], once the body is read.
    /// A bad `format` value is left to the parameter check, which refuses it in this shape.
    pub fn of_request(headers: &HeaderMap, query: &str) -> Format {
        let from_query = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("format"))
            .and_then(|(_, v)| Format::from_param(&v).ok());
        from_query.unwrap_or_else(|| Format::from_accept(headers))
    }

    /// `json` or `xml`, any case.
    pub fn from_param(value: &str) -> Result<Format, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "xml" => Ok(Format::Xml),
            _ => Err(format!(
                "format {} is not known: use json or xml",
                crate::domain::truncate(value, 32)
            )),
        }
    }

    /// JSON when `Accept` prefers `application/json` (or a `+json` type) to every XML type; XML on
    /// a tie or without one, so `*/*` and browsers' lists keep getting GIA's XML.
    pub fn from_accept(headers: &HeaderMap) -> Format {
        let (mut json_q, mut xml_q) = (0.0f32, 0.0f32);
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for range in value.split(',') {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if media == "application/json" || media.ends_with("+json") {
                    json_q = json_q.max(q);
                } else if media == "application/xml" || media == "text/xml" {
                    xml_q = xml_q.max(q);
                }
            }
        }
        if json_q > 0.0 && json_q > xml_q {
            Format::Json
        } else {
            Format::Xml
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => XML_CONTENT_TYPE,
            Format::Json => JSON_CONTENT_TYPE,
        }
    }
}

/// A JSON answer. Send and verify answers are `{"status"}` (plus `message` when a limit refused);
/// every 200 check-verified-contact-methods answer also carries `methods` and the flat fields, so
/// one Data Action output contract fits success, `not found` and `error` alike.
#[derive(Serialize)]
struct JsonBody<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(flatten)]
    methods: Option<JsonMethods<'a>>,
}

#[derive(Serialize, Default)]
struct JsonMethods<'a> {
    methods: Vec<JsonMethod<'a>>,
    email: &'a str,
    sms: &'a str,
    authenticator: bool,
}

#[derive(Serialize)]
struct JsonMethod<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

fn json(body: &JsonBody<'_>) -> String {
    // Serialising strings and booleans cannot fail; fall back to a fixed error document anyway.
    serde_json::to_string(body).unwrap_or_else(|_| r#"{"status":"error"}"#.to_string())
}

/// The body of an answer with `status` and an optional `message`, in `format`.
pub fn body(format: Format, endpoint: Endpoint, status: &str, message: Option<&str>) -> String {
    match format {
        Format::Xml => match message {
            Some(m) => xml::error(endpoint, status, m),
            None => xml::status(endpoint, status),
        },
        Format::Json => json(&JsonBody {
            status,
            message,
            // A 200 check answer always lists methods; 4xx errors (`message` without a method
            // list) stay `{"status", "message"}`.
            methods: None,
        }),
    }
}

fn ok(format: Format, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(format.content_type())
        .body(body)
}

/// The 200 answer for an outcome: its configured status, and a message naming the limit when one
/// refused.
pub fn outcome(
    format: Format,
    statuses: &Statuses,
    endpoint: Endpoint,
    outcome: Outcome,
) -> HttpResponse {
    let status = status_of(statuses, outcome);
    if format == Format::Json && endpoint == Endpoint::CheckMethods {
        return ok(
            format,
            json(&JsonBody {
                status,
                message: outcome.message(),
                methods: Some(JsonMethods::default()),
            }),
        );
    }
    ok(format, body(format, endpoint, status, outcome.message()))
}

/// The check-verified-contact-methods success answer; `plus_symbol` decides the SMS value's `+`.
pub fn methods(format: Format, status: &str, methods: &Methods, plus_symbol: bool) -> HttpResponse {
    let body = match format {
        Format::Xml => xml::methods(status, methods, plus_symbol),
        Format::Json => {
            let email = methods.email.as_ref().map(|e| e.as_str());
            let sms = methods.sms.as_ref().map(|p| p.for_recipient(plus_symbol));
            // The list keeps the XML's order: email, authenticator, SMS.
            let mut list = Vec::with_capacity(3);
            if let Some(e) = email {
                list.push(JsonMethod {
                    name: "email",
                    value: Some(e),
                });
            }
            if methods.authenticator {
                list.push(JsonMethod {
                    name: "authenticator",
                    value: None,
                });
            }
            if let Some(s) = sms {
                list.push(JsonMethod {
                    name: "SMS",
                    value: Some(s),
                });
            }
            json(&JsonBody {
                status,
                message: None,
                methods: Some(JsonMethods {
                    methods: list,
                    email: email.unwrap_or(""),
                    sms: sms.unwrap_or(""),
                    authenticator: methods.authenticator,
                }),
            })
        }
    };
    ok(format, body)
}

/// The configured status string for an outcome.
pub fn status_of(s: &Statuses, outcome: Outcome) -> &str {
    match outcome {
        Outcome::Success => &s.success,
        Outcome::NotFound => &s.not_found,
        Outcome::IncorrectCode => &s.incorrect_code,
        Outcome::CodeExpired => &s.code_expired,
        Outcome::Locked(_) => &s.locked,
        Outcome::SendLimited(_) => &s.send_limited,
        Outcome::Error => &s.error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn accept(v: &str) -> Format {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        Format::of_request(&h, "")
    }

    #[test]
    fn accept_picks_json_only_when_preferred() {
        assert_eq!(accept("application/json"), Format::Json);
        assert_eq!(accept("application/json; charset=utf-8"), Format::Json);
        assert_eq!(accept("application/problem+json"), Format::Json);
        assert_eq!(accept("*/*"), Format::Xml);
        assert_eq!(
            accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Xml
        );
        assert_eq!(accept("application/xml, application/json"), Format::Xml);
        assert_eq!(
            accept("application/xml;q=0.5, application/json"),
            Format::Json
        );
        assert_eq!(accept("application/json;q=0"), Format::Xml);
        assert_eq!(Format::of_request(&HeaderMap::new(), ""), Format::Xml);
    }

    #[test]
    fn query_format_wins_over_accept() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(Format::of_request(&h, "FORMAT=xml"), Format::Xml);
        assert_eq!(
            Format::of_request(&HeaderMap::new(), "a=1&format=JSON"),
            Format::Json
        );
        // A bad value is refused by the parameter check; until then Accept decides.
        assert_eq!(Format::of_request(&h, "format=yaml"), Format::Json);
        assert!(Format::from_param("yaml").is_err());
    }
}
