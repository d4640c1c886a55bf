//! The Redis store: standalone (`ConnectionManager`, reconnects by itself), Sentinel (the master asked
//! of Sentinel again after a connection error or READONLY) and Cluster. HTTP workers hold connections
//! of their own (`WORKER_CONNECTIONS`) on standalone and Sentinel. Every read-modify-write is one Lua script, so it is atomic across instances and
//! takes one round trip. Every key a script touches is one of its KEYS, so scripts run on Cluster too.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Known, Lockout, SendAsk, SendKeys, Started,
    Store, StoreError, StoreUrl, Ttl, Verdict,
};
use crate::domain::Method;

static DISCARD_CODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'd') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0",
    )
});

/// What both a check and a send read of the customer record (`rec`, as read, or false when there
/// is none), or of the customer as given (`known`, written `<email><phone><authenticator>:<rev>[,<rev>…]`
/// with 1/0 flags, current revision first) when the customer was looked up elsewhere. Answers
/// nothing when there is no record, false when it is unreadable, else: the record as read ('' when
/// known), whether it has an email, a phone and an authenticator, the contacts' current revision
/// (which a new code carries), and when known the list of every revision a pending code may carry.
/// Several values, not a table: each table is an allocation the script's garbage collector then
/// walks, and this runs on every check and send.
const RECORD: &str = r"local function record(rec, known)
  if known ~= '' then
    local e, s, a, list = string.match(known, '^(%d)(%d)(%d):(.*)$')
    return '', e == '1', s == '1', a == '1', string.match(list, '[^,]+') or '', list
  end
  if not rec then return nil end
  -- cjson decodes an array to a table too; a record is an object.
  if string.byte(rec) ~= 123 then return false end
  local ok, c = pcall(cjson.decode, rec)
  if not ok or type(c) ~= 'table' then return false end
  local null, e, s, a, rev = cjson.null, c.email, c.phone, c.totp_sealed, c.rev
  if rev == nil or rev == null then rev = '' end
  return rec, e ~= nil and e ~= null and e ~= '', s ~= nil and s ~= null and s ~= '',
    a ~= nil and a ~= null and a ~= '', rev
end
";

/// Counts a send and, within the limit, writes its code and remembers its method: -1 when the
/// window's sends are used up (the count taken back), else the send's number.
/// The send count keeps its `PTTL` repair (unlike the check's failure count): a send is far rarer
/// than a check, so the extra call costs nothing that shows.
const RESERVE: &str = r"local function reserve(sends, code, choice, max, window, digest, method, rev, ttl)
  local n = redis.call('INCR', sends)
  if n == 1 or redis.call('PTTL', sends) < 0 then redis.call('PEXPIRE', sends, window) end
  if n > tonumber(max) then
    redis.call('DECR', sends)
    return -1
  end
  redis.call('DEL', code)
  redis.call('HSET', code, 'd', digest, 'm', method, 'a', 0, 'r', rev)
  redis.call('PEXPIRE', code, ttl)
  redis.call('SET', choice, method, 'PX', ttl)
  return n
end
";

/// The judging both verification scripts share, up to their own verdict. Each script first sets
/// `chosen` (the method), `digests` (the index in ARGV of the code's first digest; the rest
/// follow), and `accepted`, `locked`, `failures` and `streak` (the values of KEYS[3], KEYS[1],
/// KEYS[2] and KEYS[6], read with the script's other reads in one MGET: each call out of Lua costs
/// Redis about as much as the key lookup itself). KEYS: lock, failures, accepted, choice, code,
/// streak. ARGV: max, window ms, lock ms, grace ms, judge (1/0), discard the code on lock (1/0),
/// failures in a row that lock for the desk. Sets `n` (this failure's number) and `max`. Answers
/// {kind, lock, method, record}: kind 0 missing, 1 accepted, 2 wrong, 3 exhausted, 4 locked, 5
/// repeat, 6 replayed, 7 unknown customer, 8 authenticator chosen (with the record), 9 unreadable
/// record; lock 0 none, 1 locked now, 2 locked now until the desk unlocks, 3 (with kind 4) held by
/// a lock only the desk lifts. The digests are keyed HMACs, so comparing them with `==` reveals
/// nothing an attacker can steer. No closures but `accept`: each is an allocation per call.
const VERIFY_PRELUDE: &str = r"if accepted then
  for i = digests, #ARGV do
    if accepted == ARGV[i] then return {5, 0, chosen, ''} end
  end
