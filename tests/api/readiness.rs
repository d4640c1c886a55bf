//! `/readyz` is open to anyone who reaches the listener: however often it is asked, the store is
//! probed at most once a second per instance, and a store that goes away is still reported within
//! about 2 seconds.

use std::time::{Duration, Instant};

use crate::helpers::{app_on_own_redis, redis_cli};

/// How many commands the Redis on `port` has processed (`INFO stats`).
fn commands_processed(port: u16) -> u64 {
    let info = redis_cli(port, &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_commands_processed in {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_requests_costs_redis_a_handful_of_commands() {
    // Arrange
    let (_redis, app, port) = app_on_own_redis("").await;
    assert_eq!(app.readyz().await.0, 200);
    let before = commands_processed(port);

    // Act: 300 in a row, then (once the last probe is old) a burst of 50 at once.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(app.readyz().await.0);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let burst = futures_util::future::join_all((0..50).map(|_| app.readyz())).await;
    let took = started.elapsed();
    let after = commands_processed(port);

    // Assert: every answer is 200; Redis saw a probe a second (2 commands each, plus the
    // settings watcher's re-read a second and the INFO itself), not 350 probes (700 commands).
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(burst.iter().all(|(s, _)| *s == 200), "{burst:?}");
    // A loaded machine may stretch the run over more seconds, each allowed a probe and a re-read.
    let budget = 20.max(5 * (took.as_secs() + 1));
    eprintln!(
        "350 readiness requests over {took:?}: {} commands",
        after - before
    );
    assert!(
        after - before < budget,
        "350 readiness requests over {took:?} cost Redis {} commands (budget {budget})",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_is_reported_within_two_seconds() {
    // Arrange: a fresh probe's verdict, answered from for the next second.
    let (redis, app, _) = app_on_own_redis("").await;
    assert_eq!(app.readyz().await.0, 200);

    // Act
    drop(redis);
    let stopped = Instant::now();
    let mut status = app.readyz().await.0;
    while status != 503 && stopped.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = app.readyz().await.0;
    }

    // Assert
    assert_eq!(
        status,
        503,
        "still ready {:?} after Redis stopped",
        stopped.elapsed()
    );
    assert!(
        stopped.elapsed() < Duration::from_millis(2200),
        "503 only after {:?}",
        stopped.elapsed()
    );
}
