//! The code ledger: the atomic operations of sends and checks, with their argument structs and
//! answers. Each operation is one rule, run in one step (one Lua script on Redis, one step under the
//! lock in memory), so racing requests cannot slip between its reads and writes. The rules are
//! written here once, as the trait's documentation; `tests/api/store_model.rs` holds the two
//! backends to the same answers for random sequences, and `tests/api/store_contract.rs` to examples.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Method;

/// The keys one verification touches, all in the customer's hash slot.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    /// Present while locked (the customer, or the customer for one caller number).
    pub lock: String,
    /// Attempts in the current lockout window.
    pub failures: String,
    /// The digest of the code accepted last in a call, kept for `codes.retry_grace_seconds`.
    pub accepted: String,
    /// The remembered method, forgotten on success.
    pub choice: String,
    /// The pending sent code; discarded when the attempt locks.
    pub code: String,
    /// Wrong codes in a row, across locks and windows (the customer's, or the pair's).
    pub streak: String,
    /// The customer record: what a check chooses the method by, and the contacts' revision a
    /// pending code must still match.
    pub record: String,
}

/// A customer as looked up outside the store (an external directory source): what a check or a
/// send goes by instead of the store's record, which then holds only the authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub email: bool,
    pub phone: bool,
    pub authenticator: bool,
    /// The contacts' revision under each key of the ring, current first (see
    /// `directory::contacts_revs`): a code sent under any of them still matches during a key
    /// rotation, and a new code carries the first.
    pub revs: Vec<String>,
}

/// What a request brings to a check of a code, besides the keys.
#[derive(Debug, Clone, Copy)]
pub struct CodeCheck<'a> {
    /// The method the request names; `None` lets the store choose (see [`Ledger::check_code`]).
    pub named: Option<Method>,
    /// Which sent-code channels have a transport: with none named and none remembered, the only
    /// offered one is chosen.
    pub email_offered: bool,
    pub sms_offered: bool,
    /// The code's digests as if sent by email, and by SMS (one per key of the ring); empty for a
    /// method that cannot apply.
    pub email: &'a [String],
    pub sms: &'a [String],
    /// The wrong tries one sent code survives.
    pub max_tries: u32,
    /// The customer as already looked up elsewhere; `None` reads the store's record.
    pub known: Option<&'a Known>,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// No such customer; nothing was read further or written.
    Unknown,
    /// The method is the authenticator: nothing was judged or written. The customer record, for
    /// the TOTP check that follows.
    Authenticator(String),
    /// A sent code was judged, by the method chosen (`None` when none could be).
    Judged(Option<Method>, Verdict),
}

/// The keys a send reads and writes, all in the customer's hash slot.
#[derive(Debug, Clone)]
pub struct SendKeys {
    pub record: String,
    /// The lock that applies to this request (the customer's, or the pair's).
    pub lock: String,
    pub choice: String,
    pub code: String,
    /// The customer's sends in the current window.
    pub sends: String,
}

/// What a request brings to a send, besides the keys.
#[derive(Debug, Clone, Copy)]
pub struct SendAsk<'a> {
    pub method: Method,
    /// Whether the method's channel has a transport.
    pub offered: bool,
    /// The caller number's own lock is set (read beforehand: it lives in another slot).
    pub line_locked: bool,
    /// Count and write the code now; false stops after the checks, so that a check the store
    /// cannot make (the SMS number's cap, in its own slot) comes before anything is counted.
    pub reserve: bool,
    /// `codes.max_sends` per `window`.
    pub max: u32,
    pub window: Duration,
    /// The new code's digest, and how long it lives.
    pub digest: &'a str,
    pub ttl: Duration,
    /// The customer as already looked up elsewhere; `None` reads the store's record.
    pub known: Option<&'a Known>,
}

/// What the first step of a send found, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Unknown,
    /// The customer has no such contact (or no authenticator).
    NotVerified,
    /// The customer has it, but the channel has no transport.
    NotOffered,
    /// Locked; `desk` when only the support desk's unlock lifts it.
    Locked {
        desk: bool,
    },
    LineLocked,
    /// The authenticator was chosen and remembered; nothing is sent.
    Authenticator,
    /// Checked, nothing written (`reserve` was false): the record, for the caller's own checks.
    Checked(String),
    /// The window's sends are used up; nothing counted or written.
    Limited,
    /// Counted and written: the record (where the code goes).
    Reserved(String),
}

/// The lockout rule an attempt is judged under.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Attempts allowed in `window`; the last one allowed locks when it is not a success.
    pub max: u32,
    pub window: Duration,
    pub lock_for: Duration,
    /// How long an accepted code answers success again in the same call; zero for never.
    pub grace: Duration,
    /// Whether locking discards the pending code: yes for the customer's own lock, no for one
    /// caller number's lock on the customer (the customer may still use the code from their line).
    pub discard_code_on_lock: bool,
    /// Judged failures in a row (kept at `AttemptKeys::streak`, never expiring) that lock with no
    /// expiry, until the support desk unlocks: `lockout.max_consecutive_failures`.
    pub max_in_a_row: u32,
}

