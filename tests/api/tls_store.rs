//! The store over TLS (`rediss://`) with a private CA made here: the whole flow works when
//! `store.ca_file` names the CA, and the service refuses to start, naming the problem, when the CA
//! is not set (the public roots do not know it), is another CA, is missing or holds no
//! certificate. It never falls back to an unverified connection.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use twofactor::config::Settings;
use twofactor::state::AppState;

use crate::helpers::{
    OwnRedis, StoreKind, free_port, require_redis_tool, spawn_app_with, spawn_redis, test_settings,
};

/// Fails, saying what to install, when redis-server was built without TLS.
fn require_tls_redis() {
    require_redis_tool("redis-server");
    // With TLS compiled in, these options parse and Redis stops only because nothing listens.
    let out = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", "0", "--save", ""])
        .output()
        .expect("redis-server runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not listen anywhere"),
        "redis-server was built without TLS (it refused --tls-port): install one built with TLS, \
         such as Debian's `apt-get install -y redis-server`. It said: {text}"
    );
}

/// A CA of the test's own, and a certificate for 127.0.0.1 it signed.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// Another CA, which signed nothing here.
    other_ca: PathBuf,
}

fn make_ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let pem = params.self_signed(&key).expect("CA certificate").pem();
    (params, key, pem)
}

fn pki(dir: &Path) -> Pki {
    let (ca_params, ca_key, ca_pem) = make_ca("twofactor test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    let (_, _, other_pem) = make_ca("some other CA");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("PEM written");
        path
    };
    Pki {
        ca: write("ca.pem", &ca_pem),
        cert: write("redis.pem", &server.pem()),
        key: write("redis.key", &key.serialize_pem()),
        other_ca: write("other-ca.pem", &other_pem),
    }
}

/// redis-server listening on TLS only, with `pki`'s certificate; clients need no certificate.
async fn tls_redis(port: u16, pki: &Pki) -> OwnRedis {
    require_tls_redis();
    let port = port.to_string();
    let path = |p: &Path| p.display().to_string();
    let (cert, key, ca) = (path(&pki.cert), path(&pki.key), path(&pki.ca));
    spawn_redis(
        &[
            "--port",
            "0",
            "--tls-port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
        port.parse().expect("port"),
    )
    .await
}

fn store_table(port: u16, ca_file: &str) -> String {
    format!("[store]\nurl = \"rediss://127.0.0.1:{port}/\"\nca_file = \"{ca_file}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_over_tls_trusting_a_private_ca() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki(dir.path());
    let port = free_port();
    let _redis = tls_redis(port, &pki).await;

    // Act
    let app = spawn_app_with(
        StoreKind::Memory,
        &store_table(port, &pki.ca.display().to_string()),
    )
    .await;
    app.add_alice().await;

    // Assert
    assert_eq!(app.readyz().await.0, 200);
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    assert_eq!(app.verify("1001", &code).await.xml_status(), "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_is_unset_wrong_missing_or_empty_stops_the_start() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki(dir.path());
    let port = free_port();
    let _redis = tls_redis(port, &pki).await;
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").expect("written");
    let missing = dir.path().join("missing.pem");
    let cases = [
        ("unset (public roots)", String::new(), "set store.ca_file"),
        (
            "another CA",
            pki.other_ca.display().to_string(),
            "does not chain to the CA in store.ca_file",
        ),
        (
            "missing",
            missing.display().to_string(),
            "store.ca_file: cannot read",
        ),
        (
            "no certificate",
            empty.display().to_string(),
            "store.ca_file",
        ),
    ];

    for (case, ca_file, expected) in cases {
        // Act
        let settings = test_settings(
            StoreKind::Memory,
            dir.path(),
            "tls:",
            &store_table(port, &ca_file),
        );
        let started = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            AppState::from_settings(settings),
        )
        .await
        .unwrap_or_else(|_| panic!("{case}: the start neither failed nor succeeded in 10 s"));

        // Assert
        let error = match started {
            Ok(_) => panic!("{case}: the service started over TLS it cannot verify"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.to_lowercase().contains(&expected.to_lowercase()),
            "{case}: {error}"
        );
        eprintln!("{case}: {error}");
    }
}

#[test]
fn a_ca_file_without_tls_or_with_sentinel_is_refused() {
    for (url, expected) in [
        ("redis://127.0.0.1:1/", "does not use TLS"),
        (
            "redis+cluster://127.0.0.1:1,127.0.0.1:2",
            "does not use TLS",
        ),
        ("rediss+sentinel://127.0.0.1:1/mymaster", "Sentinel"),
    ] {
        let overrides = format!("[store]\nurl = \"{url}\"\nca_file = \"/etc/ca.pem\"");
        let error = match Settings::from_layers(&[&overrides]) {
            Ok(_) => panic!("{url}: a CA file was accepted for it"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("store.ca_file") && error.contains(expected),
            "{url}: {error}"
        );
    }
}
