//! Live settings: what one request reads, and how admins change it while the service runs.
//!
//! A [`Snapshot`] holds a whole `Settings` and the senders built from it; each request loads one
//! snapshot and reads only it, so a change made meanwhile is seen by the next request whole, never
//! half by this one. The live part (`email`, `sms`, `codes`, `lockout`, `statuses`,
//! `totp.skew_steps`) can be changed through an overlay kept in the store (secrets sealed with the
//! service's key), layered over the file and environment settings and validated exactly as they
//! are. Every instance sharing the store re-reads the overlay when told (Redis pub/sub) and at
//! least every second, and keeps its last good settings when an overlay cannot be applied. An
//! overlay this instance cannot open (sealed under a key it does not hold, or unreadable JSON) is
//! reported (readiness warning, `twofactor_settings_stale`, one error line) and can be replaced by
//! an explicit admin request; `twofactor keys reseal` moves its secrets to the current key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ConfigError, Settings};
use crate::crypto::Keyring;
use crate::delivery::{EmailSender, SmsSender};
use crate::store::{Keys, Store};

/// The sections an admin may change while the service runs (of `totp`, only `skew_steps`).
pub const LIVE_SECTIONS: [&str; 6] = ["email", "sms", "codes", "lockout", "statuses", "totp"];

/// Keys inside the live sections that stay with the file: they name files the service would read.
const FILE_ONLY: [&str; 2] = ["email.smtp.password_file", "email.smtp.ca_file"];

/// What a GET shows in place of a secret inside a value (a URL's password, a header's value).
pub const PLACEHOLDER: &str = "(secret)";

/// Paths of the overlay that are sealed in the store: they hold or may hold credentials.
const SEALED: [&str; 4] = [
    "/email/smtp/password",
    "/sms/url",
    "/sms/request_headers",
    "/sms/request_body",
];

/// Headers whose values are shown: they describe the message, never authenticate it.
const PLAIN_HEADERS: [&str; 4] = ["content-type", "accept", "accept-language", "user-agent"];

/// How many changes `GET /admin/v1/settings/history` keeps.
const HISTORY: usize = 100;

/// Settings and the senders made from them, as one unit.
pub struct Snapshot {
    pub settings: Settings,
    /// `None` when the channel is not offered (production with no transport for it).
    pub email: Option<Arc<dyn EmailSender>>,
    pub sms: Option<Arc<dyn SmsSender>>,
}

impl Snapshot {
    /// Builds the senders `settings` names (inside a Tokio runtime: the SMTP pool spawns a task).
    pub fn build(settings: Settings) -> anyhow::Result<Snapshot> {
        let (email, sms) = crate::delivery::from_settings(&settings)?;
        Ok(Snapshot {
            settings,
            email,
            sms,
        })
    }
}

/// The current snapshot, swapped atomically under running requests, and the settings from file and
/// environment that every overlay is layered over; with the store the overlay is kept in and the
/// key ring that seals its secrets, so the overlay is read, written and watched from here alone.
pub struct Live {
    current: ArcSwap<Snapshot>,
    base: Settings,
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Arc<Keyring>,
    /// The overlay (version and id) the current snapshot was made from (0 and "": none).
    applied: std::sync::Mutex<(u64, String)>,
    /// Why the stored overlay is not in effect here, while that lasts: a readiness warning, and
    /// logged once per change rather than once per re-read.
    problem: std::sync::Mutex<Option<String>>,
    /// Held from reading an overlay to installing it, so an older read never replaces a newer one.
    applying: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(
        snapshot: Snapshot,
        store: Arc<dyn Store>,
        keys: Keys,
        keyring: Arc<Keyring>,
    ) -> Live {
        Live {
            base: snapshot.settings.clone(),
            current: ArcSwap::from_pointee(snapshot),
            store,
            keys,
            keyring,
            applied: std::sync::Mutex::new((0, String::new())),
            problem: std::sync::Mutex::new(None),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// The snapshot a request works with from start to end.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` current as it is, senders included (tests that build one by hand).
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// The settings from file and environment, before any overlay.
    pub fn base(&self) -> &Settings {
        &self.base
    }

    pub fn applied_version(&self) -> u64 {
        self.applied().0
    }

    fn applied(&self) -> (u64, String) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A snapshot of `settings`, keeping the current senders when what they are made of did not
    /// change, so an SMTP pool survives a change of code length.
    fn prepare(&self, settings: Settings) -> anyhow::Result<Snapshot> {
        let current = self.load();
        if delivery_fingerprint(&current.settings) == delivery_fingerprint(&settings) {
            return Ok(Snapshot {
                settings,
                email: current.email.clone(),
                sms: current.sms.clone(),
            });
        }
        Snapshot::build(settings)
    }

    /// Makes `snapshot`, made from overlay `overlay`, current.
    fn install(&self, overlay: &Overlay, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) =
            (overlay.version, overlay.id.clone());
        self.in_step();
    }

    /// Why the stored overlay is not in effect on this instance, if it is not: a readiness warning.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The stored overlay is the one in effect: gauges say so, and a past problem is over.
    fn in_step(&self) {
        metrics::gauge!("twofactor_settings_version").set(self.applied_version() as f64);
        metrics::gauge!("twofactor_settings_stale").set(0.0);
        if let Some(past) = self
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            tracing::info!(was = %past, "the stored settings overlay is in effect again");
        }
    }

