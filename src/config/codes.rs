//! `[statuses]`, `[codes]`, `[lockout]` and `[totp]`: the callflow's status strings, one-time
//! codes, the lockout and authenticator codes.

use serde::{Deserialize, Serialize};

/// The `<status>` strings; each is a callflow path name, so each can be renamed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statuses {
    pub success: String,
    pub not_found: String,
    pub incorrect_code: String,
    pub code_expired: String,
    pub locked: String,
    pub send_limited: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSettings {
    /// Length of a sent code, 4 to 10.
    pub digits: u32,
    pub ttl_seconds: u64,
    /// Wrong tries one code survives; the last one deletes it.
    pub max_verify_attempts: u32,
    /// Sends per customer per `send_window_seconds`.
    pub max_sends: u32,
    pub send_window_seconds: u64,
    /// How long a repeat of the accepted code in the same call answers success again, uncounted.
    pub retry_grace_seconds: u64,
    /// Sends from one caller number (the withheld line included) across customers per
    /// `send_window_seconds`; 0 turns the limit off.
    pub max_sends_per_caller: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettings {
    pub max_failures: u32,
    pub window_seconds: u64,
    pub duration_seconds: u64,
    /// Wrong codes per caller number across all customers in the window; 0 turns the limit off.
    pub max_failures_per_caller: u32,
    /// The same for the one shared line of every withheld or unusable caller number; 0 off.
    pub max_failures_withheld: u32,
    /// Wrong codes in a row for a customer (or pair), across locks and windows, that lock until the
    /// support desk unlocks; only a success or the desk's unlock starts the count again. 1 to 100
    /// (NIST SP 800-63B §5.2.2 allows at most 100).
    pub max_consecutive_failures: u32,
    /// What `max_failures` locks: the customer, or the pair (customer, caller number).
    pub scope: LockoutScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockoutScope {
    Customer,
    Caller,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSettings {
    pub issuer: String,
    pub skew_steps: u8,
    pub period_seconds: u64,
    pub digits: usize,
    /// `SHA1`, `SHA256` or `SHA512`; authenticator apps mostly support only SHA1.
    pub algorithm: String,
}
