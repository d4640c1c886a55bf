//! Email over SMTP with lettre: an explicit security mode (`none | starttls | tls`), optional
//! authentication, a connection pool, one time budget for the whole send, and errors that say which
//! setting is the likely culprit.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{CodeMessage, DeliveryError, EmailSender, error_chain, excerpt, redact, render};
use crate::config::{Settings, SmtpSecurity};
use crate::domain::Email;

pub struct SmtpEmail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    subject: String,
    body: String,
    html_body: String,
    timeout: Duration,
    /// `host:port`, for messages.
    endpoint: String,
    /// The host as configured, for the link-local check before each send.
    host: String,
    security: SmtpSecurity,
    port: u16,
    authenticates: bool,
}

impl SmtpEmail {
    /// Builds the pooled transport; must run inside a Tokio runtime (the pool spawns its reaper).
    pub fn new(settings: &Settings) -> anyhow::Result<SmtpEmail> {
        let smtp = &settings.email.smtp;
        let timeout = Duration::from_millis(smtp.timeout_ms);
        let tls_parameters = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(smtp.host.clone());
            if !smtp.ca_file.is_empty() {
                let pem = std::fs::read(&smtp.ca_file)
                    .with_context(|| format!("email.smtp.ca_file: cannot read {}", smtp.ca_file))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    anyhow::anyhow!(
                        "email.smtp.ca_file: {} holds no PEM certificate: {e}",
                        smtp.ca_file
                    )
                })?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build()
                .map_err(|e| anyhow::anyhow!("email.smtp: cannot set up TLS: {e}"))
        };
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::Starttls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(smtp.pool_max_size.max(1)));
        let authenticates = !smtp.username.is_empty();
        if authenticates {
            builder = builder.credentials(Credentials::new(
                smtp.username.clone(),
                smtp.password.expose_secret().to_string(),
            ));
        }
        let from =
            settings.email.from.parse::<Mailbox>().with_context(|| {
                format!("email.from: {:?} is not an address", settings.email.from)
            })?;
        Ok(SmtpEmail {
            transport: builder.build(),
            from,
            subject: settings.email.subject.clone(),
            body: settings.email.body.clone(),
            html_body: settings.email.html_body.clone(),
            timeout,
            endpoint: format!("{}:{}", smtp.host, smtp.port),
            host: smtp.host.trim().to_string(),
            security: smtp.security,
            port: smtp.port,
            authenticates,
        })
    }

    fn message(&self, to: &Email, message: &CodeMessage<'_>) -> Result<Message, DeliveryError> {
        let minutes = message.minutes.to_string();
        let from = self.from.to_string();
        let values = [
            ("code", message.code.expose_secret()),
            ("minutes", minutes.as_str()),
            ("recipient", to.as_str()),
            ("from", from.as_str()),
        ];
        let subject = render(&self.subject, &values, str::to_string);
        let text = render(&self.body, &values, str::to_string);
        let address = to
            .as_str()
            .parse()
            .map_err(|_| DeliveryError::Rejected(format!("{} is not an address", to.masked())))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(subject)
            .message_id(None);
        let built = if self.html_body.is_empty() {
            builder.singlepart(SinglePart::plain(text))
        } else {
            let html = render(&self.html_body, &values, html_escape);
            builder.multipart(MultiPart::alternative_plain_html(text, html))
        };
        built.map_err(|e| DeliveryError::Rejected(format!("cannot build the message: {e}")))
    }

    /// The likely mistake behind `e`, in words an admin can act on.
    fn explain(&self, e: &lettre::transport::smtp::Error) -> DeliveryError {
        let chain = error_chain(e);
        let lower = chain.to_ascii_lowercase();
        let endpoint = &self.endpoint;
        let io_kind = io_error_kind(e);
        if let Some(code) = e.status() {
            let code = code.to_string();
            if matches!(code.as_str(), "535" | "534" | "530" | "454") && self.authenticates {
                return DeliveryError::Rejected(format!(
                    "authentication refused by {endpoint} ({chain}): check email.smtp.username and email.smtp.password"
                ));
            }
            if code == "530" {
                return DeliveryError::Rejected(format!(
                    "{endpoint} requires authentication ({chain}): set email.smtp.username and email.smtp.password"
                ));
            }
            return DeliveryError::Rejected(format!("{endpoint} refused the message: {chain}"));
        }
        if e.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
            return self.timeout_error();
        }
        if matches!(
            io_kind,
            Some(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset)
        ) || lower.contains("could not resolve")
            || lower.contains("failed to lookup")
        {
            return DeliveryError::Transport(format!(
                "cannot connect to {endpoint} ({chain}): check email.smtp.host and email.smtp.port, and that the server accepts connections from here"
            ));
        }
        if lower.contains("no compatible authentication mechanism") {
            let why = if self.security == SmtpSecurity::None {
                " (many servers offer AUTH only after STARTTLS: try email.smtp.security = \"starttls\")"
            } else {
                ""
            };
            return DeliveryError::Rejected(format!(
                "{endpoint} offers no authentication lettre supports{why}"
            ));
        }
        if lower.contains("starttls is not supported") {
            return DeliveryError::Transport(format!(
                "{endpoint} does not offer STARTTLS: use email.smtp.security = \"tls\" if the port speaks TLS from the start (usually 465), or \"none\" for a plain relay"
            ));
        }
        if e.is_tls()
            || lower.contains("tls")
            || lower.contains("certificate")
            || lower.contains("handshake")
            || lower.contains("corrupt message")
        {
            return DeliveryError::Transport(format!(
                "TLS with {endpoint} failed ({chain}): is email.smtp.security right for port {} (587 usually starttls, 465 tls)? For an internal CA set email.smtp.ca_file",
                self.port
            ));
        }
        if e.is_response() && self.security == SmtpSecurity::None {
            return DeliveryError::Transport(format!(
                "{endpoint} did not answer in SMTP ({chain}): does the port expect TLS? Check email.smtp.security"
            ));
        }
        DeliveryError::Transport(format!("SMTP with {endpoint} failed: {chain}"))
    }

    /// Refuses a host name that resolves to a link-local address (a cloud metadata service):
    /// validation refuses such literal addresses, and lettre connects by name, so the name is
    /// looked up here first. A failed lookup is left for lettre to report in its own words.
    async fn refuse_link_local(&self) -> Result<(), DeliveryError> {
        if crate::outbound::ip_literal(&self.host).is_some() {
            return Ok(());
        }
        let Ok(found) = tokio::net::lookup_host((self.host.as_str(), self.port)).await else {
            return Ok(());
        };
        if let Some(a) = found
            .map(|a| a.ip())
            .find(|ip| crate::outbound::is_link_local(*ip))
        {
            return Err(DeliveryError::Transport(format!(
                "{} resolves to the link-local address {a} (169.254.0.0/16, fe80::/10), which is refused: check email.smtp.host",
                self.host
            )));
        }
        Ok(())
    }

    fn timeout_error(&self) -> DeliveryError {
        let hint = if self.security == SmtpSecurity::None && self.port == 465 {
            "port 465 expects TLS from the first byte: set email.smtp.security = \"tls\""
                .to_string()
        } else {
            format!(
                "is {} reachable, and is email.smtp.security right for the port?",
                self.endpoint
            )
        };
        DeliveryError::Timeout {
            ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
            hint,
        }
    }
}

