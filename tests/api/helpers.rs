//! Test harness: the real server on port 0 over either store, a private `redis-server` on a free port
//! (one per test binary, one key prefix per test), and typed helpers for the three endpoints.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::web;
use twofactor::config::Settings;
use twofactor::startup::Application;
use twofactor::state::{AppState, Clock};
use twofactor::store::Store;

/// Which store a test runs on; every flow test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Runs one async test body on both stores: `both_stores!(name, body_fn);`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$body($crate::helpers::StoreKind::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$body($crate::helpers::StoreKind::Redis).await
            }
        }
    };
}

/// The statuses tests run with: each outcome distinct, so a test can tell them apart.
pub const STATUSES: &str = r#"
[statuses]
success = "success"
not_found = "not found"
incorrect_code = "incorrect code"
code_expired = "expired"
locked = "locked"
send_limited = "send limited"
error = "error"
"#;

/// A fixed key, so tests can also build a key ring of their own.
pub const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub struct RedisServer {
    pub port: u16,
    /// The watcher shell; kept so the handle lives as long as the server.
    _watcher: std::sync::Mutex<std::process::Child>,
}

impl RedisServer {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The test binary's private redis-server, started on first use. A watcher shell stops it when the
/// test process exits, so no server outlives the run.
pub fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "redis-server is not installed: the tests start a private one. Install it with \
             `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`."
        );
        let port = free_port();
        let me = std::process::id();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
             --loglevel warning > /dev/null 2>&1 & R=$!; \
             while kill -0 {me} 2>/dev/null && kill -0 $R 2>/dev/null; do sleep 0.5; done; kill $R 2>/dev/null"
        );
        // The watcher exits by itself once the test process is gone; nothing waits for it.
        #[allow(clippy::zombie_processes)]
        let watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("start redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return RedisServer { port, _watcher: std::sync::Mutex::new(watcher) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    })
}

/// Turns on logs with TEST_LOG=1.
fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            // Kept for the whole test process, which never drops it.
            std::mem::forget(twofactor::telemetry::init(
                twofactor::config::LogFormat::Text,
                "info",
            ));
        }
    });
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// `http://127.0.0.1:<port>` of the admin listener, when `admin.bind` gives it one.
    pub admin_address: Option<String>,
    pub kind: StoreKind,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub outbox: PathBuf,
    pub prefix: String,
    pub dir: tempfile::TempDir,
}

/// The settings every test starts from, for `kind`, with `overrides` (TOML) on top.
pub fn test_settings(
    kind: StoreKind,
    dir: &std::path::Path,
    prefix: &str,
    overrides: &str,
) -> Settings {
    let store_url = match kind {
        StoreKind::Memory => "memory://".to_string(),
        StoreKind::Redis => redis().url(),
    };
    let outbox = dir.join("outbox.jsonl");
    // Later tables with the same name would be a TOML error, so the base goes in as a figment layer.
    let base = format!(
        r#"
[server]
bind = "127.0.0.1:0"
workers = 1
[store]
url = "{store_url}"
key_prefix = "{prefix}"
[security]
encryption_key = "{TEST_KEY}"
[delivery]
outbox_file = "{}"
{STATUSES}
"#,
        outbox.display()
    );
    Settings::from_layers(&[&base, overrides]).expect("test settings are valid")
}

pub async fn spawn_app(kind: StoreKind) -> TestApp {
    spawn_app_with(kind, "").await
}

/// Starts the real server on port 0 with `overrides` (TOML) over the test settings.
pub async fn spawn_app_with(kind: StoreKind, overrides: &str) -> TestApp {
    spawn_app_customised(kind, overrides, |_| {}).await
}

/// Like `spawn_app_with`, with a last say over the state (a test clock, say) before the server starts.
pub async fn spawn_app_customised(
    kind: StoreKind,
    overrides: &str,
    customise: impl FnOnce(&mut AppState),
) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(
        kind,
        dir.path(),
        &format!("t{:016x}:", rand_u64()),
        overrides,
    );
    // The overrides may name a prefix of their own (two instances sharing one Redis).
    let prefix = settings.store.key_prefix.clone();
    let outbox = PathBuf::from(&settings.delivery.outbox_file);
    let mut state = AppState::from_settings(settings).await.expect("state");
    customise(&mut state);
    serve(kind, state, outbox, prefix, dir).await
}