end
if ARGV[5] ~= '1' then return {0, 0, chosen, ''} end
if locked then
  if locked == 'desk' then return {4, 3, chosen, ''} end
  return {4, 0, chosen, ''}
end
-- The count is only ever made with its expiry (SET PX), which INCR keeps. One given no expiry
-- by hand is not repaired here (checking costs a call per check); an unlock deletes it.
local n = 1
if failures then
  n = redis.call('INCR', KEYS[2])
else
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
local max = tonumber(ARGV[1])
local function accept(digest)
  redis.call('DEL', KEYS[2], KEYS[4], KEYS[6])
  if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[3], digest, 'PX', ARGV[4]) end
end
";

/// How both verification scripts end, once their own part has set `kind` (the verdict, as
/// `VERIFY_PRELUDE` numbers them): a judged failure adds to the streak, and the one that reaches
/// `ARGV[7]` locks with no expiry (`desk`); otherwise the failure that reaches the window's limit
/// locks for the lock's duration. The streak has no expiry either: waiting out locks never resets it.
const VERIFY_VERDICT: &str = r"if kind ~= 4 then
  local s = (tonumber(streak) or 0) + 1
  if s >= tonumber(ARGV[7]) then
    redis.call('SET', KEYS[1], 'desk')
    redis.call('DEL', KEYS[2], KEYS[6])
    if ARGV[6] == '1' then redis.call('DEL', KEYS[5]) end
    return {kind, 2, chosen, ''}
  end
  redis.call('SET', KEYS[6], s)
end
if n >= max then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  if ARGV[6] == '1' then redis.call('DEL', KEYS[5]) end
  return {kind, 1, chosen, ''}
end
return {kind, 0, chosen, ''}";

/// A whole check of a code (see `Store::check_code`). KEYS as the prelude's, then the record.
/// ARGV as the prelude's, then: 8 wrong tries one code survives, 9 the named method (or ''), 10 the
/// offered channels ('e', 's'), 11 the customer as known (or '': read the record), 12 how many
/// email digests follow from 13, then the SMS digests.
static CHECK_CODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RECORD}
local got = redis.call('MGET', KEYS[7], KEYS[4], KEYS[3], KEYS[1], KEYS[2], KEYS[6])
local rec, email, phone, totp, rev, revs = record(got[1], ARGV[11])
if rec == nil then return {{7, 0, '', ''}} end
if not rec then return {{9, 0, '', ''}} end
local code = redis.call('HMGET', KEYS[5], 'd', 'r', 'm')
local chosen = ARGV[9]
if chosen == '' then
  local remembered = got[2] or code[3]
  if remembered then
    if remembered == 'email' or remembered == 'sms' or remembered == 'authenticator' then
      chosen = remembered
    end
  elseif totp then
    chosen = 'authenticator'
  else
    local e = email and string.find(ARGV[10], 'e', 1, true)
    local s = phone and string.find(ARGV[10], 's', 1, true)
    if e and not s then chosen = 'email' elseif s and not e then chosen = 'sms' end
  end
end
if chosen == 'authenticator' then return {{8, 0, chosen, rec}} end
local digests, accepted, locked, failures, streak = 13, got[3], got[4], got[5], got[6]
{VERIFY_PRELUDE}
local d, r = code[1], code[2] or ''
-- Whether the pending code went to the contacts as they are now.
local current = r == rev
if revs then
  current = r ~= '' and not string.find(r, ',', 1, true)
    and string.find(',' .. revs .. ',', ',' .. r .. ',', 1, true) ~= nil
end
local kind
if n > max then
  kind = 4
elseif not d then
  kind = 0
elseif not current then
  redis.call('DEL', KEYS[5])
  kind = 0
else
  local k = tonumber(ARGV[12])
  local first, last = 13, 12 + k
  if chosen == 'sms' then first, last = 13 + k, #ARGV end
  for i = first, last do
    if d == ARGV[i] then
      redis.call('DEL', KEYS[5])
      accept(d)
      return {{1, 0, chosen, ''}}
    end
  end
  if redis.call('HINCRBY', KEYS[5], 'a', 1) >= tonumber(ARGV[8]) then
    redis.call('DEL', KEYS[5])
    kind = 3
  else
    kind = 2
  end
end
{VERIFY_VERDICT}"
    ))
});

