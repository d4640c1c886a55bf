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

/// The whole store seam: the key-value primitives and the code ledger, which every backend gives.
pub trait Store: Kv + Ledger {}

impl<T: Kv + Ledger> Store for T {}

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