/// Starts the server around `state` on port 0 and wraps it for the test.
async fn serve(
    kind: StoreKind,
    state: AppState,
    outbox: PathBuf,
    prefix: String,
    dir: tempfile::TempDir,
) -> TestApp {
    let app = Application::build_with_state(state)
        .await
        .expect("app builds");
    let port = app.port();
    let admin_address = app.admin_port().map(|p| format!("http://127.0.0.1:{p}"));
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        admin_address,
        kind,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        state,
        outbox,
        prefix,
        dir,
    }
}

/// A clock tests set by hand, for the `Clock` seam: step boundaries and expiries are chosen, not met
/// by chance.
pub struct TestClock(AtomicU64);

impl TestClock {
    /// Starts 15 s into a 30 s TOTP step, as far as possible from both of its edges.
    pub fn mid_step() -> Arc<TestClock> {
        Arc::new(TestClock(AtomicU64::new(1_800_000_015)))
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_unix(&self) -> u64 {
        self.now()
    }
}

/// Like `spawn_app_with`, but on `clock`.
pub async fn spawn_app_with_clock(
    kind: StoreKind,
    overrides: &str,
    clock: Arc<TestClock>,
) -> TestApp {
    spawn_app_customised(kind, overrides, |state| state.clock = clock).await
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A response: HTTP status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    /// The `<status>` text.
    pub fn xml_status(&self) -> String {
        between(&self.body, "<status>", "</status>").unwrap_or_default()
    }
    pub fn message(&self) -> String {
        between(&self.body, "<message>", "</message>").unwrap_or_default()
    }
}

pub fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(s[start..end].to_string())
}

impl TestApp {
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Customer 1001 with email `alice@example.com` and SMS `+447911123456`.
    pub async fn add_alice(&self) {
        self.add_customer(
            "1001",
            Some("alice@example.com"),
            Some("+447911123456"),
            None,
        )
        .await;
    }

    /// Adds a customer the way the seed file does.
    pub async fn add_customer(
        &self,
        id: &str,
        email: Option<&str>,
        phone: Option<&str>,
        totp_secret: Option<&str>,
    ) {
        let json = serde_json::json!([{ "id": id, "email": email, "phone": phone, "totp_secret": totp_secret }]);
        self.state
            .directory
            .import_json(&json.to_string())
            .await
            .expect("customer imports");
    }

    async fn answer(&self, res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = res.text().await.expect("body");
        assert!(status < 500, "server answered {status}: {body}");
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// GET `path` with query parameters.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let res = self
            .client
            .get(format!("{}{path}", self.address))
            .query(params)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    /// POST `path` with a form body.
    pub async fn post_form(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let res = self
            .client
            .post(format!("{}{path}", self.address))
            .form(params)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    /// POST `path` with a raw body and content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let res = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        self.answer(res).await
    }

    pub async fn methods(&self, customer: &str) -> Answer {
        self.get(
            "/v1/check-verified-contact-methods",
            &[("CustomerId", customer)],
        )
        .await
    }

    pub async fn send(&self, customer: &str, method: &str) -> Answer {
        self.get(
            "/v1/send-authentication-code",
            &[
                ("CustomerId", customer),
                ("TwoFactorAuthSelectedMethod", method),
            ],
        )
        .await
    }

    pub async fn verify(&self, customer: &str, code: &str) -> Answer {
        self.get(
            "/v1/code-authentication",
            &[("CustomerId", customer), ("authCode_nbest1", code)],
        )
        .await
    }

    /// Every outbox message, oldest first.
    pub fn outbox_messages(&self) -> Vec<serde_json::Value> {
        let Ok(file) = std::fs::File::open(&self.outbox) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map(|l| serde_json::from_str(&l.expect("line")).expect("outbox line is JSON"))
            .collect()
    }

    /// The code in the newest outbox message to `to`.
    pub fn last_code_to(&self, to: &str) -> String {
        let msg = self
            .outbox_messages()
            .into_iter()
            .rev()
            .find(|m| m["to"] == to)
            .unwrap_or_else(|| {
                panic!(
                    "no outbox message to {to} in {}: {:?}",
                    self.outbox.display(),
                    std::fs::read_to_string(&self.outbox)
                )
            });
        first_code(msg["body"].as_str().expect("body"))
    }
}

/// The first run of 4 to 10 digits in a message.
pub fn first_code(text: &str) -> String {
    let re = regex::Regex::new(r"\b\d{4,10}\b").expect("regex");
    re.find(text)
        .map(|m| m.as_str().to_string())
        .expect("a code in the message")
}

/// A file under `fixtures/`, found from the crate root so tests do not depend on the working directory.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// A text fixture. Fixture files end with exactly one newline (as editors save them), which is
/// not part of the document: it is stripped here, and a file without it is refused so the rule
/// stays the same for every fixture.
pub fn fixture(relative: &str) -> String {
    let path = fixture_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    let doc = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("fixture {} must end with one newline", path.display()));
    assert!(
        !doc.ends_with('\n') && !doc.ends_with('\r'),
        "fixture {} must end with exactly one newline",
        path.display()
    );
    doc.to_string()
}

