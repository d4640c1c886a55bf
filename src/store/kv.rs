//! The key-value seam: the primitives the directory, the desk, live settings, OAuth tokens and admin
//! sessions use. Each is one command (or one small script) on Redis, one step under the lock in
//! memory; neither backend knows what the values mean.

use std::time::Duration;

use async_trait::async_trait;

use super::{StoreError, Ttl};

/// Keys come from [`super::Keys`]; values are short strings.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
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
