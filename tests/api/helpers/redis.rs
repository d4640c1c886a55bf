//! Redis for the tests: the test binary's private redis-server (one per run, one key prefix per
//! test), and servers of a test's own that it may stop, with `redis-cli`.

use super::*;

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
