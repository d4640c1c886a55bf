//! `[security]`: who may call the callflow (`auth_scheme`, Basic credentials, `allowed_networks`),
//! the OAuth clients and their rules (`validate_oauth`), the encryption keys.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::values::Network;
use super::{ConfigError, Settings, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    None,
    Basic,
    Bearer,
}

/// `security.auth_scheme`: one scheme (`"basic"`) or a list (`["basic", "bearer"]`); a caller may
/// use any listed scheme. Never empty; `none` stands alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "OneOrMany")]
pub struct AuthSchemes(Vec<AuthScheme>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(AuthScheme),
    Many(Vec<AuthScheme>),
}

impl TryFrom<OneOrMany> for AuthSchemes {
    type Error = String;
    fn try_from(v: OneOrMany) -> Result<Self, Self::Error> {
        let mut list = match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(l) => l,
        };
        // Each scheme once, in the order first given (the challenges follow it).
        let mut seen = Vec::with_capacity(list.len());
        list.retain(|s| {
            let first = !seen.contains(s);
            if first {
                seen.push(*s);
            }
            first
        });
        if list.is_empty() {
            return Err("is empty: use \"none\", \"basic\", \"bearer\" or a list of them".into());
        }
        if list.len() > 1 && list.contains(&AuthScheme::None) {
            return Err("lists \"none\" with other schemes: \"none\" stands alone".into());
        }
        Ok(AuthSchemes(list))
    }
}

impl AuthSchemes {
    /// Whether callers go unchecked (`"none"`).
    pub fn is_none(&self) -> bool {
        self.0 == [AuthScheme::None]
    }
    pub fn has(&self, scheme: AuthScheme) -> bool {
        self.0.contains(&scheme)
    }
    pub fn list(&self) -> &[AuthScheme] {
        &self.0
    }
}

/// A client allowed to fetch bearer tokens from `POST /oauth/token`: its secret is configured as
/// the hex SHA-256 of the secret, or read from a file holding the secret itself.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub id: String,
    /// Lower-case hex of SHA-256 of the secret; filled from `secret_file` when that is given.
    #[serde(default)]
    pub secret_sha256: String,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest of a weak secret could be looked up; only the id is shown.
        f.debug_struct("OAuthClient").field("id", &self.id).finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Base64 of 32 random bytes; keys the code HMAC and encrypts TOTP secrets.
    pub encryption_key: SecretString,
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Keys rotated out: secrets they encrypted still decrypt.
    pub previous_encryption_keys: Vec<SecretString>,
    pub auth_scheme: AuthSchemes,
    pub user_id: String,
    pub password: SecretString,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CIDRs allowed to call the callflow endpoints and `/oauth/token`; empty allows all.
    pub allowed_networks: Vec<Network>,
    /// Clients of `POST /oauth/token` (client-credentials grant).
    pub oauth_clients: Vec<OAuthClient>,
    /// Life of an access token.
    pub oauth_token_ttl_seconds: u64,
    /// Failed client authentications allowed per client id, and per peer address, in a window.
    pub oauth_max_failures: u64,
    pub oauth_failure_window_seconds: u64,
    /// Wrong Basic passwords allowed per peer address (IPv6 by /64) in a window; past it that
    /// address gets 429 until the window ends. 0 turns the limit off.
    pub basic_max_failures: u64,
    pub basic_failure_window_seconds: u64,
}

