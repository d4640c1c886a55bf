//! What an admin sees of the live settings: `view` (`GET /admin/v1/settings`), `current`, the
//! secrets shown as `set`/`unset` (`secrets`) and credentials inside URLs and headers shown as
//! `PLACEHOLDER`s.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::seal::{Stored, read};
use super::{Live, refresh};
use crate::config::Settings;
use crate::config::live_keys::Secret;

/// What a GET shows in place of a secret inside a value (a URL's password, a header's value).
pub const PLACEHOLDER: &str = "(secret)";

/// Headers whose values are shown: they describe the message, never authenticate it.
const PLAIN_HEADERS: [&str; 4] = ["content-type", "accept", "accept-language", "user-agent"];

/// Whether a value is nothing but template placeholders (`{recipient}`): no credential in it.
fn only_placeholders(v: &str) -> bool {
    let mut rest = v;
    while let Some(start) = rest.find('{') {
        if !rest[..start].is_empty() {
            return false;
        }
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The URL with its user information and every query value that is not a template placeholder
/// replaced by [`PLACEHOLDER`]: any of them may be a credential.
pub(super) fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_end = head
        .find("://")
        .map(|s| s + 3 + head[s + 3..].find('/').unwrap_or(head.len() - s - 3));
    let head = match (head.find("://"), authority_end) {
        (Some(s), Some(end)) => match head[s + 3..end].rfind('@') {
            Some(at) => {
                let userinfo = &head[s + 3..s + 3 + at];
                let shown = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:{PLACEHOLDER}"),
                    None => PLACEHOLDER.to_string(),
                };
                format!("{}{shown}{}", &head[..s + 3], &head[s + 3 + at..])
            }
            None => head.to_string(),
        },
        _ => head.to_string(),
    };
    match query {
        None => head,
        Some(q) => {
            let parts: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !only_placeholders(v) => format!("{k}={PLACEHOLDER}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{head}?{}", parts.join("&"))
        }
    }
}

/// The header with its value replaced by [`PLACEHOLDER`] unless it only describes the message.
pub(super) fn redact_header(h: &str) -> String {
    match h.split_once(':') {
        Some((name, v))
            if !PLAIN_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str())
                && !only_placeholders(v.trim()) =>
        {
            format!("{name}: {PLACEHOLDER}")
        }
        _ => h.to_string(),
    }
}

/// The host (and port) a URL names, for telling whether a change sends secrets somewhere else.
pub(super) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Each secret of the live settings and whether it is set (headers one by one, by name).
pub fn secrets(s: &Settings) -> BTreeMap<String, &'static str> {
    let state = |b: bool| if b { "set" } else { "unset" };
    let mut out = BTreeMap::new();
    for secret in Secret::ALL {
        let set = match secret {
            Secret::SmtpPassword => !s.email.smtp.password.expose_secret().is_empty(),
            Secret::SmsUrl => redact_url(&s.sms.url) != s.sms.url,
            Secret::SmsBody => !s.sms.request_body.is_empty(),
            Secret::SmsHeaders => {
                for h in &s.sms.request_headers {
                    if redact_header(h) != h.as_ref()
                        && let Some((name, _)) = h.split_once(':')
                    {
                        out.insert(format!("{}.{}", secret.key(), name.trim()), "set");
                    }
                }
                continue;
            }
        };
        out.insert(secret.key().to_string(), state(set));
    }
    out
}

/// The live part of `s` as `GET /admin/v1/settings` shows it: secrets never, only whether set.
pub fn view(s: &Settings) -> Value {
    let mut sms = serde_json::to_value(&s.sms).unwrap_or_default();
    // The body template may carry the gateway's credentials: write-only, like a password.
    if let Some(o) = sms.as_object_mut() {
        o.remove("request_body");
    }
    sms["url"] = json!(redact_url(&s.sms.url));
    sms["request_headers"] = json!(
        s.sms
            .request_headers
            .iter()
            .map(|h| redact_header(h))
            .collect::<Vec<_>>()
    );
    let mut email = serde_json::to_value(&s.email).unwrap_or_default();
    if let Some(smtp) = email.get_mut("smtp").and_then(Value::as_object_mut) {
        smtp.remove("ca_file");
    }
    json!({
        "email": email,
        "sms": sms,
        "codes": s.codes,
        "lockout": s.lockout,
        "statuses": s.statuses,
        "totp": { "skew_steps": s.totp.skew_steps },
        "secrets": secrets(s),
    })
}

/// The settings in effect as a GET shows them, and the stored overlay's version (the ETag), read
/// fresh so an admin edits the latest version. When that version could not be applied here, the
/// settings shown are the last good ones, and a patch on top of it meets the same validation, so
/// the admin can mend the overlay through the API.
/// While the stored overlay is not in effect here, `problem` says why (and how to mend it).
pub async fn current(live: &Live) -> anyhow::Result<(u64, Value)> {
    refresh(live).await?;
    let (_, stored) = read(live).await?;
    let version = match stored {
        Stored::Open { overlay, .. } => overlay.version,
        Stored::Unreadable { version, .. } => version,
    };
    let snapshot = live.load();
    let mut shown = view(&snapshot.settings);
    if let Some(problem) = live.problem() {
        shown["problem"] = json!(problem);
    }
    Ok((version, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_headers_are_shown_as_placeholders() {
        assert_eq!(
            redact_url("https://AC01:tok3n@api.example/send?to={recipient}&api_key=abc&pwd=x"),
            "https://AC01:(secret)@api.example/send?to={recipient}&api_key=(secret)&pwd=(secret)"
        );
        assert_eq!(
            redact_url("https://APITOKEN@gw.example/a@b?x={code}"),
            "https://(secret)@gw.example/a@b?x={code}"
        );
        assert_eq!(
            host_of("https://u:p@gw.example:8443/send?x=1"),
            "gw.example:8443"
        );
        assert_eq!(redact_header("Cookie: sid=1"), "Cookie: (secret)");
        assert_eq!(redact_header("X-To: {recipient}"), "X-To: {recipient}");
        assert_eq!(
            redact_url("https://gw.example/send"),
            "https://gw.example/send"
        );
        assert_eq!(
            redact_header("Authorization: Bearer 7f3c"),
            "Authorization: (secret)"
        );
        assert_eq!(redact_header("X-Api-Key: k"), "X-Api-Key: (secret)");
        assert_eq!(
            redact_header("Content-Type: application/json"),
            "Content-Type: application/json"
        );
    }
}
