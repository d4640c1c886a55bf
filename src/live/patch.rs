//! Changing the live settings: a JSON merge patch checked (only live keys, placeholders
//! restored, credentials restated where they would go somewhere new: `secrets_stay_home`),
//! validated, stored by compare-and-set, recorded and announced (`patch`); `PatchError`.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Live;
use super::history::{Entry, HISTORY, changes, now_rfc3339};
use super::seal::{Overlay, Stored, read, seal};
use super::view::{PLACEHOLDER, host_of, redact_header, redact_url, secrets};
use crate::config::live_keys::{LivePatch, NotLive};
use crate::config::{ConfigError, Settings};

/// Why a patch was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The overlay changed since the version the admin read.
    #[error("the settings changed since version {0}: read them again")]
    Stale(u64),
    /// The stored overlay cannot be opened here, and the patch did not ask to replace it.
    #[error(
        "the stored settings (version {version}) cannot be opened by this instance: {cause}. \
         Either give this instance the key they were sealed under (security.previous_encryption_keys) \
         and try again, or replace them: send this PATCH again with If-Match: \"{version}\" and \
         X-Replace-Unreadable: true; it is then applied over the file's settings, and what the \
         unreadable overlay held (its secrets included) is discarded"
    )]
    Unreadable { version: u64, cause: String },
    /// Not a valid change; `key` names the setting when known.
    #[error("{message}")]
    Invalid {
        key: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Fault(#[from] anyhow::Error),
}

fn invalid(key: &str, message: impl Into<String>) -> PatchError {
    PatchError::Invalid {
        key: Some(key.to_string()),
        message: format!("{key}: {}", message.into()),
    }
}

impl From<ConfigError> for PatchError {
    fn from(e: ConfigError) -> PatchError {
        let key = match &e {
            ConfigError::Invalid { key, .. } | ConfigError::File { key, .. } => Some(key.clone()),
            // figment names the key as `for key "default.codes.digits"`.
            ConfigError::Parse(m) => m.split("for key \"").nth(1).and_then(|rest| {
                let key = rest.split('"').next()?;
                let key = key.strip_prefix("default.").unwrap_or(key);
                // A list's entry is named by its index (`sms.success_statuses.1`): the key is the list.
                let named: Vec<&str> = key
                    .split('.')
                    .filter(|part| !part.bytes().all(|b| b.is_ascii_digit()))
                    .collect();
                Some(named.join("."))
            }),
        };
        // The form shows this beside the field: the rule's words without the "configuration:" lead.
        let text = e.to_string();
        let message = text
            .strip_prefix("configuration: ")
            .unwrap_or(&text)
            .to_string();
        PatchError::Invalid { key, message }
    }
}

/// Refuses anything but live keys ([`LivePatch`]), so a patch cannot reach the listener, the
/// store or a file path.
fn check_live_keys(patch: &Value) -> Result<(), PatchError> {
    LivePatch::read(patch)
        .map(drop)
        .map_err(|NotLive { key, message }| PatchError::Invalid { key, message })
}

/// Turns values a GET showed with [`PLACEHOLDER`]s back into the current ones, so a form can send
/// back what it was given without knowing the secrets.
fn restore_placeholders(patch: &mut Value, current: &Settings) -> Result<(), PatchError> {
    if let Some(url) = patch.pointer_mut("/sms/url")
        && let Some(text) = url.as_str()
        && text.contains(PLACEHOLDER)
    {
        if text != redact_url(&current.sms.url) {
            return Err(invalid(
                "sms.url",
                "write the whole URL, or send it back exactly as GET shows it",
            ));
        }
        *url = json!(current.sms.url);
    }
    if let Some(headers) = patch
        .pointer_mut("/sms/request_headers")
        .and_then(Value::as_array_mut)
    {
        for h in headers.iter_mut() {
            let Some(text) = h.as_str().filter(|t| t.contains(PLACEHOLDER)) else {
                continue;
            };
            let original = current
                .sms
                .request_headers
                .iter()
                .find(|c| redact_header(c) == text)
                .ok_or_else(|| {
                    invalid(
                        "sms.request_headers",
                        format!("{text:?}: write the whole header, or send it back exactly as GET shows it"),
                    )
                })?;
            *h = json!(original);
        }
    }
    Ok(())
}

/// Refuses a change that would send stored credentials to a new place or over a weaker channel: a
/// new SMS gateway host, or its URL going from `https` to anything else, must come with its headers
/// and body restated; a new SMTP host, or a weaker `email.smtp.security` (tls > starttls > none),
/// with its password.
fn secrets_stay_home(current: &Settings, next: &Settings, patch: &Value) -> Result<(), PatchError> {
    let sms_why = if host_of(&current.sms.url) != host_of(&next.sms.url) {
        Some("the gateway's host changes")
    } else if is_https(&current.sms.url) && !is_https(&next.sms.url) {
        Some("the gateway's URL goes from https to plain http")
    } else {
        None
    };
    if let Some(why) = sms_why {
        let held = secrets(current);
        let headers_held = held.keys().any(|k| k.starts_with("sms.request_headers."));
        let restated = |path: &str| {
            patch
                .pointer(path)
                .is_some_and(|v| !v.to_string().contains(PLACEHOLDER))
        };
        if headers_held && !restated("/sms/request_headers") {
            return Err(invalid(
                "sms.request_headers",
                format!(
                    "{why}: restate its headers in full, so no credential goes to the new host unasked"
                ),
            ));
        }
        if !current.sms.request_body.is_empty() && !restated("/sms/request_body") {
            return Err(invalid(
                "sms.request_body",
                format!(
                    "{why}: restate the body in full, so no credential goes to the new host unasked"
                ),
            ));
        }
    }
    let (old_smtp, new_smtp) = (&current.email.smtp, &next.email.smtp);
    let smtp_why = if old_smtp.host != new_smtp.host {
        Some("the SMTP host changes")
    } else if new_smtp.security.rank() < old_smtp.security.rank() {
        Some("email.smtp.security gets weaker")
    } else {
        None
    };
    if let Some(why) = smtp_why
        && !old_smtp.password.expose_secret().is_empty()
        && patch.pointer("/email/smtp/password").is_none()
    {
        return Err(invalid(
            "email.smtp.password",
            format!(
                "{why}: give its password again (or null for none), so the old one does not go out unasked"
            ),
        ));
    }
    Ok(())
}

/// Whether a URL template uses `https`.
fn is_https(url: &str) -> bool {
    url.trim_start()
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("https"))
}

