//! OAuth 2.0 client credentials: `POST /oauth/token` (RFC 6749 §4.4, §5.2 errors) and bearer
//! callers on `/v1`, on both stores; tokens shared by instances on one Redis, expiring, revoked
//! with their client, limited per address after failed authentications (per client id only an
//! alert), and never kept in clear.

use std::sync::Arc;

use serde_json::Value;

use crate::both_stores;
use crate::helpers::{
    METHODS, StoreKind, TestApp, TestClock, VERIFY, assert_json_schema, spawn_app_sharing,
    spawn_app_with, spawn_app_with_clock,
};

pub const CLIENT: &str = "genesys-cloud";
pub const SECRET: &str = "gc-secret-4b1f9e0c7d2a-85e3";

fn sha256_hex(s: &str) -> String {
    twofactor::crypto::sha256_hex(s.as_bytes())
}

/// Basic and bearer callers, one client.
pub fn oauth_settings(extra: &str) -> String {
    format!(
        r#"
[security]
auth_scheme = ["basic", "bearer"]
user_id = "gia"
password = "gia-pw"
oauth_clients = [{{ id = "{CLIENT}", secret_sha256 = "{}" }}]
oauth_token_ttl_seconds = 600
{extra}
"#,
        sha256_hex(SECRET)
    )
}

/// The token answer, checked against its schema and the no-cache headers.
async fn token_answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    assert_eq!(
        headers["content-type"].to_str().unwrap(),
        "application/json",
        "{body}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{body}");
    assert_eq!(headers["pragma"], "no-cache", "{body}");
    let schema = if status == 200 {
        "oauth_token"
    } else {
        "oauth_error"
    };
    (status, assert_json_schema(schema, &body))
}

fn token_url(app: &TestApp) -> String {
    format!("{}/oauth/token", app.address)
}

/// A client-credentials token request from `id` with `secret` by Basic authentication.
fn token_request(app: &TestApp, id: &str, secret: &str) -> reqwest::RequestBuilder {
    app.client
        .post(token_url(app))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
}

/// The token answer to the client asking with its own secret by Basic authentication.
async fn token_by_basic(app: &TestApp) -> (u16, Value) {
    token_answer(token_request(app, CLIENT, SECRET).send().await.unwrap()).await
}

