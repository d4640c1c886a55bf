//! `[delivery]`, `[email]` and `[sms]`: the two channels' transports, the SMTP server and the SMS
//! gateway.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::values::{HeaderLine, HttpMethod, Pattern, StatusMatcher};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Where the outbox transport appends one JSON line per message.
    pub outbox_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// SMTP when `email.smtp.host` is set, else the outbox.
    Auto,
    Smtp,
    Outbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    pub from: String,
    pub subject: String,
    /// Text body template: `{code}`, `{minutes}`, `{recipient}`, `{from}`.
    pub body: String,
    /// Optional HTML alternative of `body` (values are HTML-escaped); empty sends text only.
    pub html_body: String,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// SMTP server (GIA `Email.SMTP.Host`); setting it turns email delivery on.
    pub host: String,
    /// GIA `Email.SMTP.Port`: usually 587 with `starttls`, 465 with `tls`, 25 with `none`.
    pub port: u16,
    /// `none` (plain text), `starttls` (upgrade after connecting) or `tls` (TLS from the first byte).
    pub security: SmtpSecurity,
    /// Empty for no authentication.
    pub username: String,
    #[serde(skip_serializing)]
    pub password: SecretString,
    #[serde(default, skip_serializing)]
    pub password_file: Option<PathBuf>,
    /// Whole send budget: connect, TLS, authentication and the message.
    pub timeout_ms: u64,
    /// Open connections kept for reuse.
    pub pool_max_size: u32,
    /// PEM file of extra CA certificates to trust (an internal relay's own CA); empty for none.
    pub ca_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsTransport {
    /// The HTTP gateway when `sms.url` is set, else the outbox.
    Auto,
    Http,
    Outbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    pub transport: SmsTransport,
    pub method: HttpMethod,
    /// URL template; substituted values are percent-encoded.
    pub url: String,
    /// `"Name: Value"` templates.
    pub request_headers: Vec<HeaderLine>,
    /// Body template; values are escaped for the Content-Type header sent.
    pub request_body: String,
    pub timeout_ms: u64,
    /// Whether the recipient number carries a leading `+` (also in check-verified-contact-methods).
    pub plus_symbol_before_recipient_number: bool,
    pub from: String,
    /// Text of the SMS: `{code}`, `{minutes}`.
    pub message: String,
    /// Gateway statuses that mean sent: exact codes (`"202"`) or classes (`"2xx"`).
    pub success_statuses: Vec<StatusMatcher>,
    /// A regex that, found in the gateway's answer, means failure even with a success status.
    pub failure_body_pattern: Pattern,
    /// Sends to one number per rolling hour; 0 disables the cap.
    pub max_per_number_per_hour: u32,
    /// Country calling codes (e.g. `"44"`) SMS may go to; empty allows all.
    pub allowed_country_codes: Vec<String>,
}
