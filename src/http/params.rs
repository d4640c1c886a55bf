//! Callflow parameters from the query string and the body (form, XML or JSON), read once at the edge.
//! The body wins over the query; names match exactly first, then case-insensitively. A name given
//! twice in one place, an oversized value or body, or an unknown content type is a 4xx.
//! `format` (`json` or `xml`) picks the answer's shape; other unknown names are ignored.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use futures_util::StreamExt;

use super::answer::Format;
use crate::config::Settings;
use crate::domain::{CallId, CallerNumber, CustomerId, Method, truncate};
use crate::http::error::{ApiError, ErrorKind};
use crate::xml::{self, Endpoint};

/// More parameters than any callflow sends is an attack or a mistake.
const MAX_PARAMS: usize = 64;

pub struct Params {
    body: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

pub struct Ctx<'a> {
    pub endpoint: Endpoint,
    pub settings: &'a Settings,
    /// The answer's shape: from the headers at first, then from the query's and the body's `format`
    /// as `extract` reads them.
    pub format: Format,
}

impl<'a> Ctx<'a> {
    pub fn new(endpoint: Endpoint, settings: &'a Settings, req: &HttpRequest) -> Ctx<'a> {
        Ctx {
            endpoint,
            settings,
            // From the headers only: `extract` reads `format` from the query it parses anyway.
            format: Format::from_accept(req.headers()),
        }
    }

    pub fn err(&self, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError::new(self.endpoint, kind, &self.settings.statuses.error, message)
            .in_format(self.format)
    }
}

fn find<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .or_else(|| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v.as_str())
}

impl Params {
    /// The value of `name`, body first.
    pub fn get(&self, name: &str) -> Option<&str> {
        find(&self.body, name).or_else(|| find(&self.query, name))
    }

    /// The first of `names` that is present and not blank.
    fn first(&self, names: &[String]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.get(n).filter(|v| !v.trim().is_empty()))
    }

    pub fn customer_id(&self, ctx: &Ctx<'_>) -> Result<CustomerId, ApiError> {
        let names = &ctx.settings.gia.customer_id_params;
        let raw = self.first(names).ok_or_else(|| {
            ctx.err(
                ErrorKind::BadRequest,
                format!("missing customer id: send one of {}", names.join(", ")),
            )
        })?;
        CustomerId::parse(raw).map_err(|e| ctx.err(ErrorKind::BadRequest, e))
    }

    pub fn call_id(&self, ctx: &Ctx<'_>) -> Result<Option<CallId>, ApiError> {
        self.first(&ctx.settings.gia.call_id_params)
            .map(|raw| CallId::parse(raw).map_err(|e| ctx.err(ErrorKind::BadRequest, e)))
            .transpose()
    }

    /// Who the request is about: customer, call id and caller number.
    pub fn call(&self, ctx: &Ctx<'_>) -> Result<crate::codes::Call, ApiError> {
        Ok(crate::codes::Call {
            customer: self.customer_id(ctx)?,
            id: self.call_id(ctx)?,
            number: self.caller_number(ctx),
        })
    }

    /// The caller's line when a caller-number parameter is passed: the first that holds a number,
    /// else (present but blank, "anonymous", not a number) the shared withheld line. `None` only
    /// when the flow passes no such parameter at all.
    pub fn caller_number(&self, ctx: &Ctx<'_>) -> Option<CallerNumber> {
        let names = &ctx.settings.gia.caller_number_params;
        let mut present = names.iter().filter_map(|n| self.get(n)).peekable();
        present.peek()?;
        Some(
            present
                .find_map(CallerNumber::parse)
                .unwrap_or_else(CallerNumber::withheld),
        )
    }

    pub fn method(&self, ctx: &Ctx<'_>) -> Result<Option<Method>, ApiError> {
        self.get("TwoFactorAuthSelectedMethod")
            .filter(|v| !v.trim().is_empty())
            .map(|raw| Method::parse(raw).map_err(|e| ctx.err(ErrorKind::BadRequest, e)))
            .transpose()
    }
}

/// Reads the query and the body into [`Params`], and settles the answer's format.
pub async fn extract(
    ctx: &mut Ctx<'_>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Params, ApiError> {
    // The query first, so a body refused below is already answered in the query's format.
    let query = form_pairs(req.query_string()).map_err(|e| ctx.err(ErrorKind::BadRequest, e))?;
    let query = pairs_checked(ctx, query, "query string")?;
    if let Some(format) = find(&query, "format").and_then(|v| Format::from_param(v).ok()) {
        ctx.format = format;
    }
    let body = read_body(req, payload, ctx.settings).await.map_err(|e| {
        let kind = match e {
            BodyError::TooLarge => ErrorKind::PayloadTooLarge,
            BodyError::TimedOut => ErrorKind::RequestTimeout,
            BodyError::Broken => ErrorKind::BadRequest,
        };
        ctx.err(kind, e.message(ctx.settings))
    })?;

    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ctx.err(ErrorKind::BadRequest, "request body is not valid UTF-8"))?;
        let pairs = match media_type(req).as_deref() {
            Some("application/x-www-form-urlencoded") => {
                form_pairs(text).map_err(|e| ctx.err(ErrorKind::BadRequest, e))?
            }
            Some("application/xml" | "text/xml") => {
                xml::parse_params(text).map_err(|e| ctx.err(ErrorKind::BadRequest, e))?
            }
            Some("application/json") => {
                json_pairs(text).map_err(|e| ctx.err(ErrorKind::BadRequest, e))?
            }
            Some(other) => {
                return Err(ctx.err(
                    ErrorKind::UnsupportedMediaType,
                    format!(
                        "content type {} is not accepted: use application/x-www-form-urlencoded, application/xml, text/xml or application/json",
                        truncate(other, 64)
                    ),
                ));
            }
            None => {
                return Err(ctx.err(
                    ErrorKind::UnsupportedMediaType,
                    "request has a body but no Content-Type header",
                ));
            }
        };
        pairs_checked(ctx, pairs, "body")?
    };
    let params = Params { body, query };
    if let Some(raw) = params.get("format") {
        ctx.format = Format::from_param(raw).map_err(|e| ctx.err(ErrorKind::BadRequest, e))?;
    }
    Ok(params)
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyError {
    /// Over `server.max_body_bytes`, announced or as it came.
    TooLarge,
    /// Not in within `server.body_timeout_ms`.
    TimedOut,
    Broken,
}