/// The three callflow paths.
pub const METHODS: &str = "/v1/check-verified-contact-methods";
pub const SEND: &str = "/v1/send-authentication-code";
pub const VERIFY: &str = "/v1/code-authentication";

impl TestApp {
    /// Any method, query and optional body (content type, bytes): for the cases the typed helpers
    /// cannot express (PUT, bodies without a content type, bytes that are not UTF-8).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(Option<&str>, Vec<u8>)>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .query(query);
        if let Some((content_type, bytes)) = body {
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req = req.body(bytes);
        }
        let res = req.send().await.expect("request");
        self.answer(res).await
    }

    /// The number of outbox messages to `to`.
    pub fn messages_to(&self, to: &str) -> usize {
        self.outbox_messages()
            .iter()
            .filter(|m| m["to"] == to)
            .count()
    }
}

/// A wrong code of the same length as `code` (each digit moved on by one).
pub fn wrong_code(code: &str) -> String {
    code.chars()
        .map(|c| if c == '9' { '0' } else { (c as u8 + 1) as char })
        .collect()
}

/// Seconds since the Unix epoch, by the real clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An authenticator app for a base32 secret (SHA1, 30 s, `digits` digits), as the caller holds it.
pub fn authenticator(secret_b32: &str, digits: usize) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_digits(digits as u8)
        .with_secret(totp_rs::Secret::try_from_base32(secret_b32).expect("base32 secret"))
        .build()
        .expect("a valid TOTP")
}

/// An admin token long enough for production (32+ characters), for tests that drive the admin API.
pub const LONG_ADMIN_TOKEN: &str = "lifecycle-rotation-admin-token-8d41c07e";

/// The `[admin]` table that turns the admin API on with `LONG_ADMIN_TOKEN`.
pub fn admin_tokens() -> String {
    format!("[admin]\ntokens = [\"{LONG_ADMIN_TOKEN}\"]\n")
}

impl TestApp {
    /// One admin request with `LONG_ADMIN_TOKEN` and an optional JSON body. Any 5xx fails the test.
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> crate::admin::AdminAnswer {
        let text = body.map(|b| b.to_string());
        crate::admin::admin(
            self,
            method,
            path,
            Some(LONG_ADMIN_TOKEN),
            text.as_deref().map(|t| ("application/json", t)),
        )
        .await
    }

    /// send-authentication-code with extra parameters (a call id, a caller number).
    pub async fn send_with(&self, customer: &str, method: &str, extra: &[(&str, &str)]) -> Answer {
        let mut params = vec![
            ("CustomerId", customer),
            ("TwoFactorAuthSelectedMethod", method),
        ];
        params.extend_from_slice(extra);
        self.get(SEND, &params).await
    }

    /// code-authentication with extra parameters (a method, a call id, a caller number).
    pub async fn verify_with(&self, customer: &str, code: &str, extra: &[(&str, &str)]) -> Answer {
        let mut params = vec![("CustomerId", customer), ("authCode_nbest1", code)];
        params.extend_from_slice(extra);
        self.get(VERIFY, &params).await
    }
}

/// A second instance over `first`'s store (same prefix), with `overrides` over the test settings:
/// two instances of one deployment. On Redis it opens its own connection, as a separate process
/// would; the memory store exists once per process, so the second app is built around the first's.
pub async fn spawn_app_sharing(first: &TestApp, overrides: &str) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(first.kind, dir.path(), &first.prefix, overrides);
    let outbox = PathBuf::from(&settings.delivery.outbox_file);
    let state = match first.kind {
        StoreKind::Memory => {
            AppState::with_store(settings, first.store()).expect("state over the shared store")
        }
        StoreKind::Redis => AppState::from_settings(settings).await.expect("state"),
    };
    serve(first.kind, state, outbox, first.prefix.clone(), dir).await
}

