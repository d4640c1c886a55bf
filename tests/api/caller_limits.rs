//! Abuse from one phone line: the caller's number (`CallerNumber` or `ANI`) has its own failure
//! limit across all customers (`lockout.max_failures_per_caller`), and with `lockout.scope =
//! "caller"` a stranger's wrong codes lock the stranger's line, not the customer.

use std::collections::BTreeMap;

use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, VERIFY, between, spawn_app_with, wrong_code};

/// The line the abuse comes from.
const ATTACKER: &str = "+447911654321";
/// Another line.
const OTHER_LINE: &str = "+447911222333";
/// Alice's own phone, which is also the line she calls from.
const ALICE_PHONE: &str = "+447911123456";
const CUSTOMERS: usize = 20;

/// Several server workers, so the parallel requests race in the store.
const WORKERS: &str = "[server]\nworkers = 4\n";

/// One answer: its status and message.
#[derive(Debug, Clone)]
struct Reply {
    status: String,
    message: String,
}

/// Runs every request (query parameters) to code-authentication at once, each on its own task.
async fn verify_at_once(app: &TestApp, requests: Vec<Vec<(String, String)>>) -> Vec<Reply> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|params| {
            let client = app.client.clone();
            let url = format!("{}{VERIFY}", app.address);
            tokio::spawn(async move {
                let res = client.get(url).query(&params).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200);
                let body = res.text().await.unwrap();
                Reply {
                    status: between(&body, "<status>", "</status>").unwrap_or(body.clone()),
                    message: between(&body, "<message>", "</message>").unwrap_or_default(),
                }
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn count(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        *counts.entry(r.status.clone()).or_insert(0) += 1;
    }
    counts
}

/// `CUSTOMERS` customers c0..c19: a third with an SMS code pending, a third with an email code, a
/// third with nothing sent. Answers each customer's pending code, if any.
async fn many_customers(app: &TestApp) -> Vec<Option<String>> {
    let mut codes = Vec::new();
    for i in 0..CUSTOMERS {
        let id = format!("c{i}");
        let email = format!("c{i}@example.com");
        // Each its own number, so the per-number SMS cap stays out of the way.
        let phone = format!("+4479111234{i:02}");
        app.add_customer(&id, Some(&email), Some(&phone), None)
            .await;
        let code = match i % 3 {
            0 => {
                assert_eq!(app.send(&id, "SMS").await.xml_status(), "success");
                Some(app.last_code_to(phone.trim_start_matches('+')))
            }
            1 => {
                assert_eq!(app.send(&id, "Email").await.xml_status(), "success");
                Some(app.last_code_to(&email))
            }
            _ => None,
        };
        codes.push(code);
    }
    codes
}

/// 40 wrong codes from `ATTACKER`, two per customer, half naming the line as `ANI` and half as
/// `CallerNumber`.
fn flood(codes: &[Option<String>]) -> Vec<Vec<(String, String)>> {
    (0..40)
        .map(|i| {
            let c = i % CUSTOMERS;
            let guess = codes[c]
                .as_deref()
                .map(wrong_code)
                .unwrap_or_else(|| "123456".into());
            let line_param = if i % 2 == 0 { "ANI" } else { "CallerNumber" };
            vec![
                ("CustomerId".into(), format!("c{c}")),
                ("authCode_nbest1".into(), guess),
                (line_param.into(), ATTACKER.into()),
            ]
        })
        .collect()
}

async fn one_line_is_limited_across_customers(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &format!("{WORKERS}[lockout]\nmax_failures_per_caller = 5\n"),
    )
    .await;
    let codes = many_customers(&app).await;

    // Act
    let replies = verify_at_once(&app, flood(&codes)).await;
    // The right code, from the attacker's line, another line and no line at all.
    let c0 = codes[0].clone().expect("c0 has an SMS code");
    let c1 = codes[1].clone().expect("c1 has an email code");
    let c3 = codes[3].clone().expect("c3 has an SMS code");
    let from_attacker = app.verify_with("c3", &c3, &[("ANI", ATTACKER)]).await;
    let from_other_line = app.verify_with("c0", &c0, &[("ANI", OTHER_LINE)]).await;
    let from_no_line = app.verify("c1", &c1).await;

    // Assert
    let counts = count(&replies);
    let judged = replies
        .iter()
        .filter(|r| r.status == "incorrect code" || r.status == "expired")
        .count();
    let locked: Vec<&Reply> = replies.iter().filter(|r| r.status == "locked").collect();
    assert!(
        (1..=5).contains(&judged),
        "at most max_failures_per_caller guesses from one line are judged: {counts:?}"
    );
    assert_eq!(
        judged + locked.len(),
        40,
        "the rest are refused: {counts:?}"
    );
    for r in &locked {
        assert!(
            r.message.contains("caller number"),
            "a refusal names the caller number limit: {r:?}"
        );
    }
    assert_eq!(
        from_attacker.xml_status(),
        "locked",
        "the line stays refused, even with a right code: {}",
        from_attacker.body
    );
    assert_eq!(
        from_other_line.xml_status(),
        "success",
        "another line is not refused: {}",
        from_other_line.body
    );
    assert_eq!(
        from_no_line.xml_status(),
        "success",
        "a request with no caller number is not refused by the line's limit: {}",
        from_no_line.body
    );
}
both_stores!(
    one_line_gets_max_failures_per_caller_across_customers,
    one_line_is_limited_across_customers
);

