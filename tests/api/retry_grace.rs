//! A callflow that retries a request it already got an answer for (a timeout on its side, a
//! network blip) must not lock out the caller it just verified: within `codes.retry_grace_seconds`
//! the accepted code, in the same call, is accepted again. Without a call id, with the grace off,
//! after it, or in another call, a code stays single use.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, VERIFY, between, spawn_app_with};

const ALICE: &str = "alice@example.com";
const CALL: &str = "call-7f3a91";
/// Several server workers, so the repeated requests race in the store.
const WORKERS: &str = "[server]\nworkers = 4\n";

async fn app(kind: StoreKind, overrides: &str) -> TestApp {
    let app = spawn_app_with(kind, &format!("{WORKERS}{overrides}")).await;
    app.add_customer("1001", Some(ALICE), None, None).await;
    app
}

/// Sends alice an email code, in `call` when given, and answers it.
async fn send_code(app: &TestApp, call: Option<&str>) -> String {
    let extra: Vec<(&str, &str)> = call.map(|c| ("CallId", c)).into_iter().collect();
    let sent = app.send_with("1001", "Email", &extra).await;
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    app.last_code_to(ALICE)
}

async fn verify_in(app: &TestApp, code: &str, call: Option<&str>) -> String {
    let extra: Vec<(&str, &str)> = call.map(|c| ("CallId", c)).into_iter().collect();
    app.verify_with("1001", code, &extra).await.xml_status()
}

/// The same verification `n` times at once, each on its own task; counts the statuses.
async fn repeated_at_once(
    app: &TestApp,
    code: &str,
    call: Option<&str>,
    n: usize,
) -> BTreeMap<String, usize> {
    let mut params = vec![
        ("CustomerId".to_string(), "1001".to_string()),
        ("authCode_nbest1".to_string(), code.to_string()),
    ];
    if let Some(c) = call {
        params.push(("CallId".to_string(), c.to_string()));
    }
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}{VERIFY}", app.address);
            let params = params.clone();
            tokio::spawn(async move {
                let res = client.get(url).query(&params).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200);
                let body = res.text().await.unwrap();
                between(&body, "<status>", "</status>").unwrap_or(body)
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for task in tasks {
        *counts.entry(task.await.unwrap()).or_insert(0) += 1;
    }
    counts
}

async fn retries_in_the_same_call_all_succeed(kind: StoreKind) {
    // Arrange: the default grace and lockout (10 failures, far fewer than the 40 retries).
    let app = app(kind, "").await;
    let code = send_code(&app, Some(CALL)).await;

    // Act
    let counts = repeated_at_once(&app, &code, Some(CALL), 40).await;
    let resent = app.send_with("1001", "Email", &[("CallId", CALL)]).await;
    let next = app.last_code_to(ALICE);
    let next_verified = verify_in(&app, &next, Some(CALL)).await;

    // Assert
    assert_eq!(
        counts,
        BTreeMap::from([("success".to_string(), 40)]),
        "every retry of the accepted code in its call is accepted"
    );
    assert_eq!(
        resent.xml_status(),
        "success",
        "the retries did not lock the customer: {}",
        resent.body
    );
    assert_eq!(next_verified, "success", "nor count against them");
}
both_stores!(
    retries_of_the_accepted_code_in_its_call_all_succeed,
    retries_in_the_same_call_all_succeed
);

async fn grace_off_means_single_use(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nretry_grace_seconds = 0\n").await;
    let code = send_code(&app, Some(CALL)).await;

    // Act
    let counts = repeated_at_once(&app, &code, Some(CALL), 40).await;

    // Assert
    assert_eq!(
        counts.get("success"),
        Some(&1),
        "with the grace off, exactly one passes: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 40);
}
both_stores!(
    with_retry_grace_zero_exactly_one_succeeds,
    grace_off_means_single_use
);

async fn no_call_id_means_single_use(kind: StoreKind) {
    // Arrange: the default grace, but nothing to tell a retry from another caller.
    let app = app(kind, "").await;
    let code = send_code(&app, None).await;

    // Act
    let counts = repeated_at_once(&app, &code, None, 40).await;

    // Assert
    assert_eq!(
        counts.get("success"),
        Some(&1),
        "without a call id, exactly one passes: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 40);
}
both_stores!(
    without_a_call_id_exactly_one_succeeds,
    no_call_id_means_single_use
);

async fn grace_ends(kind: StoreKind) {
    // Arrange: a one-second grace.
    let app = app(kind, "[codes]\nretry_grace_seconds = 1\n").await;
    let code = send_code(&app, Some(CALL)).await;
    assert_eq!(verify_in(&app, &code, Some(CALL)).await, "success");
    assert_eq!(
        verify_in(&app, &code, Some(CALL)).await,
        "success",
        "a retry within the grace passes"
    );

    // Act: wait the grace out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = verify_in(&app, &code, Some(CALL)).await;

    // Assert
    assert_ne!(late, "success", "after the grace the code is spent");
}
both_stores!(after_the_grace_a_repeat_fails, grace_ends);

async fn another_call_gets_no_grace(kind: StoreKind) {
    // Arrange
    let app = app(kind, "").await;
    let code = send_code(&app, Some(CALL)).await;
    assert_eq!(verify_in(&app, &code, Some(CALL)).await, "success");

    // Act: someone who overheard the code tries it in their own call, within the grace.
    let other = verify_in(&app, &code, Some("call-0000-other")).await;

    // Assert
    assert_ne!(
        other, "success",
        "the grace belongs to the call that used the code"
    );
}
both_stores!(
    a_repeat_in_another_call_is_refused,
    another_call_gets_no_grace
);

async fn a_retry_passes_beside_an_authenticator(kind: StoreKind) {
    // Arrange: GIA names the method when it sends, not when it checks; this customer also has an
    // authenticator, which a check without a named method falls back to once the choice is gone.
    let app = spawn_app_with(kind, WORKERS).await;
    let secret = crate::totp::new_secret();
    app.add_customer("1002", Some("bob@example.com"), None, Some(&secret))
        .await;
    let sent = app.send_with("1002", "Email", &[("CallId", "c9")]).await;
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let code = app.last_code_to("bob@example.com");

    // Act: the check, then the same request again (a network retry), then in another call.
    let first = app.verify_with("1002", &code, &[("CallId", "c9")]).await;
    let retry = app.verify_with("1002", &code, &[("CallId", "c9")]).await;
    let elsewhere = app.verify_with("1002", &code, &[("CallId", "c10")]).await;

    // Assert
    assert_eq!(first.xml_status(), "success");
    assert_eq!(retry.xml_status(), "success", "{}", retry.body);
    assert_ne!(elsewhere.xml_status(), "success", "the grace is the call's");
}
both_stores!(
    a_retried_check_passes_for_a_customer_with_an_authenticator,
    a_retry_passes_beside_an_authenticator
);
