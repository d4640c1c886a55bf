//! Pieces every outbound HTTP call shares, whoever makes it (directory sources, their OAuth token
//! endpoint, the SMS gateway, the settings that check where those go): the client, capped reads,
//! error causes, header lines. It imports nothing from config, delivery, directory or store, so
//! each of them can use it without importing the others.

use std::time::Duration;

/// `"Name: Value"` → name and value template.
pub fn parse_header(h: &str) -> Result<(reqwest::header::HeaderName, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("{h:?} is not \"Name: Value\""))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    Ok((name, value.trim().to_string()))
}

/// A reqwest error's cause chain, for logs (reqwest's own message names only the URL).
pub fn cause(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An HTTP client for a source: its own timeout, no redirects to follow (a redirect would carry
/// the credentials elsewhere).
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// An answer's body, read piece by piece and given up once it passes `max` bytes, so a faulty or
/// hostile upstream cannot fill memory (a length header is not trusted: chunked answers have none).
pub(crate) async fn read_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("answer over {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("answer cut short: {}", cause(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("answer over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
