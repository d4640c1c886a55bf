//! Where outbound delivery may go: the SMS gateway's URL and the SMTP host. Link-local hosts
//! (169.254.0.0/16, fe80::/10, where cloud metadata services answer) are refused in every
//! environment; production also refuses credentials and codes in clear (`http://`, SMTP without
//! TLS) except towards a loopback host, a local relay or sidecar on the same machine.

use std::net::IpAddr;

use super::{ConfigError, EmailTransport, Settings, SmsTransport, SmtpSecurity};

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

/// The scheme and host `sms.url` renders to, lower-cased; `None` when it is not a URL (the SMS
/// sender explains that at start).
pub fn sms_scheme_and_host(url: &str) -> Option<(String, String)> {
    let sample = crate::delivery::render(
        url,
        &crate::delivery::sms::sample_values(),
        crate::delivery::sms::url_escape,
    );
    let parsed = reqwest::Url::parse(&sample).ok()?;
    Some((
        parsed.scheme().to_ascii_lowercase(),
        parsed.host_str()?.to_ascii_lowercase(),
    ))
}

/// How strongly SMTP protects credentials and codes: `tls` > `starttls` > `none`.
impl SmtpSecurity {
    pub fn rank(self) -> u8 {
        match self {
            SmtpSecurity::None => 0,
            SmtpSecurity::Starttls => 1,
            SmtpSecurity::Tls => 2,
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

const LINK_LOCAL: &str = "is link-local (169.254.0.0/16 or fe80::/10), where cloud metadata services answer: delivery never goes there";

/// Rules of every environment.
pub fn validate(s: &Settings) -> Result<(), ConfigError> {
    if let Some((_, host)) = sms_scheme_and_host(&s.sms.url)
        && ip_literal(&host).is_some_and(is_link_local)
    {
        return Err(invalid("sms.url", format!("the host {host} {LINK_LOCAL}")));
    }
    let smtp = s.email.smtp.host.trim();
    if !smtp.is_empty() && ip_literal(smtp).is_some_and(is_link_local) {
        return Err(invalid("email.smtp.host", format!("{smtp} {LINK_LOCAL}")));
    }
    Ok(())
}

/// Production's rules: no gateway credentials, codes or SMTP passwords in clear on the network.
pub fn validate_production(s: &Settings) -> Result<(), ConfigError> {
    if s.sms_transport() == SmsTransport::Http
        && let Some((scheme, host)) = sms_scheme_and_host(&s.sms.url)
        && scheme != "https"
        && !is_loopback_host(&host)
    {
        return Err(invalid(
            "sms.url",
            format!(
                "production sends the gateway's credentials and codes over https:// only (got {scheme}:// to {host}); plain http is allowed only towards a loopback host (localhost, 127.0.0.0/8, ::1)"
            ),
        ));
    }
    let smtp = &s.email.smtp;
    if s.email_transport() == EmailTransport::Smtp
        && smtp.security == SmtpSecurity::None
        && !is_loopback_host(smtp.host.trim())
    {
        return Err(invalid(
            "email.smtp.security",
            format!(
                "production needs \"starttls\" or \"tls\" towards {}: \"none\" sends the password and codes in clear; it is allowed only towards a loopback relay (localhost, 127.0.0.0/8, ::1)",
                smtp.host.trim()
            ),
        ));
    }
    Ok(())
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
    fn smtp_security_ranks() {
        assert!(SmtpSecurity::Tls.rank() > SmtpSecurity::Starttls.rank());
        assert!(SmtpSecurity::Starttls.rank() > SmtpSecurity::None.rank());
    }
}
