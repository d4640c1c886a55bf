//! Live settings: what one request reads. A [`Snapshot`] holds a whole `Settings` and the senders
//! built from it; each request loads one snapshot and reads only it, so a change made meanwhile is
//! seen by the next request whole, never half by this one.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Settings;
use crate::delivery::{EmailSender, SmsSender};

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

/// The current snapshot, swapped atomically under running requests.
pub struct Live(ArcSwap<Snapshot>);

impl Live {
    pub fn new(snapshot: Snapshot) -> Live {
        Live(ArcSwap::from_pointee(snapshot))
    }

    /// The snapshot a request works with from start to end.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}