/// Applies a JSON merge patch (RFC 7396) of live keys, made by `by` against overlay `expected`:
/// validated as start-up configuration is, stored (secrets sealed) only if nothing changed
/// meanwhile, recorded in the history, announced to the other instances and installed here.
/// Answers the new version and settings. An overlay this instance cannot open is refused
/// ([`PatchError::Unreadable`]) unless `replace_unreadable`: then the patch is applied over the
/// file's settings and replaces it.
pub async fn patch(
    live: &Live,
    expected: u64,
    mut patch: Value,
    by: &str,
    replace_unreadable: bool,
) -> Result<(u64, Settings), PatchError> {
    check_live_keys(&patch)?;
    let (raw, stored) = read(live).await?;
    let (stored_version, doc, current, replaced) = match stored {
        Stored::Unreadable { version, cause } => {
            if !replace_unreadable {
                return Err(PatchError::Unreadable { version, cause });
            }
            // Nothing of it can be trusted to mean what it meant: start from the file's settings.
            (version, json!({}), live.base().clone(), Some(cause))
        }
        Stored::Open { overlay, doc } => {
            if overlay.version == expected && replace_unreadable {
                return Err(PatchError::Invalid {
                    key: None,
                    message: "X-Replace-Unreadable: this instance can open the stored settings; \
                              send the patch without that header"
                        .into(),
                });
            }
            // A stored overlay that does not apply (the patch may be what mends it) leaves the
            // settings in effect as what placeholders and the history refer to.
            let current = live
                .base()
                .with_overlay(&doc)
                .unwrap_or_else(|_| live.load().settings.clone());
            (overlay.version, doc, current, None)
        }
    };
    if stored_version != expected {
        return Err(PatchError::Stale(expected));
    }
    // Whether secrets were restated is judged on the patch as sent, before placeholders resolve.
    let as_sent = patch.clone();
    restore_placeholders(&mut patch, &current)?;
    let mut next = doc.clone();
    json_patch::merge(&mut next, &patch);
    let settings = live.base().with_overlay(&next)?;
    secrets_stay_home(&current, &settings, &as_sent)?;
    // Senders are what check what validation cannot (templates, TLS set-up): build them now.
    let snapshot = live
        .prepare(settings.clone())
        .map_err(|e| PatchError::Invalid {
            key: None,
            message: format!("{e:#}"),
        })?;
    // A replacement's version is past any this instance applied, so it installs here too.
    let version = match replaced {
        Some(_) => stored_version.max(live.applied_version()) + 1,
        None => stored_version + 1,
    };
    let written = Overlay {
        version,
        id: crate::crypto::random_id(),
        doc: seal(&live.keyring, &next),
    };
    let stored = serde_json::to_string(&written).map_err(anyhow::Error::from)?;
    if !live
        .store
        .compare_and_set(&live.keys.settings(), raw.as_deref(), &stored)
        .await
        .map_err(anyhow::Error::from)?
    {
        return Err(PatchError::Stale(expected));
    }
    let entry = Entry {
        at: now_rfc3339(),
        by: by.to_string(),
        version,
        changes: changes(&current, &settings, &patch),
        note: replaced.as_ref().map(|cause| {
            format!(
                "replaced an overlay this instance could not open (version {stored_version}: {cause})"
            )
        }),
    };
    let keys: Vec<&str> = entry.changes.iter().map(|c| c.key.as_str()).collect();
    match &replaced {
        None => {
            tracing::info!(target: "audit", event = "admin-settings-patch", admin = by, version, keys = %keys.join(","), outcome = "changed")
        }
        Some(cause) => {
            tracing::warn!(target: "audit", event = "admin-settings-replace-unreadable", admin = by, version, replaced_version = stored_version, cause = %cause, keys = %keys.join(","), outcome = "replaced")
        }
    }
    // The change is stored: from here on nothing may answer as if it were not. A history entry
    // or a message that does not get through is logged; other instances re-read within a second.
    {
        let _applying = live.applying.lock().await;
        if live.applied().0 < version {
            live.install(&written, snapshot);
        }
    }
    let history = serde_json::to_string(&entry).unwrap_or_default();
    if let Err(e) = live
        .store
        .push_capped(&live.keys.settings_history(), &history, HISTORY)
        .await
    {
        tracing::error!(version, cause = %e, "settings changed, but its history entry was not written");
    }
    if let Err(e) = live
        .store
        .publish(&live.keys.settings_channel(), &version.to_string())
        .await
    {
        tracing::warn!(version, cause = %e, "settings changed; other instances will see it on their next re-read");
    }
    Ok((version, settings))
}
