//! The history of live changes: what changed (`changes`, secrets as `set`/`unset`), its entries
//! (`Entry`) and reading them (`history`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Live;
use super::view::{secrets, view};
use crate::config::Settings;
use crate::config::live_keys::Secret;

/// How many changes `GET /admin/v1/settings/history` keeps.
pub(super) const HISTORY: usize = 100;

/// One changed key, for the history: secrets as `set`/`unset`, never their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// A history entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    pub by: String,
    pub version: u64,
    pub changes: Vec<Change>,
    /// What else happened (an unreadable overlay replaced); absent for an ordinary change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Leaf paths of a JSON document and their values as text.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// What changed between two settings, as the history records it.
pub(super) fn changes(old: &Settings, new: &Settings, patch: &Value) -> Vec<Change> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut old_view = view(old);
    let mut new_view = view(new);
    let (old_secrets, new_secrets) = (secrets(old), secrets(new));
    old_view.as_object_mut().map(|o| o.remove("secrets"));
    new_view.as_object_mut().map(|o| o.remove("secrets"));
    flatten("", &old_view, &mut a);
    flatten("", &new_view, &mut b);
    let mut out: Vec<Change> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, v)| Change {
            key: k.clone(),
            old: a.get(k).cloned().unwrap_or_default(),
            new: v.clone(),
        })
        .collect();
    // A secret replaced by another reads "set" → "set": named all the same, since it was changed.
    for secret in Secret::ALL {
        let name = secret.key().to_string();
        let touched = patch.pointer(secret.pointer()).is_some();
        let state = |m: &BTreeMap<String, &'static str>| {
            m.iter()
                .filter(|(k, _)| k.starts_with(&name))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if secret == Secret::SmtpPassword && touched {
            out.push(Change {
                key: name.clone(),
                old: old_secrets.get(&name).copied().unwrap_or("unset").into(),
                new: new_secrets.get(&name).copied().unwrap_or("unset").into(),
            });
        } else if touched
            && state(&old_secrets) != state(&new_secrets)
            && !out.iter().any(|c| c.key == name)
        {
            out.push(Change {
                key: format!("{name} (secret)"),
                old: state(&old_secrets),
                new: state(&new_secrets),
            });
        }
    }
    out
}

/// The last changes, newest first.
pub async fn history(live: &Live) -> anyhow::Result<Vec<Entry>> {
    let items = live.store.list(&live.keys.settings_history()).await?;
    Ok(items
        .iter()
        .filter_map(|i| serde_json::from_str(i).ok())
        .collect())
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
