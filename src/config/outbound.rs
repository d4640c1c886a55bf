//! Where outbound delivery may go: the SMS gateway's URL and the SMTP host. Link-local hosts
//! (169.254.0.0/16, fe80::/10, where cloud metadata services answer) are refused in every
//! environment; production also refuses credentials and codes in clear (`http://`, SMTP without
//! TLS) except towards a loopback host, a local relay or sidecar on the same machine.

use super::{ConfigError, EmailTransport, Settings, SmsTransport, SmtpSecurity};
use crate::outbound::{
    ip_literal, is_link_local, is_loopback_host, render, sample_values, url_escape,
};

/// The scheme and host `sms.url` renders to, lower-cased; `None` when it is not a URL (the SMS
/// sender explains that at start).
pub fn sms_scheme_and_host(url: &str) -> Option<(String, String)> {
    let sample = render(url, &sample_values(), url_escape);
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
    fn smtp_security_ranks() {
        assert!(SmtpSecurity::Tls.rank() > SmtpSecurity::Starttls.rank());
        assert!(SmtpSecurity::Starttls.rank() > SmtpSecurity::None.rank());
    }
}