/// A token for the client by Basic authentication.
pub async fn fetch_token(app: &TestApp) -> String {
    let (status, body) = token_by_basic(app).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// check-verified-contact-methods with a bearer token: (HTTP status, WWW-Authenticate, body).
async fn with_bearer(app: &TestApp, token: &str, json: bool) -> (u16, Vec<String>, String) {
    let mut req = app
        .client
        .get(format!("{}{METHODS}", app.address))
        .bearer_auth(token)
        .query(&[("CustomerId", "1001")]);
    if json {
        req = req.header("accept", "application/json");
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenges = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (status, challenges, res.text().await.unwrap())
}

async fn good_client_by_basic_and_by_form_gets_tokens_that_open_v1(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &oauth_settings("")).await;
    app.add_alice().await;

    // Act: Basic, then client_id/client_secret in the body.
    let by_basic = fetch_token(&app).await;
    let res = app
        .client
        .post(token_url(&app))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    let (status, form_answer) = token_answer(res).await;

    // Assert
    assert_eq!(status, 200, "{form_answer}");
    assert_eq!(form_answer["token_type"], "Bearer");
    assert_eq!(form_answer["expires_in"], 600);
    let by_form = form_answer["access_token"].as_str().unwrap();
    assert_ne!(by_basic, by_form, "every token is new");
    for token in [by_basic.as_str(), by_form] {
        let (status, _, body) = with_bearer(&app, token, true).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            assert_json_schema("check_methods", &body)["email"],
            "alice@example.com"
        );
    }
    // Basic still works beside bearer; no credentials gets one challenge per scheme.
    let basic = app
        .client
        .get(format!("{}{METHODS}", app.address))
        .basic_auth("gia", Some("gia-pw"))
        .query(&[("CustomerId", "1001")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);
    let anonymous = app
        .client
        .get(format!("{}{METHODS}", app.address))
        .query(&[("CustomerId", "1001")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let challenges: Vec<&str> = anonymous
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Basic realm=\"twofactor\", charset=\"UTF-8\"",
            "Bearer realm=\"twofactor\""
        ]
    );
}
both_stores!(
    good_client,
    good_client_by_basic_and_by_form_gets_tokens_that_open_v1
);

async fn bad_requests_get_rfc_6749_errors(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &oauth_settings("")).await;
    let post =
        |form: Vec<(&'static str, &'static str)>| app.client.post(token_url(&app)).form(&form);
    let grant = ("grant_type", "client_credentials");
    type Case = (&'static str, reqwest::RequestBuilder, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            "bad secret",
            post(vec![grant]).basic_auth(CLIENT, Some("not-the-secret")),
            401,
            "invalid_client",
        ),
        (
            "bad secret in the body",
            post(vec![
                grant,
                ("client_id", CLIENT),
                ("client_secret", "nope"),
            ]),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            post(vec![grant]).basic_auth("someone-else", Some(SECRET)),
            401,
            "invalid_client",
        ),
        ("no credentials", post(vec![grant]), 401, "invalid_client"),
        (
            "wrong grant",
            post(vec![("grant_type", "password")]).basic_auth(CLIENT, Some(SECRET)),
            400,
            "unsupported_grant_type",
        ),
        (
            "no grant",
            post(vec![]).basic_auth(CLIENT, Some(SECRET)),
            400,
            "invalid_request",
        ),
        (
            "grant twice",
            app.client
                .post(token_url(&app))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&grant_type=client_credentials")
                .basic_auth(CLIENT, Some(SECRET)),
            400,
            "invalid_request",
        ),
        (
            "credentials twice",
            post(vec![
                grant,
                ("client_id", CLIENT),
                ("client_secret", SECRET),
            ])
            .basic_auth(CLIENT, Some(SECRET)),
            400,
            "invalid_request",
        ),
        (
            "JSON body",
            app.client
                .post(token_url(&app))
                .header("content-type", "application/json")
                .body(r#"{"grant_type": "client_credentials"}"#)
                .basic_auth(CLIENT, Some(SECRET)),
            400,
            "invalid_request",
        ),
        (
            "GET",
            app.client
                .get(token_url(&app))
                .basic_auth(CLIENT, Some(SECRET)),
            405,
            "invalid_request",
        ),
    ];

    for (what, req, want_status, want_error) in cases {
        // Act
        let res = req.send().await.unwrap();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, body) = token_answer(res).await;

        // Assert
        assert_eq!(status, want_status, "{what}: {body}");
        assert_eq!(body["error"], want_error, "{what}: {body}");
        if status == 401 {
            assert_eq!(
                challenge.as_deref(),
                Some("Basic realm=\"twofactor\", charset=\"UTF-8\""),
                "{what}"
            );
        }
    }
}
both_stores!(bad_requests, bad_requests_get_rfc_6749_errors);

