//! Delivery of codes: the seams (`EmailSender`, `SmsSender`), the message templates, and the three
//! transports: SMTP (`email`), an HTTP SMS gateway (`sms`), and the outbox that appends JSON lines to
//! a file (the embedded default, for trying the service out).

pub mod email;
pub mod outbox;
pub mod sms;
pub mod test_send;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

// Defined with the settings, which validate sms.success_statuses; re-exported for the senders.
pub use crate::config::values::StatusMatcher;
use crate::config::{EmailTransport, Settings, SmsTransport};
use crate::domain::{Email, PhoneNumber};
// In the leaf, so the settings can check sms.url without importing delivery; re-exported for the senders.
pub use crate::outbound::render;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Could not reach or talk to the server; the message says what was tried.
    #[error("{0}")]
    Transport(String),
    /// The server answered and refused.
    #[error("{0}")]
    Rejected(String),
    /// No answer within the configured budget; `hint` names the likely cause.
    #[error("timed out after {ms} ms: {hint}")]
    Timeout { ms: u64, hint: String },
}

/// A code to deliver. `code` never reaches a log.
pub struct CodeMessage<'a> {
    pub code: &'a SecretString,
    /// Minutes the code stays valid, for `{minutes}`.
    pub minutes: u64,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends the code; returns what the server answered, for `send-test-email`.
    async fn send(&self, to: &Email, message: &CodeMessage<'_>) -> Result<String, DeliveryError>;
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends the code; returns what the gateway answered, for `send-test-sms`.
    async fn send(
        &self,
        to: &PhoneNumber,
        message: &CodeMessage<'_>,
    ) -> Result<String, DeliveryError>;
}

/// `text` with each secret replaced by its stand-in, for answers and errors that may echo them.
/// Matching ignores ASCII case: servers echo addresses upper-cased (`ALICE@EXAMPLE.COM`).
pub fn redact(text: &str, secrets: &[(&str, String)]) -> String {
    secrets
        .iter()
        .filter(|(secret, _)| !secret.is_empty())
        .fold(text.to_string(), |t, (secret, with)| {
            replace_ignoring_ascii_case(&t, secret, with)
        })
}

/// How much of a server's own answer (an SMS gateway's body, an SMTP server's text) is ever shown,
/// in a test send's answer or a log line: enough for a reason, too little to carry a payload.
pub const EXCERPT_CHARS: usize = 120;

/// A short, masked excerpt of what a server answered: `secrets` replaced (as [`redact`] does), line
/// breaks and runs of blanks folded into one space, every run of 4 or more digits masked but its
/// last 2 (account numbers, phone numbers, codes the secrets did not name), then cut to
/// [`EXCERPT_CHARS`] characters.
pub fn excerpt(text: &str, secrets: &[(&str, String)]) -> String {
    let redacted = redact(text, secrets);
    let folded = redacted
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut masked = String::with_capacity(folded.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        let n = digits.chars().count();
        if n >= 4 {
            out.extend(std::iter::repeat_n('*', n - 2));
            out.extend(digits.chars().skip(n - 2));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in folded.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut masked);
            masked.push(c);
        }
    }
    flush(&mut digits, &mut masked);
    crate::domain::truncate(&masked, EXCERPT_CHARS)
}

fn replace_ignoring_ascii_case(text: &str, needle: &str, with: &str) -> String {
    // ASCII lower-casing keeps every byte where it was, so offsets found in `hay` hold in `text`.
    let hay = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in hay.match_indices(&needle) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

/// `e` and its sources, joined: client libraries often print only the outermost layer.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    // Libraries that wrap their own errors print "Connection error: Connection error: …".
    let mut parts: Vec<&str> = out.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// The email and SMS senders; `None` for a channel that is not offered.
pub type Senders = (Option<Arc<dyn EmailSender>>, Option<Arc<dyn SmsSender>>);

/// The senders the settings ask for; `None` for a channel that is not offered (production with no
/// transport for it). Runs inside a Tokio runtime (the SMTP pool spawns a task).
pub fn from_settings(settings: &Settings) -> anyhow::Result<Senders> {
    // One outbox for both channels, so its lock keeps their lines from interleaving.
    let outbox = Arc::new(outbox::Outbox::new(settings));
    let email: Option<Arc<dyn EmailSender>> = if !settings.email_offered() {
        tracing::warn!(
            "email is not offered to callers: production has no transport for it (set email.smtp.host)"
        );
        None
    } else if settings.email_transport() == EmailTransport::Smtp {
        let smtp = &settings.email.smtp;
        tracing::info!(host = %smtp.host, port = smtp.port, security = ?smtp.security, "email goes out over SMTP");
        Some(Arc::new(email::SmtpEmail::new(settings)?))
    } else {
        tracing::warn!(
            file = %settings.delivery.outbox_file,
            "email goes to the outbox file, not to callers: set email.smtp.host to send real email"
        );
        Some(outbox.clone())
    };
    let sms: Option<Arc<dyn SmsSender>> = if !settings.sms_offered() {
        tracing::warn!(
            "SMS is not offered to callers: production has no transport for it (set sms.url)"
        );
        None
    } else if settings.sms_transport() == SmsTransport::Http {
        tracing::info!(method = %settings.sms.method, "SMS goes out through the HTTP gateway");
        Some(Arc::new(sms::HttpSms::new(settings)?))
    } else {
        tracing::warn!(
            file = %settings.delivery.outbox_file,
            "SMS goes to the outbox file, not to callers: set sms.url to use an SMS gateway"
        );
        Some(outbox)
    };
    Ok((email, sms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_drops_repeated_layers_and_redact_masks() {
        let inner = std::io::Error::other("Connection error: Connection error: refused");
        assert_eq!(error_chain(&inner), "Connection error: refused");
        let secrets = [("123456", "******".to_string()), ("", "x".to_string())];
        assert_eq!(redact("code 123456 sent", &secrets), "code ****** sent");
        let address = [("alice@example.com", "a***@example.com".to_string())];
        assert_eq!(
            redact(
                "550 <ALICE@EXAMPLE.COM> and Alice@Example.com unknown",
                &address
            ),
            "550 <a***@example.com> and a***@example.com unknown"
        );
        assert_eq!(redact("naïve 123456", &secrets), "naïve ******");
    }

    #[test]
    fn excerpts_are_short_and_mask_long_digit_runs() {
        let secrets = [("key-abc", "[redacted]".to_string())];
        assert_eq!(
            excerpt("ok\r\n  id 123 acct 12345678 key-abc", &secrets),
            "ok id 123 acct ******78 [redacted]"
        );
        assert_eq!(excerpt("2024", &[]), "**24");
        let long = excerpt(&"x".repeat(500), &[]);
        assert_eq!(
            long.chars().count(),
            EXCERPT_CHARS + 1,
            "cut, with an ellipsis"
        );
    }
}
