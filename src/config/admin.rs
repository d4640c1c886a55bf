//! `[admin]` (`AdminSettings`: its listener, networks, sessions and origins), and `admin.tokens`:
//! named bearer tokens, each with a role, parsed and checked once when the settings load. An entry
//! is a bare token (an `admin` token named `token-N` after its position, as deployments wrote them
//! before names existed), a `"name:role:token"` string, or a table `{ name = "…", role = "read" |
//! "admin", token = "…" }`. `admin.tokens_file` lines take the string forms.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::values::Network;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Named bearer tokens with roles (see [`AdminTokens`]); empty disables the admin API.
    pub tokens: AdminTokens,
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
    /// (see [`Settings::admin_cookie_secure`](super::Settings::admin_cookie_secure)).
    #[serde(default)]
    pub cookie_secure: Option<bool>,
    /// Origins (`https://desk.example`) given CORS headers on `/admin`; empty gives none.
    pub allowed_origins: Vec<String>,
}

/// What a token (and a session made with it) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET and HEAD only: support staff looking things up.
    Read,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may send a request with `method` (`"GET"`, `"PUT"`, …).
    pub fn allows(self, method: &str) -> bool {
        match self {
            Role::Admin => true,
            Role::Read => matches!(method, "GET" | "HEAD"),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured credential. `Debug` shows the name and role; the token stays redacted.
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// Who acted, in audit lines and the settings history.
    pub name: String,
    pub role: Role,
    pub token: SecretString,
}

/// Every configured admin token; empty turns the admin API off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "Vec<Entry>")]
pub struct AdminTokens(Vec<AdminToken>);

/// An entry as written. No `Debug`: it holds the token in clear.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Line(String),
    Table(BTreeMap<String, String>),
}

impl TryFrom<Vec<Entry>> for AdminTokens {
    type Error = String;
    fn try_from(entries: Vec<Entry>) -> Result<AdminTokens, String> {
        AdminTokens::parse("admin.tokens", entries)
    }
}

impl AdminTokens {
    pub fn iter(&self) -> std::slice::Iter<'_, AdminToken> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lines of an `admin.tokens_file` (blank lines skipped).
    pub fn from_lines(key: &str, text: &str) -> Result<AdminTokens, String> {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Entry::Line(l.to_string()))
            .collect();
        AdminTokens::parse(key, entries)
    }

    /// Parses and checks every entry; messages name `key`, the entry's position and its name, never
    /// the token.
    fn parse(key: &str, entries: Vec<Entry>) -> Result<AdminTokens, String> {
        let mut tokens = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let n = i + 1;
            let at = |reason: String| format!("{key}: entry {n}: {reason}");
            let (name, role, token) = match entry {
                // An empty bare entry is how "no token" was written (`tokens = [""]`).
                Entry::Line(line) if line.trim().is_empty() => continue,
                Entry::Line(line) if !line.contains(':') => {
                    (format!("token-{n}"), Role::Admin.as_str().to_string(), line)
                }
                Entry::Line(line) => {
                    let mut parts = line.splitn(3, ':');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some(name), Some(role), Some(token)) => {
                            (name.to_string(), role.to_string(), token.to_string())
                        }
                        _ => {
                            return Err(at(
                                "write a bare token, \"name:role:token\" or a table { name, role, token }"
                                    .into(),
                            ));
                        }
                    }
                }
                Entry::Table(mut t) => {
                    let mut take = |field: &str| {
                        t.remove(field)
                            .ok_or_else(|| at(format!("the table has no {field}")))
                    };
                    let (name, role, token) = (take("name")?, take("role")?, take("token")?);
                    if let Some(other) = t.keys().next() {
                        return Err(at(format!(
                            "unknown field {other:?}: a table has name, role and token"
                        )));
                    }
                    (name, role, token)
                }
            };
            let name = name.trim().to_string();
            if name.is_empty() {
                return Err(at("the name is empty".into()));
            }
            if name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
            {
                return Err(at(format!(
                    "name {name:?}: use up to 64 letters, digits, '-', '_', '.' or '@'"
                )));
            }
            let role = Role::parse(role.trim()).ok_or_else(|| {
                at(format!(
                    "{name}: unknown role {:?}: use \"read\" or \"admin\"",
                    role.trim()
                ))
            })?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(at(format!("{name}: the token is empty")));
            }
            tokens.push(AdminToken {
                name,
                role,
                token: SecretString::from(token),
            });
        }
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for t in &tokens {
            if !names.insert(t.name.as_str()) {
                return Err(format!("{key}: the name {:?} is used twice", t.name));
            }
            // One token under two names would make the audit name a guess.
            if !secrets.insert(t.token.expose_secret()) {
                return Err(format!(
                    "{key}: {} has the same token as an earlier entry",
                    t.name
                ));
            }
        }
        Ok(AdminTokens(tokens))
    }
}

