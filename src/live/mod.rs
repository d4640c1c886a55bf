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
//!
//! Here: `Snapshot`, `Live` and the watcher (`refresh`, `watch`), and the configured key ring
//! (`keyring`). The stored overlay and its sealing are `seal.rs`, changing it `patch.rs`, what
//! an admin sees `view.rs`, the record of changes `history.rs`.

mod history;
mod patch;
mod seal;
mod view;

pub use history::{Change, Entry, history};
pub use patch::{PatchError, patch};
pub use seal::{Overlay, check_stored, reseal};
pub use view::{PLACEHOLDER, current, secrets, view};

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::crypto::Keyring;
use crate::delivery::{EmailSender, SmsSender};
use crate::store::{Keys, Store};
use seal::{Stored, read};

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
        if current.settings.senders_fingerprint() == settings.senders_fingerprint() {
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
