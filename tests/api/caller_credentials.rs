//! Callers' credentials against a patient attacker: wrong Basic passwords limited per peer address
//! (other addresses untouched), and refused addresses counted nowhere. Other loopback addresses
//! (127.0.0.2, 127.0.0.3) stand in for other callers.

use std::time::Duration;

use crate::both_stores;
use crate::helpers::{METHODS, StoreKind, TestApp, metric_value, spawn_app_with};

const USER: &str = "gia";
const PASSWORD: &str = "s3cret:pass-0f4e2a";

/// Basic callers, 3 wrong passwords per address allowed in a minute, and `extra` security keys.
fn basic(extra: &str) -> String {
    format!(
        "[security]\nauth_scheme = \"basic\"\nuser_id = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
         basic_max_failures = 3\nbasic_failure_window_seconds = 60\n{extra}\n"
    )
}

/// A client whose connections come from `ip` (a loopback address other than 127.0.0.1).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().expect("an address"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// check-verified-contact-methods for 1001 with `password`: (HTTP status, Retry-After, body).
async fn methods_as(
    app: &TestApp,
    client: &reqwest::Client,
    password: &str,
    json: bool,
) -> (u16, Option<u64>, String) {
    let mut req = client
        .get(format!("{}{METHODS}", app.address))
        .query(&[("CustomerId", "1001")])
        .basic_auth(USER, Some(password));
    if json {
        req = req.header("accept", "application/json");
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = res.text().await.expect("body");
    assert!(status < 500, "server answered {status}: {body}");
    (status, retry, body)
}

async fn wrong_basic_passwords_are_limited_per_address(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &basic("")).await;
    app.add_alice().await;
    let (guesser, caller) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let refused_before = metric_value(
        &app,
        "twofactor_caller_refused_total{reason=\"basic_limited\"}",
    )
    .await;

    // Act + Assert: three wrong passwords are 401s; then that address waits, right password or not.
    for i in 0..3 {
        let (status, _, body) = methods_as(&app, &guesser, &format!("guess-{i}"), false).await;
        assert_eq!(status, 401, "wrong password {i}: {body}");
    }
    for (what, password, json) in [
        ("a fourth wrong password", "guess-4", false),
        ("the right password", PASSWORD, false),
        ("the right password, asking for JSON", PASSWORD, true),
    ] {
        let (status, retry, body) = methods_as(&app, &guesser, password, json).await;
        assert_eq!(status, 429, "{what}: {body}");
        let retry = retry.unwrap_or_else(|| panic!("{what}: no Retry-After"));
        assert!((1..=60).contains(&retry), "{what}: Retry-After {retry}");
        if json {
            let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(v["status"], "error", "{what}: {body}");
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("too many wrong credentials from this address")),
                "{what}: {body}"
            );
        } else {
            assert!(
                body.starts_with(
                    "<checkVerifiedContactMethods><status>error</status><message>too many wrong credentials from this address: retry after "
                ),
                "{what}: {body}"
            );
        }
        assert!(!body.contains(PASSWORD), "{what}: {body}");
    }
    // Another address is not affected: the right password gets through, a wrong one is a 401.
    let (status, _, body) = methods_as(&app, &caller, PASSWORD, false).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<status>success</status>"), "{body}");
    let (status, _, body) = methods_as(&app, &caller, "wrong", false).await;
    assert_eq!(status, 401, "{body}");
    let refused_after = metric_value(
        &app,
        "twofactor_caller_refused_total{reason=\"basic_limited\"}",
    )
    .await;
    assert!(
        refused_after >= refused_before + 3.0,
        "basic_limited refusals counted: {refused_before} -> {refused_after}"
    );
}
both_stores!(basic_limited, wrong_basic_passwords_are_limited_per_address);

