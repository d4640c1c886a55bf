//! Time as an input: the `Clock` seam and the system clock behind it. A leaf, so the rules, the
//! OAuth tokens and the state can all take a clock without taking each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Time as an input, so TOTP logic can be checked at any instant.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}
