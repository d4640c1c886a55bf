//! The real server on port 0 over either store: settings, spawning (alone, with a clock, sharing
//! another instance's store), and the settable test clock.

use super::*;

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

/// An instance on a Redis of the test's own (which the test may stop, and whose command count
/// nothing else moves), with `overrides` after the store's URL; and that Redis's port.
pub async fn app_on_own_redis(overrides: &str) -> (OwnRedis, TestApp, u16) {
    let port = free_port();
    let redis = own_redis(port, &[]).await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!("[store]\nurl = \"redis://127.0.0.1:{port}/\"\n{overrides}"),
    )
    .await;
    (redis, app, port)
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
