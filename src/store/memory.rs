//! The in-memory store: the embedded default for one instance. One mutex over one map makes every
//! operation atomic, as the Lua scripts are in Redis; expiry is checked on every access.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Known, Lockout, SendAsk, SendKeys, Started,
    Store, StoreError, Ttl, Verdict,
};
use crate::domain::Method;

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Code {
        digest: String,
        method: String,
        attempts: u32,
        /// The revision of the contacts the code was sent to.
        rev: String,
    },
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    writes: u64,
}

/// The most entries the memory store holds: about 200 MB at the most, whatever a flood sends.
const MAX_ENTRIES: usize = 1_000_000;

/// Sweep expired entries every this many writes, so memory stays bounded without a timer task.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Runs `f` on the live map: the entry at `key` is dropped first if it has expired.
    fn with<T>(
        &self,
        key: &str,
        write: bool,
        f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T,
    ) -> T {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if inner.map.get(key).is_some_and(|e| !e.live(now)) {
            inner.map.remove(key);
        }
        if write {
            inner.writes += 1;
            if inner.writes.is_multiple_of(SWEEP_EVERY) {
                inner.map.retain(|_, e| e.live(now));
            }
        }
        f(&mut inner.map, now)
    }
}

/// What the method-specific part of a verification decided.
enum Outcome {
    Judged(Judged),
    /// Right: keep this digest as the accepted one.
    Accept(String),
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value at `key` if it has not expired (other keys than the one `with` already cleaned).
fn live<'m>(m: &'m HashMap<String, Entry>, key: &str, now: Instant) -> Option<&'m Value> {
    m.get(key).filter(|e| e.live(now)).map(|e| &e.value)
}

/// Counts one more in the window counter at `key` (the window starts at the first count).
fn counter(
    m: &mut HashMap<String, Entry>,
    key: &str,
    now: Instant,
    window: Duration,
) -> Result<u64, StoreError> {
    if m.get(key).is_some_and(|e| !e.live(now)) {
        m.remove(key);
    }
    // Counters are what a flood of requests can make; past the cap, expired entries go first and
    // then new counters are refused (the `error` status) rather than memory growing without bound.
    if m.len() >= MAX_ENTRIES && !m.contains_key(key) {
        // A full sweep walks every entry: at most once a second, so a flood at the cap costs
        // each request a refusal, not a walk.
        static LAST_SWEEP: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        let mut last = LAST_SWEEP.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            m.retain(|_, e| e.live(now));
        }
        if m.len() >= MAX_ENTRIES {
            return Err(StoreError::Unavailable(format!(
                "the memory store holds {MAX_ENTRIES} entries, its most"
            )));
        }
    }
    let entry = m.entry(key.to_string()).or_insert_with(|| Entry {
        value: Value::Text("0".into()),
        expires_at: Some(now + window),
    });
    let not_counter = || StoreError::Protocol(format!("{key} is not a counter"));
    let Value::Text(ref mut s) = entry.value else {
        return Err(not_counter());
    };
    let n = s.parse::<u64>().map_err(|_| not_counter())? + 1;
    *s = n.to_string();
    Ok(n)
}

fn set_counter(m: &mut HashMap<String, Entry>, key: &str, n: u64) {
    if let Some(Entry {
        value: Value::Text(s),
        ..
    }) = m.get_mut(key)
    {
        *s = n.to_string();
    }
}

/// What a check and a send read of a customer record, as the Redis scripts' `record` does.
struct Record {
    text: String,
    email: bool,
    phone: bool,
    totp: bool,
    /// The revision a new code carries, and the others a pending code may carry (key rotation).
    rev: String,
    also: Vec<String>,
}

