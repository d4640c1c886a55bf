//! The store: pending codes, counters, locks, customers and TOTP steps, behind one small trait with
//! two backends (Redis for production, memory for a single instance). Both give the same atomic
//! guarantees; `tests/api/store_contract.rs` runs one suite against each.

pub mod keys;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Method;

pub use keys::Keys;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store answered something unexpected: {0}")]
    Protocol(String),
    /// This backend cannot do what was asked (a paged listing on Redis Cluster).
    #[error("{0}")]
    Unsupported(String),
    /// The caller passed something the store cannot use (a malformed cursor).
    #[error("{0}")]
    Invalid(String),
}

/// How long a key has left to live, as Redis `PTTL` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No such key (or it has just expired).
    Missing,
    /// The key never expires.
    Forever,
    /// The key expires after this long.
    Left(Duration),
}

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
    /// The method the request names; `None` lets the store choose (see [`Store::check_code`]).
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

/// Where the store lives: `memory://` or one of the Redis URL forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Redis(String),
    Sentinel {
        nodes: Vec<String>,
        service: String,
        tls: bool,
    },
    Cluster(Vec<String>),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let url = url.trim();
        if url == "memory://" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(StoreUrl::Redis(url.to_string()));
        }
        for (scheme, tls) in [("redis+sentinel://", false), ("rediss+sentinel://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                // redis+sentinel://host1:26379,host2:26379/mymaster
                let (hosts, service) = rest.split_once('/').ok_or(
                    "a Sentinel URL names the master: redis+sentinel://host:26379/mymaster",
                )?;
                let service = service.trim_matches('/');
                if service.is_empty() || hosts.is_empty() {
                    return Err("a Sentinel URL needs hosts and a master name: redis+sentinel://host:26379/mymaster".into());
                }
                let s = if tls { "rediss" } else { "redis" };
                let nodes = node_urls(s, hosts);
                return Ok(StoreUrl::Sentinel {
                    nodes,
                    service: service.to_string(),
                    tls,
                });
            }
        }
        for (scheme, s) in [
            ("redis+cluster://", "redis"),
            ("rediss+cluster://", "rediss"),
        ] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let hosts = rest.trim_end_matches('/');
                if hosts.is_empty() {
                    return Err(
                        "a Cluster URL lists nodes: redis+cluster://node1:6379,node2:6379".into(),
                    );
                }
                return Ok(StoreUrl::Cluster(node_urls(s, hosts)));
            }
        }
        Err(
            "must be memory://, redis://…, rediss://…, redis+sentinel://… or redis+cluster://…"
                .into(),
        )
    }
}

/// `user:pass@h1:26379,h2:26379` → one URL per node, each with the credentials.
fn node_urls(scheme: &str, hosts: &str) -> Vec<String> {
    let (auth, hosts) = match hosts.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), hosts),
    };
    hosts
        .split(',')
        .map(|h| format!("{scheme}://{auth}{}", h.trim()))
        .collect()
}

