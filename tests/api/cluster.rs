//! Readiness that tells the truth, on a real Redis Cluster of three masters: ready and working on
//! every master (and for 30 customers spread over the three), then one master killed: `/readyz`
//! turns 503 and callflows hear the `error` status quickly, never a 5xx. Also: a Redis that may evict keys is reported as a readiness warning.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{OwnRedis, StoreKind, free_port, own_redis, redis_cli, spawn_app_with};

/// CRC16/XMODEM, as Redis Cluster hashes keys into 16384 slots.
fn slot(tag: &str) -> u16 {
    let mut crc: u16 = 0;
    for &b in tag.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The slot ranges the master on `port` serves, from its own `CLUSTER NODES` line.
fn slots_of(port: u16) -> Vec<(u16, u16)> {
    let nodes = redis_cli(port, &["cluster", "nodes"]);
    let me = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .expect("a myself line");
    me.split_whitespace()
        .skip(8)
        .filter_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

struct Cluster {
    ports: Vec<u16>,
    nodes: Vec<Option<OwnRedis>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for p in &ports {
            let conf = dir.path().join(format!("nodes-{p}.conf"));
            let d = dir.path().display().to_string();
            let conf = conf.display().to_string();
            nodes.push(Some(
                own_redis(
                    *p,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf,
                        // Redis's default: the cluster itself notices a dead master only after
                        // this, and readiness must not wait for it.
                        "--cluster-node-timeout",
                        "15000",
                        "--dir",
                        &d,
                    ],
                )
                .await,
            ));
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-yes")
            .output()
            .expect("redis-cli --cluster create runs");
        assert!(
            created.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Cluster {
            ports,
            nodes,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cluster.ports.iter().all(|p| {
            redis_cli(*p, &["cluster", "info"]).contains("cluster_state:ok")
                && slots_of(*p).iter().map(|(a, b)| b - a + 1).sum::<u16>() > 0
        }) {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// A customer id whose keys live on master `i`.
    fn customer_on(&self, i: usize) -> String {
        let ranges = slots_of(self.ports[i]);
        (0..10_000)
            .map(|n| format!("c{n}"))
            .find(|id| {
                let s = slot(id);
                ranges.iter().any(|(a, b)| (*a..=*b).contains(&s))
            })
            .expect("an id on every master")
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_master_down_turns_readiness_503_and_answers_error_fast() {
    // Arrange
    let mut cluster = Cluster::start().await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!("[store]\nurl = \"{}\"", cluster.url()),
    )
    .await;
    let ids: Vec<String> = (0..3).map(|i| cluster.customer_on(i)).collect();
    for id in &ids {
        let email = format!("{id}@example.com");
        app.add_customer(id, Some(&email), None, None).await;
    }

    // 30 more customers, wherever their ids hash: the flow must not depend on the slot.
    let spread: Vec<String> = (0..30).map(|n| format!("70{n:02}")).collect();
    for id in &spread {
        let email = format!("{id}@example.com");
        app.add_customer(id, Some(&email), None, None).await;
    }

    // Act and assert: ready, and the whole flow works for every customer.
    assert_eq!(app.readyz().await.0, 200);
    for id in ids.iter().chain(&spread) {
        assert_eq!(app.send(id, "Email").await.xml_status(), "success", "{id}");
        let code = app.last_code_to(&format!("{id}@example.com"));
        assert_eq!(app.verify(id, &code).await.xml_status(), "success", "{id}");
    }
    // Each customer's keys sit in its own hash-tag slot on the master serving that slot, and the
    // 30 spread customers landed on every master.
    let mut per_master = [0usize; 3];
    for id in &spread {
        let tag_slot: u16 = redis_cli(
            cluster.ports[0],
            &["cluster", "keyslot", &format!("{{{id}}}")],
        )
        .trim()
        .parse()
        .expect("a slot");
        assert_eq!(tag_slot, slot(id), "{id}");
        let owner = (0..3)
            .find(|i| {
                slots_of(cluster.ports[*i])
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&tag_slot))
            })
            .expect("a master serves every slot");
        let keys: u64 = redis_cli(
            cluster.ports[owner],
            &["cluster", "countkeysinslot", &tag_slot.to_string()],
        )
        .trim()
        .parse()
        .expect("a count");
        assert!(keys > 0, "{id}: no keys in slot {tag_slot} on its master");
        per_master[owner] += 1;
    }
    assert!(
        per_master.iter().all(|n| *n > 0),
        "customers per master: {per_master:?}"
    );

    // Act: one master goes away.
    cluster.kill(0);
    let killed = Instant::now();
    let mut status = 200;
    while status == 200 && killed.elapsed() < Duration::from_secs(10) {
        status = app.readyz().await.0;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let not_ready_after = killed.elapsed();

    // Assert
    assert_eq!(
        status, 503,
        "readiness still 200 {not_ready_after:?} after a master died"
    );
    assert!(
        not_ready_after < Duration::from_secs(3),
        "readiness took {not_ready_after:?} to notice, while the cluster still calls itself ok"
    );
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            app.readyz().await.0,
            503,
            "readiness says ready again while the master is still dead"
        );
    }
    // Well under the 2 s store deadline: a down node fails fast. The dead master's customer hears `error`; the others may still be served until the surviving
    // masters declare the cluster down (cluster-require-full-coverage), then hear `error` too.
    for (i, id) in ids.iter().enumerate() {
        for call in 0..3 {
            let started = Instant::now();
            let answer = match call {
                0 => app.methods(id).await,
                1 => app.send(id, "Email").await,
                _ => app.verify(id, "123456").await,
            };
            let took = started.elapsed();
            assert_eq!(answer.status, 200, "{id}: {}", answer.body);
            if i == 0 {
                assert_eq!(answer.xml_status(), "error", "{id}: {}", answer.body);
            } else {
                assert!(
                    ["error", "success", "incorrect code"].contains(&answer.xml_status().as_str()),
                    "{id}: {}",
                    answer.body
                );
            }
            assert!(
                took < Duration::from_millis(1500),
                "{id} call {call} took {took:?} to answer"
            );
        }
    }
}

/// `/readyz` of an app on a private Redis started with `maxmemory-policy` = `policy`.
async fn readyz_with_policy(policy: &str) -> (u16, serde_json::Value) {
    let port = free_port();
    let _redis = own_redis(port, &["--maxmemory-policy", policy]).await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &format!("[store]\nurl = \"redis://127.0.0.1:{port}/\""),
    )
    .await;
    let (status, body) = app.readyz().await;
    (status, serde_json::from_str(&body).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_keys_is_a_readiness_warning() {
    // Arrange + Act
    let (status, body) = readyz_with_policy("allkeys-lru").await;

    // Assert
    assert_eq!(status, 200, "{body}");
    let warnings = body["warnings"].as_array().expect("a warnings list");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("maxmemory-policy") && w.contains("allkeys-lru"))),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noeviction_redis_is_ready_without_warnings() {
    // Arrange + Act
    let (status, body) = readyz_with_policy("noeviction").await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["warnings"], serde_json::json!([]), "{body}");
}
