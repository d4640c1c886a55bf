//! `[directory]`: where customers' contacts come from (the store, a REST API, Genesys Cloud External
//! Contacts), how a source is reached and authenticated, and how long its answers are cached.
//! Read at start only (like `store.*`): a change needs a restart.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::values::{HeaderLine, HttpMethod};
use super::{ConfigError, Region, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// JSON list of `{id, email, phone, totp_secret}` loaded at start; empty for none.
    pub seed_file: String,
    /// ISO 3166 region for numbers written without `+`, e.g. `GB`; empty requires `+`.
    pub default_region: Region,
    /// Where contacts come from: `store`, `http` or `genesys_cloud`.
    pub source: DirectorySource,
    /// Seconds an external source's answer is kept (sealed) in the store; 0 asks every time.
    pub cache_ttl_seconds: u64,
    pub http: DirectoryHttp,
    pub genesys_cloud: GenesysCloud,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectorySource {
    Store,
    Http,
    GenesysCloud,
}

impl DirectorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectorySource::Store => "store",
            DirectorySource::Http => "http",
            DirectorySource::GenesysCloud => "genesys_cloud",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryAuth {
    None,
    Basic,
    Bearer,
    Oauth,
}

/// `[directory.http]`: any REST API that answers a customer as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryHttp {
    /// URL template; `{customer_id}` is replaced, percent-encoded.
    pub url: String,
    pub method: HttpMethod,
    /// `"Name: Value"` templates; `{customer_id}` is replaced as it is.
    pub request_headers: Vec<HeaderLine>,
    /// Budget for a whole lookup: token, request and answer.
    pub timeout_ms: u64,
    /// JSON Pointers (RFC 6901) into the answer.
    pub email_pointer: String,
    pub phone_pointer: String,
    /// When set, the contact is offered only if the value here is `true`.
    pub email_verified_pointer: String,
    pub phone_verified_pointer: String,
    pub auth: DirectoryAuth,
    pub username: String,
    pub password: SecretString,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub token: SecretString,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    pub scope: String,
}

/// `[directory.genesys_cloud]`: External Contacts, with OAuth client credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesysCloud {
    /// `mypurecloud.com`, `mypurecloud.ie`, `euw2.pure.cloud`, …
    pub region: String,
    /// Override `https://login.<region>` (proxies, tests).
    pub login_url: String,
    /// Override `https://api.<region>`.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Empty: the customer id is the External Contact's id. Otherwise a JSON Pointer into a contact
    /// (e.g. `/customFields/account_number_text`) whose value must equal the customer id; contacts
    /// are found with the search `GET /api/v2/externalcontacts/contacts?q=<id>`.
    pub search_pointer: String,
    /// Tried in order; the first present wins.
    pub email_pointers: Vec<String>,
    pub phone_pointers: Vec<String>,
    pub timeout_ms: u64,
}

impl GenesysCloud {
    /// `https://login.<region>`, or `login_url`.
    pub fn login_base(&self) -> String {
        base(&self.login_url, "login", &self.region)
    }
    /// `https://api.<region>`, or `api_url`.
    pub fn api_base(&self) -> String {
        base(&self.api_url, "api", &self.region)
    }
}

fn base(url: &str, host: &str, region: &str) -> String {
    if url.is_empty() {
        format!("https://{host}.{}", region.trim_matches('.'))
    } else {
        url.trim_end_matches('/').to_string()
    }
}

/// The longest lookup budget: the callflow's own store deadline (5 s) must not fire first.
const MAX_TIMEOUT_MS: u64 = 4_000;