    /// The stored overlay cannot be put in effect: `problem` says why (shown by `/readyz`, so
    /// never a value), `detail` adds what only the log gets. The gauges are set on every re-read
    /// (so they hold from the first one); the error is logged when the problem changes.
    fn trouble(&self, problem: String, detail: &str) {
        let applied = self.applied_version();
        metrics::gauge!("twofactor_settings_version").set(applied as f64);
        metrics::gauge!("twofactor_settings_stale").set(1.0);
        let serving = match applied {
            0 => "the file's settings".to_string(),
            v => format!("version {v}, the last it could apply"),
        };
        let text = format!("{problem}; this instance serves {serving}");
        let mut held = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_deref() != Some(text.as_str()) {
            metrics::counter!("twofactor_settings_apply_failures_total").increment(1);
            tracing::error!(problem = %text, detail, "the stored settings overlay is not in effect");
            *held = Some(text);
        }
    }
}

/// Everything the senders are built from; equal fingerprints mean the senders can be kept.
fn delivery_fingerprint(s: &Settings) -> String {
    use sha2::Digest;
    let password = sha2::Sha256::digest(s.email.smtp.password.expose_secret().as_bytes()).to_vec();
    format!(
        "{}|{}|{}|{:?}|{}|{:?}",
        serde_json::to_string(&s.email).unwrap_or_default(),
        serde_json::to_string(&s.sms).unwrap_or_default(),
        s.delivery.outbox_file,
        s.server.environment,
        s.email.smtp.ca_file,
        password
    )
}

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
enum Stored {
    /// Readable: the overlay as stored, and its document with the secrets opened.
    Open { overlay: Overlay, doc: Value },
    /// Not readable here: `version` is the stored one as far as it can be told (the ETag an admin
    /// replaces it under), `cause` says why (never a secret).
    Unreadable { version: u64, cause: String },
}

