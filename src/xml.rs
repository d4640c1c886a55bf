//! XML in and out. Responses are serialised with quick-xml + serde into exactly the shapes of the GIA
//! reference (no declaration, no whitespace). Request bodies are read as a flat element whose
//! children are the parameters; DTDs, unknown entities and nesting are refused, so no entity
//! expansion or external entity can happen and a deep document costs nothing.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Serialize;

use crate::codes::Methods;

/// The three callflow endpoints, each with its response root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    CheckMethods,
    SendCode,
    VerifyCode,
}

impl Endpoint {
    /// The endpoint a request path names, if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.trim_end_matches('/').rsplit('/').next()? {
            "check-verified-contact-methods" => Some(Endpoint::CheckMethods),
            "send-authentication-code" => Some(Endpoint::SendCode),
            "code-authentication" => Some(Endpoint::VerifyCode),
            _ => None,
        }
    }

    pub fn root(self) -> &'static str {
        match self {
            Endpoint::CheckMethods => "checkVerifiedContactMethods",
            Endpoint::SendCode => "sendAuthenticationCode",
            Endpoint::VerifyCode => "codeAuthentication",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<MethodList<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct MethodList<'a> {
    method: Vec<MethodXml<'a>>,
}

#[derive(Serialize)]
struct MethodXml<'a> {
    #[serde(rename = "@name")]
    name: &'a str,
    #[serde(rename = "@value", skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

fn to_xml(root: &str, body: &Body<'_>) -> String {
    // Serialising plain strings into a fresh String cannot fail; fall back to a fixed error document.
    quick_xml::se::to_string_with_root(root, body)
        .unwrap_or_else(|_| format!("<{root}><status>error</status></{root}>"))
}

/// `<root><status>…</status></root>`.
pub fn status(endpoint: Endpoint, status: &str) -> String {
    flat(endpoint.root(), status, None)
}

/// `<root><status>…</status><message>…</message></root>`, for malformed requests.
pub fn error(endpoint: Endpoint, status: &str, message: &str) -> String {
    flat(endpoint.root(), status, Some(message))
}