impl Settings {
    /// OAuth clients and token settings: ids usable in Basic credentials, unique, each with one
    /// well-formed secret digest; `bearer` needs a client.
    pub(super) fn validate_oauth(&self) -> Result<(), ConfigError> {
        let sec = &self.security;
        let key = "security.oauth_clients";
        for (i, c) in sec.oauth_clients.iter().enumerate() {
            if c.id.is_empty()
                || c.id.len() > 128
                || c.id.contains(':')
                || c.id.chars().any(|ch| ch.is_control() || ch.is_whitespace())
            {
                return Err(invalid(
                    key,
                    format!(
                        "client id {:?} must be 1 to 128 characters without ':', spaces or control characters",
                        crate::domain::truncate(&c.id, 64)
                    ),
                ));
            }
            if sec.oauth_clients[..i].iter().any(|o| o.id == c.id) {
                return Err(invalid(
                    key,
                    format!("client id {:?} is listed twice", c.id),
                ));
            }
            if c.secret_sha256.is_empty() {
                return Err(invalid(
                    key,
                    format!(
                        "client {:?} needs secret_sha256 (hex SHA-256 of the secret: printf %s \"$SECRET\" | sha256sum) or secret_file",
                        c.id
                    ),
                ));
            }
            if c.secret_sha256.len() != 64
                || !c.secret_sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(invalid(
                    key,
                    format!("client {:?}: secret_sha256 is not 64 hex digits", c.id),
                ));
            }
        }
        if sec.auth_scheme.has(AuthScheme::Bearer) && sec.oauth_clients.is_empty() {
            return Err(invalid(
                "security.auth_scheme",
                "\"bearer\" needs at least one client in security.oauth_clients",
            ));
        }
        if !(1..=86_400).contains(&sec.oauth_token_ttl_seconds) {
            return Err(invalid(
                "security.oauth_token_ttl_seconds",
                "must be 1 to 86400",
            ));
        }
        if sec.oauth_max_failures == 0 {
            return Err(invalid("security.oauth_max_failures", "must be at least 1"));
        }
        if !(1..=86_400).contains(&sec.oauth_failure_window_seconds) {
            return Err(invalid(
                "security.oauth_failure_window_seconds",
                "must be 1 to 86400",
            ));
        }
        if !(1..=86_400).contains(&sec.basic_failure_window_seconds) {
            return Err(invalid(
                "security.basic_failure_window_seconds",
                "must be 1 to 86400",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_scheme_is_a_string_or_a_list() {
        let client = format!(
            "oauth_clients = [{{ id = \"gc\", secret_sha256 = \"{}\" }}]",
            "ab".repeat(32)
        );
        for (scheme, basic, bearer) in [
            ("\"none\"", false, false),
            ("\"basic\"", true, false),
            ("\"bearer\"", false, true),
            ("[\"basic\", \"bearer\"]", true, true),
            ("[\"bearer\"]", false, true),
        ] {
            let s = Settings::from_toml(&format!(
                "[security]\nauth_scheme = {scheme}\nuser_id = \"u\"\npassword = \"p\"\n{client}"
            ))
            .expect(scheme);
            assert_eq!(
                s.security.auth_scheme.has(AuthScheme::Basic),
                basic,
                "{scheme}"
            );
            assert_eq!(
                s.security.auth_scheme.has(AuthScheme::Bearer),
                bearer,
                "{scheme}"
            );
            assert_eq!(
                s.security.auth_scheme.is_none(),
                !basic && !bearer,
                "{scheme}"
            );
        }
        for (toml, says) in [
            ("auth_scheme = []", "is empty"),
            ("auth_scheme = [\"none\", \"basic\"]", "stands alone"),
            ("auth_scheme = \"digest\"", "auth_scheme"),
            ("auth_scheme = \"bearer\"", "needs at least one client"),
        ] {
            let err = Settings::from_toml(&format!("[security]\n{toml}"))
                .expect_err(toml)
                .to_string();
            assert!(err.contains(says), "{toml}: {err}");
        }
    }

    #[test]
    fn oauth_clients_are_checked_and_secret_files_hashed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").expect("write");
        let s = Settings::from_toml(&format!(
            "[security]\noauth_clients = [{{ id = \"gc\", secret_file = \"{}\" }}]",
            file.display()
        ))
        .expect("a client with a secret file");
        assert_eq!(
            s.security.oauth_clients[0].secret_sha256,
            crate::crypto::sha256_hex(b"s3cret")
        );
        let digest = "0f".repeat(32);
        for (clients, says) in [
            ("[{ id = \"gc\" }]".to_string(), "needs secret_sha256"),
            (
                "[{ id = \"gc\", secret_sha256 = \"abc\" }]".to_string(),
                "64 hex",
            ),
            (
                format!("[{{ id = \"a:b\", secret_sha256 = \"{digest}\" }}]"),
                "without ':'",
            ),
            (
                format!(
                    "[{{ id = \"gc\", secret_sha256 = \"{digest}\" }}, {{ id = \"gc\", secret_sha256 = \"{digest}\" }}]"
                ),
                "listed twice",
            ),
            (
                format!(
                    "[{{ id = \"gc\", secret_sha256 = \"{digest}\", secret_file = \"{}\" }}]",
                    file.display()
                ),
                "both",
            ),
            (
                format!("[{{ id = \"gc\", secret = \"{digest}\" }}]"),
                "secret",
            ),
        ] {
            let err = Settings::from_toml(&format!("[security]\noauth_clients = {clients}"))
                .expect_err(&clients)
                .to_string();
            assert!(
                err.contains("oauth_clients") && err.contains(says),
                "{clients}: {err}"
            );
            assert!(!err.contains(&digest), "an error shows the digest: {err}");
        }
        let err = Settings::from_toml("[security]\noauth_token_ttl_seconds = 0")
            .expect_err("ttl 0")
            .to_string();
        assert!(err.contains("security.oauth_token_ttl_seconds"), "{err}");
    }
}
