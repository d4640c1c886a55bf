//! Which settings are live, as types: a change an admin may make while the service runs
//! ([`LivePatch`]), the live keys that hold credentials ([`Secret`]) and what the senders are
//! made of ([`Settings::senders_fingerprint`]). The overlay that applies them is `crate::live`;
//! this file only says what may change and what is secret, so that rule has one place.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Map, Value};

use super::Settings;

/// A JSON merge patch (RFC 7396) of live keys. Reading a patch as this type is the whole check
/// of which keys may change: the live sections, of `totp` only `skew_steps` (changing the others
/// would stop every enrolled app), and no key that names a file on the server. Every other key
/// cannot be represented. Values are checked afterwards, as start-up settings are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePatch {
    pub email: Option<EmailPatch>,
    pub sms: Option<Map<String, Value>>,
    pub codes: Option<Map<String, Value>>,
    pub lockout: Option<Map<String, Value>>,
    pub statuses: Option<Map<String, Value>>,
    pub totp: Option<TotpPatch>,
}

#[derive(Debug, Deserialize)]
pub struct EmailPatch {
    pub smtp: Option<SmtpPatch>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct SmtpPatch {
    pub password_file: Option<FileOnly>,
    pub ca_file: Option<FileOnly>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpPatch {
    pub skew_steps: Option<Value>,
}

/// A key that names a file the service would read: never live, so a patch cannot point the
/// service at `/etc/shadow`. It has no value; reading one is refused.
#[derive(Debug)]
pub enum FileOnly {}

impl<'de> Deserialize<'de> for FileOnly {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<FileOnly, D::Error> {
        Err(de::Error::custom(
            "names a file on the server: set it in the configuration file",
        ))
    }
}

/// Why a patch is not a [`LivePatch`]: the key it names and the words for it.
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive {
    pub key: Option<String>,
    pub message: String,
}

impl LivePatch {
    /// The sections a patch may name, for the words of a refusal.
    const SECTIONS: &'static str = "email, sms, codes, lockout, statuses, totp";

    /// Reads `patch` as a change of live keys, or names the key that is not live.
    pub fn read(patch: &Value) -> Result<LivePatch, NotLive> {
        if !patch.is_object() {
            return Err(NotLive {
                key: None,
                message: "a settings patch is a JSON object, e.g. {\"codes\": {\"digits\": 8}}"
                    .into(),
            });
        }
        LivePatch::deserialize(patch).map_err(|e| {
            // serde names the refused field, not its section: the section is found from the patch.
            let text = e.to_string();
            let field = text.split('`').nth(1).unwrap_or_default().to_string();
            let (key, why) = if text.starts_with("unknown field") {
                match patch.get("totp").and_then(Value::as_object) {
                    Some(totp) if totp.contains_key(&field) && patch.get(&field).is_none() => (
                        format!("totp.{field}"),
                        "is not a live setting: of totp only skew_steps is (changing the \
                         others would stop every enrolled app)"
                            .to_string(),
                    ),
                    _ => (
                        field,
                        format!(
                            "is not a live setting: change it in the configuration file (live: {})",
                            Self::SECTIONS
                        ),
                    ),
                }
            } else if let Some(name) = ["password_file", "ca_file"]
                .into_iter()
                .find(|f| patch.pointer(&format!("/email/smtp/{f}")).is_some())
            {
                (format!("email.smtp.{name}"), text.clone())
            } else {
                return NotLive {
                    key: None,
                    message: format!("the settings patch: {text}"),
                };
            };
            NotLive {
                message: format!("{key}: {why}"),
                key: Some(key),
            }
        })
    }
}

/// The live keys that hold or may hold credentials: sealed in the store, shown to admins only
/// as set or unset, named in the history without their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    SmtpPassword,
    SmsUrl,
    SmsHeaders,
    SmsBody,
}

impl Secret {
    pub const ALL: [Secret; 4] = [
        Secret::SmtpPassword,
        Secret::SmsUrl,
        Secret::SmsHeaders,
        Secret::SmsBody,
    ];

    /// The key as settings name it (`email.smtp.password`).
    pub fn key(self) -> &'static str {
        match self {
            Secret::SmtpPassword => "email.smtp.password",
            Secret::SmsUrl => "sms.url",
            Secret::SmsHeaders => "sms.request_headers",
            Secret::SmsBody => "sms.request_body",
        }
    }

    /// The key as a JSON Pointer into a settings document (`/email/smtp/password`).
    pub fn pointer(self) -> &'static str {
        match self {
            Secret::SmtpPassword => "/email/smtp/password",
            Secret::SmsUrl => "/sms/url",
            Secret::SmsHeaders => "/sms/request_headers",
            Secret::SmsBody => "/sms/request_body",
        }
    }
}

impl Settings {
    /// Everything the senders are built from; equal fingerprints mean the senders can be kept
    /// (an SMTP pool survives a change of code length). The password enters only as a digest.
    pub fn senders_fingerprint(&self) -> String {
        use sha2::Digest;
        let password =
            sha2::Sha256::digest(self.email.smtp.password.expose_secret().as_bytes()).to_vec();
        format!(
            "{}|{}|{}|{:?}|{}|{:?}",
            serde_json::to_string(&self.email).unwrap_or_default(),
            serde_json::to_string(&self.sms).unwrap_or_default(),
            self.delivery.outbox_file,
            self.server.environment,
            self.email.smtp.ca_file,
            password
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_live_keys_can_be_read_as_a_patch() {
        for (patch, key) in [
            (json!({"server": {"bind": "0.0.0.0:80"}}), "server"),
            (json!({"totp": {"digits": 8}}), "totp.digits"),
            (
                json!({"email": {"smtp": {"password_file": "/etc/shadow"}}}),
                "email.smtp.password_file",
            ),
            (
                json!({"email": {"smtp": {"ca_file": "/tmp/ca.pem"}}}),
                "email.smtp.ca_file",
            ),
        ] {
            match LivePatch::read(&patch) {
                Err(NotLive { key: Some(k), .. }) => assert_eq!(k, key, "{patch}"),
                other => panic!("{patch} gave {other:?}"),
            }
        }
        let ok = json!({"codes": {"digits": 8}, "totp": {"skew_steps": 2},
                        "email": {"smtp": {"host": "mx", "password": null}}, "sms": null});
        assert!(LivePatch::read(&ok).is_ok());
        assert!(LivePatch::read(&json!([1])).is_err_and(|e| e.key.is_none()));
    }
}