async fn caller_limit_zero_is_off(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &format!("{WORKERS}[lockout]\nmax_failures_per_caller = 0\n"),
    )
    .await;
    let codes = many_customers(&app).await;

    // Act
    let replies = verify_at_once(&app, flood(&codes)).await;
    let c0 = codes[0].clone().expect("c0 has an SMS code");
    let right = app.verify_with("c0", &c0, &[("ANI", ATTACKER)]).await;

    // Assert: two wrong codes per customer are far under every other limit, so all are judged.
    let counts = count(&replies);
    assert_eq!(
        counts.get("locked"),
        None,
        "no line limit when it is 0: {counts:?}"
    );
    assert_eq!(
        counts.values().sum::<usize>(),
        40,
        "every guess is answered: {counts:?}"
    );
    assert_eq!(right.xml_status(), "success", "{}", right.body);
}
both_stores!(
    max_failures_per_caller_zero_turns_the_line_limit_off,
    caller_limit_zero_is_off
);

/// Caller-scoped lockout: 3 wrong codes lock a (customer, line) pair. The per-code limit is raised
/// so that it is not what stops the guesses.
const CALLER_SCOPE: &str = r#"
[codes]
max_verify_attempts = 10
[lockout]
scope = "caller"
max_failures = 3
"#;

async fn stranger_cannot_lock_out_the_customer(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, CALLER_SCOPE).await;
    app.add_alice().await;
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let code = app.last_code_to("447911123456");
    let wrong = wrong_code(&code);

    // Act: a stranger's line keys three wrong codes for alice, then tries the right one.
    let mut stranger = Vec::new();
    for _ in 0..3 {
        stranger.push(
            app.verify_with("1001", &wrong, &[("ANI", ATTACKER)])
                .await
                .xml_status(),
        );
    }
    let stranger_right = app.verify_with("1001", &code, &[("ANI", ATTACKER)]).await;
    let alice = app
        .verify_with("1001", &code, &[("CallerNumber", ALICE_PHONE)])
        .await;

    // Assert
    assert_eq!(stranger, ["incorrect code"; 3]);
    assert_eq!(
        stranger_right.xml_status(),
        "locked",
        "the stranger's line is locked for this customer: {}",
        stranger_right.body
    );
    assert_eq!(
        alice.xml_status(),
        "success",
        "the customer, calling from her own line, is not locked out by a stranger: {}",
        alice.body
    );
}
both_stores!(
    caller_scope_locks_the_strangers_line_not_the_customer,
    stranger_cannot_lock_out_the_customer
);

async fn caller_scope_without_a_line_locks_the_customer(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, CALLER_SCOPE).await;
    app.add_alice().await;
    assert_eq!(app.send("1001", "SMS").await.xml_status(), "success");
    let code = app.last_code_to("447911123456");
    let wrong = wrong_code(&code);

    // Act: no caller number at all, so there is no line to lock; the customer is locked as before.
    for _ in 0..3 {
        assert_eq!(
            app.verify("1001", &wrong).await.xml_status(),
            "incorrect code"
        );
    }
    let right = app.verify("1001", &code).await;

    // Assert
    assert_eq!(right.xml_status(), "locked", "{}", right.body);
    assert!(
        right.message().contains("customer"),
        "the message says the customer is locked: {}",
        right.body
    );
}
both_stores!(
    caller_scope_without_caller_number_locks_the_customer,
    caller_scope_without_a_line_locks_the_customer
);

async fn customer_scope_locks_every_line(kind: StoreKind) {
    // Arrange: the default scope.
    let app = spawn_app_with(kind, "[lockout]\nmax_failures = 3\n").await;
    app.add_alice().await;
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");
    let wrong = wrong_code(&code);
    // Three tries use up the code too; a resend keeps the failure count.
    for _ in 0..2 {
        app.verify_with("1001", &wrong, &[("ANI", ATTACKER)]).await;
    }
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let code = app.last_code_to("alice@example.com");

    // Act: the third wrong code from the stranger's line locks the customer; alice calls in.
    let third = app
        .verify_with("1001", &wrong_code(&code), &[("ANI", ATTACKER)])
        .await;
    let alice = app
        .verify_with("1001", &code, &[("ANI", ALICE_PHONE)])
        .await;

    // Assert
    assert_eq!(third.xml_status(), "incorrect code", "{}", third.body);
    assert_eq!(
        alice.xml_status(),
        "locked",
        "scope \"customer\" locks the customer on every line: {}",
        alice.body
    );
    assert!(
        alice.message().contains("customer"),
        "the message says the customer is locked: {}",
        alice.body
    );
}
both_stores!(
    customer_scope_is_the_default_and_locks_every_line,
    customer_scope_locks_every_line
);
