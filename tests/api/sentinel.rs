//! Sentinel failover with real servers: one master, one replica, three Sentinels. The whole flow
//! works, the master is killed while requests keep coming, and the service follows the promoted
//! replica by itself: answers during the failover are normal statuses or `error` (never a 5xx,
//! never past the store deadline), `/readyz` is 503 until the new master is in place and 200 after,
//! and a customer written before the failover is still there.

use std::time::{Duration, Instant};

use crate::helpers::{
    Load, StoreKind, assert_shots_sane, free_port, own_redis, own_sentinel, redis_cli,
    require_redis_tool, spawn_app_with, wait_until,
};

const NAME: &str = "mymaster";

/// One field of `SENTINEL MASTER mymaster` as `redis-cli` prints it (a name line, then its value).
fn sentinel_field(sentinel: u16, field: &str) -> Option<String> {
    let out = redis_cli(sentinel, &["sentinel", "master", NAME]);
    let mut lines = out.lines();
    lines.find(|l| l.trim() == field)?;
    lines.next().map(|v| v.trim().to_string())
}

/// The port `sentinel` currently names as the master.
fn master_port_by(sentinel: u16) -> Option<u16> {
    let out = redis_cli(sentinel, &["sentinel", "get-master-addr-by-name", NAME]);
    out.lines().nth(1)?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_answers_error_not_5xx_then_recovers_without_a_restart() {
    // Arrange: master, replica in sync, three Sentinels that know each other and the replica.
    require_redis_tool("redis-cli");
    let dir = tempfile::tempdir().expect("temp dir");
    let (master_port, replica_port) = (free_port(), free_port());
    let master = own_redis(master_port, &[]).await;
    let _replica = own_redis(
        replica_port,
        &["--replicaof", "127.0.0.1", &master_port.to_string()],
    )
    .await;
    wait_until(Duration::from_secs(10), "the replica is in sync", || {
        redis_cli(replica_port, &["info", "replication"]).contains("master_link_status:up")
    })
    .await;
    let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut sentinels = Vec::new();
    for p in &sentinel_ports {
        sentinels.push(own_sentinel(*p, master_port, NAME, dir.path()).await);
    }
    // Sentinels find each other through the master's hello channel (every 2 s); a failover needs a
    // majority of them to agree, so the kill waits until each one knows the other two.
    wait_until(
        Duration::from_secs(15),
        "every Sentinel knows the other two and the replica",
        || {
            sentinel_ports.iter().all(|s| {
                sentinel_field(*s, "num-other-sentinels").as_deref() == Some("2")
                    && sentinel_field(*s, "num-slaves").as_deref() == Some("1")
            })
        },
    )
    .await;
    let hosts: Vec<String> = sentinel_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!(
            "[store]\nurl = \"redis+sentinel://{}/{NAME}\"",
            hosts.join(",")
        ),
    )
    .await;
    app.add_alice().await;
    let load_customers: Vec<String> = (0..4).map(|i| format!("20{i:02}")).collect();
    for id in &load_customers {
        app.add_customer(id, Some(&format!("{id}@example.com")), None, None)
            .await;
    }

    // Act and assert: the whole flow before the failover.
    assert_eq!(app.readyz().await.0, 200);
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    assert_eq!(app.verify("1001", &code).await.xml_status(), "success");
    // The customer must be on the replica before its master dies; WAIT says how many replicas
    // acknowledged every write so far.
    assert_eq!(
        redis_cli(master_port, &["wait", "1", "2000"]).trim(),
        "1",
        "the replica did not acknowledge the writes"
    );

    // Act: the master is killed while requests keep coming.
    let load = Load::start(&app, &load_customers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(master);
    let killed = Instant::now();
    let mut saw_not_ready = false;
    while !sentinel_ports
        .iter()
        .all(|s| master_port_by(*s) == Some(replica_port))
    {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the Sentinels did not promote the replica within 20 s"
        );
        saw_not_ready |= app.readyz().await.0 == 503;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let promoted_after = killed.elapsed();
    let mut ready = app.readyz().await.0;
    while ready != 200 && killed.elapsed() < promoted_after + Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = app.readyz().await.0;
    }
    let ready_after = killed.elapsed();
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shots = load.stop().await;

    // Assert: never a 5xx nor a wait past the store deadline; not ready during, ready after.
    assert_shots_sane(&shots, Duration::from_secs(6));
    assert!(
        saw_not_ready,
        "/readyz never answered 503 during the failover"
    );
    assert_eq!(
        ready, 200,
        "/readyz not 200 {ready_after:?} after the kill (promoted after {promoted_after:?})"
    );
    let after: Vec<_> = shots.iter().filter(|s| s.at >= recovered).collect();
    assert!(!after.is_empty(), "no requests after the recovery");
    assert!(
        after.iter().all(|s| s.status != "error"),
        "errors after the recovery: {after:?}"
    );
    // The customer written before the failover, on the promoted replica: the whole flow again.
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    assert_eq!(app.verify("1001", &code).await.xml_status(), "success");
    let errors = shots.iter().filter(|s| s.status == "error").count();
    eprintln!(
        "sentinel failover: promoted after {promoted_after:?}, ready after {ready_after:?}; \
         {} requests, {errors} answered error, slowest {:?}",
        shots.len(),
        shots.iter().map(|s| s.took).max().unwrap_or_default()
    );
}
