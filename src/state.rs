//! What every request needs: settings, the store, the key ring, the directory, the senders and the
//! clock, each behind its seam so tests and deployments can choose the real part they want.

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::Keyring;
use crate::delivery::{EmailSender, SmsSender};
use crate::directory::Directory;
use crate::live::{Live, Snapshot};
use crate::store::{Keys, Store};

// Defined in the leaf `clock`; named here too, where callers and tests have always found them.
pub use crate::clock::{Clock, SystemClock};

pub struct AppState {
    /// Settings and senders; read once per request with [`AppState::snapshot`].
    pub live: Arc<Live>,
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub keyring: Arc<Keyring>,
    pub directory: Arc<Directory>,
    pub clock: Arc<dyn Clock>,
    /// The last store probe, which `/readyz` answers from.
    pub readiness: crate::readiness::Readiness,
}

impl AppState {
    /// Connects the store and builds every part the settings name.
    pub async fn from_settings(settings: Settings) -> anyhow::Result<AppState> {
        let root_ca = settings.store.root_ca().map_err(anyhow::Error::msg)?;
        let store = match crate::store::connect_trusting(&settings.store.url, root_ca).await {
            Ok(store) => store,
            Err(e) => {
                // A certificate the service cannot verify is a setting to fix, not a network fault.
                let hint = if e.to_string().contains("certificate") {
                    if settings.store.ca_file.is_empty() {
                        "; the Redis certificate is not from a public CA: set store.ca_file to \
                         the PEM of the CA that signed it"
                    } else {
                        "; the Redis certificate does not chain to the CA in store.ca_file"
                    }
                } else {
                    ""
                };
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot open the store at {}{hint}",
                    crate::redact::redact_url(&settings.store.url)
                )));
            }
        };
        Self::with_store(settings, store)
    }

    /// Builds the state around a store opened elsewhere (instances sharing one store in tests).
    pub fn with_store(settings: Settings, store: Arc<dyn Store>) -> anyhow::Result<AppState> {
        let (email, sms) = crate::delivery::from_settings(&settings)?;
        Self::with_parts(settings, store, email, sms)
    }

    /// Builds the state around parts made elsewhere.
    pub fn with_parts(
        settings: Settings,
        store: Arc<dyn Store>,
        email: Option<Arc<dyn EmailSender>>,
        sms: Option<Arc<dyn SmsSender>>,
    ) -> anyhow::Result<AppState> {
        let keyring = Arc::new(crate::live::keyring(&settings)?);
        let keys = Keys::new(&settings.store.key_prefix);
        let directory = Arc::new(Directory::from_settings(
            store.clone(),
            keys.clone(),
            keyring.clone(),
            &settings.directory,
        )?);
        Ok(AppState {
            live: Arc::new(Live::new(
                Snapshot {
                    settings,
                    email,
                    sms,
                },
                store.clone(),
                keys.clone(),
                keyring.clone(),
            )),
            store,
            keys,
            keyring,
            directory,
            clock: Arc::new(SystemClock),
            readiness: Default::default(),
        })
    }

    /// The settings and senders one request works with, start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load()
    }
}
