//! The Redis store: standalone (`ConnectionManager`, reconnects by itself), Sentinel (the master asked
//! of Sentinel again after a connection error or READONLY) and Cluster. HTTP workers hold connections
//! of their own (`WORKER_CONNECTIONS`) on standalone and Sentinel. Every read-modify-write is one Lua script, so it is atomic across instances and
//! takes one round trip. Every key a script touches is one of its KEYS, so scripts run on Cluster too.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

use super::{StoreError, StoreUrl};

mod kv;
mod ledger;
mod scripts;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Multiplexed(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

enum Backend {
    Fixed(Conn),
    Sentinel(Box<SentinelMaster>),
}

pub struct RedisStore {
    backend: Backend,
    /// Standalone Redis only: opens each HTTP worker's own connection, and the pub/sub one (Sentinel
    /// and Cluster instances rely on the periodic re-read of settings).
    pubsub: Option<redis::Client>,
    /// Names this store's connections in each worker thread's `WORKER_CONNECTIONS`.
    id: u64,
}

/// Store ids, unique in the process.
static NEXT_STORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_store_id() -> u64 {
    NEXT_STORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The master as Sentinel names it. Connections are kept until a call fails with a connection
/// error or READONLY (the master was demoted); that call moves `generation` on, and the next call
/// on any thread asks Sentinel again, so a failover costs the calls in flight, not a restart.
struct SentinelMaster {
    client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    /// The connection start-up, commands and the settings watcher share.
    current: std::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Moves on when the master is found gone; HTTP workers' own connections of an older
    /// generation are then replaced.
    generation: std::sync::atomic::AtomicU64,
}

impl SentinelMaster {
    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut client = self.client.lock().await;
        // Another call may have reconnected while this one waited.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let c = Self::open(&mut client).await?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// A new connection to the master Sentinel names now.
    async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        Self::open(&mut *self.client.lock().await).await
    }

    async fn open(
        client: &mut redis::sentinel::SentinelClient,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        client.get_async_connection_with_config(&config).await
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn cached(&self) -> Option<redis::aio::MultiplexedConnection> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn forget_on(&self, e: &redis::RedisError) {
        let demoted = e.code() == Some("READONLY");
        if demoted || e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> u64 {
    // PEXPIRE 0 deletes at once; a window always lasts at least 1 ms.
    (d.as_millis() as u64).max(1)
}

/// A store call that hangs must become the `error` status quickly, not a stuck callflow.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Cluster retries. The crate's defaults (16 retries, waits from 1.28 s) mean a slot whose master is
/// down, or a cluster in CLUSTERDOWN, always costs the whole RESPONSE_TIMEOUT: every callflow answer
/// then waits 2 s to say `error`. A caller on the phone gains nothing from that wait (a failover
/// takes longer than one call's patience), so a few short retries ride out a MOVED/ASK redirect or
/// a blip and fail fast otherwise. Measured with three local masters and one killed: see
/// docs/operations.md (Redis Cluster with a node down).
const CLUSTER_RETRIES: u32 = 2;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 20;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// One script call, built straight into its `EVALSHA` command: redis's own `ScriptInvocation`
/// copies every key and argument into a buffer of its own first, then into a command (about 20
/// allocations more per check).
struct Eval<'a> {
    script: &'a Script,
    cmd: redis::Cmd,
}

impl<'a> Eval<'a> {
    /// Keys come first, as `EVALSHA` counts them; arguments follow with [`Eval::arg`].
    fn new(script: &'a Script, keys: &[&str]) -> Eval<'a> {
        // Room for a check's 6 keys and 15 arguments without growing.
        let mut cmd = redis::Cmd::with_capacity(24, 640);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(keys.len())
            .arg(keys);
        Eval { script, cmd }
    }

    fn arg(mut self, arg: impl redis::ToRedisArgs) -> Eval<'a> {
        self.cmd.arg(arg);
        self
    }

    /// Loads the script when Redis does not know it (after a restart, a failover or a
    /// `SCRIPT FLUSH`) and asks again.
    async fn invoke<T: redis::FromRedisValue>(&self, c: &mut Conn) -> redis::RedisResult<T> {
        match self.cmd.query_async(c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.prepare_invoke().load_async(c).await?;
                self.cmd.query_async(c).await
            }
            answer => answer,
        }
    }
}

thread_local! {
    /// Each HTTP worker thread's own connection per store, on standalone Redis and Sentinel. A
    /// request and its Redis reply then stay on one thread: with one connection shared by all
    /// workers, the cross-thread wake-ups were a large part of a check's CPU, and checks ran 20 to
    /// 35 % slower (`deploy/bench/run.sh`, line (a)).
    static WORKER_CONNECTIONS: std::cell::RefCell<Vec<WorkerConnection>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

struct WorkerConnection {
    /// The store's id (`RedisStore::id`).
    store: u64,
    /// Sentinel's generation when it was opened (`SentinelMaster::generation`); 0 otherwise.
    generation: u64,
    /// Shared by the thread's tasks, so a burst of calls before the connection exists opens one,
    /// the first call's, and the rest wait for it.
    conn: std::sync::Arc<tokio::sync::OnceCell<Conn>>,
}

/// On an HTTP worker (a current-thread runtime), rather than at start-up, in the settings watcher
/// or in a command (the multi-thread runtime).
fn on_http_worker() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
}

impl RedisStore {
    /// `root_ca` (PEM), when given, replaces the public roots for `rediss://` and `rediss+cluster://`.
    pub async fn connect(
        url: StoreUrl,
        root_ca: Option<Vec<u8>>,
    ) -> Result<RedisStore, StoreError> {
        let certs = root_ca.map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        let config = manager_config();
        let mut pubsub = None;
        let conn = match url {
            StoreUrl::Memory => {
                return Err(StoreError::Unavailable(
                    "memory:// is not a Redis URL".into(),
                ));
            }
            StoreUrl::Redis(u) => {
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(u.as_str(), certs),
                    None => redis::Client::open(u.as_str()),
                }
                .map_err(unavailable)?;
                pubsub = Some(client.clone());
                Conn::Single(
                    client
                        .get_connection_manager_with_config(config)
                        .await
                        .map_err(unavailable)?,
                )
            }
            StoreUrl::Sentinel {
                nodes,
                service,
                tls,
            } => {
                if certs.is_some() {
                    // Config validation refuses this; a CA silently ignored would be worse.
                    return Err(StoreError::Unavailable(
                        "a private CA (store.ca_file) is not supported with Sentinel".into(),
                    ));
                }
                // The credentials in the URL (on the first node) are the master's too.
                let first = redis::IntoConnectionInfo::into_connection_info(nodes[0].as_str())
                    .map_err(unavailable)?;
                let mut master = redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(first.redis_settings().clone());
                if tls {
                    master = master.set_tls_mode(redis::TlsMode::Secure);
                }
                let client = redis::sentinel::SentinelClient::build(
                    nodes,
                    service,
                    Some(master),
                    redis::sentinel::SentinelServerType::Master,
                )
                .map_err(unavailable)?;
                let sentinel = SentinelMaster {
                    client: tokio::sync::Mutex::new(client),
                    current: std::sync::Mutex::new(None),
                    generation: std::sync::atomic::AtomicU64::new(0),
                };
                sentinel.connection().await.map_err(unavailable)?;
                return Ok(RedisStore {
                    backend: Backend::Sentinel(Box::new(sentinel)),
                    pubsub: None,
                    id: next_store_id(),
                });
            }
            StoreUrl::Cluster(nodes) => {
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .build()
                    .map_err(unavailable)?;
                Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
            }
        };
        Ok(RedisStore {
            backend: Backend::Fixed(conn),
            pubsub,
            id: next_store_id(),
        })
    }

    /// On an HTTP worker, a connection of the worker's own, driven on its thread; elsewhere the
    /// shared one. Cluster keeps its one connection per node.
    async fn connection(&self) -> Result<Conn, StoreError> {
        let worker = on_http_worker();
        match (&self.backend, &self.pubsub) {
            (Backend::Fixed(Conn::Single(_)), Some(client)) if worker => {
                self.worker_connection(0, async || {
                    client
                        .get_connection_manager_with_config(manager_config())
                        .await
                        .map(Conn::Single)
                })
                .await
            }
            (Backend::Fixed(c), _) => Ok(c.clone()),
            (Backend::Sentinel(s), _) if worker => {
                self.worker_connection(s.generation(), async || {
                    s.connect().await.map(Conn::Multiplexed)
                })
                .await
            }
            (Backend::Sentinel(s), _) => s
                .connection()
                .await
                .map(Conn::Multiplexed)
                .map_err(unavailable),
        }
    }

    /// This thread's connection of `generation`, else a new one from `open` in its place.
    async fn worker_connection(
        &self,
        generation: u64,
        open: impl AsyncFnOnce() -> redis::RedisResult<Conn>,
    ) -> Result<Conn, StoreError> {
        let id = self.id;
        let cell = WORKER_CONNECTIONS.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(w) = c
                .iter()
                .find(|w| w.store == id && w.generation == generation)
            {
                return w.conn.clone();
            }
            c.retain(|w| w.store != id);
            let cell = std::sync::Arc::new(tokio::sync::OnceCell::new());
            c.push(WorkerConnection {
                store: id,
                generation,
                conn: cell.clone(),
            });
            cell
        });
        // A failed open leaves the cell empty: the next call tries again.
        cell.get_or_try_init(async || open().await.map_err(unavailable))
            .await
            .cloned()
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let started = std::time::Instant::now();
        let mut conn = self.connection().await?;
        let result = f(&mut conn).await;
        metrics::histogram!("twofactor_store_round_trip_seconds")
            .record(started.elapsed().as_secs_f64());
        if let (Err(e), Backend::Sentinel(s)) = (&result, &self.backend) {
            s.forget_on(e);
        }
        result.map_err(unavailable)
    }
}

/// Lets every command and script run on either kind of connection.
impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
