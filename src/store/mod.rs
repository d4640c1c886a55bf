//! The store: pending codes, counters, locks, customers and TOTP steps, behind two seams with two
//! backends (Redis for production, memory for a single instance):
//!
//! | file | what |
//! | --- | --- |
//! | `kv.rs` | [`Kv`]: key-value primitives (directory, desk, live settings, OAuth, sessions) |
//! | `ledger.rs` | [`Ledger`]: the atomic operations of sends and checks, their arguments and answers |
//! | `keys.rs` | every key the service writes, built in one place |
//! | `redis/` | the Redis backend: connections, and the Lua scripts of the ledger |
//! | `memory/` | the memory backend: the same rules under one lock |
//!
//! Both give the same atomic guarantees; `tests/api/store_contract.rs` runs one suite against each,
//! and `tests/api/store_model.rs` compares them on random sequences.

pub mod keys;
pub mod kv;
pub mod ledger;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

// Defined with the settings, which parse it to validate store.url.
pub use crate::config::values::StoreUrl;
pub use keys::Keys;
pub use kv::Kv;
pub use ledger::*;

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

/// The whole store seam: the key-value primitives and the code ledger, which every backend gives.
pub trait Store: Kv + Ledger {}

impl<T: Kv + Ledger> Store for T {}

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
