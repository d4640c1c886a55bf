//! Pieces every outbound call shares, whoever makes it (directory sources, their OAuth token
//! endpoint, the SMS gateway and SMTP, the settings that check where those go): the client, capped
//! reads, error causes, header lines, link-local checks and template rendering. It imports nothing
//! from config, delivery, directory or store, so each of them can use it without importing the
//! others.

use std::net::IpAddr;
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

/// Whether `ip` is link-local: 169.254.0.0/16 or fe80::/10, IPv4-mapped forms included.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// Whether `host` (a name or an IP literal, IPv6 with or without brackets) is this machine:
/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host.trim_end_matches('.');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match ip_literal(host) {
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        Some(ip) => ip.is_loopback(),
        None => false,
    }
}

/// `host` as an IP address when it is written as one. Hosts go through the URL parser first, which
/// turns the other spellings resolvers accept (`0xa9.254.169.254`, `2852039166`) into dotted form.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let normalised = reqwest::Url::parse(&format!("http://{host}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| host.to_string());
    normalised
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Replaces each `{name}` in `template` with its value passed through `escape`; other braces stay.
pub fn render(template: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (end, *v))
        }) {
            Some((end, value)) => {
                out.push_str(&escape(value));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Everything but RFC 3986 unreserved characters, so a value cannot end a path segment or a query
/// parameter, and `+` stays a plus rather than becoming a space.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn url_escape(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, URL_VALUE).to_string()
}

/// Values that make a URL template a URL, for checking it before any message is sent.
pub(crate) fn sample_values() -> [(&'static str, &'static str); 5] {
    [
        ("code", "000000"),
        ("minutes", "5"),
        ("recipient", "447700900123"),
        ("from", "sender"),
        ("message", "text"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_loopback_in_every_spelling() {
        for link_local in [
            "169.254.169.254",
            "0xa9.254.169.254",
            "2852039166",
            "[fe80::1]",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.1.1",
        ] {
            assert!(
                ip_literal(link_local).is_some_and(is_link_local),
                "{link_local}"
            );
        }
        for other in ["10.0.0.1", "fec0::1", "gw.example", "127.0.0.1", "::1"] {
            assert!(!ip_literal(other).is_some_and(is_link_local), "{other}");
        }
        for loopback in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(loopback), "{loopback}");
        }
        for other in ["localhost.example", "128.0.0.1", "::2", "10.0.0.1"] {
            assert!(!is_loopback_host(other), "{other}");
        }
    }

    #[test]
    fn render_escapes_values_and_keeps_unknown_braces() {
        let out = render(
            "{\"to\":\"{recipient}\",\"x\":{other}}",
            &[("recipient", "a\"b")],
            |v| v.replace('"', "\\\""),
        );
        assert_eq!(out, "{\"to\":\"a\\\"b\",\"x\":{other}}");
    }
}
