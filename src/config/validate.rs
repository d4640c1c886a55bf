//! The rules a type cannot express (`Settings::validate`): each error names the key and says why;
//! the `[security]` OAuth rules are in `security.rs`, production's in `production.rs`.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use super::{
    AuthScheme, ConfigError, EmailTransport, Environment, Settings, SmsTransport, admin, invalid,
    outbound, values,
};

impl Settings {
    /// Rules a type cannot express; each error names the key and says why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.bind.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080",
                    self.server.bind
                ),
            )
        })?;
        if self.server.max_body_bytes < 64 {
            return Err(invalid("server.max_body_bytes", "must be at least 64"));
        }
        if !self.admin.bind.is_empty() {
            let admin = self.admin.bind.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "admin.bind",
                    format!(
                        "{:?} is not an address like 127.0.0.1:9090 (or empty for server.bind)",
                        self.admin.bind
                    ),
                )
            })?;
            if admin.port() != 0 && self.server.bind.parse::<SocketAddr>().ok() == Some(admin) {
                return Err(invalid(
                    "admin.bind",
                    "is the same address as server.bind: leave it empty to share that listener",
                ));
            }
        }
        if !(1..=86_400).contains(&self.admin.session_idle_seconds) {
            return Err(invalid("admin.session_idle_seconds", "must be 1 to 86400"));
        }
        if !(1..=604_800).contains(&self.admin.session_max_seconds) {
            return Err(invalid("admin.session_max_seconds", "must be 1 to 604800"));
        }
        admin::check_origins(&self.admin.allowed_origins)
            .map_err(|reason| invalid("admin.allowed_origins", reason))?;
        if self.server.max_connections_per_worker == 0 {
            return Err(invalid(
                "server.max_connections_per_worker",
                "must be at least 1",
            ));
        }
        if self.server.max_param_bytes < 16 {
            return Err(invalid("server.max_param_bytes", "must be at least 16"));
        }
        if self.server.tls_cert_file.is_empty() != self.server.tls_key_file.is_empty() {
            return Err(invalid(
                "server.tls_cert_file",
                "set both tls_cert_file and tls_key_file, or neither",
            ));
        }
        let url = values::StoreUrl::parse(&self.store.url)
            .map_err(|reason| invalid("store.url", reason))?;
        if !self.store.ca_file.is_empty() {
            // A CA nobody uses would let an operator believe the store is verified against it.
            let tls = match &url {
                values::StoreUrl::Redis(u) => u.starts_with("rediss://"),
                values::StoreUrl::Cluster(nodes) => {
                    nodes.iter().all(|n| n.starts_with("rediss://"))
                }
                values::StoreUrl::Sentinel { .. } => {
                    return Err(invalid(
                        "store.ca_file",
                        "is not supported with Sentinel: rediss+sentinel:// trusts the public \
                         roots only; use rediss:// or rediss+cluster://, or a certificate from a \
                         public CA",
                    ));
                }
                values::StoreUrl::Memory => false,
            };
            if !tls {
                return Err(invalid(
                    "store.ca_file",
                    "is set but store.url does not use TLS: use rediss://… or rediss+cluster://…",
                ));
            }
        }
        // Braces would make the prefix the Cluster hash tag, putting every key in one slot and
        // breaking the per-customer tags; whitespace and control characters break redis-cli and logs.
        if let Some(c) = self
            .store
            .key_prefix
            .chars()
            .find(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "store.key_prefix",
                format!(
                    "{:?} contains {c:?}: braces break Redis Cluster hash tags, and whitespace or control characters are not allowed",
                    self.store.key_prefix
                ),
            ));
        }
        self.directory
            .validate(self.server.environment == Environment::Production)?;
        if self
            .gia
            .customer_id_params
            .iter()
            .all(|p| p.trim().is_empty())
        {
            return Err(invalid(
                "gia.customer_id_params",
                "name at least one parameter",
            ));
        }
        for (key, value) in [
            ("statuses.success", &self.statuses.success),
            ("statuses.not_found", &self.statuses.not_found),
            ("statuses.incorrect_code", &self.statuses.incorrect_code),
            ("statuses.code_expired", &self.statuses.code_expired),
            ("statuses.locked", &self.statuses.locked),
            ("statuses.send_limited", &self.statuses.send_limited),
            ("statuses.error", &self.statuses.error),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(
                    key,
                    "a status is a callflow path name and cannot be empty",
                ));
            }
        }
        if !(4..=10).contains(&self.codes.digits) {
            return Err(invalid(
                "codes.digits",
                format!("{} is out of range: must be 4 to 10", self.codes.digits),
            ));
        }
        for (key, v) in [
            ("codes.ttl_seconds", self.codes.ttl_seconds),
            ("codes.send_window_seconds", self.codes.send_window_seconds),
            ("lockout.window_seconds", self.lockout.window_seconds),
            ("lockout.duration_seconds", self.lockout.duration_seconds),
            ("totp.period_seconds", self.totp.period_seconds),
            ("email.smtp.timeout_ms", self.email.smtp.timeout_ms),
            ("sms.timeout_ms", self.sms.timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        // Upper bounds keep every duration sane (and far from overflowing clocks and TTL arithmetic).
        const DAY: u64 = 86_400;
        for (key, v, max) in [
            ("codes.ttl_seconds", self.codes.ttl_seconds, DAY),
            (
                "codes.send_window_seconds",
                self.codes.send_window_seconds,
                30 * DAY,
            ),
            (
                "lockout.window_seconds",
                self.lockout.window_seconds,
                30 * DAY,
            ),
            (
                "lockout.duration_seconds",
                self.lockout.duration_seconds,
                30 * DAY,
            ),
            ("totp.period_seconds", self.totp.period_seconds, 300),
            (
                "codes.retry_grace_seconds",
                self.codes.retry_grace_seconds,
                300,
            ),
            ("email.smtp.timeout_ms", self.email.smtp.timeout_ms, 300_000),
            ("sms.timeout_ms", self.sms.timeout_ms, 300_000),
            (
                "server.body_timeout_ms",
                self.server.body_timeout_ms,
                300_000,
            ),
            (
                "server.shutdown_timeout_seconds",
                self.server.shutdown_timeout_seconds,
                3_600,
            ),
        ] {
            if v > max {
                return Err(invalid(
                    key,
                    format!("{v} is more than the most allowed, {max}"),
                ));
            }
        }
        if !(1..=100).contains(&self.lockout.max_consecutive_failures) {
            return Err(invalid(
                "lockout.max_consecutive_failures",
                "must be 1 to 100: NIST SP 800-63B allows at most 100 failures in a row per account",
            ));
        }
        if self.totp.skew_steps > 3 {
            return Err(invalid(
                "totp.skew_steps",
                "must be 0 to 3: each step either side adds two more codes that pass",
            ));
        }
        if self.totp.period_seconds < 15 {
            return Err(invalid("totp.period_seconds", "must be at least 15"));
        }
        if self.security.encryption_key.expose_secret().is_empty()
            && !self.store.url.starts_with("memory:")
        {
            return Err(invalid(
                "security.encryption_key",
                "is required with a shared store: every instance must use the same key \
                 (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)",
            ));
        }
        for (key, v) in [
            ("codes.max_verify_attempts", self.codes.max_verify_attempts),
            ("codes.max_sends", self.codes.max_sends),
            ("lockout.max_failures", self.lockout.max_failures),
            ("email.smtp.pool_max_size", self.email.smtp.pool_max_size),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !self.security.encryption_key.expose_secret().is_empty() {
            crate::crypto::decode_key(self.security.encryption_key.expose_secret())
                .map_err(|reason| invalid("security.encryption_key", reason))?;
        }
        for k in &self.security.previous_encryption_keys {
            crate::crypto::decode_key(k.expose_secret())
                .map_err(|reason| invalid("security.previous_encryption_keys", reason))?;
        }
        if self.security.auth_scheme.has(AuthScheme::Basic)
            && (self.security.user_id.is_empty()
                || self.security.password.expose_secret().is_empty())
        {
            return Err(invalid(
                "security.auth_scheme",
                "\"basic\" needs security.user_id and security.password",
            ));
        }
        if self.security.user_id.contains(':') {
            return Err(invalid(
                "security.user_id",
                "cannot contain ':' (Basic scheme)",
            ));
        }
        self.validate_oauth()?;
        if self.email_transport() == EmailTransport::Smtp && self.email.smtp.host.is_empty() {
            return Err(invalid(
                "email.smtp.host",
                "email.transport = \"smtp\" needs a host",
            ));
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "email.from",
                format!(
                    "{:?} is not an address like \"Bank <otp@example.com>\"",
                    self.email.from
                ),
            ));
        }
        if self.sms_transport() == SmsTransport::Http && self.sms.url.is_empty() {
            return Err(invalid(
                "sms.url",
                "sms.transport = \"http\" needs a gateway URL",
            ));
        }
        for m in &self.sms.success_statuses {
            // Redirects are never followed, so a 3xx never means the message was sent.
            if m.matches_redirect() {
                let s = String::from(*m);
                return Err(invalid(
                    "sms.success_statuses",
                    format!(
                        "{s:?} is a redirect: redirects are not followed, so a 3xx is always a failed delivery"
                    ),
                ));
            }
        }
        for cc in &self.sms.allowed_country_codes {
            let cc = cc.trim_start_matches('+');
            if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "sms.allowed_country_codes",
                    format!("{cc:?} is not a country calling code like \"44\""),
                ));
            }
        }
        if !(6..=8).contains(&self.totp.digits) {
            return Err(invalid("totp.digits", "must be 6 to 8"));
        }
        if !matches!(
            self.totp.algorithm.to_ascii_uppercase().as_str(),
            "SHA1" | "SHA256" | "SHA512"
        ) {
            return Err(invalid("totp.algorithm", "must be SHA1, SHA256 or SHA512"));
        }
        if self.totp.issuer.contains(':') || self.totp.issuer.is_empty() {
            return Err(invalid("totp.issuer", "must be non-empty and without ':'"));
        }
        outbound::validate(self)?;
        if self.server.environment == Environment::Production {
            self.validate_production()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[codes]\ndigits = 12", "codes.digits"),
            ("[store]\nurl = \"mysql://x\"", "store.url"),
            ("[server]\nbind = \"nowhere\"", "server.bind"),
            (
                "[security]\nencryption_key = \"short\"",
                "security.encryption_key",
            ),
            ("[codes]\nnot_a_key = 1", "not_a_key"),
            ("[server]\nenvironment = \"production\"", "store.url"),
            (
                "[security]\nallowed_networks = [\"10.0.0.0/33\"]",
                "allowed_networks",
            ),
            ("[directory]\ndefault_region = \"XX\"", "default_region"),
            ("[store]\nkey_prefix = \"tfa{x}:\"", "store.key_prefix"),
            ("[store]\nkey_prefix = \"tfa }\"", "store.key_prefix"),
            ("[store]\nkey_prefix = \"tfa :\"", "store.key_prefix"),
            ("[store]\nkey_prefix = \"tfa\\t\"", "store.key_prefix"),
            ("[server]\nbody_timeout_ms = 0", "server.body_timeout_ms"),
            (
                "[server]\nbody_timeout_ms = 300001",
                "server.body_timeout_ms",
            ),
            (
                "[server]\nmax_connections_per_worker = 0",
                "server.max_connections_per_worker",
            ),
            ("[admin]\nbind = \"nowhere\"", "admin.bind"),
            (
                "[admin]\nallowed_networks = [\"10.0.0.0/33\"]",
                "admin.allowed_networks",
            ),
            ("[admin]\ntokens = [\"a:owner:t\"]", "admin.tokens"),
            (
                "[admin]\ntokens = [\"a:read:t\", \"a:read:u\"]",
                "admin.tokens",
            ),
            (
                "[admin]\nsession_idle_seconds = 0",
                "admin.session_idle_seconds",
            ),
            (
                "[admin]\nsession_max_seconds = 0",
                "admin.session_max_seconds",
            ),
            (
                "[security]\nbasic_failure_window_seconds = 0",
                "security.basic_failure_window_seconds",
            ),
            (
                "[admin]\nallowed_origins = [\"https://x.example/path\"]",
                "admin.allowed_origins",
            ),
        ];
        for (toml, key) in cases {
            let err = Settings::from_toml(toml).expect_err(toml).to_string();
            assert!(
                err.contains(key),
                "{toml:?} gave {err:?}, which does not name {key}"
            );
        }
    }
}