/// The store seam. Keys come from [`Keys`]; values are short strings.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the service can work now: a write it makes (to `probe_key`, which expires by itself)
    /// succeeds, and on Cluster every slot is served. `Ok` carries warnings about settings that put
    /// stored data at risk (an eviction policy that may drop customers and secrets).
    async fn readiness(&self, probe_key: &str) -> Result<Vec<String>, StoreError>;
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets a value, replacing any; `ttl` of `None` keeps it until deleted.
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Restarts the life of an existing key at `ttl`; false (and nothing created) when absent.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Sets only when absent; true when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// True when something was deleted.
    async fn del(&self, key: &str) -> Result<bool, StoreError>;
    /// How long `key` has left to live (`PTTL`).
    async fn ttl(&self, key: &str) -> Result<Ttl, StoreError>;
    /// Increments a counter whose window starts at its first increment; returns the new count.
    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
    /// Takes back one increment (a send that failed must not count); never below zero.
    async fn decr(&self, key: &str) -> Result<(), StoreError>;
    /// The first step of a send, in one atomic step: reads the customer record, refuses in order an
    /// unknown customer, a method the customer does not have, a channel without transport, the
    /// customer's lock and the caller number's; remembers the authenticator when it is the method;
    /// then (with `reserve`) counts the send and writes the code as [`Store::reserve_send`] does,
    /// bound to the record's contacts revision.
    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError>;
    /// One send in one step: counts it in `sends_key` (a window of `window`, starting at its first
    /// count) and, while that stays within `max`, writes the pending code (`digest`, sent by
    /// `method`, to the contacts of revision `rev`, no wrong tries, replacing any) and the
    /// remembered method, both for `ttl`. Answers the send's number, or `None` with nothing counted
    /// or written when the window's sends are used up.
    #[allow(clippy::too_many_arguments)]
    async fn reserve_send(
        &self,
        sends_key: &str,
        code_key: &str,
        choice_key: &str,
        max: u32,
        window: Duration,
        digest: &str,
        method: &str,
        rev: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError>;
    /// The method the pending code at `key` was sent by, if one is pending.
    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Deletes the pending code only while it is still `digest` (a racing resend's code survives).
    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError>;
    /// A whole check of a code in one atomic step, so it takes one round trip. Reads the customer
    /// record (`Unknown` without it) and chooses the method: the named one, else the remembered
    /// choice, else the pending code's method, else the authenticator if enrolled, else the only
    /// offered channel the customer has. The authenticator answers `Authenticator` untouched.
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
    /// The same steps for an authenticator code already checked against the secret:
    /// `matched_step` is the TOTP step it matched (`None` for a wrong code). A match is accepted
    /// only when the step is after the one stored at `step_key` (replay), which is then raised,
    /// kept for `step_ttl`. `candidates` are the code's digests, for the repeat check.
    #[allow(clippy::too_many_arguments)]
    async fn verify_totp(
        &self,
        keys: &AttemptKeys,
        step_key: &str,
        matched_step: Option<u64>,
        step_ttl: Duration,
        candidates: &[String],
        rule: &Lockout,
        judge: bool,
    ) -> Result<Verdict, StoreError>;
    /// Claims one attempt against a counter shared by many requests (a caller number's): `Locked`
    /// while `lock_key` exists, `Full` (and nothing counted) when `max` are already counted,
    /// otherwise counts it. A success gives its attempt back with [`Store::decr`].
    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError>;
    /// Replaces the value at `key` only while it is still `old` (`None`: only while there is none);
    /// true when replaced.
    async fn compare_and_set(
        &self,
        key: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Puts `value` at the head of the list at `key`, keeping the newest `keep` entries.
    async fn push_capped(&self, key: &str, value: &str, keep: usize) -> Result<(), StoreError>;
    /// The list at `key`, newest first.
    async fn list(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Wake-ups for news on `channel`, as long as the subscription lasts (`None` when the backend
    /// has no pub/sub: the caller re-reads periodically instead).
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<()>>, StoreError>;
    /// Tells every instance sharing the store that `channel` has news (Redis PUBLISH; the memory
    /// store is one process, so it has no one to tell).
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
    /// Every key that starts with `prefix` (maintenance commands; not for the request path).
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// One page of the keys that start with `prefix`, for listings an admin pages through: the
    /// keys found and the cursor of the next page (`None` at the end). Start with `""`. Each call is
    /// one bounded step (Redis: one `SCAN cursor MATCH prefix* COUNT count`, so a page may hold
    /// fewer or a few more keys than `count`, even none before the end; memory: the `count` keys
    /// after the cursor in sorted order). `Unsupported` on Redis Cluster, whose SCAN walks one node.
    async fn scan_page(
        &self,
        prefix: &str,
        cursor: &str,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>), StoreError>;
    /// Every key and value under `prefix` (admin export, tests that scan what is stored).
    async fn dump(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;
}

/// For `twofactor check-config`: a short attempt to reach the store and run its readiness check,
/// as lines to print (warnings, or why it could not be reached). Nothing for the memory store.
/// Never an error: the store may simply not be reachable from where the check runs.
pub async fn check_reachable(settings: &crate::config::Settings) -> Vec<String> {
    if matches!(StoreUrl::parse(&settings.store.url), Ok(StoreUrl::Memory)) {
        return Vec::new();
    }
    let attempt = async {
        let root_ca = settings.store.root_ca().map_err(StoreError::Unavailable)?;
        let store = connect_trusting(&settings.store.url, root_ca).await?;
        let probe = Keys::new(&settings.store.key_prefix).readiness_probe();
        store.readiness(&probe).await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(warnings)) => std::iter::once("  store reachable and writable".to_string())
            .chain(warnings.into_iter().map(|w| format!("warning: {w}")))
            .collect(),
        Ok(Err(e)) => vec![format!("  store not ready from here: {e}")],
        Err(_) => vec!["  store not reachable from here within 5 s".to_string()],
    }
}

/// Opens the store the URL names.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_trusting(url, None).await
}

/// Opens the store the URL names; over TLS, `root_ca` (PEM), when given, is the only CA trusted.
pub async fn connect_trusting(
    url: &str,
    root_ca: Option<Vec<u8>>,
) -> Result<Arc<dyn Store>, StoreError> {
    match StoreUrl::parse(url).map_err(StoreError::Unavailable)? {
        StoreUrl::Memory => Ok(Arc::new(memory::MemoryStore::new())),
        other => Ok(Arc::new(redis::RedisStore::connect(other, root_ca).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_every_node_with_its_credentials() {
        assert_eq!(
            StoreUrl::parse("redis+sentinel://:pw@s1:26379,s2:26379/mymaster"),
            Ok(StoreUrl::Sentinel {
                nodes: vec!["redis://:pw@s1:26379".into(), "redis://:pw@s2:26379".into()],
                service: "mymaster".into(),
                tls: false
            })
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://u:p@n1:6379,n2:6379"),
            Ok(StoreUrl::Cluster(vec![
                "rediss://u:p@n1:6379".into(),
                "rediss://u:p@n2:6379".into()
            ]))
        );
        assert_eq!(StoreUrl::parse("memory://"), Ok(StoreUrl::Memory));
        assert!(StoreUrl::parse("redis+sentinel://s1:26379").is_err());
        assert!(StoreUrl::parse("mysql://x").is_err());
    }
}