/// What one atomic verification decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The code accepted last in this call, repeated within the grace period: success, not counted.
    Repeat,
    /// Locked before this attempt (or it went over the limit); nothing was judged.
    Locked,
    /// Right: a sent code is consumed, an authenticator step recorded; failures reset.
    Accepted,
    /// No pending code (never sent, expired, used or discarded).
    Missing,
    /// Wrong; a sent code survives with one more wrong try.
    Wrong,
    /// Wrong, and that was the code's last try: it is gone.
    Exhausted,
    /// A right authenticator code from a step at or before the last accepted one.
    Replayed,
}

/// A verification's outcome, and whether this attempt was the last allowed and locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub judged: Judged,
    pub locked_now: bool,
    /// The lock this attempt set, or met, lasts until the support desk unlocks.
    pub desk: bool,
}

/// What claiming an attempt against a capped counter found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The lock key exists.
    Locked,
    /// As many attempts as allowed are counted or in flight: refused, but nothing is locked.
    Full,
    /// Go ahead: this is attempt number `n` in the window.
    Allowed(u64),
}

/// One send's code to count and write (see [`Ledger::reserve_send`]); the keys are in the
/// customer's hash slot.
#[derive(Debug, Clone, Copy)]
pub struct Reserve<'a> {
    /// The customer's sends in the current window.
    pub sends: &'a str,
    pub code: &'a str,
    pub choice: &'a str,
    /// `codes.max_sends` per `window`.
    pub max: u32,
    pub window: Duration,
    /// The new code's digest, its method, the contacts' revision it went to, and its life.
    pub digest: &'a str,
    pub method: Method,
    pub rev: &'a str,
    pub ttl: Duration,
}

/// An authenticator code as checked against the secret, for [`Ledger::verify_totp`].
#[derive(Debug, Clone, Copy)]
pub struct TotpCheck<'a> {
    /// The last accepted step, kept for `step_ttl`.
    pub step_key: &'a str,
    /// The TOTP step the code matched; `None` for a wrong code.
    pub matched_step: Option<u64>,
    pub step_ttl: Duration,
    /// The code's digests, for the repeat check.
    pub candidates: &'a [String],
}

/// The atomic operations of sends and checks. Keys come from [`super::Keys`].
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// The first step of a send, in one atomic step: reads the customer record, refuses in order an
    /// unknown customer, a method the customer does not have, a channel without transport, the
    /// customer's lock and the caller number's; remembers the authenticator when it is the method;
    /// then (with `reserve`) counts the send and writes the code as [`Ledger::reserve_send`] does,
    /// bound to the record's contacts revision.
    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError>;
    /// One send in one step: counts it in `sends` (a window of `window`, starting at its first
    /// count) and, while that stays within `max`, writes the pending code (`digest`, sent by
    /// `method`, to the contacts of revision `rev`, no wrong tries, replacing any) and the
    /// remembered method, both for `ttl`. Answers the send's number, or `None` with nothing counted
    /// or written when the window's sends are used up.
    async fn reserve_send(&self, send: &Reserve<'_>) -> Result<Option<u64>, StoreError>;
    /// The method the pending code at `key` was sent by, if one is pending.
    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Deletes the pending code only while it is still `digest` (a racing resend's code survives).
    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError>;
    /// A whole check of a code in one atomic step, so it takes one round trip. Reads the customer
    /// record (`Unknown` without it) and chooses the method: the named one, else the remembered
    /// choice, else the pending code's method, else the authenticator if enrolled, else the only
    /// offered channel the customer has. The authenticator answers `Authenticator` untouched,
    /// unless the code repeats the sent code accepted last (a retry, whose success forgot the
    /// choice): that answers `Repeat` by the method it was sent by.
    /// Otherwise, in order: a repeat of the accepted digest (any candidate) answers `Repeat`; a
    /// lock answers `Locked`; the attempt is counted (a count over `rule.max` locks); a pending
    /// code sent to contacts other than the record's now is discarded (`Missing`); the pending
    /// code is compared with the chosen method's candidates, deleted on a match (failures and
    /// choice reset, the digest kept as accepted for `rule.grace`), or charged a wrong try and
    /// deleted at `max_tries`. The last allowed attempt, when not a success, locks and discards
    /// the code. Every judged attempt that is not a success also adds one to the streak (which
    /// a success deletes); the one that reaches `rule.max_in_a_row` sets the lock with no expiry
    /// (`desk`) instead. With `judge` false only the repeat check runs (`Missing` otherwise), for
    /// attempts refused by another limit.
    async fn check_code(
        &self,
        keys: &AttemptKeys,
        ask: &CodeCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Checked, StoreError>;
    /// The same steps for an authenticator code already checked against the secret (see
    /// [`TotpCheck`]): a match is accepted only when its step is after the one stored at
    /// `step_key` (replay), which is then raised.
    async fn verify_totp(
        &self,
        keys: &AttemptKeys,
        totp: &TotpCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Verdict, StoreError>;
    /// Claims one attempt against a counter shared by many requests (a caller number's): `Locked`
    /// while `lock_key` exists, `Full` (and nothing counted) when `max` are already counted,
    /// otherwise counts it. A success gives its attempt back with [`super::Kv::decr`].
    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError>;
}
