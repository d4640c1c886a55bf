//! Slow clients: a body trickled a byte a second is cut off at `server.body_timeout_ms` (408 in the
//! endpoint's own shape, connection closed), while other callers keep being served.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin::{ADMIN, ADMIN_TOKEN};
use crate::both_stores;
use crate::helpers::{METHODS, StoreKind, spawn_app_with};

/// Time a slow client is given before the test calls it stuck; far above the 1 s body timeout.
const PATIENCE: Duration = Duration::from_secs(10);

/// What one slow client saw: everything the server sent, whether it closed, and when.
struct Seen {
    text: String,
    closed: bool,
    first_byte_after: Option<Duration>,
    closed_after: Duration,
}

/// Sends `head` (request line and headers), then one body byte a second, reading whatever comes
/// back, until the server closes the connection or `PATIENCE` runs out.
async fn trickle(port: u16, head: String) -> Seen {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("headers");
    let mut got = Vec::new();
    let mut first_byte_after = None;
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let closed = loop {
        if started.elapsed() > PATIENCE {
            break false;
        }
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break true,
                Ok(n) => {
                    first_byte_after.get_or_insert(started.elapsed());
                    got.extend_from_slice(&buf[..n]);
                }
            },
            _ = tick.tick() => {
                // The server may already have closed its side; the read will tell.
                let _ = s.write_all(b"a").await;
            }
        }
    };
    Seen {
        text: String::from_utf8_lossy(&got).into_owned(),
        closed,
        first_byte_after,
        closed_after: started.elapsed(),
    }
}

fn slow_post(path: &str, content_type: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{extra}Content-Length: 10000\r\n\r\n"
    )
}

async fn slow_bodies_time_out_while_others_are_served(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "[server]\nbody_timeout_ms = 1000\n").await;
    app.add_alice().await;
    let port = app.port;

    // Act: 100 slow clients at once, and a normal caller while they trickle.
    let slow: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(trickle(
                port,
                slow_post(METHODS, "application/x-www-form-urlencoded", ""),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let normal = app.methods("1001").await;
    let normal_took = asked.elapsed();
    let mut seen = Vec::new();
    for task in slow {
        seen.push(task.await.expect("slow client task"));
    }

    // Assert
    assert_eq!(normal.status, 200, "{}", normal.body);
    assert_eq!(normal.xml_status(), "success");
    assert!(
        normal_took < Duration::from_secs(1),
        "a normal caller waited {normal_took:?} behind the slow ones"
    );
    for s in &seen {
        assert!(
            s.text.starts_with("HTTP/1.1 408"),
            "a slow body got {:?}",
            s.text
        );
        assert!(
            s.text.contains("<checkVerifiedContactMethods><status>error</status><message>request body not received within server.body_timeout_ms (1000 ms)</message></checkVerifiedContactMethods>"),
            "{:?}",
            s.text
        );
        let answered = s.first_byte_after.expect("an answer");
        assert!(
            answered < Duration::from_secs(4),
            "answered after {answered:?}"
        );
        assert!(
            s.closed && s.closed_after < Duration::from_secs(5),
            "the connection stayed open ({:?}, closed: {})",
            s.closed_after,
            s.closed
        );
    }
}
both_stores!(slow_bodies, slow_bodies_time_out_while_others_are_served);

async fn slow_body_to_a_route_that_ignores_it_is_not_kept(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "[server]\nbody_timeout_ms = 1000\n").await;

    // Act
    let sized = trickle(
        app.port,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000\r\n\r\n".into(),
    );
    let chunked = trickle(
        app.port,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n"
            .into(),
    );
    let (sized, chunked) = tokio::join!(sized, chunked);

    // Assert
    for (what, s) in [("sized", sized), ("chunked", chunked)] {
        assert!(s.text.starts_with("HTTP/1.1 200"), "{what}: {:?}", s.text);
        assert!(
            s.closed && s.closed_after < Duration::from_secs(5),
            "{what}: the connection stayed open ({:?}, closed: {})",
            s.closed_after,
            s.closed
        );
    }
}
both_stores!(
    ignored_slow_body,
    slow_body_to_a_route_that_ignores_it_is_not_kept
);

async fn slow_admin_json_body_answers_a_json_408(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &format!("{ADMIN}\n[server]\nbody_timeout_ms = 1000\n"),
    )
    .await;

    // Act
    let s = trickle(
        app.port,
        slow_post(
            "/admin/v1/customers/1001",
            "application/json",
            &format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
        )
        .replacen("POST", "PUT", 1),
    )
    .await;

    // Assert
    assert!(s.text.starts_with("HTTP/1.1 408"), "{:?}", s.text);
    assert!(
        s.text.contains(r#"{"error":"request-timeout","message":"request body not received within server.body_timeout_ms (1000 ms)"}"#),
        "{:?}",
        s.text
    );
    assert!(
        s.closed && s.closed_after < Duration::from_secs(5),
        "the connection stayed open"
    );
}
both_stores!(slow_admin_body, slow_admin_json_body_answers_a_json_408);

#[test]
fn body_timeout_and_connection_cap_are_validated_naming_the_key() {
    for bad in ["0", "300001"] {
        let err =
            twofactor::config::Settings::from_toml(&format!("[server]\nbody_timeout_ms = {bad}"))
                .expect_err(bad)
                .to_string();
        assert!(err.contains("server.body_timeout_ms"), "{bad}: {err}");
    }
    let err = twofactor::config::Settings::from_toml("[server]\nmax_connections_per_worker = 0")
        .expect_err("zero connections")
        .to_string();
    assert!(err.contains("server.max_connections_per_worker"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_stalls_does_not_stop_the_answers() {
    // Arrange: the binary at info level, its stdout a pipe that nobody reads, as when journald or
    // a container runtime stops draining it. Each request logs a line or two, so the pipe's 64 kB
    // fill within the first few hundred requests.
    let port = crate::helpers::free_port();
    let child = crate::helpers::twofactor_command()
        .arg("serve")
        .env("TFA__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("TFA__LOG__FILTER", "info")
        .env("TFA__LOG__FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let service = StoppedOnDrop(child);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < PATIENCE, "the service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act: 3 000 requests, 20 at a time, about 1 MB of log lines.
    let started = Instant::now();
    let mut answered = 0;
    for _ in 0..150 {
        // A blocked service would take 5 s a batch: give up well before the suite would notice.
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let batch = (0..20).map(|i| {
            client
                .get(format!("{base}{METHODS}"))
                .query(&[("CustomerId", format!("nobody{i}"))])
                .send()
        });
        for res in futures_util::future::join_all(batch).await {
            if res.is_ok_and(|r| r.status().is_success()) {
                answered += 1;
            }
        }
    }
    let took = started.elapsed();
    drop(service);

    // Assert
    assert_eq!(answered, 3000, "answered {answered} of 3000 in {took:?}");
    assert!(took < Duration::from_secs(30), "3000 answers took {took:?}");
}

/// A child process killed and reaped when the test ends, however it ends.
struct StoppedOnDrop(std::process::Child);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