/// An authenticator code: KEYS as the prelude's, then the last accepted step; ARGV as the
/// prelude's, then 8 the matched step (-1 none), 9 the step record's life in ms, then the digests.
static VERIFY_TOTP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local chosen = 'authenticator'
local got = redis.call('MGET', KEYS[3], KEYS[1], KEYS[2], KEYS[6])
local digests, accepted, locked, failures, streak = 10, got[1], got[2], got[3], got[4]
{VERIFY_PRELUDE}
local kind
local step = tonumber(ARGV[8])
if n > max then
  kind = 4
elseif step < 0 then
  kind = 2
else
  local last = tonumber(redis.call('GET', KEYS[7]) or '-1')
  if last and step <= last then
    kind = 6
  else
    redis.call('SET', KEYS[7], ARGV[8], 'PX', ARGV[9])
    accept(ARGV[10])
    return {{1, 0, chosen, ''}}
  end
end
{VERIFY_VERDICT}"
    ))
});

/// The first step of a send (see `Store::start_send`). KEYS: record, lock, choice, code, sends.
/// ARGV: method, offered (1/0), line locked (1/0), reserve (1/0), max sends, window ms, digest,
/// ttl ms, the customer as known (or '': read the record). Answers {kind, record}: 0 unknown, 1 not verified, 2 not offered, 3 locked, 4 line
/// locked, 5 authenticator, 6 checked, 7 limited, 8 reserved, 9 unreadable record, 10 locked until
/// the desk unlocks.
static START_SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RECORD}{RESERVE}
local rec, email, phone, totp, rev = record(redis.call('GET', KEYS[1]), ARGV[9])
if rec == nil then return {{0, ''}} end
if not rec then return {{9, ''}} end
local m = ARGV[1]
local has = (m == 'email' and email) or (m == 'sms' and phone) or (m == 'authenticator' and totp)
if not has then return {{1, ''}} end
if ARGV[2] ~= '1' then return {{2, ''}} end
local lock = redis.call('GET', KEYS[2])
if lock == 'desk' then return {{10, ''}} end
if lock then return {{3, ''}} end
if ARGV[3] == '1' then return {{4, ''}} end
if m == 'authenticator' then
  redis.call('SET', KEYS[3], m, 'PX', ARGV[8])
  return {{5, ''}}
end
if ARGV[4] ~= '1' then return {{6, rec}} end
if reserve(KEYS[5], KEYS[4], KEYS[3], ARGV[5], ARGV[6], ARGV[7], m, rev, ARGV[8]) < 0 then
  return {{7, ''}}
end
return {{8, rec}}"
    ))
});

/// KEYS: sends, code, choice. ARGV: max, window ms, digest, method, contacts revision, ttl ms.
static RESERVE_SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RESERVE}
return reserve(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])"
    ))
});

/// KEYS: lock, count. ARGV: max, window ms. -1 locked, -2 full (nothing counted), else the count.
static CLAIM_CAPPED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n = redis.call('INCR', KEYS[2])
if n == 1 or redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[2])
  return -2
end
return n",
    )
});

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

/// The shared part of both verification scripts' invocations (see `VERIFY_PRELUDE`), with the
/// script's own last key.
fn verify_invocation<'a>(
    script: &'a Script,
    keys: &AttemptKeys,
    last_key: &str,
    rule: &Lockout,
    judge: bool,
) -> Eval<'a> {
    Eval::new(
        script,
        &[
            &keys.lock,
            &keys.failures,
            &keys.accepted,
            &keys.choice,
            &keys.code,
            &keys.streak,
            last_key,
        ],
    )
    .arg(rule.max)
    .arg(millis(rule.window))
    .arg(millis(rule.lock_for))
    .arg(rule.grace.as_millis() as u64)
    .arg(u8::from(judge))
    .arg(u8::from(rule.discard_code_on_lock))
    .arg(rule.max_in_a_row)
}

/// A verification script's answer: `Checked`, or for kind 7 and 8 what came before judging.
fn checked(
    (kind, lock, method, record): (i64, i64, String, String),
) -> Result<Checked, StoreError> {
    let judged = match kind {
        0 => Judged::Missing,
        1 => Judged::Accepted,
        2 => Judged::Wrong,
        3 => Judged::Exhausted,
        4 => Judged::Locked,
        5 => Judged::Repeat,
        6 => Judged::Replayed,
        7 => return Ok(Checked::Unknown),
        8 => return Ok(Checked::Authenticator(record)),
        9 => return Err(unreadable_record()),
        other => {
            return Err(StoreError::Protocol(format!(
                "verification script answered {other}"
            )));
        }
    };
    let verdict = Verdict {
        judged,
        locked_now: matches!(lock, 1 | 2),
        desk: matches!(lock, 2 | 3),
    };
    Ok(Checked::Judged(Method::from_stored(&method), verdict))
}

