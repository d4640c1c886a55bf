//! Settings: compiled-in defaults, then a TOML file, then `TFA__SECTION__KEY` environment variables.
//!
//! Every key is typed and unknown keys are refused, so a typo fails at start with the key's name
//! instead of being silently ignored. Cross-field rules live in [`Settings::validate`].

pub mod admin;
pub mod directory;
pub mod live;
pub mod outbound;
pub mod values;

pub use directory::DirectorySettings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on; port 0 picks a free one (tests).
    pub bind: String,
    /// `production` refuses the outbox and the memory store.
    pub environment: Environment,
    /// Largest request body accepted; larger ones get 413 with the endpoint's XML.
    pub max_body_bytes: usize,
    /// Largest single parameter value accepted.
    pub max_param_bytes: usize,
    /// HTTP worker threads; 0 means two per core (see [`ServerSettings::http_workers`]).
    pub workers: usize,
    /// Seconds in-flight requests get to finish on SIGTERM.
    pub shutdown_timeout_seconds: u64,
    /// Time to receive a whole request body once its headers are in; slower bodies get 408.
    pub body_timeout_ms: u64,
    /// Open connections each worker accepts; more wait in the listen backlog.
    pub max_connections_per_worker: usize,
    /// PEM certificate chain; with `tls_key_file`, the server speaks HTTPS only.
    pub tls_cert_file: String,
    /// PEM private key.
    pub tls_key_file: String,
}