#[async_trait]
impl EmailSender for SmtpEmail {
    async fn send(&self, to: &Email, message: &CodeMessage<'_>) -> Result<String, DeliveryError> {
        let email = self.message(to, message)?;
        // lettre's timeout is per network operation; this one bounds the whole send, the look-up
        // included.
        let sent = tokio::time::timeout(self.timeout, async {
            self.refuse_link_local().await?;
            self.transport
                .send(email)
                .await
                .map_err(|e| self.explain(&e))
        })
        .await;
        // Servers echo addresses and sometimes the message in their answers.
        let secrets = [
            (message.code.expose_secret(), "******".to_string()),
            (to.as_str(), to.masked()),
        ];
        match sent {
            Err(_) => Err(self.timeout_error()),
            Ok(Err(e)) => Err(match e {
                DeliveryError::Transport(m) => DeliveryError::Transport(redact(&m, &secrets)),
                DeliveryError::Rejected(m) => DeliveryError::Rejected(redact(&m, &secrets)),
                other => other,
            }),
            Ok(Ok(response)) => {
                // The reply code, and a short masked excerpt of the server's own words.
                let text = response.message().collect::<Vec<_>>().join(" ");
                Ok(format!("{} {}", response.code(), excerpt(&text, &secrets)))
            }
        }
    }
}

fn io_error_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// HTML-escapes a value for the HTML body (`&`, `<`, `>`, `"`, `'`).
fn html_escape(v: &str) -> String {
    quick_xml::escape::escape(v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_values_are_escaped() {
        assert_eq!(
            html_escape("<b>\"A&B\"</b>"),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;"
        );
    }
}
