//! The store's readiness as `/readyz` reports it: one probe at a time, at most one a second per
//! instance, its verdict shared by every request. Kept out of `http::health` so the state can hold
//! it without importing the HTTP layer.

use std::time::{Duration, Instant};

use crate::store::{Keys, Store};

/// However the store stalls (a Sentinel lookup against a host that drops packets, say), a probe
/// hears an answer within this: an orchestrator's probe timeout is often a second or two.
const READY_DEADLINE: Duration = Duration::from_millis(1500);

/// How long a probe's verdict answers `/readyz`: a probe costs the store a write (and more on
/// Cluster), and `/readyz` is open to anyone who reaches the listener, so requests must not be
/// able to multiply probes.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the store's readiness check found: warnings when it takes writes, else why not.
pub type Verdict = Result<Vec<String>, String>;

/// The last probe of the store and when it finished, shared by every request of one instance:
/// at most one probe a second, and one at a time (a burst waits for none; it answers from the
/// last verdict while one request probes).
#[derive(Default)]
pub struct Readiness {
    last: std::sync::Mutex<Option<(Instant, Verdict)>>,
    probing: tokio::sync::Mutex<()>,
}

impl Readiness {
    fn last(&self, max_age: Option<Duration>) -> Option<Verdict> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| max_age.is_none_or(|age| at.elapsed() < age))
            .map(|(_, v)| v.clone())
    }

    /// The verdict `/readyz` answers with: the last probe's while it is fresh, else a new probe's.
    pub async fn verdict(&self, store: &dyn Store, keys: &Keys) -> Verdict {
        if let Some(fresh) = self.last(Some(PROBE_EVERY)) {
            return fresh;
        }
        let _probing = match self.probing.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.last(None) {
                // Another request is probing: its answer will be at most as old as this one.
                Some(last) => return last,
                // The first probe since start is under way: wait for it (its deadline bounds this).
                None => self.probing.lock().await,
            },
        };
        // A probe may have finished while this request waited for the lock.
        if let Some(fresh) = self.last(Some(PROBE_EVERY)) {
            return fresh;
        }
        let verdict = probe(store, keys).await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), verdict.clone()));
        verdict
    }
}

/// One readiness check of the store, bounded by [`READY_DEADLINE`]: no answer is a failure.
async fn probe(store: &dyn Store, keys: &Keys) -> Verdict {
    let key = keys.readiness_probe();
    match tokio::time::timeout(READY_DEADLINE, store.readiness(&key)).await {
        Ok(Ok(warnings)) => Ok(warnings),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            READY_DEADLINE.as_millis()
        )),
    }
}
