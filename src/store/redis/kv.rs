//! The key-value seam on Redis: one command, or one small script, per primitive.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::{CONNECT_TIMEOUT, Conn, Eval, RedisStore, millis, unavailable};
use crate::store::{Kv, StoreError, Ttl};

static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
if (ARGV[1] == '0' and not v) or (ARGV[1] == '1' and v == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
  return 1
end
return 0",
    )
});

static INCR_WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n",
    )
});

static DECR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n and n > 0 then redis.call('DECR', KEYS[1]) end
return 1",
    )
});

/// Buckets one SCAN step of a full walk (`keys_with_prefix`) visits.
const SCAN_STEP: usize = 1000;

/// Life of the readiness probe's key: long enough to be written, short enough to leave nothing.
const READY_PROBE_TTL_MS: u64 = 5_000;

/// A SCAN/KEYS pattern matching every key that starts with `prefix`. Customer ids may hold any
/// visible ASCII, so every character the glob gives a meaning (the backslash too) is escaped.
fn glob_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 8);
    for ch in prefix.chars() {
        if matches!(ch, '\\' | '*' | '?' | '[' | ']' | '^') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('*');
    pattern
}

/// The masters' addresses in a `CLUSTER SLOTS` answer (each range: start, end, master, replicas).
fn slot_masters(slots: &redis::Value) -> Vec<(String, u16)> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut masters: Vec<(String, u16)> = Vec::new();
    let redis::Value::Array(ranges) = slots else {
        return masters;
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let Some(redis::Value::Array(node)) = parts.get(2) else {
            continue;
        };
        let (Some(host), Some(redis::Value::Int(port))) =
            (node.first().and_then(text), node.get(1))
        else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        if !masters.iter().any(|(h, p)| *h == host && *p == port) {
            masters.push((host, port));
        }
    }
    masters
}

