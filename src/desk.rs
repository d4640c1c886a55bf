//! What the support desk sees and does for one customer beyond the record: whether the customer is
//! locked and for how long, the attempts counted towards a lock, the pending code's method and life
//! (never the code or its digest), and unlocking.

use serde::Serialize;

use crate::domain::CustomerId;
use crate::store::{Keys, Store, StoreError, Ttl};

/// The pending sent code, as far as a person may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// `email` or `sms`.
    pub method: String,
    pub expires_in_seconds: u64,
}

/// A customer's lockout and pending-code state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The customer's own lock (`lockout.scope = "customer"`, or a caller without a number).
    pub locked: bool,
    /// `None` when not locked, or when the lock needs the desk.
    pub locked_seconds_left: Option<u64>,
    /// The lock does not expire: only the desk's unlock lifts it
    /// (`lockout.max_consecutive_failures` wrong codes in a row).
    pub needs_desk: bool,
    /// Attempts counted in the current lockout window (the count restarts when a lock starts).
    pub failures: u64,
    /// Wrong codes in a row since the last success or unlock, across locks and windows.
    pub failures_in_a_row: u64,
    pub pending: Option<Pending>,
}

/// Whole seconds, rounded up, so a lock with 300 ms left does not read as 0 s.
fn seconds_up(ttl: Ttl) -> Option<u64> {
    match ttl {
        Ttl::Missing | Ttl::Forever => None,
        Ttl::Left(d) => Some(d.as_millis().div_ceil(1000) as u64),
    }
}

/// Reads the standing; each part is read separately, so it is a view of a moment, not a transaction.
pub async fn standing(
    store: &dyn Store,
    keys: &Keys,
    id: &CustomerId,
) -> Result<Standing, StoreError> {
    let lock = store.ttl(&keys.lock(id)).await?;
    let count = async |key: String| -> Result<u64, StoreError> {
        Ok(store
            .get(&key)
            .await?
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0))
    };
    let failures = count(keys.failures(id)).await?;
    let failures_in_a_row = count(keys.streak(id)).await?;
    let code_key = keys.code(id);
    let pending = match store.pending_method(&code_key).await? {
        // The code may expire between the two reads; then there is none.
        Some(method) => seconds_up(store.ttl(&code_key).await?).map(|s| Pending {
            method,
            expires_in_seconds: s,
        }),
        None => None,
    };
    Ok(Standing {
        locked: lock != Ttl::Missing,
        locked_seconds_left: seconds_up(lock),
        // A desk lock is the only lock set without an expiry.
        needs_desk: lock == Ttl::Forever,
        failures,
        failures_in_a_row,
        pending,
    })
}

/// Lifts every lock on the customer, the desk's included, and clears the counts that lead to one
/// (the window's and the one in a row): the customer's own, and those of each caller number
/// (`lockout.scope = "caller"`). The per-number locks across customers
/// (`lockout.max_failures_per_caller`) are the line's, not the customer's, and stay. True when
/// something was removed.
pub async fn unlock(store: &dyn Store, keys: &Keys, id: &CustomerId) -> Result<bool, StoreError> {
    let mut removed = false;
    for key in [keys.lock(id), keys.failures(id), keys.streak(id)] {
        removed |= store.del(&key).await?;
    }
    // The caller numbers locked out of this customer (`lockout.scope = "caller"`) are listed as
    // their locks are set, so no keyspace walk is needed.
    let pairs = keys.pair_locks(id);
    for digest in store.list(&pairs).await? {
        for key in [
            keys.pair_lock(id, &digest),
            keys.pair_failures(id, &digest),
            keys.pair_streak(id, &digest),
        ] {
            removed |= store.del(&key).await?;
        }
    }
    store.del(&pairs).await?;
    Ok(removed)
}