/// The status (and message) documents, written the way the serializer writes them (a property test
/// holds the two together) without going through serde: these are nearly every callflow answer,
/// and the serializer took about a twentieth of the service's own CPU for a code check.
fn flat(root: &str, status: &str, message: Option<&str>) -> String {
    let mut out = String::with_capacity(2 * root.len() + status.len() + 64);
    out.push('<');
    out.push_str(root);
    out.push('>');
    for (name, text) in [("status", Some(status)), ("message", message)] {
        let Some(text) = text else { continue };
        out.push('<');
        out.push_str(name);
        if text.is_empty() {
            out.push_str("/>");
            continue;
        }
        out.push('>');
        out.push_str(&quick_xml::escape::partial_escape(text));
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

/// The check-verified-contact-methods success document; `plus_symbol` decides the SMS value's `+`.
pub fn methods(status: &str, methods: &Methods, plus_symbol: bool) -> String {
    let mut list = Vec::with_capacity(3);
    if let Some(e) = &methods.email {
        list.push(MethodXml {
            name: "email",
            value: Some(e.as_str()),
        });
    }
    if methods.authenticator {
        list.push(MethodXml {
            name: "authenticator",
            value: None,
        });
    }
    if let Some(p) = &methods.sms {
        list.push(MethodXml {
            name: "SMS",
            value: Some(p.for_recipient(plus_symbol)),
        });
    }
    to_xml(
        Endpoint::CheckMethods.root(),
        &Body {
            status,
            methods: Some(MethodList { method: list }),
            message: None,
        },
    )
}

/// Reads `<anyRoot><Name>value</Name>…</anyRoot>` into (name, value) pairs.
pub fn parse_params(body: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = Reader::from_str(body);
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<(String, String)> = None;
    let mut params = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "XML body is not well-formed at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err("XML body may not contain a DTD (<!DOCTYPE …>)".into()),
            Event::Start(e) => {
                depth += 1;
                match depth {
                    1 if seen_root => return Err("XML body has more than one root element".into()),
                    1 => seen_root = true,
                    2 => current = Some((e.name().as_ref().to_string(), String::new())),
                    _ => {
                        return Err("XML body is nested too deeply: parameters are the root element's direct children".into());
                    }
                }
            }
            Event::Empty(e) => match depth {
                0 if seen_root => return Err("XML body has more than one root element".into()),
                0 => seen_root = true,
                1 => params.push((e.name().as_ref().to_string(), String::new())),
                _ => return Err("XML body is nested too deeply: parameters are the root element's direct children".into()),
            },
            Event::Text(t) => match (&mut current, depth) {
                (Some((_, v)), 2) => v.push_str(&t),
                _ if t.trim().is_empty() => {}
                _ => return Err("XML body has text outside the parameter elements".into()),
            },
            Event::CData(t) => match (&mut current, depth) {
                (Some((_, v)), 2) => v.push_str(&t),
                _ => return Err("XML body has text outside the parameter elements".into()),
            },
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*r {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            return Err(format!(
                                "XML body uses the entity &{};, which is not defined (entities are not expanded)",
                                crate::domain::truncate(other, 32)
                            ));
                        }
                    },
                    Err(_) => return Err("XML body has an invalid character reference".into()),
                };
                match (&mut current, depth) {
                    (Some((_, v)), 2) => v.push(ch),
                    _ => return Err("XML body has text outside the parameter elements".into()),
                }
            }
            Event::End(_) => {
                if depth == 2
                    && let Some((name, value)) = current.take()
                {
                    params.push((name, value.trim().to_string()));
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof if depth > 0 => return Err("XML body is not well-formed: an element is not closed".into()),
            Event::Eof => break,
        }
    }
    if !seen_root {
        return Err("XML body has no root element".into());
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_documents() {
        let p = parse_params(
            "<?xml version=\"1.0\"?><sendAuthenticationCode><CustomerId>1001</CustomerId>\
             <TwoFactorAuthSelectedMethod>SMS</TwoFactorAuthSelectedMethod><CallId/></sendAuthenticationCode>",
        )
        .expect("valid");
        assert_eq!(
            p,
            vec![
                ("CustomerId".into(), "1001".into()),
                ("TwoFactorAuthSelectedMethod".into(), "SMS".into()),
                ("CallId".into(), "".into())
            ]
        );
        let p = parse_params("<r><a>x &amp; y &#49;</a></r>").expect("refs");
        assert_eq!(p[0].1, "x & y 1");
    }

    proptest::proptest! {
        #[test]
        fn status_documents_are_what_the_serializer_writes(
            status in "\\PC*|[ &<>'\"\r\n\t]{0,3}",
            message in proptest::option::of("\\PC*|[ &<>'\"\r\n\t]{0,3}"),
        ) {
            let body = Body { status: &status, methods: None, message: message.as_deref() };
            for endpoint in [Endpoint::CheckMethods, Endpoint::SendCode, Endpoint::VerifyCode] {
                let written = match &message {
                    Some(m) => error(endpoint, &status, m),
                    None => self::status(endpoint, &status),
                };
                proptest::prop_assert_eq!(written, to_xml(endpoint.root(), &body));
            }
        }
    }

    #[test]
    fn refuses_hostile_documents() {
        for (doc, why) in [
            ("<!DOCTYPE r [<!ENTITY x \"y\">]><r><a>&x;</a></r>", "DTD"),
            ("<r><a>&x;</a></r>", "entity"),
            ("<r><a><b>1</b></a></r>", "nested"),
            ("<r><a>1</a>", "well-formed"),
            ("<r><a>1</b></r>", "well-formed"),
            ("", "no root"),
            ("<r/><s/>", "more than one root"),
        ] {
            let err = parse_params(doc).expect_err(doc);
            assert!(err.contains(why), "{doc:?} gave {err:?}");
        }
    }
}
