//! Races a callflow (or an attacker) can start: many guesses at once never get more tries than
//! the code allows; the right code on many connections at once passes exactly once; parallel
//! sends never slip past the send limit.

use std::collections::BTreeMap;

use crate::both_stores;
use crate::helpers::{SEND, StoreKind, TestApp, VERIFY, between, spawn_app_with};
use crate::helpers::{authenticator, unix_now};

const ALICE: &str = "alice@example.com";

/// Runs `n` GET requests to `path` at once, each on its own task (and connection), and counts
/// the `<status>` answers.
async fn at_once(
    app: &TestApp,
    path: &str,
    params: Vec<Vec<(String, String)>>,
) -> BTreeMap<String, usize> {
    let tasks: Vec<_> = params
        .into_iter()
        .map(|p| {
            let client = app.client.clone();
            let url = format!("{}{path}", app.address);
            tokio::spawn(async move {
                let res = client.get(url).query(&p).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200);
                let body = res.text().await.unwrap();
                between(&body, "<status>", "</status>").unwrap_or(body)
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for answer in futures_util::future::join_all(tasks).await {
        *counts.entry(answer.unwrap()).or_insert(0) += 1;
    }
    counts
}

fn verify_params(code: &str) -> Vec<(String, String)> {
    vec![
        ("CustomerId".into(), "1001".into()),
        ("authCode_nbest1".into(), code.into()),
    ]
}

/// The `i`-th wrong code of the same length as `code`.
fn wrong(code: &str, i: usize) -> String {
    let n: u64 = code.parse().unwrap();
    let m = 10u64.pow(code.len() as u32);
    format!("{:0w$}", (n + 1 + i as u64) % m, w = code.len())
}

/// Server workers for these tests: several, so the racing requests run on different threads and
/// race in the store, rather than taking turns on the harness's single worker.
const WORKERS: &str = "[server]\nworkers = 4\n";

async fn app(kind: StoreKind, overrides: &str) -> TestApp {
    let app = spawn_app_with(kind, &format!("{WORKERS}{overrides}")).await;
    assert_eq!(
        app.state.snapshot().settings.server.workers,
        4,
        "the race needs several workers"
    );
    app.add_customer("1001", Some(ALICE), None, None).await;
    app
}

async fn parallel_guesses_never_exceed_the_tries_per_code(kind: StoreKind) {
    // Arrange: lockout out of the way, so only the per-code limit is at work.
    let app = app(
        kind,
        "[codes]\nmax_verify_attempts = 3\n[lockout]\nmax_failures = 1000",
    )
    .await;
    app.send("1001", "Email").await;
    let code = app.last_code_to(ALICE);

    // Act
    let counts = at_once(
        &app,
        VERIFY,
        (0..40).map(|i| verify_params(&wrong(&code, i))).collect(),
    )
    .await;
    let right = app.verify("1001", &code).await;

    // Assert
    assert_eq!(
        counts,
        BTreeMap::from([
            ("expired".to_string(), 37),
            ("incorrect code".to_string(), 3)
        ]),
        "exactly max_verify_attempts guesses may be judged"
    );
    assert_eq!(
        right.xml_status(),
        "expired",
        "the code is gone after its last try"
    );
}
both_stores!(
    parallel_guesses_never_exceed_the_tries_per_code_on,
    parallel_guesses_never_exceed_the_tries_per_code
);

async fn the_right_code_on_many_connections_passes_once(kind: StoreKind) {
    // Arrange: lockout out of the way (every racing attempt counts towards it).
    let app = app(kind, "[lockout]\nmax_failures = 1000").await;
    app.send("1001", "Email").await;
    let code = app.last_code_to(ALICE);

    // Act
    let counts = at_once(
        &app,
        VERIFY,
        (0..30).map(|_| verify_params(&code)).collect(),
    )
    .await;

    // Assert
    assert_eq!(
        counts,
        BTreeMap::from([("expired".to_string(), 29), ("success".to_string(), 1)]),
        "a code is single use, even in a race"
    );
}
both_stores!(
    the_right_code_on_many_connections_passes_once_on,
    the_right_code_on_many_connections_passes_once
);

async fn parallel_sends_never_exceed_the_send_limit(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nmax_sends = 3").await;
    let params = vec![
        ("CustomerId".to_string(), "1001".to_string()),
        (
            "TwoFactorAuthSelectedMethod".to_string(),
            "Email".to_string(),
        ),
    ];

    // Act
    let counts = at_once(&app, SEND, vec![params; 20]).await;

    // Assert
    assert_eq!(
        counts,
        BTreeMap::from([("send limited".to_string(), 17), ("success".to_string(), 3)])
    );
    assert_eq!(
        app.messages_to(ALICE),
        3,
        "exactly max_sends messages go out"
    );
}
both_stores!(
    parallel_sends_never_exceed_the_send_limit_on,
    parallel_sends_never_exceed_the_send_limit
);

async fn parallel_authenticator_guesses_never_exceed_the_lockout(kind: StoreKind) {
    // Arrange: authenticator codes have no per-code limit; only the lockout stops guessing.
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let app = spawn_app_with(kind, &format!("{WORKERS}[lockout]\nmax_failures = 5")).await;
    app.add_customer("1001", None, None, Some(SECRET)).await;
    let totp = authenticator(SECRET, 6);
    let now = unix_now();
    let valid: Vec<String> = [now - 60, now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| totp.generate(*t).to_string())
        .collect();
    let guesses: Vec<String> = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .filter(|g| !valid.contains(g))
        .take(40)
        .collect();

    // Act
    let counts = at_once(
        &app,
        VERIFY,
        guesses.iter().map(|g| verify_params(g)).collect(),
    )
    .await;
    let right = app.verify("1001", &totp.generate(now).to_string()).await;

    // Assert
    assert_eq!(
        counts,
        BTreeMap::from([
            ("incorrect code".to_string(), 5),
            ("locked".to_string(), 35)
        ]),
        "exactly lockout.max_failures guesses may be judged, however many race"
    );
    assert_eq!(
        right.xml_status(),
        "locked",
        "locked even for the right code"
    );
}
both_stores!(
    parallel_authenticator_guesses_never_exceed_the_lockout_on,
    parallel_authenticator_guesses_never_exceed_the_lockout
);