impl DirectorySettings {
    pub(super) fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        let h = &mut self.http;
        for (key, path, target) in [
            (
                "directory.http.password_file",
                &h.password_file,
                &mut h.password,
            ),
            ("directory.http.token_file", &h.token_file, &mut h.token),
            (
                "directory.http.client_secret_file",
                &h.client_secret_file,
                &mut h.client_secret,
            ),
            (
                "directory.genesys_cloud.client_secret_file",
                &self.genesys_cloud.client_secret_file,
                &mut self.genesys_cloud.client_secret,
            ),
        ] {
            if let Some(v) = super::read_secret_file(key, path)? {
                *target = v.into();
            }
        }
        Ok(())
    }

    /// Checks the settings of the chosen source only; each error names the key.
    pub(super) fn validate(&self, production: bool) -> Result<(), ConfigError> {
        if self.cache_ttl_seconds > 86_400 {
            return Err(invalid(
                "directory.cache_ttl_seconds",
                "must be 0 (off) to 86400",
            ));
        }
        if self.source != DirectorySource::Store && !self.seed_file.is_empty() {
            return Err(invalid(
                "directory.seed_file",
                format!(
                    "customers come from directory.source = \"{}\", so there is nothing to seed: \
                     leave seed_file empty",
                    self.source.as_str()
                ),
            ));
        }
        match self.source {
            DirectorySource::Store => Ok(()),
            DirectorySource::Http => self.http.validate(production),
            DirectorySource::GenesysCloud => self.genesys_cloud.validate(production),
        }
    }
}

fn check_url(key: &str, url: &str, production: bool) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(&url.replace("{customer_id}", "x"))
        .map_err(|e| invalid(key, format!("{url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        // Contacts and credentials would cross the network in clear.
        "http" if production => Err(invalid(
            key,
            "production needs https:// (contacts and credentials would travel in clear)",
        )),
        "http" => Ok(()),
        other => Err(invalid(key, format!("scheme {other:?}: use https://"))),
    }
}

fn check_timeout(key: &str, ms: u64) -> Result<(), ConfigError> {
    if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
        return Err(invalid(
            key,
            format!("must be 1 to {MAX_TIMEOUT_MS}: a callflow's answer may not wait longer"),
        ));
    }
    Ok(())
}

fn check_pointer(key: &str, pointer: &str) -> Result<(), ConfigError> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(invalid(
            key,
            format!("{pointer:?} is not a JSON Pointer: it starts with / (e.g. /contact/email)"),
        ));
    }
    Ok(())
}

fn required(key: &str, value: &str, why: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(key, format!("is required {why}")));
    }
    Ok(())
}

impl DirectoryHttp {
    fn validate(&self, production: bool) -> Result<(), ConfigError> {
        required(
            "directory.http.url",
            &self.url,
            "with directory.source = \"http\"",
        )?;
        check_url("directory.http.url", &self.url, production)?;
        if !self.url.contains("{customer_id}") {
            return Err(invalid(
                "directory.http.url",
                "must contain {customer_id}, where the customer's id goes",
            ));
        }
        check_timeout("directory.http.timeout_ms", self.timeout_ms)?;
        if self.email_pointer.is_empty() && self.phone_pointer.is_empty() {
            return Err(invalid(
                "directory.http.email_pointer",
                "set email_pointer, phone_pointer or both: where the answer holds the contacts",
            ));
        }
        for (key, p) in [
            ("directory.http.email_pointer", &self.email_pointer),
            ("directory.http.phone_pointer", &self.phone_pointer),
            (
                "directory.http.email_verified_pointer",
                &self.email_verified_pointer,
            ),
            (
                "directory.http.phone_verified_pointer",
                &self.phone_verified_pointer,
            ),
        ] {
            check_pointer(key, p)?;
        }
        let why = "with directory.http.auth = ";
        match self.auth {
            DirectoryAuth::None => {}
            DirectoryAuth::Basic => {
                required(
                    "directory.http.username",
                    &self.username,
                    &format!("{why}\"basic\""),
                )?;
                required(
                    "directory.http.password",
                    self.password.expose_secret(),
                    &format!("{why}\"basic\" (or password_file)"),
                )?;
            }
            DirectoryAuth::Bearer => required(
                "directory.http.token",
                self.token.expose_secret(),
                &format!("{why}\"bearer\" (or token_file)"),
            )?,
            DirectoryAuth::Oauth => {
                required(
                    "directory.http.token_url",
                    &self.token_url,
                    &format!("{why}\"oauth\""),
                )?;
                check_url("directory.http.token_url", &self.token_url, production)?;
                required(
                    "directory.http.client_id",
                    &self.client_id,
                    &format!("{why}\"oauth\""),
                )?;
                required(
                    "directory.http.client_secret",
                    self.client_secret.expose_secret(),
                    &format!("{why}\"oauth\" (or client_secret_file)"),
                )?;
            }
        }
        Ok(())
    }
}

