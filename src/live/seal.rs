//! The overlay as the store keeps it: reading and opening it (`read`, `open`), sealing and
//! unsealing its secrets (`config::live_keys::Secret`), resealing them under the current key (`reseal`), and the
//! check of `twofactor check-config` (`check_stored`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Live, keyring};
use crate::config::Settings;
use crate::config::live_keys::Secret;
use crate::crypto::Keyring;

/// The overlay as stored: a version and a JSON document of live keys, secrets sealed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Overlay {
    pub version: u64,
    /// Random per write: tells two overlays of one version apart (a Redis that lost data and
    /// numbered a later change again).
    #[serde(default)]
    pub id: String,
    pub doc: Value,
}

/// The stored overlay as this instance finds it.
pub(super) enum Stored {
    /// Readable: the overlay as stored, and its document with the secrets opened.
    Open { overlay: Overlay, doc: Value },
    /// Not readable here: `version` is the stored one as far as it can be told (the ETag an admin
    /// replaces it under), `cause` says why (never a secret).
    Unreadable { version: u64, cause: String },
}

/// The stored overlay and its raw text (for compare-and-set); version 0 and `{}` when none.
pub(super) async fn read(live: &Live) -> anyhow::Result<(Option<String>, Stored)> {
    let raw = live.store.get(&live.keys.settings()).await?;
    let stored = match &raw {
        Some(text) => open(&live.keyring, text),
        None => Stored::Open {
            overlay: Overlay::default(),
            doc: json!({}),
        },
    };
    Ok((raw, stored))
}

/// Parses a stored overlay and opens its secrets.
fn open(keyring: &Keyring, text: &str) -> Stored {
    match serde_json::from_str::<Overlay>(text) {
        Err(e) => Stored::Unreadable {
            // The version alone may still be there to tell, for the ETag.
            version: serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("version")?.as_u64())
                .unwrap_or(0),
            cause: format!("its JSON is unreadable ({})", json_fault(&e)),
        },
        Ok(overlay) => match unseal(keyring, &overlay.doc) {
            Ok(doc) => Stored::Open { overlay, doc },
            Err(cause) => Stored::Unreadable {
                version: overlay.version,
                cause,
            },
        },
    }
}