/// Runs the real `twofactor` binary with `args` against the test Redis under `prefix`, with
/// `key` current and `previous` keys listed, as an operator runs it beside a deployment. Nothing
/// from this process's environment reaches it but the settings given here.
pub async fn run_cli(
    prefix: &str,
    key: &str,
    previous: &[&str],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = cli_command(prefix, key, args);
    if !previous.is_empty() {
        let list: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
        cmd.env(
            "TFA__SECURITY__PREVIOUS_ENCRYPTION_KEYS",
            format!("[{}]", list.join(", ")),
        );
    }
    command_output(cmd).await
}

/// Runs the real `twofactor` binary with `args` against the test Redis under `prefix` and the test
/// key, with the settings `env` on top (as an operator configures it through the environment).
pub async fn run_cli_with_env(
    prefix: &str,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = cli_command(prefix, TEST_KEY, args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    command_output(cmd).await
}

/// The `twofactor` binary with no `TFA*` setting or `RUST_LOG` inherited from this process.
pub fn twofactor_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twofactor"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TFA") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The `twofactor` binary set up for a CLI run with `args` against the test Redis under `prefix`,
/// with `key` current and warnings only in its logs.
fn cli_command(prefix: &str, key: &str, args: &[&str]) -> Command {
    let mut cmd = twofactor_command();
    cmd.args(args)
        .env("TFA__STORE__URL", redis().url())
        .env("TFA__STORE__KEY_PREFIX", prefix)
        .env("TFA__SECURITY__ENCRYPTION_KEY", key)
        .env("TFA__LOG__FILTER", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end off the async runtime's threads.
async fn command_output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the twofactor binary runs"))
        .await
        .expect("the CLI task")
}

/// A finished command's stdout and stderr, for assertions and their messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A redis-server of a test's own, so the test can stop it (or start it with options of its own).
/// Drop kills and reaps it on every path, panics included.
pub struct OwnRedis(pub std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `redis-server` on `port` with `extra` arguments and waits until it accepts connections.
pub async fn own_redis(port: u16, extra: &[&str]) -> OwnRedis {
    let port_arg = port.to_string();
    // A replica's full sync writes an RDB file even with saving off: never into the checkout.
    let dir = std::env::temp_dir().display().to_string();
    let mut args = vec![
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir,
    ];
    args.extend_from_slice(extra);
    spawn_redis(&args, port).await
}

/// Starts a Sentinel (`redis-server FILE --sentinel`) on `port` monitoring `master` as `name` with
/// a quorum of 2, a master declared down after 1 s and a failover timeout of 3 s. Its config file
/// goes in `dir`: Sentinel rewrites that file as it learns the topology, so it must be writable.
pub async fn own_sentinel(port: u16, master: u16, name: &str, dir: &std::path::Path) -> OwnRedis {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {name} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 3000\n\
             sentinel parallel-syncs {name} 1\n",
            dir.display()
        ),
    )
    .expect("sentinel config written");
    let conf = conf.display().to_string();
    spawn_redis(&[&conf, "--sentinel"], port).await
}

/// Fails the test, saying what to install, when `program` (a Redis tool) is not on the PATH.
pub fn require_redis_tool(program: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is not installed: these tests start real Redis servers. Install it with \
         `apt-get install -y redis-server redis-tools` (Debian/Ubuntu) or `brew install redis`."
    );
}

/// Runs `redis-server` with `args` and waits until `port` accepts connections.
pub async fn spawn_redis(args: &[&str], port: u16) -> OwnRedis {
    require_redis_tool("redis-server");
    // Wrapped at once, so Drop kills and reaps it on every path.
    let server = OwnRedis(
        Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    );
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server {args:?} did not start on {port}");
}

/// `redis-cli` against 127.0.0.1:`port`; its stdout.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    require_redis_tool("redis-cli");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl TestApp {
    /// GET /readyz: its HTTP status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .expect("readyz");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }
}

/// Every `<status>` the test settings can answer (`STATUSES`).
pub const KNOWN_STATUSES: [&str; 7] = [
    "success",
    "not found",
    "incorrect code",
    "expired",
    "locked",
    "send limited",
    "error",
];