/// The stored overlay and its raw text (for compare-and-set); version 0 and `{}` when none.
async fn read(live: &Live) -> anyhow::Result<(Option<String>, Stored)> {
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
fn seal(keyring: &Keyring, doc: &Value) -> Value {
    let mut doc = doc.clone();
    for path in SEALED {
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
    for path in SEALED {
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
        for path in SEALED {
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

/// The configured key ring; only the embedded memory store may run on a key made up at start.
pub fn keyring(settings: &Settings) -> anyhow::Result<Keyring> {
    let key = settings.security.encryption_key.expose_secret();
    let previous: Vec<&str> = settings
        .security
        .previous_encryption_keys
        .iter()
        .map(|k| k.expose_secret())
        .collect();
    if key.is_empty() {
        // Settings::validate allows an empty key only with the memory store.
        tracing::warn!(
            "security.encryption_key is not set: using a random key for this process only; \
             pending codes and enrolled authenticators will not survive a restart"
        );
        return Ok(Keyring::generate());
    }
    Keyring::new(key, &previous).map_err(|e| anyhow::anyhow!("security.encryption_key: {e}"))
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

/// Applies the stored overlay if it is newer than the one in use; true when settings changed.
pub async fn refresh(live: &Live) -> anyhow::Result<bool> {
    let _applying = live.applying.lock().await;
    let (_, stored) = read(live).await?;
    let (overlay, doc) = match stored {
        Stored::Open { overlay, doc } => (overlay, doc),
        Stored::Unreadable { version, cause } => {
            live.trouble(
                format!(
                    "the stored settings overlay (version {version}) cannot be opened: {cause}"
                ),
                "",
            );
            return Ok(false);
        }
    };
    if (overlay.version, &overlay.id) == (live.applied().0, &live.applied().1) {
        live.in_step();
        return Ok(false);
    }
    let applied = live
        .base()
        .with_overlay(&doc)
        .map_err(anyhow::Error::from)
        .and_then(|settings| live.prepare(settings))
        .map(|snapshot| live.install(&overlay, snapshot));
    match applied {
        Ok(()) => {
            tracing::info!(version = overlay.version, "live settings applied");
            Ok(true)
        }
        Err(e) => {
            // A rule's message may quote the value it refused: the log gets it, /readyz does not.
            live.trouble(
                format!(
                    "the stored settings overlay (version {}) cannot be applied (the error log and \
                     PATCH /admin/v1/settings say why)",
                    overlay.version
                ),
                &format!("{e:#}"),
            );
            Ok(false)
        }
    }
}

/// Keeps this instance's settings in step with the store: at once when told through pub/sub, and
/// every second anyway, so a missed message still arrives.
pub fn watch(live: Arc<Live>) {
    tokio::spawn(async move {
        let channel = live.keys.settings_channel();
        let mut news = None;
        loop {
            if news.is_none() {
                news = live.store.subscribe(&channel).await.ok().flatten();
            }
            let wake = async {
                match news.as_mut() {
                    Some(rx) => rx.recv().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = wake => if !alive { news = None },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = refresh(&live).await {
                // The store being away shows in readiness; the next round tries again.
                tracing::debug!(cause = %e, "live settings not re-read");
            }
        }
    });
}

/// Whether a value is nothing but template placeholders (`{recipient}`): no credential in it.
fn only_placeholders(v: &str) -> bool {
    let mut rest = v;
    while let Some(start) = rest.find('{') {
        if !rest[..start].is_empty() {
            return false;
        }
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The URL with its user information and every query value that is not a template placeholder
/// replaced by [`PLACEHOLDER`]: any of them may be a credential.
fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_end = head
        .find("://")
        .map(|s| s + 3 + head[s + 3..].find('/').unwrap_or(head.len() - s - 3));
    let head = match (head.find("://"), authority_end) {
        (Some(s), Some(end)) => match head[s + 3..end].rfind('@') {
            Some(at) => {
                let userinfo = &head[s + 3..s + 3 + at];
                let shown = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:{PLACEHOLDER}"),
                    None => PLACEHOLDER.to_string(),
                };
                format!("{}{shown}{}", &head[..s + 3], &head[s + 3 + at..])
            }
            None => head.to_string(),
        },
        _ => head.to_string(),
    };
    match query {
        None => head,
        Some(q) => {
            let parts: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !only_placeholders(v) => format!("{k}={PLACEHOLDER}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{head}?{}", parts.join("&"))
        }
    }
}

/// The header with its value replaced by [`PLACEHOLDER`] unless it only describes the message.
fn redact_header(h: &str) -> String {
    match h.split_once(':') {
        Some((name, v))
            if !PLAIN_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str())
                && !only_placeholders(v.trim()) =>
        {
            format!("{name}: {PLACEHOLDER}")
        }
        _ => h.to_string(),
    }
}

/// The host (and port) a URL names, for telling whether a change sends secrets somewhere else.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Each secret of the live settings and whether it is set.
pub fn secrets(s: &Settings) -> BTreeMap<String, &'static str> {
    let set = |b: bool| if b { "set" } else { "unset" };
    let mut out = BTreeMap::new();
    out.insert(
        "email.smtp.password".to_string(),
        set(!s.email.smtp.password.expose_secret().is_empty()),
    );
    out.insert(
        "sms.url".to_string(),
        set(redact_url(&s.sms.url) != s.sms.url),
    );
    out.insert(
        "sms.request_body".to_string(),
        set(!s.sms.request_body.is_empty()),
    );
    for h in &s.sms.request_headers {
        if redact_header(h) != *h
            && let Some((name, _)) = h.split_once(':')
        {
            out.insert(format!("sms.request_headers.{}", name.trim()), "set");
        }
    }
    out
}

/// The live part of `s` as `GET /admin/v1/settings` shows it: secrets never, only whether set.
pub fn view(s: &Settings) -> Value {
    let mut sms = serde_json::to_value(&s.sms).unwrap_or_default();
    // The body template may carry the gateway's credentials: write-only, like a password.
    if let Some(o) = sms.as_object_mut() {
        o.remove("request_body");
    }
    sms["url"] = json!(redact_url(&s.sms.url));
    sms["request_headers"] = json!(
        s.sms
            .request_headers
            .iter()
            .map(|h| redact_header(h))
            .collect::<Vec<_>>()
    );
    let mut email = serde_json::to_value(&s.email).unwrap_or_default();
    if let Some(smtp) = email.get_mut("smtp").and_then(Value::as_object_mut) {
        smtp.remove("ca_file");
    }
    json!({
        "email": email,
        "sms": sms,
        "codes": s.codes,
        "lockout": s.lockout,
        "statuses": s.statuses,
        "totp": { "skew_steps": s.totp.skew_steps },
        "secrets": secrets(s),
    })
}

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
                Some(key.strip_prefix("default.").unwrap_or(key).to_string())
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

/// Refuses anything but live keys, so a patch cannot reach the listener, the store or a file path.
fn check_live_keys(patch: &Value) -> Result<(), PatchError> {
    let Some(obj) = patch.as_object() else {
        return Err(PatchError::Invalid {
            key: None,
            message: "a settings patch is a JSON object, e.g. {\"codes\": {\"digits\": 8}}".into(),
        });
    };
    for (section, value) in obj {
        if !LIVE_SECTIONS.contains(&section.as_str()) {
            return Err(invalid(
                section,
                format!(
                    "is not a live setting: change it in the configuration file (live: {})",
                    LIVE_SECTIONS.join(", ")
                ),
            ));
        }
        if section == "totp"
            && let Some(keys) = value.as_object()
            && let Some(other) = keys.keys().find(|k| *k != "skew_steps")
        {
            return Err(invalid(
                &format!("totp.{other}"),
                "is not a live setting: of totp only skew_steps is (changing the others would stop every enrolled app)",
            ));
        }
    }
    for key in FILE_ONLY {
        let pointer = format!("/{}", key.replace('.', "/"));
        if patch.pointer(&pointer).is_some() {
            return Err(invalid(
                key,
                "names a file on the server: set it in the configuration file",
            ));
        }
    }
    Ok(())
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
fn changes(old: &Settings, new: &Settings, patch: &Value) -> Vec<Change> {
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
    for key in SEALED {
        let name = key.trim_start_matches('/').replace('/', ".");
        let touched = patch.pointer(key).is_some();
        let state = |m: &BTreeMap<String, &'static str>| {
            m.iter()
                .filter(|(k, _)| k.starts_with(&name))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if name == "email.smtp.password" && touched {
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

/// The settings in effect as a GET shows them, and the stored overlay's version (the ETag), read
/// fresh so an admin edits the latest version. When that version could not be applied here, the
/// settings shown are the last good ones, and a patch on top of it meets the same validation, so
/// the admin can mend the overlay through the API.
/// While the stored overlay is not in effect here, `problem` says why (and how to mend it).
pub async fn current(live: &Live) -> anyhow::Result<(u64, Value)> {
    refresh(live).await?;
    let (_, stored) = read(live).await?;
    let version = match stored {
        Stored::Open { overlay, .. } => overlay.version,
        Stored::Unreadable { version, .. } => version,
    };
    let snapshot = live.load();
    let mut shown = view(&snapshot.settings);
    if let Some(problem) = live.problem() {
        shown["problem"] = json!(problem);
    }
    Ok((version, shown))
}

/// The last changes, newest first.
pub async fn history(live: &Live) -> anyhow::Result<Vec<Entry>> {
    let items = live.store.list(&live.keys.settings_history()).await?;
    Ok(items
        .iter()
        .filter_map(|i| serde_json::from_str(i).ok())
        .collect())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_headers_are_shown_as_placeholders() {
        assert_eq!(
            redact_url("https://AC01:tok3n@api.example/send?to={recipient}&api_key=abc&pwd=x"),
            "https://AC01:(secret)@api.example/send?to={recipient}&api_key=(secret)&pwd=(secret)"
        );
        assert_eq!(
            redact_url("https://APITOKEN@gw.example/a@b?x={code}"),
            "https://(secret)@gw.example/a@b?x={code}"
        );
        assert_eq!(
            host_of("https://u:p@gw.example:8443/send?x=1"),
            "gw.example:8443"
        );
        assert_eq!(redact_header("Cookie: sid=1"), "Cookie: (secret)");
        assert_eq!(redact_header("X-To: {recipient}"), "X-To: {recipient}");
        assert_eq!(
            redact_url("https://gw.example/send"),
            "https://gw.example/send"
        );
        assert_eq!(
            redact_header("Authorization: Bearer 7f3c"),
            "Authorization: (secret)"
        );
        assert_eq!(redact_header("X-Api-Key: k"), "X-Api-Key: (secret)");
        assert_eq!(
            redact_header("Content-Type: application/json"),
            "Content-Type: application/json"
        );
    }

    #[test]
    fn only_live_keys_may_be_patched() {
        for (patch, key) in [
            (json!({"server": {"bind": "0.0.0.0:80"}}), "server"),
            (json!({"totp": {"digits": 8}}), "totp.digits"),
            (
                json!({"email": {"smtp": {"password_file": "/etc/shadow"}}}),
                "email.smtp.password_file",
            ),
        ] {
            match check_live_keys(&patch) {
                Err(PatchError::Invalid { key: Some(k), .. }) => assert_eq!(k, key),
                other => panic!("{patch} gave {other:?}"),
            }
        }
        assert!(
            check_live_keys(&json!({"codes": {"digits": 8}, "totp": {"skew_steps": 2}})).is_ok()
        );
    }

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
