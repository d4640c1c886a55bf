//! Settings: compiled-in defaults, then a TOML file, then `TFA__SECTION__KEY` environment variables.
//!
//! Every key is typed and unknown keys are refused, so a typo fails at start with the key's name
//! instead of being silently ignored. Cross-field rules live in [`Settings::validate`].
//!
//! Here: `Settings` itself, `ConfigError` and the resolved transports. Each section's struct is in
//! its own file (`server.rs`, `codes.rs`, `security.rs`, `delivery.rs`, `admin.rs`,
//! `directory.rs`), re-exported here; loading is `sources.rs`, the rules `validate.rs`,
//! `security.rs` (OAuth clients) and `production.rs`.

pub mod admin;
mod codes;
mod delivery;
pub mod directory;
pub mod live_keys;
pub mod outbound;
mod production;
mod security;
mod server;
mod sources;
mod validate;
pub mod values;

pub use admin::AdminSettings;
pub use codes::{CodeSettings, LockoutScope, LockoutSettings, Statuses, TotpSettings};
pub use delivery::{
    DeliverySettings, EmailSettings, EmailTransport, SmsSettings, SmsTransport, SmtpSecurity,
    SmtpSettings,
};
pub use directory::DirectorySettings;
pub use security::{AuthScheme, AuthSchemes, OAuthClient, SecuritySettings};
pub use server::{Environment, GiaSettings, LogFormat, LogSettings, ServerSettings, StoreSettings};
pub use values::{Network, Region};

use std::path::PathBuf;

use figment::Figment;
use serde::Deserialize;

use sources::read_secret_file;

/// The defaults `cargo run` starts on, embedded so no file is needed.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub store: StoreSettings,
    pub gia: GiaSettings,
    pub statuses: Statuses,
    pub codes: CodeSettings,
    pub lockout: LockoutSettings,
    pub security: SecuritySettings,
    pub directory: DirectorySettings,
    pub delivery: DeliverySettings,
    pub email: EmailSettings,
    pub sms: SmsSettings,
    pub totp: TotpSettings,
    pub admin: AdminSettings,
    /// What these settings were made from (defaults, file, environment), so the live overlay can be
    /// layered over the same sources again and validated as start-up configuration is.
    #[serde(skip)]
    pub source: Figment,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("configuration: cannot read {path} for {key}: {source}")]
    File {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Settings {
    /// Whether the admin session cookie carries `Secure`: `admin.cookie_secure` when set, else on
    /// in production (TLS is terminated somewhere in front of it) or when this server speaks TLS.
    pub fn admin_cookie_secure(&self) -> bool {
        self.admin.cookie_secure.unwrap_or(
            self.server.environment == Environment::Production
                || !self.server.tls_cert_file.is_empty(),
        )
    }

    /// The email transport after resolving `auto`.
    pub fn email_transport(&self) -> EmailTransport {
        match self.email.transport {
            EmailTransport::Auto if self.email.smtp.host.is_empty() => EmailTransport::Outbox,
            EmailTransport::Auto => EmailTransport::Smtp,
            t => t,
        }
    }

    /// Whether email is offered to callers: in production only with a real transport, so codes are
    /// never written to a file there.
    pub fn email_offered(&self) -> bool {
        self.server.environment != Environment::Production
            || self.email_transport() != EmailTransport::Outbox
    }

    /// Whether SMS is offered to callers (see [`Settings::email_offered`]).
    pub fn sms_offered(&self) -> bool {
        self.server.environment != Environment::Production
            || self.sms_transport() != SmsTransport::Outbox
    }

    /// The SMS transport after resolving `auto`.
    pub fn sms_transport(&self) -> SmsTransport {
        match self.sms.transport {
            SmsTransport::Auto if self.sms.url.is_empty() => SmsTransport::Outbox,
            SmsTransport::Auto => SmsTransport::Http,
            t => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::from_toml("").expect("defaults load");
        assert_eq!(s.codes.digits, 6);
        assert_eq!(s.statuses.not_found, "not found");
        assert_eq!(s.email_transport(), EmailTransport::Outbox);
    }

    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                if v.is_table() {
                    keys(&format!("{path}."), v, out);
                } else {
                    out.push(path);
                }
            }
        }
    }

    #[test]
    fn example_config_documents_every_key_with_its_default() {
        let example: toml::Value = toml::from_str(include_str!("../../deploy/config.example.toml"))
            .expect("example parses");
        let defaults: toml::Value = toml::from_str(DEFAULT_TOML).expect("defaults parse");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys("", &example, &mut a);
        keys("", &defaults, &mut b);
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "deploy/config.example.toml and src/config.default.toml list different keys"
        );
        assert_eq!(
            example, defaults,
            "an example value differs from its default"
        );
    }

    #[test]
    fn outbox_is_the_default_only_while_nothing_is_configured() {
        let s = Settings::from_toml("").expect("defaults");
        assert_eq!(s.email_transport(), EmailTransport::Outbox);
        assert_eq!(s.sms_transport(), SmsTransport::Outbox);
        let s =
            Settings::from_toml("[email.smtp]\nhost = \"mail\"\n[sms]\nurl = \"http://gw/send\"")
                .expect("configured");
        assert_eq!(s.email_transport(), EmailTransport::Smtp);
        assert_eq!(s.sms_transport(), SmsTransport::Http);
    }
}