impl ServerSettings {
    /// The HTTP workers to start. By default two per core: a worker spends part of each request
    /// waiting for Redis, and with one per core that wait leaves the core idle under load
    /// (the benchmark's wrong-code checks ran 18 % faster with two).
    pub fn http_workers(&self) -> usize {
        match self.workers {
            0 => 2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `twofactor=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory://`, `redis://…`, `rediss://…`, `redis+sentinel://…` or `redis+cluster://…`.
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// PEM file of the CA(s) that signed the Redis servers' certificates, for `rediss://` and
    /// `rediss+cluster://`; when set, the only roots trusted. Empty: the public (webpki) roots.
    pub ca_file: String,
}

impl StoreSettings {
    /// The PEM of `ca_file`, checked to hold at least one certificate; `None` when unset.
    pub fn root_ca(&self) -> Result<Option<Vec<u8>>, String> {
        use rustls_pki_types::pem::PemObject;
        if self.ca_file.is_empty() {
            return Ok(None);
        }
        let pem = std::fs::read(&self.ca_file)
            .map_err(|e| format!("store.ca_file: cannot read {}: {e}", self.ca_file))?;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("store.ca_file: {} is not PEM: {e}", self.ca_file))?;
        if certs.is_empty() {
            return Err(format!(
                "store.ca_file: {} holds no PEM certificate",
                self.ca_file
            ));
        }
        Ok(Some(pem))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiaSettings {
    /// Parameter names that carry the customer id; the first present wins.
    pub customer_id_params: Vec<String>,
    /// Parameter names that carry the call id; the first present wins.
    pub call_id_params: Vec<String>,
    /// Parameter names that carry the caller's number (ANI); the first present wins.
    pub caller_number_params: Vec<String>,
}

/// The `<status>` strings; each is a callflow path name, so each can be renamed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statuses {
    pub success: String,
    pub not_found: String,
    pub incorrect_code: String,
    pub code_expired: String,
    pub locked: String,
    pub send_limited: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSettings {
    /// Length of a sent code, 4 to 10.
    pub digits: u32,
    pub ttl_seconds: u64,
    /// Wrong tries one code survives; the last one deletes it.
    pub max_verify_attempts: u32,
    /// Sends per customer per `send_window_seconds`.
    pub max_sends: u32,
    pub send_window_seconds: u64,
    /// How long a repeat of the accepted code in the same call answers success again, uncounted.
    pub retry_grace_seconds: u64,
    /// Sends from one caller number (the withheld line included) across customers per
    /// `send_window_seconds`; 0 turns the limit off.
    pub max_sends_per_caller: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettings {
    pub max_failures: u32,
    pub window_seconds: u64,
    pub duration_seconds: u64,
    /// Wrong codes per caller number across all customers in the window; 0 turns the limit off.
    pub max_failures_per_caller: u32,
    /// The same for the one shared line of every withheld or unusable caller number; 0 off.
    pub max_failures_withheld: u32,
    /// Wrong codes in a row for a customer (or pair), across locks and windows, that lock until the
    /// support desk unlocks; only a success or the desk's unlock starts the count again. 1 to 100
    /// (NIST SP 800-63B §5.2.2 allows at most 100).
    pub max_consecutive_failures: u32,
    /// What `max_failures` locks: the customer, or the pair (customer, caller number).
    pub scope: LockoutScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockoutScope {
    Customer,
    Caller,
}

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

/// A CIDR (`10.0.0.0/8`) or a single address, parsed when the settings load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Network(pub ipnet::IpNet);

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Network)
            .map_err(|_| format!("{s:?} is not a CIDR like 10.0.0.0/8"))
    }
}

/// An ISO 3166 region (`GB`), or none (empty string), parsed when the settings load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Region(pub Option<phonenumber::country::Id>);

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            return Ok(Region(None));
        }
        s.parse()
            .map(|id| Region(Some(id)))
            .map_err(|_| format!("{s:?} is not an ISO 3166 region like GB"))
    }
}

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
    pub method: String,
    /// URL template; substituted values are percent-encoded.
    pub url: String,
    /// `"Name: Value"` templates.
    pub request_headers: Vec<String>,
    /// Body template; values are escaped for the Content-Type header sent.
    pub request_body: String,
    pub timeout_ms: u64,
    /// Whether the recipient number carries a leading `+` (also in check-verified-contact-methods).
    pub plus_symbol_before_recipient_number: bool,
    pub from: String,
    /// Text of the SMS: `{code}`, `{minutes}`.
    pub message: String,
    /// Gateway statuses that mean sent: exact codes (`"202"`) or classes (`"2xx"`).
    pub success_statuses: Vec<String>,
    /// A regex that, found in the gateway's answer, means failure even with a success status.
    pub failure_body_pattern: String,
    /// Sends to one number per rolling hour; 0 disables the cap.
    pub max_per_number_per_hour: u32,
    /// Country calling codes (e.g. `"44"`) SMS may go to; empty allows all.
    pub allowed_country_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSettings {
    pub issuer: String,
    pub skew_steps: u8,
    pub period_seconds: u64,
    pub digits: usize,
    /// `SHA1`, `SHA256` or `SHA512`; authenticator apps mostly support only SHA1.
    pub algorithm: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Named bearer tokens with roles (see [`admin::AdminTokens`]); empty disables the admin API.
    pub tokens: admin::AdminTokens,
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// A listener of its own for `/admin` and `/metrics` (e.g. `127.0.0.1:9090`); empty serves them
    /// on `server.bind`.
    pub bind: String,
    /// CIDRs allowed to reach the admin API, on either listener; empty allows all.
    pub allowed_networks: Vec<Network>,
    /// Admin page sessions end after this many seconds without a request.
    pub session_idle_seconds: u64,
    /// Admin page sessions end this long after login, however busy (absolute lifetime).
    pub session_max_seconds: u64,
    /// `Secure` on the session cookie; unset means on in production or with `server.tls_cert_file`
    /// (see [`Settings::admin_cookie_secure`]).
    #[serde(default)]
    pub cookie_secure: Option<bool>,
    /// Origins (`https://desk.example`) given CORS headers on `/admin`; empty gives none.
    pub allowed_origins: Vec<String>,
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

/// `TFA__SECTION__KEY` variables, each value kept as the string it is, so `TFA__SECURITY__PASSWORD=123456`
/// stays a password rather than becoming a number (figment's own `Env` would parse it). Numbers and
/// booleans are read from those strings by the lossy extraction; a value written as a TOML array
/// (`'["t1", "t2"]'`) is parsed as one.
struct EnvVars(Env);

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Value};
        fn merge(into: &mut Dict, from: Dict) {
            for (k, v) in from {
                match (into.get_mut(&k), v) {
                    (Some(Value::Dict(_, old)), Value::Dict(_, new)) => merge(old, new),
                    (_, v) => {
                        into.insert(k, v);
                    }
                }
            }
        }
        let mut dict = Dict::new();
        for (key, raw) in self.0.iter() {
            let value = if raw.trim_start().starts_with('[') {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            } else {
                Value::from(raw)
            };
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), value) {
                merge(&mut dict, nested);
            }
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// `TFA_…` names that look meant for us but are not read (a single underscore, say).
fn suspicious_env_names(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .filter(|n| n.starts_with("TFA_") && !n.starts_with("TFA__") && n != "TFA_CONFIG")
        .collect()
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A secret from the file `path` names (trailing line breaks dropped); `None` when no file is named.
fn read_secret_file(key: &str, path: &Option<PathBuf>) -> Result<Option<String>, ConfigError> {
    match path {
        Some(p) if !p.as_os_str().is_empty() => std::fs::read_to_string(p)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|source| ConfigError::File {
                key: key.into(),
                path: p.clone(),
                source,
            }),
        _ => Ok(None),
    }
}