/// The record at `key`, or the customer as `known`: `Ok(None)` for none, an error when it is not a
/// JSON object.
fn record(
    m: &HashMap<String, Entry>,
    key: &str,
    known: Option<&Known>,
    now: Instant,
) -> Result<Option<Record>, StoreError> {
    if let Some(k) = known {
        return Ok(Some(Record {
            text: String::new(),
            email: k.email,
            phone: k.phone,
            totp: k.authenticator,
            rev: k.revs.first().cloned().unwrap_or_default(),
            also: k.revs.iter().skip(1).cloned().collect(),
        }));
    }
    let Some(Value::Text(text)) = live(m, key, now) else {
        return Ok(None);
    };
    let unreadable = || StoreError::Protocol("the customer record is not readable JSON".into());
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| unreadable())?;
    let fields = json.as_object().ok_or_else(unreadable)?;
    let present = |name: &str| match fields.get(name) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    Ok(Some(Record {
        text: text.clone(),
        email: present("email"),
        phone: present("phone"),
        totp: present("totp_sealed"),
        rev: fields
            .get("rev")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string(),
        also: Vec::new(),
    }))
}

/// Counts a send and, within the limit, writes its code and remembers its method.
#[allow(clippy::too_many_arguments)]
fn reserve(
    m: &mut HashMap<String, Entry>,
    now: Instant,
    keys: (&str, &str, &str),
    max: u32,
    window: Duration,
    digest: &str,
    method: &str,
    rev: &str,
    ttl: Duration,
) -> Result<Option<u64>, StoreError> {
    let (sends, code, choice) = keys;
    let n = counter(m, sends, now, window)?;
    if n > u64::from(max) {
        set_counter(m, sends, n - 1);
        return Ok(None);
    }
    m.insert(
        code.to_string(),
        Entry {
            value: Value::Code {
                digest: digest.to_string(),
                method: method.to_string(),
                attempts: 0,
                rev: rev.to_string(),
            },
            expires_at: Some(now + ttl),
        },
    );
    m.insert(
        choice.to_string(),
        Entry {
            value: Value::Text(method.to_string()),
            expires_at: Some(now + ttl),
        },
    );
    Ok(Some(n))
}

/// The method a check judges by when the request names none, as `Store::check_code` describes.
fn choose(
    m: &HashMap<String, Entry>,
    keys: &AttemptKeys,
    now: Instant,
    c: &Record,
    ask: &CodeCheck<'_>,
) -> Option<Method> {
    if ask.named.is_some() {
        return ask.named;
    }
    let remembered = match live(m, &keys.choice, now) {
        Some(Value::Text(s)) => Some(s.as_str()),
        _ => match live(m, &keys.code, now) {
            Some(Value::Code { method, .. }) => Some(method.as_str()),
            _ => None,
        },
    };
    match remembered {
        Some(r) => Method::from_stored(r),
        None if c.totp => Some(Method::Authenticator),
        None => match (c.email && ask.email_offered, c.phone && ask.sms_offered) {
            (true, false) => Some(Method::Email),
            (false, true) => Some(Method::Sms),
            _ => None,
        },
    }
}

