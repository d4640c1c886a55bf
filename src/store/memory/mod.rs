//! The in-memory store: the embedded default for one instance. One mutex over one map makes every
//! operation atomic, as the Lua scripts are in Redis; expiry is checked on every access.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Kv, StoreError, Ttl};

mod ledger;

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

/// The value at `key` if it has not expired (other keys than the one `with` already cleaned).
fn live<'m>(m: &'m HashMap<String, Entry>, key: &str, now: Instant) -> Option<&'m Value> {
    m.get(key).filter(|e| e.live(now)).map(|e| &e.value)
}

/// How a count keeps its counter's window, as each Redis script does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Started again when the count becomes 1 (the first count, or the first after every count was
    /// taken back with `decr`) and when the key has no expiry: `incr_window`, sends and claims
    /// (`if n == 1 or PTTL < 0 then PEXPIRE`).
    Restarted,
    /// Set only when the counter is created: a check's failures (the verification prelude only
    /// INCRs a count that exists).
    Kept,
}

/// Counts one more in the window counter at `key` (the window starts at the first count).
fn counter(
    m: &mut HashMap<String, Entry>,
    key: &str,
    now: Instant,
    window: Duration,
    rule: Window,
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
    if rule == Window::Restarted && (n == 1 || entry.expires_at.is_none()) {
        entry.expires_at = Some(now + window);
    }
    Ok(n)
}

#[async_trait]
impl Kv for MemoryStore {
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
        self.with(key, true, |m, now| {
            counter(m, key, now, window, Window::Restarted)
        })
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