impl Settings {
    /// Defaults, then the file (if any), then `TFA__*` variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(EnvVars(Env::prefixed("TFA__").split("__")));
        let settings = Self::from_figment(figment)?;
        for name in suspicious_env_names(std::env::vars().map(|(k, _)| k)) {
            // Logging is not set up yet; stderr is where an operator looks at start.
            eprintln!(
                "warning: environment variable {name} is ignored: settings are TFA__SECTION__KEY (two underscores)"
            );
        }
        Ok(settings)
    }

    /// Defaults with a TOML fragment over them (tests and tools).
    pub fn from_toml(overrides: &str) -> Result<Settings, ConfigError> {
        Self::from_layers(&[overrides])
    }

    /// Defaults with each TOML fragment merged over the one before.
    pub fn from_layers(layers: &[&str]) -> Result<Settings, ConfigError> {
        let figment = layers
            .iter()
            .fold(Figment::from(Toml::string(DEFAULT_TOML)), |f, layer| {
                f.merge(Toml::string(layer))
            });
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        // Lossy: a number or boolean may be written as a string (every environment value is one).
        let mut settings: Settings = figment.extract_lossy().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError::Parse(msgs.join("; "))
        })?;
        settings.read_secret_files()?;
        settings.validate()?;
        settings.source = figment;
        Ok(settings)
    }

    /// These settings' sources with `overlay` (a JSON document of live keys) over them, read and
    /// validated exactly as start-up configuration is: the same rules and the same messages.
    pub fn with_overlay(&self, overlay: &serde_json::Value) -> Result<Settings, ConfigError> {
        let mut figment = self
            .source
            .clone()
            .merge(figment::providers::Serialized::defaults(overlay));
        // A password set live wins over a password file named at start.
        if overlay.pointer("/email/smtp/password").is_some() {
            figment = figment.merge(figment::providers::Serialized::default(
                "email.smtp.password_file",
                "",
            ));
        }
        Self::from_figment(figment)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        let read = read_secret_file;
        self.directory.read_secret_files()?;
        if let Some(v) = read(
            "security.encryption_key_file",
            &self.security.encryption_key_file,
        )? {
            self.security.encryption_key = v.into();
        }
        if let Some(v) = read("security.password_file", &self.security.password_file)? {
            self.security.password = v.into();
        }
        for client in &mut self.security.oauth_clients {
            if let Some(secret) = read("security.oauth_clients.secret_file", &client.secret_file)? {
                if !client.secret_sha256.is_empty() {
                    return Err(invalid(
                        "security.oauth_clients",
                        format!(
                            "client {:?} has both secret_sha256 and secret_file: give one",
                            client.id
                        ),
                    ));
                }
                if secret.is_empty() {
                    return Err(invalid(
                        "security.oauth_clients",
                        format!("client {:?}: secret_file is empty", client.id),
                    ));
                }
                client.secret_sha256 = crate::crypto::sha256_hex(secret.as_bytes());
            }
        }
        if let Some(v) = read("email.smtp.password_file", &self.email.smtp.password_file)? {
            self.email.smtp.password = v.into();
        }
        if let Some(v) = read("admin.tokens_file", &self.admin.tokens_file)? {
            self.admin.tokens = admin::AdminTokens::from_lines("admin.tokens_file", &v)
                .map_err(ConfigError::Parse)?;
        }
        Ok(())
    }

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
        if reqwest::Method::from_bytes(self.sms.method.as_bytes()).is_err() {
            return Err(invalid(
                "sms.method",
                format!("{:?} is not an HTTP method", self.sms.method),
            ));
        }
        for h in &self.sms.request_headers {
            if !h.contains(':') {
                return Err(invalid(
                    "sms.request_headers",
                    format!("{h:?} is not written as \"Name: Value\""),
                ));
            }
        }
        for s in &self.sms.success_statuses {
            match values::StatusMatcher::parse(s) {
                None => {
                    return Err(invalid(
                        "sms.success_statuses",
                        format!("{s:?} is neither a status like \"200\" nor a class like \"2xx\""),
                    ));
                }
                // Redirects are never followed, so a 3xx never means the message was sent.
                Some(m) if m.matches_redirect() => {
                    return Err(invalid(
                        "sms.success_statuses",
                        format!(
                            "{s:?} is a redirect: redirects are not followed, so a 3xx is always a failed delivery"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if !self.sms.failure_body_pattern.is_empty() {
            regex::Regex::new(&self.sms.failure_body_pattern)
                .map_err(|e| invalid("sms.failure_body_pattern", e.to_string()))?;
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

    /// OAuth clients and token settings: ids usable in Basic credentials, unique, each with one
    /// well-formed secret digest; `bearer` needs a client.
    fn validate_oauth(&self) -> Result<(), ConfigError> {
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

    fn validate_production(&self) -> Result<(), ConfigError> {
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
    fn misspelt_variables_are_flagged() {
        let names = [
            "TFA_CODES__DIGITS",
            "TFA__CODES__DIGITS",
            "TFA_CONFIG",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            suspicious_env_names(names.into_iter()),
            ["TFA_CODES__DIGITS"]
        );
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::from_toml("").expect("defaults load");
        assert_eq!(s.codes.digits, 6);
        assert_eq!(s.statuses.not_found, "not found");
        assert_eq!(s.email_transport(), EmailTransport::Outbox);
    }

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