async fn expired_unknown_and_revoked_tokens_are_refused_in_the_endpoints_shape(kind: StoreKind) {
    // Arrange
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, &oauth_settings(""), Arc::clone(&clock)).await;
    app.add_alice().await;
    let token = fetch_token(&app).await;
    assert_eq!(with_bearer(&app, &token, false).await.0, 200);
    let invalid_token = "Bearer realm=\"twofactor\", error=\"invalid_token\"".to_string();

    // Act + Assert: unknown token, XML shape.
    let (status, challenges, body) = with_bearer(&app, "made-up-token", false).await;
    assert_eq!(status, 401);
    assert!(challenges.contains(&invalid_token), "{challenges:?}");
    assert!(
        body.starts_with("<checkVerifiedContactMethods><status>error</status><message>"),
        "{body}"
    );

    // Expired: one second before the end it works, at the end it does not.
    clock.advance(599);
    assert_eq!(with_bearer(&app, &token, true).await.0, 200);
    clock.advance(1);
    let (status, challenges, body) = with_bearer(&app, &token, true).await;
    assert_eq!(status, 401);
    assert!(challenges.contains(&invalid_token), "{challenges:?}");
    let v = assert_json_schema("error", &body);
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");

    // Revoked: an instance on the same store whose settings no longer list the client.
    let fresh = fetch_token(&app).await;
    let other_client = format!(
        "[security]\nauth_scheme = \"bearer\"\noauth_clients = [{{ id = \"other\", secret_sha256 = \"{}\" }}]",
        sha256_hex("other-secret")
    );
    let without = spawn_app_sharing(&app, &other_client).await;
    let (status, challenges, _) = with_bearer(&without, &fresh, false).await;
    assert_eq!(status, 401);
    assert!(challenges.contains(&invalid_token), "{challenges:?}");
    // On code-authentication too, in its own root element.
    let res = app
        .client
        .get(format!("{}{VERIFY}", without.address))
        .bearer_auth(&fresh)
        .query(&[("CustomerId", "1001"), ("authCode_nbest1", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .starts_with("<codeAuthentication><status>error</status>")
    );
}
both_stores!(
    refused_tokens,
    expired_unknown_and_revoked_tokens_are_refused_in_the_endpoints_shape
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_instance_works_on_another_sharing_redis() {
    // Arrange: two instances, each with its own Redis connection, one key and prefix.
    let first = spawn_app_with(StoreKind::Redis, &oauth_settings("")).await;
    let second = spawn_app_sharing(&first, &oauth_settings("")).await;
    first.add_alice().await;

    // Act
    let token = fetch_token(&first).await;
    let (status, _, body) = with_bearer(&second, &token, true).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        assert_json_schema("check_methods", &body)["status"],
        "success"
    );
}

async fn failed_client_authentications_are_limited_per_address(kind: StoreKind) {
    // Arrange: a guesser on 127.0.0.2 that knows the client id; the client itself on 127.0.0.1.
    let app = spawn_app_with(kind, &oauth_settings("oauth_max_failures = 3")).await;
    let guesser = crate::caller_credentials::client_from("127.0.0.2");
    let from_guesser = |id: &'static str, secret: &'static str| {
        guesser
            .post(token_url(&app))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };

    // Act + Assert: three wrong secrets, then that address waits, even with the right secret.
    for _ in 0..3 {
        let (status, body) = token_answer(from_guesser(CLIENT, "wrong").await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
    }
    let res = from_guesser(CLIENT, SECRET).await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    let (status, body) = token_answer(res).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // Another client id from that address waits as well.
    let (status, _) = token_answer(from_guesser("another-id", "x").await.unwrap()).await;
    assert_eq!(status, 429);
    // The client's own address, which has not been guessing, gets its token.
    let (status, body) = token_by_basic(&app).await;
    assert_eq!(status, 200, "the right secret from a fresh address: {body}");
}
both_stores!(
    limited,
    failed_client_authentications_are_limited_per_address
);

async fn guessing_a_client_id_from_many_addresses_alerts_but_never_refuses(kind: StoreKind) {
    // Arrange: two guessers, each under the per-address limit, together over it for the client id.
    let app = spawn_app_with(kind, &oauth_settings("oauth_max_failures = 3")).await;
    let alerts_before =
        crate::helpers::metric_value(&app, "twofactor_oauth_client_guessing_total").await;

    // Act
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let guesser = crate::caller_credentials::client_from(ip);
        for _ in 0..3 {
            let res = guesser
                .post(token_url(&app))
                .basic_auth(CLIENT, Some("wrong"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let (status, body) = token_answer(res).await;
            assert_eq!(status, 401, "{ip}: {body}");
        }
    }
    let (status, body) = token_by_basic(&app).await;

    // Assert: the client still gets its token, and the guessing was reported.
    assert_eq!(status, 200, "{body}");
    let alerts_after =
        crate::helpers::metric_value(&app, "twofactor_oauth_client_guessing_total").await;
    assert!(
        alerts_after >= alerts_before + 1.0,
        "guessing reported: {alerts_before} -> {alerts_after}"
    );
    let dump = format!("{:?}", app.store().dump(&app.prefix).await.unwrap());
    assert!(dump.contains("oauth:alerted:client:"), "{dump}");
}
both_stores!(
    client_guessing_alerts,
    guessing_a_client_id_from_many_addresses_alerts_but_never_refuses
);

async fn a_right_secret_gives_its_count_back(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &oauth_settings("oauth_max_failures = 2")).await;

    // Act: one failure, then many successes, then one more failure.
    let wrong = || token_request(&app, CLIENT, "wrong").send();
    assert_eq!(wrong().await.unwrap().status().as_u16(), 401);
    for _ in 0..5 {
        fetch_token(&app).await;
    }

    // Assert: successes did not use up the allowance.
    assert_eq!(wrong().await.unwrap().status().as_u16(), 401);
}
both_stores!(count_given_back, a_right_secret_gives_its_count_back);

async fn tokens_are_kept_only_as_digests(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &oauth_settings("")).await;

    // Act
    let tokens = [fetch_token(&app).await, fetch_token(&app).await];

    // Assert
    let dump = format!("{:?}", app.store().dump(&app.prefix).await.unwrap());
    assert!(
        dump.contains("oauth:token:"),
        "tokens are in the store: {dump}"
    );
    for token in &tokens {
        assert!(!dump.contains(token.as_str()), "a token in clear: {dump}");
    }
    assert!(!dump.contains(SECRET));
}
both_stores!(digests_only, tokens_are_kept_only_as_digests);

/// The service binary, killed if the test ends (or panics) while it still runs.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_clients_from_the_environment_and_logs_no_token_or_secret() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    // Arrange: the real binary on Redis, clients as a TOML array of tables in one variable (the
    // documented form), debug logs as JSON into a file.
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("service.log");
    let prefix = format!("oauthlog{:x}:", crate::helpers::rand_u64());
    let clients = format!(
        "[{{ id = \"{CLIENT}\", secret_sha256 = \"{}\" }}]",
        sha256_hex(SECRET)
    );
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_twofactor"))
        .arg("serve")
        .env("TFA__SERVER__BIND", "127.0.0.1:0")
        .env("TFA__STORE__URL", crate::helpers::redis().url())
        .env("TFA__STORE__KEY_PREFIX", &prefix)
        .env("TFA__SECURITY__ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("TFA__SECURITY__AUTH_SCHEME", "[\"bearer\"]")
        .env("TFA__SECURITY__OAUTH_CLIENTS", &clients)
        .env(
            "TFA__DELIVERY__OUTBOX_FILE",
            dir.path().join("outbox.jsonl"),
        )
        .env("TFA__LOG__FORMAT", "json")
        .env("TFA__LOG__FILTER", "debug")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut service = Service(child);
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let client = reqwest::Client::new();
    let port_re = regex::Regex::new(r#""port":(\d+)"#).unwrap();
    let started = Instant::now();
    let base = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not listening: {}",
            logs()
        );
        if let Some(status) = service.0.try_wait().unwrap() {
            panic!("the service exited ({status}): {}", logs());
        }
        let port = logs()
            .lines()
            .filter(|l| l.contains("\"listening\""))
            .find_map(|l| port_re.captures(l)?[1].parse::<u16>().ok());
        if let Some(port) = port {
            break format!("http://127.0.0.1:{port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Act: a token by Basic, one by form, a wrong secret, and /v1 with a good and a bad token.
    let mut tokens = Vec::new();
    for by_form in [false, true] {
        let mut req = client.post(format!("{base}/oauth/token"));
        req = if by_form {
            req.form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
            ])
        } else {
            req.basic_auth(CLIENT, Some(SECRET))
                .form(&[("grant_type", "client_credentials")])
        };
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        tokens.push(body["access_token"].as_str().unwrap().to_string());
    }
    let wrong = client
        .post(format!("{base}/oauth/token"))
        .basic_auth(CLIENT, Some("wrong-secret-7c1d"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let good = client
        .get(format!("{base}{METHODS}?CustomerId=1001"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 200);
    let bad_token = format!("{}x", tokens[1]);
    let bad = client
        .get(format!("{base}{METHODS}?CustomerId=1001"))
        .bearer_auth(&bad_token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let store = twofactor::store::connect(&crate::helpers::redis().url())
        .await
        .unwrap();
    let keyspace = format!("{:?}", store.dump(&prefix).await.unwrap());
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(service.0.id().to_string())
        .status()
        .unwrap();
    assert!(signalled.success());
    let stopping = Instant::now();
    while service.0.try_wait().unwrap().is_none() {
        assert!(stopping.elapsed() < Duration::from_secs(20), "did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert: the flows were logged (so the check below looks at real logs), and nothing secret.
    let logs = logs();
    assert!(logs.contains("access token issued"), "{logs}");
    assert!(logs.contains("unknown client or wrong secret"), "{logs}");
    assert!(keyspace.contains("oauth:token:"), "{keyspace}");
    for secret in [
        SECRET,
        "wrong-secret-7c1d",
        &tokens[0],
        &tokens[1],
        &bad_token,
        &sha256_hex(SECRET),
    ] {
        assert!(!logs.contains(secret), "the logs hold {secret}: {logs}");
        assert!(!keyspace.contains(secret), "the store holds {secret}");
    }
}

#[tokio::test]
async fn check_config_reports_the_schemes_and_clients() {
    // Arrange
    let run = |scheme: &str, clients: Option<String>| {
        let mut cmd = crate::helpers::twofactor_command();
        cmd.arg("check-config")
            .env("TFA__SECURITY__AUTH_SCHEME", scheme)
            .env("TFA__SECURITY__USER_ID", "gia")
            .env("TFA__SECURITY__PASSWORD", "gia-pw")
            .stdin(std::process::Stdio::null());
        if let Some(clients) = clients {
            cmd.env("TFA__SECURITY__OAUTH_CLIENTS", clients);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
    };
    let digest = sha256_hex(SECRET);
    let clients = format!("[{{ id = \"{CLIENT}\", secret_sha256 = \"{digest}\" }}]");

    // Act
    let good = run("[\"basic\", \"bearer\"]", Some(clients)).await.unwrap();
    let single = run("basic", None).await.unwrap();
    let bad = run("bearer", None).await.unwrap();

    // Assert
    let text = crate::helpers::output_text(&good);
    assert!(good.status.success(), "{text}");
    assert!(text.contains("auth [Basic, Bearer]"), "{text}");
    assert!(
        text.contains("oauth:    clients genesys-cloud (tokens live 3600 s"),
        "{text}"
    );
    assert!(!text.contains(&digest), "{text}");
    let text = crate::helpers::output_text(&single);
    assert!(
        single.status.success(),
        "the single-string form still works: {text}"
    );
    assert!(text.contains("auth [Basic]"), "{text}");
    let text = crate::helpers::output_text(&bad);
    assert!(!bad.status.success(), "{text}");
    assert!(
        text.contains("security.auth_scheme") && text.contains("oauth_clients"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_refuses_tokens_without_a_5xx_on_v1() {
    // Arrange: a Redis of the test's own, a token issued while it is up.
    let (redis, app, _) = crate::helpers::app_on_own_redis(&oauth_settings("")).await;
    let token = fetch_token(&app).await;

    // Act
    drop(redis);
    let (status, _, body) = with_bearer(&app, &token, true).await;
    let (token_status, token_body) = token_by_basic(&app).await;

    // Assert: /v1 answers the error status, as for any store fault; the token endpoint says to
    // retry.
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        assert_json_schema("check_methods", &body)["status"],
        "error"
    );
    assert_eq!(token_status, 503, "{token_body}");
    assert_eq!(token_body["error"], "temporarily_unavailable");
}

async fn addresses_outside_allowed_networks_get_no_token(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &oauth_settings("allowed_networks = [\"10.9.9.0/24\"]"),
    )
    .await;

    // Act
    let (status, body) = token_by_basic(&app).await;

    // Assert
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access_denied");
}
both_stores!(fenced, addresses_outside_allowed_networks_get_no_token);