impl BodyError {
    pub(crate) fn message(self, settings: &Settings) -> String {
        match self {
            BodyError::TooLarge => format!(
                "request body is larger than {} bytes",
                settings.server.max_body_bytes
            ),
            BodyError::TimedOut => {
                super::body_deadline::timeout_message(settings.server.body_timeout_ms)
            }
            BodyError::Broken => "request body could not be read".into(),
        }
    }
}

/// The whole body, up to `server.max_body_bytes`; an announced `Content-Length` over it is refused
/// before anything is read.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    settings: &Settings,
) -> Result<web::BytesMut, BodyError> {
    let limit = settings.server.max_body_bytes;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if super::body_deadline::is_timeout(&e) {
                BodyError::TimedOut
            } else {
                BodyError::Broken
            }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn media_type(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        raw.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// One form-encoded name or value: `+` is a space, `%XX` a byte; `None` when the bytes are not UTF-8.
pub(crate) fn form_decode(part: &str) -> Option<String> {
    // Most parts (ids, digits) have nothing to decode: one copy instead of two.
    if !part.contains(['+', '%']) {
        return Some(part.to_owned());
    }
    percent_encoding::percent_decode_str(&part.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .ok()
}

/// `a=1&b=x+y%21` → pairs. A percent-escape that decodes to invalid UTF-8 is refused rather than
/// turned into U+FFFD, as an invalid UTF-8 body is.
pub(crate) fn form_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |part: &str| -> Result<String, String> {
        form_decode(part)
            .ok_or_else(|| format!("parameter {} is not valid UTF-8", truncate(part, 64)))
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A JSON body as it was written: `serde_json::Value` keeps only the last of a repeated key, which
/// would let `{"CustomerId": "a", "CustomerId": "b"}` slip past the repeat check.
enum JsonBody {
    Object(Vec<(String, serde_json::Value)>),
    Other,
}

impl<'de> serde::Deserialize<'de> for JsonBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonBody, A::Error> {
                let mut pairs = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    pairs.push(entry);
                }
                Ok(JsonBody::Object(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<JsonBody, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(JsonBody::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
            fn visit_unit<E>(self) -> Result<JsonBody, E> {
                Ok(JsonBody::Other)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn json_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let body: JsonBody =
        serde_json::from_str(text).map_err(|e| format!("JSON body is not valid: {e}"))?;
    let JsonBody::Object(map) = body else {
        return Err("JSON body must be an object of parameters".into());
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => String::new(),
                _ => {
                    return Err(format!(
                        "JSON parameter {} must be a string or a number",
                        truncate(&k, 64)
                    ));
                }
            };
            Ok((k, v))
        })
        .collect()
}

/// Refuses repeats (parameter pollution), too many parameters and oversized values.
fn pairs_checked(
    ctx: &Ctx<'_>,
    pairs: Vec<(String, String)>,
    place: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    if pairs.len() > MAX_PARAMS {
        return Err(ctx.err(
            ErrorKind::BadRequest,
            format!("{place} has more than {MAX_PARAMS} parameters"),
        ));
    }
    let max = ctx.settings.server.max_param_bytes;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if k.len() > 128 || v.len() > max {
            return Err(ctx.err(
                ErrorKind::BadRequest,
                format!(
                    "parameter {} in the {place} is longer than {max} bytes",
                    truncate(k, 64)
                ),
            ));
        }
        if pairs[..i].iter().any(|(p, _)| p.eq_ignore_ascii_case(k)) {
            return Err(ctx.err(
                ErrorKind::BadRequest,
                format!(
                    "parameter {} is given more than once in the {place}",
                    truncate(k, 64)
                ),
            ));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::form_pairs;

    #[test]
    fn form_pairs_decode_and_refuse_invalid_utf8() {
        assert_eq!(
            form_pairs("CustomerId=10%2001&authCode_nbest1=one+two&empty&x=").unwrap_or_default(),
            vec![
                ("CustomerId".to_string(), "10 01".to_string()),
                ("authCode_nbest1".to_string(), "one two".to_string()),
                ("empty".to_string(), String::new()),
                ("x".to_string(), String::new()),
            ]
        );
        assert!(form_pairs("CustomerId=%FF%FE").is_err());
        assert!(form_pairs("%C3%28=1").is_err());
    }
}
