//! Faults: when Redis goes away the callflow hears the `error` status quickly, readiness turns 503,
//! and nothing answers 5xx.

use std::time::{Duration, Instant};

use crate::helpers::{
    Load, OwnRedis, StoreKind, TestApp, app_on_own_redis, assert_shots_sane, free_port, own_redis,
    spawn_app_with,
};

/// A Redis of the test's own, an instance on it, and customer 1001 (alice@example.com) with an
/// email code sent.
async fn alice_on_own_redis() -> (OwnRedis, TestApp, u16) {
    let (redis, app, port) = app_on_own_redis("").await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    (redis, app, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_answers_error_quickly_and_not_ready() {
    // Arrange
    let (redis, app, _) = alice_on_own_redis().await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    // Act
    drop(redis);
    let started = Instant::now();
    let sent = app.send("1001", "Email").await;
    let verified = app.verify("1001", "123456").await;
    let methods = app.methods("1001").await;
    let elapsed = started.elapsed();
    // /readyz answers from a probe made at most a second ago (it must not let anyone flood the
    // store), so the outage shows within about two seconds rather than at the next request.
    let mut ready = app.readyz().await.0;
    while ready != 503 && started.elapsed() < elapsed + Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = app.readyz().await.0;
    }

    // Assert
    assert_eq!(sent.xml_status(), "error");
    assert_eq!(verified.xml_status(), "error");
    assert_eq!(methods.xml_status(), "error");
    assert!(
        elapsed < Duration::from_secs(10),
        "three answers took {elapsed:?}"
    );
    assert_eq!(ready, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_under_load_answers_error_in_time_and_recovers_by_itself() {
    // Arrange: a Redis that keeps its data over a restart (AOF, as docs/operations.md asks for production),
    // so the customers are there when it comes back.
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().display().to_string();
    let persistent = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        data.as_str(),
    ];
    let redis = own_redis(port, &persistent).await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!("[store]\nurl = \"redis://127.0.0.1:{port}/\""),
    )
    .await;
    let customers: Vec<String> = (0..16).map(|i| format!("30{i:02}")).collect();
    for id in &customers {
        app.add_customer(id, Some(&format!("{id}@example.com")), None, None)
            .await;
    }
    assert_eq!(app.readyz().await.0, 200);

    // Act: 16 request loops; Redis is killed for 3 s, then started again on the same port.
    let load = Load::start(&app, &customers);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(redis);
    let killed = Instant::now();
    let mut down_readiness = Vec::new();
    while killed.elapsed() < Duration::from_secs(3) {
        down_readiness.push(app.readyz().await.0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Answers finished before this moment come from a Redis that was certainly down.
    let restarting = Instant::now();
    let _redis = own_redis(port, &persistent).await;
    let restarted = Instant::now();
    let mut ready = app.readyz().await.0;
    while ready != 200 && restarted.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = app.readyz().await.0;
    }
    let ready_after = restarted.elapsed();
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shots = load.stop().await;

    // Assert: the store deadline is 5 s; nothing waits past it (plus a margin), nothing is a 5xx.
    assert_shots_sane(&shots, Duration::from_millis(6500));
    assert!(
        down_readiness.iter().all(|s| *s == 503),
        "/readyz while Redis was down: {down_readiness:?}"
    );
    assert_eq!(
        ready, 200,
        "/readyz not 200 {ready_after:?} after Redis came back"
    );
    assert!(
        ready_after < Duration::from_secs(5),
        "/readyz took {ready_after:?} to turn 200"
    );
    let during: Vec<_> = shots
        .iter()
        .filter(|s| s.at > killed + Duration::from_millis(100) && s.at + s.took < restarting)
        .collect();
    assert!(!during.is_empty(), "no requests while Redis was down");
    assert!(
        during.iter().all(|s| s.status == "error"),
        "answers while Redis was down: {:?}",
        during.iter().find(|s| s.status != "error")
    );
    let after: Vec<_> = shots.iter().filter(|s| s.at >= recovered).collect();
    assert!(!after.is_empty(), "no requests after Redis came back");
    assert!(
        after.iter().all(|s| s.status != "error"),
        "errors after Redis came back: {:?}",
        after.iter().find(|s| s.status == "error")
    );
    assert!(
        after
            .iter()
            .any(|s| s.path == crate::helpers::METHODS && s.status == "success"),
        "no customer found after Redis came back"
    );
    eprintln!(
        "redis away: {} requests, {} during the outage, slowest {:?}; ready {ready_after:?} after the restart",
        shots.len(),
        during.len(),
        shots.iter().map(|s| s.took).max().unwrap_or_default()
    );
}

#[tokio::test]
async fn checks_and_sends_go_on_after_redis_forgets_its_scripts() {
    // Arrange: a code sent, then Redis loses its script cache, as after a restart, a failover to a
    // replica that never ran the scripts, or `SCRIPT FLUSH`.
    let (_redis, app, port) = alice_on_own_redis().await;
    let code = app.last_code_to("alice@example.com");
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let flushed: String = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("script flush");
    assert_eq!(flushed, "OK");

    // Act
    let wrong = app.verify("1001", &crate::helpers::wrong_code(&code)).await;
    let right = app.verify("1001", &code).await;
    let sent_again = app.send("1001", "Email").await;

    // Assert
    assert_eq!(wrong.xml_status(), "incorrect code");
    assert_eq!(right.xml_status(), "success");
    assert_eq!(sent_again.xml_status(), "success");
}