/// `Known` as the scripts' `record` reads it.
fn known(k: Option<&Known>) -> String {
    k.map_or(String::new(), |k| {
        let flag = |b: bool| if b { '1' } else { '0' };
        format!(
            "{}{}{}:{}",
            flag(k.email),
            flag(k.phone),
            flag(k.authenticator),
            k.revs.join(",")
        )
    })
}

fn unreadable_record() -> StoreError {
    StoreError::Protocol("the customer record is not readable JSON".into())
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

#[async_trait]
impl Store for RedisStore {
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

    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError> {
        let (kind, record): (i64, String) = self
            .run(async |c| {
                Eval::new(
                    &START_SEND,
                    &[
                        &keys.record,
                        &keys.lock,
                        &keys.choice,
                        &keys.code,
                        &keys.sends,
                    ],
                )
                .arg(ask.method.as_str())
                .arg(u8::from(ask.offered))
                .arg(u8::from(ask.line_locked))
                .arg(u8::from(ask.reserve))
                .arg(ask.max)
                .arg(millis(ask.window))
                .arg(ask.digest)
                .arg(millis(ask.ttl))
                .arg(known(ask.known))
                .invoke(c)
                .await
            })
            .await?;
        Ok(match kind {
            0 => Started::Unknown,
            1 => Started::NotVerified,
            2 => Started::NotOffered,
            3 => Started::Locked { desk: false },
            10 => Started::Locked { desk: true },
            4 => Started::LineLocked,
            5 => Started::Authenticator,
            6 => Started::Checked(record),
            7 => Started::Limited,
            8 => Started::Reserved(record),
            9 => return Err(unreadable_record()),
            other => {
                return Err(StoreError::Protocol(format!(
                    "send script answered {other}"
                )));
            }
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
        let n: i64 = self
            .run(async |c| {
                Eval::new(&RESERVE_SEND, &[sends_key, code_key, choice_key])
                    .arg(max)
                    .arg(millis(window))
                    .arg(digest)
                    .arg(method)
                    .arg(rev)
                    .arg(millis(ttl))
                    .invoke(c)
                    .await
            })
            .await?;
        Ok((n >= 0).then_some(n as u64))
    }

    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(async |c| c.hget(key, "m").await).await
    }

    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(async |c| Eval::new(&DISCARD_CODE, &[key]).arg(digest).invoke(c).await)
            .await?;
        Ok(n == 1)
    }

    async fn check_code(
        &self,
        keys: &AttemptKeys,
        ask: &CodeCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Checked, StoreError> {
        let offered = match (ask.email_offered, ask.sms_offered) {
            (true, true) => "es",
            (true, false) => "e",
            (false, true) => "s",
            (false, false) => "",
        };
        let eval = verify_invocation(&CHECK_CODE, keys, &keys.record, rule, judge)
            .arg(ask.max_tries)
            .arg(ask.named.map_or("", Method::as_str))
            .arg(offered)
            .arg(known(ask.known))
            .arg(ask.email.len())
            .arg(ask.email)
            .arg(ask.sms);
        let reply = self.run(async |c| eval.invoke(c).await).await?;
        checked(reply)
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
        let step = matched_step.map_or(-1, |s| s as i64);
        let eval = verify_invocation(&VERIFY_TOTP, keys, step_key, rule, judge)
            .arg(step)
            .arg(millis(step_ttl))
            .arg(candidates);
        let reply = self.run(async |c| eval.invoke(c).await).await?;
        match checked(reply)? {
            Checked::Judged(_, verdict) => Ok(verdict),
            _ => Err(StoreError::Protocol(
                "authenticator script answered before judging".into(),
            )),
        }
    }

    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        let n: i64 = self
            .run(async |c| {
                Eval::new(&CLAIM_CAPPED, &[lock_key, count_key])
                    .arg(max)
                    .arg(millis(window))
                    .invoke(c)
                    .await
            })
            .await?;
        Ok(match n {
            -1 => Claim::Locked,
            n if n < 0 => Claim::Full,
            n => Claim::Allowed(n as u64),
        })
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
