//! The in-memory store: the embedded default for one instance. One mutex over one map makes every
//! operation atomic, as the Lua scripts are in Redis; expiry is checked on every access.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Attempt, CodeCheck, Store, StoreError};

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Code { digest: String, attempts: u32 },
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

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

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

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.with(key, true, |m, now| {
            let entry = m.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Text("0".into()),
                expires_at: Some(now + window),
            });
            let Value::Text(ref mut s) = entry.value else {
                return Err(StoreError::Protocol(format!("{key} is not a counter")));
            };
            let n = s
                .parse::<u64>()
                .map_err(|_| StoreError::Protocol(format!("{key} is not a counter")))?
                + 1;
            *s = n.to_string();
            Ok(n)
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

    async fn put_code(&self, key: &str, digest: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(key, true, |m, now| {
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Code {
                        digest: digest.to_string(),
                        attempts: 0,
                    },
                    expires_at: Some(now + ttl),
                },
            );
        });
        Ok(())
    }

    async fn check_code(
        &self,
        key: &str,
        digest: &str,
        max_attempts: u32,
    ) -> Result<CodeCheck, StoreError> {
        use subtle::ConstantTimeEq;
        Ok(self.with(key, true, |m, _| {
            let Some(Entry {
                value:
                    Value::Code {
                        digest: stored,
                        attempts,
                    },
                ..
            }) = m.get_mut(key)
            else {
                return CodeCheck::Missing;
            };
            if bool::from(stored.as_bytes().ct_eq(digest.as_bytes())) {
                m.remove(key);
                return CodeCheck::Matched;
            }
            *attempts += 1;
            if *attempts >= max_attempts {
                m.remove(key);
                CodeCheck::Exhausted
            } else {
                CodeCheck::Wrong {
                    attempts: *attempts,
                }
            }
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

    async fn claim_attempt(
        &self,
        lock_key: &str,
        failures_key: &str,
        max: u32,
        window: Duration,
        lock_for: Duration,
    ) -> Result<Attempt, StoreError> {
        // Both keys under the one lock: expire the failures entry too before reading it.
        self.with(failures_key, true, |m, now| {
            if m.get(lock_key).is_some_and(|e| e.live(now)) {
                return Ok(Attempt::Locked);
            }
            let entry = m.entry(failures_key.to_string()).or_insert_with(|| Entry {
                value: Value::Text("0".into()),
                expires_at: Some(now + window),
            });
            let Value::Text(ref mut count) = entry.value else {
                return Err(StoreError::Protocol(format!(
                    "{failures_key} is not a counter"
                )));
            };
            let n = count
                .parse::<u64>()
                .map_err(|_| StoreError::Protocol(format!("{failures_key} is not a counter")))?
                + 1;
            *count = n.to_string();
            if n > u64::from(max) {
                m.remove(failures_key);
                m.insert(
                    lock_key.to_string(),
                    Entry {
                        value: Value::Text("1".into()),
                        expires_at: Some(now + lock_for),
                    },
                );
                return Ok(Attempt::Locked);
            }
            Ok(Attempt::Allowed(n))
        })
    }

    async fn advance_step(&self, key: &str, step: u64, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, now| {
            let last = match m.get(key) {
                Some(Entry {
                    value: Value::Text(s),
                    ..
                }) => s.parse::<u64>().ok(),
                _ => None,
            };
            if last.is_some_and(|l| step <= l) {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(step.to_string()),
                    expires_at: Some(now + ttl),
                },
            );
            true
        }))
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
                    Value::Code { digest, attempts } => format!("d={digest} a={attempts}"),
                };
                (k.clone(), v)
            })
            .collect();
        out.sort();
        Ok(out)
    }
}