async fn the_address_is_let_back_when_its_window_ends(kind: StoreKind) {
    // Arrange: a two-second window.
    let app = spawn_app_with(
        kind,
        &basic("").replace(
            "basic_failure_window_seconds = 60",
            "basic_failure_window_seconds = 2",
        ),
    )
    .await;
    app.add_alice().await;
    let guesser = client_from("127.0.0.2");
    for i in 0..3 {
        methods_as(&app, &guesser, &format!("guess-{i}"), false).await;
    }
    let (status, retry, body) = methods_as(&app, &guesser, PASSWORD, false).await;
    assert_eq!(status, 429, "{body}");

    // Act: wait as long as Retry-After says.
    let retry = retry.expect("Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(100)).await;
    let (status, _, body) = methods_as(&app, &guesser, PASSWORD, false).await;

    // Assert
    assert_eq!(status, 200, "{body}");
}
both_stores!(
    basic_window_ends,
    the_address_is_let_back_when_its_window_ends
);

async fn a_zero_limit_turns_the_basic_limit_off(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &basic("").replace("basic_max_failures = 3", "basic_max_failures = 0"),
    )
    .await;
    app.add_alice().await;
    let guesser = client_from("127.0.0.2");

    // Act
    for i in 0..10 {
        let (status, _, body) = methods_as(&app, &guesser, &format!("guess-{i}"), false).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _, body) = methods_as(&app, &guesser, PASSWORD, false).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    let dump = format!("{:?}", app.store().dump(&app.prefix).await.unwrap());
    assert!(!dump.contains("basic-failures"), "nothing counted: {dump}");
}
both_stores!(basic_limit_off, a_zero_limit_turns_the_basic_limit_off);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_while_counting_answers_the_error_status() {
    // Arrange: a Redis of the test's own, stopped before the guess.
    let (redis, app, _) = crate::helpers::app_on_own_redis(&basic("")).await;

    // Act
    drop(redis);
    let wrong = methods_as(&app, &app.client, "wrong", false).await;
    let right = methods_as(&app, &app.client, PASSWORD, true).await;

    // Assert: the endpoint's own answer with the error status, as for any store fault; no 5xx.
    let (status, _, body) = wrong;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("<checkVerifiedContactMethods><status>error</status>"),
        "{body}"
    );
    let (status, _, body) = right;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "error", "{body}");
}

async fn refused_addresses_are_counted_nowhere(kind: StoreKind) {
    // Arrange: 127.0.0.1 is outside every allowed list; wrong credentials on all three surfaces.
    let token_secret = "gc-secret-4b1f9e0c7d2a-85e3";
    let app = spawn_app_with(
        kind,
        &format!(
            "{}oauth_clients = [{{ id = \"gc\", secret_sha256 = \"{}\" }}]\n\
             [admin]\ntokens = [\"ops:admin:ops-admin-token-0c9d2e7f41a8b3d6e5f0\"]\n\
             allowed_networks = [\"10.0.0.0/8\"]\n",
            basic("allowed_networks = [\"10.0.0.0/8\"]"),
            twofactor::crypto::sha256_hex(token_secret.as_bytes())
        ),
    )
    .await;

    // Act
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (basic, _, _) = methods_as(&app, &app.client, &format!("guess-{i}"), false).await;
        let oauth = app
            .client
            .post(format!("{}/oauth/token", app.address))
            .basic_auth("gc", Some(format!("guess-{i}")))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let login = app
            .client
            .post(format!("{}/admin/session", app.address))
            .json(&serde_json::json!({ "token": format!("guess-{i}") }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        statuses.push((basic, oauth, login));
    }

    // Assert: every one refused for its address, and no counter made for it.
    assert!(
        statuses.iter().all(|s| *s == (403, 403, 403)),
        "{statuses:?}"
    );
    let dump = format!("{:?}", app.store().dump(&app.prefix).await.unwrap());
    for counter in ["basic-failures", "oauth:failures", "login-failures"] {
        assert!(!dump.contains(counter), "{counter} counted: {dump}");
    }
}
both_stores!(refused_uncounted, refused_addresses_are_counted_nowhere);
