//! Loading the settings from their layers: the compiled-in defaults, the TOML file,
//! `TFA__SECTION__KEY` variables (`EnvVars`), `*_file` secrets, and the live overlay
//! (`Settings::with_overlay`).

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::{ConfigError, DEFAULT_TOML, Settings, admin, invalid};

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

/// A secret from the file `path` names (trailing line breaks dropped); `None` when no file is named.
pub(super) fn read_secret_file(
    key: &str,
    path: &Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
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
}