/// One request a load loop made.
#[derive(Debug, Clone)]
pub struct Shot {
    /// When it was sent.
    pub at: std::time::Instant,
    pub took: Duration,
    pub path: &'static str,
    /// The HTTP status; 0 when no answer came (connection refused or reset).
    pub http: u16,
    /// The `<status>` text, or what went wrong without an answer.
    pub status: String,
}

/// Request loops running against an app while a test breaks its store: each loop takes one
/// customer and cycles through the three callflow endpoints (wrong codes, so nothing needs an
/// outbox read), recording every answer and how long it took.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    loops: Vec<tokio::task::JoinHandle<Vec<Shot>>>,
}

impl Load {
    pub fn start(app: &TestApp, customers: &[String]) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loops = customers
            .iter()
            .map(|customer| {
                let (stop, client, base, customer) = (
                    stop.clone(),
                    app.client.clone(),
                    app.address.clone(),
                    customer.clone(),
                );
                tokio::spawn(async move {
                    let mut shots = Vec::new();
                    let steps: [(&'static str, &[(&str, &str)]); 3] = [
                        (METHODS, &[]),
                        (SEND, &[("TwoFactorAuthSelectedMethod", "Email")]),
                        (VERIFY, &[("authCode_nbest1", "000000")]),
                    ];
                    for (path, extra) in steps.iter().cycle() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let at = std::time::Instant::now();
                        let sent = client
                            .get(format!("{base}{path}"))
                            .query(&[("CustomerId", customer.as_str())])
                            .query(extra)
                            .send()
                            .await;
                        let (http, status) = match sent {
                            Ok(res) => {
                                let http = res.status().as_u16();
                                let body = res.text().await.unwrap_or_default();
                                let status = between(&body, "<status>", "</status>")
                                    .unwrap_or_else(|| format!("no <status> in {body:?}"));
                                (http, status)
                            }
                            Err(e) => (0, format!("no answer: {e}")),
                        };
                        shots.push(Shot {
                            at,
                            took: at.elapsed(),
                            path,
                            http,
                            status,
                        });
                    }
                    shots
                })
            })
            .collect();
        Load { stop, loops }
    }

    /// Stops the loops and returns every shot, in the order each loop made them.
    pub async fn stop(self) -> Vec<Shot> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for l in self.loops {
            all.extend(l.await.expect("a load loop ends without panicking"));
        }
        all
    }
}

/// Asserts every shot was an XML answer with a known status, 200 or 4xx never 5xx, within `limit`.
pub fn assert_shots_sane(shots: &[Shot], limit: Duration) {
    assert!(!shots.is_empty(), "the load loops made no requests");
    for s in shots {
        assert!(
            (200..500).contains(&s.http) && KNOWN_STATUSES.contains(&s.status.as_str()),
            "{} answered {} {:?}",
            s.path,
            s.http,
            s.status
        );
        assert!(
            s.took < limit,
            "{} took {:?} (limit {limit:?}), answering {:?}",
            s.path,
            s.took,
            s.status
        );
    }
}

/// Polls `check` every 100 ms until it holds; fails the test with `what` after `within`.
pub async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not so after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses `body` as JSON and checks it against `fixtures/json/<schema>.schema.json` (draft
/// 2020-12), naming every violation.
pub fn assert_json_schema(schema: &str, body: &str) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {body}"));
    let schema_doc: serde_json::Value =
        serde_json::from_str(&fixture(&format!("json/{schema}.schema.json")))
            .unwrap_or_else(|e| panic!("schema {schema} is not JSON: {e}"));
    assert_valid(&schema_doc, &value, schema);
    value
}

/// Checks `value` against the JSON Schema `schema` (any draft its `$schema` names).
pub fn assert_valid(schema: &serde_json::Value, value: &serde_json::Value, what: &str) {
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("schema of {what} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not satisfy {what}: {errors:?}"
    );
}

/// Sends `req` and reads the answer's body as text.
pub async fn text_of(req: reqwest::RequestBuilder) -> String {
    req.send().await.unwrap().text().await.unwrap()
}

/// The value of the `/metrics` sample line that starts with `series` (name and labels), 0 when the
/// series is not there yet.
pub async fn metric_value(app: &TestApp, series: &str) -> f64 {
    let metrics = text_of(app.client.get(format!("{}/metrics", app.address))).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series} has no number: {v:?} ({e})"))
        })
        .unwrap_or(0.0)
}