/// The steps both verifications share, as the Redis scripts' common prelude does: the repeat
/// check (against every digest in `candidates`), the lock, the attempt count, then `check` and
/// the lock on the last allowed attempt.
fn judge_in(
    m: &mut HashMap<String, Entry>,
    now: Instant,
    keys: &AttemptKeys,
    candidates: &[&[String]],
    rule: &Lockout,
    judge: bool,
    check: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> Outcome,
) -> Result<Verdict, StoreError> {
    let verdict = |judged, locked_now, desk| Verdict {
        judged,
        locked_now,
        desk,
    };
    if let Some(Value::Text(accepted)) = live(m, &keys.accepted, now)
        && candidates
            .iter()
            .flat_map(|c| c.iter())
            .any(|c| ct_eq(c, accepted))
    {
        return Ok(verdict(Judged::Repeat, false, false));
    }
    if !judge {
        return Ok(verdict(Judged::Missing, false, false));
    }
    if let Some(lock) = live(m, &keys.lock, now) {
        return Ok(verdict(Judged::Locked, false, is_desk_lock(lock)));
    }
    let n = counter(m, &keys.failures, now, rule.window)?;
    let max = u64::from(rule.max);
    let lock = |m: &mut HashMap<String, Entry>| {
        m.insert(
            keys.lock.clone(),
            Entry {
                value: Value::Text("1".into()),
                expires_at: Some(now + rule.lock_for),
            },
        );
        m.remove(&keys.failures);
        if rule.discard_code_on_lock {
            m.remove(&keys.code);
        }
    };
    if n > max {
        lock(m);
        return Ok(verdict(Judged::Locked, true, false));
    }
    if m.get(&keys.code).is_some_and(|e| !e.live(now)) {
        m.remove(&keys.code);
    }
    match check(m, now) {
        Outcome::Accept(digest) => {
            m.remove(&keys.failures);
            m.remove(&keys.choice);
            m.remove(&keys.streak);
            if !rule.grace.is_zero() {
                m.insert(
                    keys.accepted.clone(),
                    Entry {
                        value: Value::Text(digest),
                        expires_at: Some(now + rule.grace),
                    },
                );
            }
            Ok(verdict(Judged::Accepted, false, false))
        }
        Outcome::Judged(judged) => {
            // A judged failure adds to the streak, which never expires; the one that reaches the
            // limit locks with no expiry, until the desk unlocks.
            let streak = match live(m, &keys.streak, now) {
                Some(Value::Text(s)) => s.parse::<u64>().unwrap_or(0),
                _ => 0,
            } + 1;
            if streak >= u64::from(rule.max_in_a_row) {
                m.insert(
                    keys.lock.clone(),
                    Entry {
                        value: Value::Text(DESK_LOCK.into()),
                        expires_at: None,
                    },
                );
                m.remove(&keys.failures);
                m.remove(&keys.streak);
                if rule.discard_code_on_lock {
                    m.remove(&keys.code);
                }
                return Ok(verdict(judged, true, true));
            }
            m.insert(
                keys.streak.clone(),
                Entry {
                    value: Value::Text(streak.to_string()),
                    expires_at: None,
                },
            );
            if n >= max {
                lock(m);
                return Ok(verdict(judged, true, false));
            }
            Ok(verdict(judged, false, false))
        }
    }
}

/// The value a lock holds when only the support desk's unlock lifts it (as the Redis scripts set).
const DESK_LOCK: &str = "desk";

fn is_desk_lock(lock: &Value) -> bool {
    matches!(lock, Value::Text(v) if v == DESK_LOCK)
}

