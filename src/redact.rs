//! Redaction for messages: what of a configured secret a log line or an error may show. A leaf that
//! names nothing of the service, so the state, the directory and start-up share one rule.

/// `redis://user:pass@host` → `redis://***@host`, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}