impl GenesysCloud {
    fn validate(&self, production: bool) -> Result<(), ConfigError> {
        let why = "with directory.source = \"genesys_cloud\"";
        if self.region.is_empty() && (self.login_url.is_empty() || self.api_url.is_empty()) {
            return Err(invalid(
                "directory.genesys_cloud.region",
                format!(
                    "is required {why} (e.g. mypurecloud.com, mypurecloud.ie, euw2.pure.cloud), \
                     unless login_url and api_url are both set"
                ),
            ));
        }
        if self.region.contains('/') || self.region.contains(':') {
            return Err(invalid(
                "directory.genesys_cloud.region",
                format!(
                    "{:?} is a URL: give the region's domain alone, e.g. mypurecloud.ie",
                    self.region
                ),
            ));
        }
        check_url(
            "directory.genesys_cloud.login_url",
            &self.login_base(),
            production,
        )?;
        check_url(
            "directory.genesys_cloud.api_url",
            &self.api_base(),
            production,
        )?;
        required("directory.genesys_cloud.client_id", &self.client_id, why)?;
        required(
            "directory.genesys_cloud.client_secret",
            self.client_secret.expose_secret(),
            &format!("{why} (or client_secret_file)"),
        )?;
        check_pointer(
            "directory.genesys_cloud.search_pointer",
            &self.search_pointer,
        )?;
        if self.email_pointers.is_empty() && self.phone_pointers.is_empty() {
            return Err(invalid(
                "directory.genesys_cloud.email_pointers",
                "set email_pointers, phone_pointers or both",
            ));
        }
        for p in &self.email_pointers {
            check_pointer("directory.genesys_cloud.email_pointers", p)?;
        }
        for p in &self.phone_pointers {
            check_pointer("directory.genesys_cloud.phone_pointers", p)?;
        }
        check_timeout("directory.genesys_cloud.timeout_ms", self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    const HTTP: &str = "[directory]\nsource = \"http\"\n[directory.http]\n";
    const OK_URL: &str = "url = \"https://crm.example/c/{customer_id}\"\n";

    #[test]
    fn directory_errors_name_the_key() {
        let http = |rest: &str| format!("{HTTP}{rest}");
        let with_url = |rest: &str| format!("{HTTP}{OK_URL}email_pointer = \"/email\"\n{rest}");
        let gc = |rest: &str| {
            format!("[directory]\nsource = \"genesys_cloud\"\n[directory.genesys_cloud]\n{rest}")
        };
        let cases = [
            ("[directory]\nsource = \"ldap\"".to_string(), "source"),
            (
                "[directory]\ncache_ttl_seconds = 90000".into(),
                "directory.cache_ttl_seconds",
            ),
            (http(""), "directory.http.url"),
            (
                http("url = \"ftp://crm.example/{customer_id}\"\nemail_pointer = \"/e\""),
                "directory.http.url",
            ),
            (
                http("url = \"https://crm.example/c\"\nemail_pointer = \"/e\""),
                "directory.http.url",
            ),
            (http(OK_URL), "directory.http.email_pointer"),
            (
                http(&format!("{OK_URL}email_pointer = \"email\"")),
                "directory.http.email_pointer",
            ),
            (
                with_url("phone_verified_pointer = \"x\""),
                "directory.http.phone_verified_pointer",
            ),
            (with_url("timeout_ms = 5000"), "directory.http.timeout_ms"),
            (with_url("method = \"GE T\""), "directory.http.method"),
            (
                with_url("request_headers = [\"no colon\"]"),
                "directory.http.request_headers",
            ),
            (
                with_url("auth = \"basic\"\npassword = \"p\""),
                "directory.http.username",
            ),
            (
                with_url("auth = \"basic\"\nusername = \"u\""),
                "directory.http.password",
            ),
            (with_url("auth = \"bearer\""), "directory.http.token"),
            (
                with_url("auth = \"oauth\"\nclient_id = \"c\"\nclient_secret = \"s\""),
                "directory.http.token_url",
            ),
            (
                with_url(
                    "auth = \"oauth\"\ntoken_url = \"https://login.example/t\"\nclient_id = \"c\"",
                ),
                "directory.http.client_secret",
            ),
            (with_url("auth = \"kerberos\""), "auth"),
            (
                with_url("password_file = \"/nonexistent/crm-password\""),
                "directory.http.password_file",
            ),
            (
                gc("client_id = \"c\"\nclient_secret = \"s\""),
                "directory.genesys_cloud.region",
            ),
            (
                gc("region = \"https://mypurecloud.ie\"\nclient_id = \"c\"\nclient_secret = \"s\""),
                "directory.genesys_cloud.region",
            ),
            (
                gc("region = \"mypurecloud.ie\"\nclient_id = \"c\""),
                "directory.genesys_cloud.client_secret",
            ),
            (
                gc(
                    "region = \"mypurecloud.ie\"\nclient_id = \"c\"\nclient_secret = \"s\"\nsearch_pointer = \"account\"",
                ),
                "directory.genesys_cloud.search_pointer",
            ),
            (
                format!(
                    "[directory]\nseed_file = \"customers.json\"\n{}",
                    &with_url("")[12..]
                ),
                "directory.seed_file",
            ),
        ];
        for (toml, key) in cases {
            let err = Settings::from_toml(&toml)
                .err()
                .unwrap_or_else(|| panic!("{toml:?} was accepted"))
                .to_string();
            assert!(
                err.contains(key),
                "{toml:?} gave {err:?}, which does not name {key}"
            );
        }
    }

    #[test]
    fn production_wants_https_to_the_source() {
        let prod = "[server]\nenvironment = \"production\"\n[store]\nurl = \"redis://127.0.0.1:6379/\"\n\
                    [security]\nencryption_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n\
                    allowed_networks = [\"10.0.0.0/8\"]\n";
        let source = "[directory]\nsource = \"http\"\n[directory.http]\n\
                      url = \"http://crm.example/c/{customer_id}\"\nemail_pointer = \"/email\"\n";
        let err = Settings::from_layers(&[prod, source])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("directory.http.url"), "{err}");
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn genesys_region_gives_login_and_api_hosts() {
        let s = Settings::from_toml(
            "[directory]\nsource = \"genesys_cloud\"\n[directory.genesys_cloud]\n\
             region = \"euw2.pure.cloud\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        )
        .expect("valid");
        let g = &s.directory.genesys_cloud;
        assert_eq!(g.login_base(), "https://login.euw2.pure.cloud");
        assert_eq!(g.api_base(), "https://api.euw2.pure.cloud");
        let s = Settings::from_toml(
            "[directory]\nsource = \"genesys_cloud\"\n[directory.genesys_cloud]\n\
             region = \"mypurecloud.ie\"\napi_url = \"https://proxy.bank.example/gc/\"\n\
             client_id = \"c\"\nclient_secret = \"s\"",
        )
        .expect("valid");
        let g = &s.directory.genesys_cloud;
        assert_eq!(g.login_base(), "https://login.mypurecloud.ie");
        assert_eq!(g.api_base(), "https://proxy.bank.example/gc");
    }
}