#[async_trait]
impl Store for MemoryStore {
    async fn readiness(&self, _probe_key: &str) -> Result<Vec<String>, StoreError> {
        // One map in this process: writable for as long as the process answers.
        Ok(Vec::new())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(key, false, |m, _| match m.get(key) {
            Some(Entry {
                value: Value::Text(s),
                ..
            }) => Some(s.clone()),
            _ => None,
        }))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.with(key, true, |m, now| {
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: ttl.map(|t| now + t),
                },
            );
        });
        Ok(())
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, now| match m.get_mut(key) {
            Some(entry) => {
                entry.expires_at = Some(now + ttl);
                true
            }
            None => false,
        }))
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, now| {
            if m.contains_key(key) {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: Some(now + ttl),
                },
            );
            true
        }))
    }

    async fn del(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, _| m.remove(key).is_some()))
    }

    async fn ttl(&self, key: &str) -> Result<Ttl, StoreError> {
        Ok(self.with(key, false, |m, now| match m.get(key) {
            None => Ttl::Missing,
            Some(e) => e.expires_at.map_or(Ttl::Forever, |t| {
                Ttl::Left(t.saturating_duration_since(now))
            }),
        }))
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.with(key, true, |m, now| counter(m, key, now, window))
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        self.with(key, true, |m, _| {
            if let Some(Entry {
                value: Value::Text(s),
                ..
            }) = m.get_mut(key)
                && let Ok(n) = s.parse::<u64>()
            {
                *s = n.saturating_sub(1).to_string();
            }
        });
        Ok(())
    }

    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError> {
        self.with(&keys.sends, true, |m, now| {
            let Some(c) = record(m, &keys.record, ask.known, now)? else {
                return Ok(Started::Unknown);
            };
            let has = match ask.method {
                Method::Email => c.email,
                Method::Sms => c.phone,
                Method::Authenticator => c.totp,
            };
            if !has {
                return Ok(Started::NotVerified);
            }
            if !ask.offered {
                return Ok(Started::NotOffered);
            }
            if let Some(lock) = live(m, &keys.lock, now) {
                return Ok(Started::Locked {
                    desk: is_desk_lock(lock),
                });
            }
            if ask.line_locked {
                return Ok(Started::LineLocked);
            }
            if ask.method == Method::Authenticator {
                m.insert(
                    keys.choice.clone(),
                    Entry {
                        value: Value::Text(ask.method.as_str().to_string()),
                        expires_at: Some(now + ask.ttl),
                    },
                );
                return Ok(Started::Authenticator);
            }
            if !ask.reserve {
                return Ok(Started::Checked(c.text));
            }
            let reserved = reserve(
                m,
                now,
                (&keys.sends, &keys.code, &keys.choice),
                ask.max,
                ask.window,
                ask.digest,
                ask.method.as_str(),
                &c.rev,
                ask.ttl,
            )?;
            Ok(match reserved {
                Some(_) => Started::Reserved(c.text),
                None => Started::Limited,
            })
        })
    }

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
    ) -> Result<Option<u64>, StoreError> {
        self.with(sends_key, true, |m, now| {
            reserve(
                m,
                now,
                (sends_key, code_key, choice_key),
                max,
                window,
                digest,
                method,
                rev,
                ttl,
            )
        })
    }

    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(key, false, |m, _| match m.get(key) {
            Some(Entry {
                value: Value::Code { method, .. },
                ..
            }) => Some(method.clone()),
            _ => None,
        }))
    }

    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, _| {
            let ours = matches!(m.get(key), Some(Entry { value: Value::Code { digest: d, .. }, .. }) if d == digest);
            if ours {
                m.remove(key);
            }
            ours
        }))
    }

    async fn check_code(
        &self,
        keys: &AttemptKeys,
        ask: &CodeCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Checked, StoreError> {
        self.with(&keys.failures, true, |m, now| {
            let Some(c) = record(m, &keys.record, ask.known, now)? else {
                return Ok(Checked::Unknown);
            };
            let chosen = choose(m, keys, now, &c, ask);
            if chosen == Some(Method::Authenticator) {
                return Ok(Checked::Authenticator(c.text));
            }
            let mine = if chosen == Some(Method::Sms) {
                ask.sms
            } else {
                ask.email
            };
            let verdict = judge_in(m, now, keys, &[ask.email, ask.sms], rule, judge, |m, _| {
                let Some(Entry {
                    value:
                        Value::Code {
                            digest,
                            attempts,
                            rev,
                            ..
                        },
                    ..
                }) = m.get_mut(&keys.code)
                else {
                    return Outcome::Judged(Judged::Missing);
                };
                if *rev != c.rev && !c.also.contains(rev) {
                    // Sent to contacts the customer no longer has.
                    m.remove(&keys.code);
                    return Outcome::Judged(Judged::Missing);
                }
                if mine.iter().any(|d| ct_eq(d, digest)) {
                    let digest = digest.clone();
                    m.remove(&keys.code);
                    return Outcome::Accept(digest);
                }
                *attempts += 1;
                if *attempts >= ask.max_tries {
                    m.remove(&keys.code);
                    Outcome::Judged(Judged::Exhausted)
                } else {
                    Outcome::Judged(Judged::Wrong)
                }
            })?;
            Ok(Checked::Judged(chosen, verdict))
        })
    }

    async fn verify_totp(
        &self,
        keys: &AttemptKeys,
        step_key: &str,
        matched_step: Option<u64>,
        step_ttl: Duration,
        candidates: &[String],
        rule: &Lockout,
        judge: bool,
    ) -> Result<Verdict, StoreError> {
        self.with(&keys.failures, true, |m, now| {
            judge_in(m, now, keys, &[candidates], rule, judge, |m, now| {
                let Some(step) = matched_step else {
                    return Outcome::Judged(Judged::Wrong);
                };
                let last = match live(m, step_key, now) {
                    Some(Value::Text(s)) => s.parse::<u64>().ok(),
                    _ => None,
                };
                if last.is_some_and(|l| step <= l) {
                    return Outcome::Judged(Judged::Replayed);
                }
                m.insert(
                    step_key.to_string(),
                    Entry {
                        value: Value::Text(step.to_string()),
                        expires_at: Some(now + step_ttl),
                    },
                );
                Outcome::Accept(candidates.first().cloned().unwrap_or_default())
            })
        })
    }

    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        self.with(count_key, true, |m, now| {
            if live(m, lock_key, now).is_some() {
                return Ok(Claim::Locked);
            }
            let n = counter(m, count_key, now, window)?;
            if n > u64::from(max) {
                set_counter(m, count_key, n - 1);
                return Ok(Claim::Full);
            }
            Ok(Claim::Allowed(n))
        })
    }

    async fn compare_and_set(
        &self,
        key: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, _| {
            let current = match m.get(key) {
                Some(Entry {
                    value: Value::Text(s),
                    ..
                }) => Some(s.as_str()),
                Some(_) => return false,
                None => None,
            };
            if current != old {
                return false;
            }
            match m.get_mut(key) {
                Some(entry) => entry.value = Value::Text(new.to_string()),
                None => {
                    m.insert(
                        key.to_string(),
                        Entry {
                            value: Value::Text(new.to_string()),
                            expires_at: None,
                        },
                    );
                }
            }
            true
        }))
    }

    async fn push_capped(&self, key: &str, value: &str, keep: usize) -> Result<(), StoreError> {
        self.with(key, true, |m, _| {
            let entry = m.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::List(Vec::new()),
                expires_at: None,
            });
            let Value::List(items) = &mut entry.value else {
                return Err(StoreError::Protocol(format!("{key} is not a list")));
            };
            items.insert(0, value.to_string());
            items.truncate(keep);
            Ok(())
        })
    }

    async fn list(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.with(key, false, |m, _| match m.get(key) {
            Some(Entry {
                value: Value::List(items),
                ..
            }) => items.clone(),
            _ => Vec::new(),
        }))
    }

    async fn subscribe(
        &self,
        _channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<()>>, StoreError> {
        Ok(None)
    }

    async fn publish(&self, _channel: &str, _message: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .dump(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    async fn scan_page(
        &self,
        prefix: &str,
        cursor: &str,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let count = count.max(1);
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        // The cursor is the last key handed out: keys added or removed meanwhile never shift a
        // page, and each key present throughout is listed exactly once.
        let mut after: Vec<&String> = inner
            .map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && k.as_str() > cursor && e.live(now))
            .map(|(k, _)| k)
            .collect();
        let more = after.len() > count;
        if more {
            // Only the page's own keys need sorting.
            after.select_nth_unstable(count);
            after.truncate(count);
        }
        after.sort_unstable();
        let next = if more {
            after.last().map(|k| (*k).clone())
        } else {
            None
        };
        Ok((after.into_iter().cloned().collect(), next))
    }

    async fn dump(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let mut out: Vec<(String, String)> = inner
            .map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.live(now))
            .map(|(k, e)| {
                let v = match &e.value {
                    Value::Text(s) => s.clone(),
                    // The same text as the Redis backend gives for its hash (`HGETALL`, fields in order).
                    Value::Code {
                        digest,
                        method,
                        attempts,
                        rev,
                    } => format!("d={digest} m={method} a={attempts} r={rev}"),
                    // As the Redis backend gives a list: its items, newest first, one per line.
                    Value::List(items) => items.join("\n"),
                };
                (k.clone(), v)
            })
            .collect();
        out.sort();
        Ok(out)
    }
}