/// What is wrong with a JSON text, by kind and place only: serde's own message may quote a value.
fn json_fault(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

/// Seals the secret paths of `doc` for the store.
pub(super) fn seal(keyring: &Keyring, doc: &Value) -> Value {
    let mut doc = doc.clone();
    for path in Secret::ALL.map(Secret::pointer) {
        if let Some(v) = doc.pointer_mut(path)
            && !v.is_null()
        {
            let sealed = keyring.encrypt(v.to_string().as_bytes(), "settings");
            *v = json!({ "sealed": sealed });
        }
    }
    doc
}

/// Opens what [`seal`] sealed; the error says which value would not open and why.
fn unseal(keyring: &Keyring, doc: &Value) -> Result<Value, String> {
    use crate::crypto::CryptoError;
    let mut doc = doc.clone();
    for path in Secret::ALL.map(Secret::pointer) {
        if let Some(v) = doc.pointer_mut(path)
            && let Some(sealed) = v.get("sealed").and_then(Value::as_str)
        {
            let name = path.trim_start_matches('/').replace('/', ".");
            let plain = keyring.decrypt(sealed, "settings").map_err(|e| match e {
                CryptoError::UnknownKey(id) => format!(
                    "{name} is sealed under a key this instance does not hold (key id {id}): \
                     add that key to security.previous_encryption_keys, or replace the overlay"
                ),
                CryptoError::Tampered(id) => {
                    format!("{name} does not open with key {id} (altered in the store?)")
                }
                CryptoError::Malformed => format!("{name} is not a sealed value"),
            })?;
            *v = serde_json::from_slice(&plain)
                .map_err(|e| format!("{name} opens to unreadable JSON ({})", json_fault(&e)))?;
        }
    }
    Ok(doc)
}

/// Reseals the overlay's secrets under the current key, for `twofactor keys reseal`; answers how
/// many values it resealed. Written by compare-and-set so an admin's change made meanwhile is never
/// overwritten: a lost race reads again, a few times. Version and id stay, since the settings are
/// the same and no instance need apply them again. The history holds no sealed values (secrets
/// appear there only as `set`/`unset`), so there is nothing of it to reseal.
pub async fn reseal(live: &Live) -> anyhow::Result<usize> {
    let key = live.keys.settings();
    for _ in 0..5 {
        let Some(raw) = live.store.get(&key).await? else {
            return Ok(0);
        };
        let mut overlay: Overlay = serde_json::from_str(&raw).map_err(|e| {
            anyhow::anyhow!(
                "the stored settings overlay is unreadable JSON ({}): replace it through the admin API",
                json_fault(&e)
            )
        })?;
        let mut resealed = 0;
        for path in Secret::ALL.map(Secret::pointer) {
            if let Some(v) = overlay.doc.pointer_mut(path)
                && let Some(sealed) = v.get("sealed").and_then(Value::as_str)
                && !live.keyring.is_current(sealed)
            {
                let plain = live
                    .keyring
                    .decrypt(sealed, "settings")
                    .map_err(|e| anyhow::anyhow!("settings overlay {path}: {e}"))?;
                *v = json!({ "sealed": live.keyring.encrypt(&plain, "settings") });
                resealed += 1;
            }
        }
        if resealed == 0 {
            return Ok(0);
        }
        let text = serde_json::to_string(&overlay)?;
        if live.store.compare_and_set(&key, Some(&raw), &text).await? {
            return Ok(resealed);
        }
    }
    anyhow::bail!("the settings overlay kept changing while it was resealed: run this again")
}

/// For `twofactor check-config`: whether the stored overlay opens and applies with these settings.
/// `Ok(None)` when there is nothing to check from here (the memory store, or a store not reached
/// within 5 s, which the store check reports), `Ok(Some(line))` when it is fine, `Err(problem)`.
pub async fn check_stored(settings: &Settings) -> Result<Option<String>, String> {
    if settings.store.url.starts_with("memory:") {
        return Ok(None);
    }
    let attempt = async {
        let root_ca = settings.store.root_ca().ok()?;
        let store = crate::store::connect_trusting(&settings.store.url, root_ca)
            .await
            .ok()?;
        let key = crate::store::Keys::new(&settings.store.key_prefix).settings();
        store.get(&key).await.ok()
    };
    let Ok(Some(raw)) = tokio::time::timeout(Duration::from_secs(5), attempt).await else {
        return Ok(None);
    };
    let Some(text) = raw else {
        return Ok(Some("  live settings: none stored".to_string()));
    };
    let keyring = keyring(settings).map_err(|e| format!("{e:#}"))?;
    match open(&keyring, &text) {
        Stored::Unreadable { version, cause } => Err(format!(
            "the stored live settings (version {version}) cannot be opened: {cause}"
        )),
        Stored::Open { overlay, doc } => match settings.with_overlay(&doc) {
            Ok(_) => Ok(Some(format!(
                "  live settings: version {} opens and applies",
                overlay.version
            ))),
            Err(e) => Err(format!(
                "the stored live settings (version {}) cannot be applied: {e}",
                overlay.version
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_paths_round_trip_and_hide_their_values() {
        let keyring = Keyring::generate();
        let doc = json!({"email": {"smtp": {"password": "hunter2"}}, "sms": {"url": "https://u:p@gw", "from": "Bank"}});
        let sealed = seal(&keyring, &doc);
        let text = sealed.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("u:p@"),
            "{text}"
        );
        assert!(text.contains("Bank"));
        assert_eq!(unseal(&keyring, &sealed).expect("opens"), doc);
    }
}
