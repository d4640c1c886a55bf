//! Faults: when Redis goes away the callflow hears the `error` status quickly, readiness turns 503,
//! and nothing answers 5xx.

use std::time::{Duration, Instant};

use crate::helpers::{StoreKind, free_port, own_redis, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_answers_error_quickly_and_not_ready() {
    // Arrange
    let port = free_port();
    let redis = own_redis(port, &[]).await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!("[store]\nurl = \"redis://127.0.0.1:{port}/\""),
    )
    .await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
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
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(sent.xml_status(), "error");
    assert_eq!(verified.xml_status(), "error");
    assert_eq!(methods.xml_status(), "error");
    assert!(
        elapsed < Duration::from_secs(10),
        "three answers took {elapsed:?}"
    );
    assert_eq!(ready.status().as_u16(), 503);
}