#[async_trait]
impl Kv for RedisStore {
    async fn readiness(&self, probe_key: &str) -> Result<Vec<String>, StoreError> {
        // A write, not a PING: a master that is gone, read-only or out of memory answers PING fine.
        self.run(async |c| {
            redis::cmd("SET")
                .arg(probe_key)
                .arg("1")
                .arg("PX")
                .arg(READY_PROBE_TTL_MS)
                .query_async::<()>(c)
                .await
        })
        .await?;
        if let Conn::Cluster(mut cluster) = self.connection().await? {
            // The probe reached one master. Every master must answer too: for the
            // cluster-node-timeout after a master dies (15 s by default) the cluster still reports
            // itself ok while every call for that master's slots fails. The masters are asked by
            // address, as CLUSTER SLOTS names them, since the client's own view skips nodes it
            // cannot reach.
            use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
            let slots = cluster
                .route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                .map_err(unavailable)?;
            for (host, port) in slot_masters(&slots) {
                let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                });
                cluster
                    .route_command(redis::cmd("PING"), at)
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!(
                            "Redis Cluster master {host}:{port} does not answer: {e}"
                        ))
                    })?;
            }
            // The masters answer; the cluster's own view says whether every slot is served.
            let info: String = self
                .run(async |c| redis::cmd("CLUSTER").arg("INFO").query_async(c).await)
                .await?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(StoreError::Unavailable(
                    "Redis Cluster does not report cluster_state:ok: some slots are not served"
                        .into(),
                ));
            }
        }
        let mut warnings = Vec::new();
        // CONFIG may be renamed away or refused by a managed Redis; then there is nothing to say.
        let policy: Result<std::collections::HashMap<String, String>, _> = self
            .run(async |c| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(c)
                    .await
            })
            .await;
        if let Some(policy) = policy
            .ok()
            .and_then(|m| m.get("maxmemory-policy").cloned())
            .filter(|p| p != "noeviction")
        {
            warnings.push(format!(
                "Redis maxmemory-policy is {policy}: Redis may evict keys when memory runs short, and \
                 customers and authenticator secrets live there; set maxmemory-policy noeviction"
            ));
        }
        Ok(warnings)
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(async |c| c.get(key).await).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.run(async |c| match ttl {
            Some(t) => c.pset_ex(key, value, millis(t)).await,
            None => c.set(key, value).await,
        })
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(async |c| c.pexpire(key, millis(ttl) as i64).await)
            .await?;
        Ok(n == 1)
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let reply: Option<String> = self
            .run(async |c| {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    async fn del(&self, key: &str) -> Result<bool, StoreError> {
        let n: u64 = self.run(async |c| c.del(key).await).await?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Ttl, StoreError> {
        let ms: i64 = self.run(async |c| c.pttl(key).await).await?;
        Ok(match ms {
            -2 => Ttl::Missing,
            -1 => Ttl::Forever,
            ms => Ttl::Left(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.run(async |c| {
            Eval::new(&INCR_WINDOW, &[key])
                .arg(millis(window))
                .invoke(c)
                .await
        })
        .await
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        self.run(async |c| Eval::new(&DECR, &[key]).invoke::<i64>(c).await)
            .await
            .map(|_| ())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(async |c| {
                Eval::new(&COMPARE_AND_SET, &[key])
                    .arg(u8::from(old.is_some()))
                    .arg(old.unwrap_or(""))
                    .arg(new)
                    .invoke(c)
                    .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn push_capped(&self, key: &str, value: &str, keep: usize) -> Result<(), StoreError> {
        self.run(async |c| {
            redis::pipe()
                .atomic()
                .lpush(key, value)
                .ignore()
                .ltrim(key, 0, keep as isize - 1)
                .ignore()
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn list(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.run(async |c| c.lrange(key, 0, -1).await).await
    }

    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<()>>, StoreError> {
        let Some(client) = &self.pubsub else {
            return Ok(None);
        };
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| StoreError::Unavailable("pub/sub did not connect in time".into()))?
            .map_err(unavailable)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while futures_util::StreamExt::next(&mut messages).await.is_some() {
                // A full channel already holds a wake-up; one is enough.
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(()) {
                    break;
                }
            }
        });
        Ok(Some(rx))
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        self.run(async |c| c.publish::<_, _, i64>(channel, message).await)
            .await
            .map(|_| ())
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = glob_prefix(prefix);
        let mut c = self.connection().await?;
        if let Conn::Cluster(cluster) = &mut c {
            // SCAN walks one node; KEYS sent to every master and combined covers the cluster. This
            // serves maintenance commands, never a callflow request.
            use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
            let value = cluster
                .route_command(
                    redis::cmd("KEYS").arg(&pattern).clone(),
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::CombineArrays),
                    )),
                )
                .await
                .map_err(unavailable)?;
            let mut keys: Vec<String> =
                redis::from_redis_value(value).map_err(|e| StoreError::Protocol(e.to_string()))?;
            keys.sort();
            return Ok(keys);
        }
        let mut keys: Vec<String> = Vec::new();
        // SCAN's default of 10 buckets a step would take a round trip per 10 keys of the whole
        // keyspace; 1000 keeps a walk over a million keys to about a thousand short steps.
        let mut iter = c
            .scan_options::<String>(
                redis::ScanOptions::default()
                    .with_pattern(pattern)
                    .with_count(SCAN_STEP),
            )
            .await
            .map_err(unavailable)?;
        while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
            keys.push(k.map_err(unavailable)?);
        }
        drop(iter);
        keys.sort();
        Ok(keys)
    }

    async fn scan_page(
        &self,
        prefix: &str,
        cursor: &str,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let start: u64 = if cursor.is_empty() {
            0
        } else {
            cursor.parse().map_err(|_| {
                StoreError::Invalid(format!("{cursor:?} is not a cursor this store gave out"))
            })?
        };
        if matches!(self.connection().await?, Conn::Cluster(_)) {
            // A SCAN cursor belongs to one node; a listing across masters would need a cursor per
            // master, and a failover would invalidate them. Refused rather than half-listed.
            return Err(StoreError::Unsupported(
                "paging through keys is not available on Redis Cluster: SCAN walks one node at a \
                 time; use a standalone or Sentinel Redis, or look customers up by id"
                    .into(),
            ));
        }
        let pattern = glob_prefix(prefix);
        let (next, mut keys): (u64, Vec<String>) = self
            .run(async |c| {
                redis::cmd("SCAN")
                    .arg(start)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(count.max(1))
                    .query_async(c)
                    .await
            })
            .await?;
        keys.sort();
        Ok((keys, (next != 0).then(|| next.to_string())))
    }

    async fn dump(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.connection().await?;
        if matches!(c, Conn::Cluster(_)) {
            return Err(StoreError::Unavailable(
                "dump is not available on Redis Cluster".into(),
            ));
        }
        let keys = self.keys_with_prefix(prefix).await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            let value = if kind == "hash" {
                let fields: Vec<(String, String)> = c.hgetall(&k).await.map_err(unavailable)?;
                fields
                    .iter()
                    .map(|(f, v)| format!("{f}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if kind == "string" {
                c.get::<_, Option<String>>(&k)
                    .await
                    .map_err(unavailable)?
                    .unwrap_or_default()
            } else if kind == "list" {
                let items: Vec<String> = c.lrange(&k, 0, -1).await.map_err(unavailable)?;
                items.join("\n")
            } else {
                continue;
            };
            out.push((k, value));
        }
        Ok(out)
    }
}
