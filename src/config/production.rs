//! What production refuses (`validate_production`): the memory store, the outbox, unchecked
//! callers, short passwords and tokens; outbound rules are in `outbound.rs`.

use secrecy::ExposeSecret;

use super::{AuthScheme, ConfigError, EmailTransport, Settings, SmsTransport, invalid, outbound};

impl Settings {
    pub(super) fn validate_production(&self) -> Result<(), ConfigError> {
        if self.store.url.starts_with("memory:") {
            return Err(invalid(
                "store.url",
                "production needs Redis (set store.url = \"redis://…\"): the memory store loses codes on restart and is not shared between instances",
            ));
        }
        // A channel left unconfigured is simply not offered (see `email_offered`); only an explicit
        // outbox is refused, since it would write codes to a file.
        if self.email.transport == EmailTransport::Outbox {
            return Err(invalid(
                "email.transport",
                "production cannot deliver to the outbox: set email.smtp.host (and email.transport = \"smtp\")",
            ));
        }
        if self.sms.transport == SmsTransport::Outbox {
            return Err(invalid(
                "sms.transport",
                "production cannot deliver to the outbox: set sms.url (and sms.transport = \"http\")",
            ));
        }
        if self.security.auth_scheme.is_none() && self.security.allowed_networks.is_empty() {
            return Err(invalid(
                "security.auth_scheme",
                "production refuses callers nobody checks: set auth_scheme = \"basic\" (with user_id and password), \
                 \"bearer\" (with oauth_clients) or both, or list the callflow servers in security.allowed_networks",
            ));
        }
        // The limit on wrong passwords is per address: an attacker with many addresses still
        // guesses, so the password itself must be out of reach of guessing.
        if self.security.auth_scheme.has(AuthScheme::Basic)
            && self.security.password.expose_secret().chars().count() < 16
        {
            return Err(invalid(
                "security.password",
                "production needs a Basic password of at least 16 characters (openssl rand -base64 24): \
                 wrong passwords are limited per address only, so a short one falls to guessing from many addresses",
            ));
        }
        if self
            .admin
            .tokens
            .iter()
            .any(|t| t.token.expose_secret().len() < 32)
        {
            return Err(invalid(
                "admin.tokens",
                "production needs admin tokens of at least 32 characters (openssl rand -hex 32)",
            ));
        }
        outbound::validate_production(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_outbox_and_memory_store_naming_what_to_set() {
        let redis = "[store]\nurl = \"redis://127.0.0.1:6379/\"\n";
        let key = "[security]\nencryption_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n\
                   allowed_networks = [\"10.0.0.0/8\"]\n";
        let key_only =
            "[security]\nencryption_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n";
        let prod = "[server]\nenvironment = \"production\"\n";
        let smtp = "[email.smtp]\nhost = \"mail.example\"\n";
        let sms = "[sms]\nurl = \"https://sms.example/send\"\n";
        let cases: [(&[&str], &str); 6] = [
            (&[prod, redis, smtp, sms], "security.encryption_key"),
            (&[prod, key_only, redis, smtp, sms], "security.auth_scheme"),
            (
                &[
                    prod,
                    key,
                    redis,
                    smtp,
                    sms,
                    "[admin]\ntokens = [\"short\"]\n",
                ],
                "admin.tokens",
            ),
            (&[prod, key, smtp, sms], "store.url = \"redis://"),
            (
                &[prod, key, redis, smtp, "[sms]\ntransport = \"outbox\"\n"],
                "set sms.url",
            ),
            (
                &[
                    prod,
                    key,
                    redis,
                    smtp,
                    sms,
                    "[email]\ntransport = \"outbox\"\n",
                ],
                "email.transport",
            ),
        ];
        for (layers, hint) in cases {
            let err = Settings::from_layers(layers)
                .expect_err("production must refuse")
                .to_string();
            assert!(
                err.contains(hint),
                "{layers:?} gave {err:?}, which does not say {hint:?}"
            );
        }
        let ok = Settings::from_layers(&[prod, key, redis, smtp, sms])
            .expect("complete production settings load");
        assert_eq!(ok.email_transport(), EmailTransport::Smtp);
        assert_eq!(ok.sms_transport(), SmsTransport::Http);
        assert!(ok.email_offered() && ok.sms_offered());
        // A channel left unconfigured is not offered, rather than refused or sent to a file.
        let email_only = Settings::from_layers(&[prod, key, redis, smtp]).expect("email only");
        assert!(email_only.email_offered() && !email_only.sms_offered());
        // Bearer callers are checked callers: production accepts them without allowed_networks.
        let bearer = format!(
            "[security]\nauth_scheme = [\"bearer\"]\noauth_clients = [{{ id = \"gc\", secret_sha256 = \"{}\" }}]\n",
            "ab".repeat(32)
        );
        Settings::from_layers(&[prod, key_only, redis, smtp, sms, &bearer])
            .expect("production with bearer callers");
        let err = Settings::from_layers(&[
            prod,
            key_only,
            redis,
            smtp,
            sms,
            "[security]\nauth_scheme = [\"none\"]\n",
        ])
        .expect_err("a list of none is still none")
        .to_string();
        assert!(err.contains("security.auth_scheme"), "{err}");
    }

    #[test]
    fn production_wants_a_basic_password_of_16_characters() {
        let prod =
            "[server]\nenvironment = \"production\"\n[store]\nurl = \"redis://127.0.0.1:6379/\"\n";
        let basic = |password: &str| {
            format!(
                "[security]\nencryption_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n\
                 auth_scheme = \"basic\"\nuser_id = \"gia\"\npassword = \"{password}\"\n"
            )
        };
        let err = Settings::from_layers(&[prod, &basic("fifteen-chars-x")])
            .expect_err("a 15-character password in production")
            .to_string();
        assert!(
            err.contains("security.password") && err.contains("16 characters"),
            "{err}"
        );
        Settings::from_layers(&[prod, &basic("sixteen-chars-xy")])
            .expect("16 characters are enough");
        Settings::from_layers(&[&basic("short")]).expect("development takes any password");
    }
}