/// `admin.allowed_origins` entries are origins exactly as browsers send them in `Origin`:
/// `scheme://host[:port]`, no path, no trailing slash.
pub fn check_origins(origins: &[String]) -> Result<(), String> {
    for o in origins {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
            .unwrap_or("");
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '*', ' '])
            || o.chars().any(|c| c.is_control())
        {
            return Err(format!(
                "{o:?} is not an origin like https://desk.example or http://127.0.0.1:3000 (no path, no wildcard)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the real loader, so messages are checked as an operator sees them.
    fn parse_toml(list: &str) -> Result<AdminTokens, String> {
        crate::config::Settings::from_toml(&format!("[admin]\ntokens = {list}"))
            .map(|s| s.admin.tokens)
            .map_err(|e| e.to_string())
    }

    fn summary(t: &AdminTokens) -> Vec<(String, Role, String)> {
        t.iter()
            .map(|t| (t.name.clone(), t.role, t.token.expose_secret().to_string()))
            .collect()
    }

    #[test]
    fn every_form_parses_and_bare_tokens_stay_admin() {
        let t = parse_toml(
            r#"["bare-one", "desk:read:desk-token:with:colons", { name = "ops", role = "admin", token = "ops-token" }, "bare-two"]"#,
        )
        .expect("valid");
        assert_eq!(
            summary(&t),
            [
                ("token-1".into(), Role::Admin, "bare-one".into()),
                ("desk".into(), Role::Read, "desk-token:with:colons".into()),
                ("ops".into(), Role::Admin, "ops-token".into()),
                ("token-4".into(), Role::Admin, "bare-two".into()),
            ]
        );
        assert!(parse_toml(r#"[""]"#).expect("empty entry").is_empty());
        let file = AdminTokens::from_lines("admin.tokens_file", "a-token\n\n desk:read:d-token \n")
            .expect("file");
        assert_eq!(summary(&file)[1].0, "desk");
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_token() {
        for (list, says) in [
            (r#"["desk:reader:s3cret-value"]"#, "unknown role \"reader\""),
            (r#"[":read:s3cret-value"]"#, "name is empty"),
            (r#"["a:s3cret-value"]"#, "name:role:token"),
            (
                r#"["desk:read:s3cret-value", "desk:admin:other"]"#,
                "used twice",
            ),
            (r#"["s3cret-value", "x:admin:s3cret-value"]"#, "same token"),
            (
                r#"[{ name = "d", role = "read" }]"#,
                "the table has no token",
            ),
            (
                r#"[{ name = "d", role = "read", token = "s3cret-value", extra = "1" }]"#,
                "unknown field",
            ),
            (r#"["bad name:read:s3cret-value"]"#, "name \"bad name\""),
            (r#"["d:admin: "]"#, "token is empty"),
        ] {
            let err = parse_toml(list).expect_err(list);
            assert!(err.contains("admin.tokens"), "{list}: {err}");
            assert!(err.contains(says), "{list}: {err} does not say {says}");
            assert!(!err.contains("s3cret"), "{list}: {err} shows the token");
        }
    }

    #[test]
    fn read_may_only_look() {
        for m in ["GET", "HEAD"] {
            assert!(Role::Read.allows(m) && Role::Admin.allows(m));
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(!Role::Read.allows(m) && Role::Admin.allows(m));
        }
    }
}
