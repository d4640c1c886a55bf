//! Limits that hold against a patient attacker and a hidden or URI-shaped caller number:
//! wrong codes in a row across locks and windows (`lockout.max_consecutive_failures`) lock until the
//! support desk unlocks; `tel:`/`sip:` caller numbers are the same line as the bare number; withheld
//! numbers share one line (`lockout.max_failures_withheld`); sends from one line across customers are
//! capped (`codes.max_sends_per_caller`).

use std::time::Duration;

use reqwest::Method;

use crate::both_stores;
use crate::helpers::{
    StoreKind, TEST_KEY, TestApp, TestClock, admin_tokens, metric_value, output_text, run_cli,
    spawn_app_with, spawn_app_with_clock, wrong_code,
};
use crate::totp::{code_at, new_secret};

/// Short locks that a patient attacker waits out, and five wrong codes in a row for the desk.
const PATIENT: &str = r#"
[codes]
max_verify_attempts = 10
[lockout]
max_failures = 2
duration_seconds = 1
max_consecutive_failures = 5
"#;

/// `n` wrong authenticator codes for `customer` with `extra` parameters, each lock waited out as a
/// patient attacker would; the statuses heard.
async fn guess_patiently(
    app: &TestApp,
    customer: &str,
    wrong: &str,
    extra: &[(&str, &str)],
    n: usize,
) -> Vec<String> {
    let mut heard = Vec::new();
    while heard.len() < n {
        let status = app.verify_with(customer, wrong, extra).await.xml_status();
        if status == "locked" {
            // Refused, not judged: wait out the lock (1 s) and guess again.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            continue;
        }
        heard.push(status);
    }
    heard
}

async fn detail(app: &TestApp, id: &str) -> serde_json::Value {
    let got = app
        .admin_call(Method::GET, &format!("/admin/v1/customers/{id}"), None)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.json()
}

async fn waiting_out_locks_ends_at_the_desk(kind: StoreKind) {
    // Arrange: an authenticator-only customer, so nothing warns them of the guessing.
    let clock = TestClock::mid_step();
    let app =
        spawn_app_with_clock(kind, &format!("{}{PATIENT}", admin_tokens()), clock.clone()).await;
    let secret = new_secret();
    app.add_customer("4001", None, None, Some(&secret)).await;
    let right = code_at(&app, &secret, clock.now());
    let wrong = wrong_code(&right);

    // Act: five wrong codes, the short locks waited out between them; then the right code, also
    // after waiting longer than a short lock lasts.
    let heard = guess_patiently(&app, "4001", &wrong, &[], 5).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let right_while_locked = app.verify("4001", &right).await;
    let seen_locked = detail(&app, "4001").await;
    let locks = metric_value(&app, "twofactor_lockouts_total{limit=\"consecutive\"}").await;
    let unlock = app
        .admin_call(Method::DELETE, "/admin/v1/customers/4001/lock", None)
        .await;
    let after_unlock = app.verify("4001", &right).await.xml_status();

    // Assert
    assert_eq!(heard, vec!["incorrect code"; 5], "five judged wrong codes");
    assert_eq!(right_while_locked.xml_status(), "locked");
    assert!(
        right_while_locked.message().contains("support desk"),
        "{}",
        right_while_locked.body
    );
    assert_eq!(seen_locked["locked"], true, "{seen_locked}");
    assert_eq!(seen_locked["needs_desk"], true, "{seen_locked}");
    assert_eq!(seen_locked["locked_seconds_left"], serde_json::Value::Null);
    assert!(locks >= 1.0, "the desk lock is counted: {locks}");
    assert_eq!(unlock.status, 204, "{}", unlock.body);
    assert_eq!(
        after_unlock, "success",
        "the desk's unlock lets the right code in"
    );
    let after = detail(&app, "4001").await;
    assert_eq!(
        after["failures_in_a_row"], 0,
        "a success starts the count again"
    );
}
both_stores!(
    waiting_out_locks_ends_at_the_desk_after_five,
    waiting_out_locks_ends_at_the_desk
);

async fn a_success_starts_the_count_in_a_row_again(kind: StoreKind) {
    // Arrange
    let clock = TestClock::mid_step();
    let app =
        spawn_app_with_clock(kind, &format!("{}{PATIENT}", admin_tokens()), clock.clone()).await;
    let secret = new_secret();
    app.add_customer("4002", None, None, Some(&secret)).await;
    let now = clock.now();
    let wrong = wrong_code(&code_at(&app, &secret, now));

    // Act: four wrong, a success, four more wrong: never five in a row.
    let first = guess_patiently(&app, "4002", &wrong, &[], 4).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let success = app
        .verify("4002", &code_at(&app, &secret, now))
        .await
        .xml_status();
    let second = guess_patiently(&app, "4002", &wrong, &[], 4).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let next = app
        .verify("4002", &code_at(&app, &secret, now + 30))
        .await
        .xml_status();

    // Assert
    assert_eq!(first.len() + second.len(), 8);
    assert_eq!(success, "success");
    assert_eq!(
        next, "success",
        "eight wrong codes, but never five in a row"
    );
}
both_stores!(
    a_success_resets_the_count_in_a_row,
    a_success_starts_the_count_in_a_row_again
);

async fn the_pair_is_locked_for_the_desk_with_caller_scope(kind: StoreKind) {
    // Arrange: lockout per (customer, caller number).
    let clock = TestClock::mid_step();
    let settings = r#"
[lockout]
max_failures = 2
duration_seconds = 1
max_consecutive_failures = 3
scope = "caller"
"#;
    let app = spawn_app_with_clock(
        kind,
        &format!("{}{settings}", admin_tokens()),
        clock.clone(),
    )
    .await;
    let secret = new_secret();
    app.add_customer("4003", None, None, Some(&secret)).await;
    let now = clock.now();
    let right = code_at(&app, &secret, now);
    let stranger = [("CallerNumber", "+447700900111")];
    let owner = [("CallerNumber", "+447700900222")];

    // Act
    let heard = guess_patiently(&app, "4003", &wrong_code(&right), &stranger, 3).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stranger_right = app.verify_with("4003", &right, &stranger).await;
    let owner_right = app.verify_with("4003", &right, &owner).await.xml_status();
    let unlock = app
        .admin_call(Method::DELETE, "/admin/v1/customers/4003/lock", None)
        .await;
    let later = code_at(&app, &secret, now + 30);
    let stranger_after = app
        .verify_with("4003", &later, &stranger)
        .await
        .xml_status();

    // Assert
    assert_eq!(heard, vec!["incorrect code"; 3]);
    assert_eq!(
        stranger_right.xml_status(),
        "locked",
        "{}",
        stranger_right.body
    );
    assert!(
        stranger_right.message().contains("support desk"),
        "{}",
        stranger_right.body
    );
    assert_eq!(owner_right, "success", "only the pair is locked");
    assert_eq!(unlock.status, 204, "{}", unlock.body);
    assert_eq!(
        stranger_after, "success",
        "the desk's unlock lifts the pair's lock"
    );
}
both_stores!(
    caller_scope_locks_the_pair_for_the_desk,
    the_pair_is_locked_for_the_desk_with_caller_scope
);

/// Customers l1..l6 with an email and nothing pending: a guess answers `expired` and counts.
async fn customers_without_codes(app: &TestApp) {
    for i in 1..=6 {
        app.add_customer(
            &format!("l{i}"),
            Some(&format!("l{i}@example.com")),
            None,
            None,
        )
        .await;
    }
}

async fn every_form_of_one_line_is_one_line(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "[lockout]\nmax_failures_per_caller = 3\n").await;
    customers_without_codes(&app).await;
    let forms = [
        ("ANI", "tel:+13175550116"),
        ("CallerNumber", "sip:+13175550116@203.0.113.9;user=phone"),
        ("ANI", "+1 (317) 555-0116"),
    ];

    // Act: three guesses from the line in three forms, then the bare E.164 number.
    let mut heard = Vec::new();
    for (i, (name, value)) in forms.iter().enumerate() {
        let customer = format!("l{}", i + 1);
        heard.push(
            app.verify_with(&customer, "123456", &[(name, value)])
                .await
                .xml_status(),
        );
    }
    let bare = app
        .verify_with("l4", "123456", &[("ANI", "+13175550116")])
        .await;
    let other_line = app
        .verify_with("l5", "123456", &[("ANI", "tel:+13175550199")])
        .await;

    // Assert
    assert_eq!(heard, vec!["expired"; 3]);
    assert_eq!(bare.xml_status(), "locked", "{}", bare.body);
    assert!(bare.message().contains("caller number"), "{}", bare.body);
    assert_eq!(
        other_line.xml_status(),
        "expired",
        "another line is not touched"
    );
}
both_stores!(
    tel_and_sip_forms_are_the_same_line,
    every_form_of_one_line_is_one_line
);

async fn withheld_numbers_share_one_line(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        "[lockout]\nmax_failures_per_caller = 3\nmax_failures_withheld = 3\n",
    )
    .await;
    customers_without_codes(&app).await;

    // Act: three guesses from hidden numbers, each hidden another way.
    let mut heard = Vec::new();
    for (i, (name, value)) in [
        ("CallerNumber", "anonymous"),
        ("ANI", "Restricted"),
        ("CallerNumber", ""),
    ]
    .iter()
    .enumerate()
    {
        let customer = format!("l{}", i + 1);
        heard.push(
            app.verify_with(&customer, "123456", &[(name, value)])
                .await
                .xml_status(),
        );
    }
    let private = app.verify_with("l4", "123456", &[("ANI", "private")]).await;
    let sip_anonymous = app
        .verify_with(
            "l4",
            "123456",
            &[("ANI", "sip:anonymous@anonymous.invalid")],
        )
        .await
        .xml_status();
    let no_parameter = app.verify("l5", "123456").await.xml_status();
    let a_number = app
        .verify_with("l6", "123456", &[("ANI", "+447700900333")])
        .await
        .xml_status();

    // Assert
    assert_eq!(heard, vec!["expired"; 3]);
    assert_eq!(private.xml_status(), "locked", "{}", private.body);
    assert_eq!(sip_anonymous, "locked");
    assert_eq!(
        no_parameter, "expired",
        "a flow that sends no number stays as it was"
    );
    assert_eq!(a_number, "expired", "a real line has its own count");
}
both_stores!(hidden_numbers_are_one_line, withheld_numbers_share_one_line);

async fn one_line_sends_only_so_many_codes(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "[codes]\nmax_sends_per_caller = 3\n").await;
    customers_without_codes(&app).await;
    let hidden = [("CallerNumber", "anonymous")];

    // Act: an unknown customer first (nothing goes out, nothing is counted), then four customers.
    let unknown = app.send_with("nobody", "Email", &hidden).await.xml_status();
    let mut heard = Vec::new();
    for i in 1..=4 {
        heard.push(app.send_with(&format!("l{i}"), "Email", &hidden).await);
    }
    let other_line = app
        .send_with("l4", "Email", &[("CallerNumber", "+447700900444")])
        .await
        .xml_status();

    // Assert
    assert_eq!(unknown, "not found");
    let statuses: Vec<String> = heard.iter().map(|a| a.xml_status()).collect();
    assert_eq!(statuses, ["success", "success", "success", "send limited"]);
    assert!(
        heard[3].message().contains("caller number"),
        "{}",
        heard[3].body
    );
    let sent_to_l4 = app
        .outbox_messages()
        .iter()
        .filter(|m| m["to"] == "l4@example.com")
        .count();
    assert_eq!(other_line, "success");
    assert_eq!(
        sent_to_l4, 1,
        "the refused send delivered nothing; the other line's did"
    );
}
both_stores!(
    sends_from_one_line_are_capped,
    one_line_sends_only_so_many_codes
);

/// The CLI's unlock lifts a desk lock like the admin API does (Redis: the CLI is another process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_unlocks_a_desk_lock() {
    // Arrange
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(StoreKind::Redis, PATIENT, clock.clone()).await;
    let secret = new_secret();
    app.add_customer("4004", None, None, Some(&secret)).await;
    let right = code_at(&app, &secret, clock.now());
    guess_patiently(&app, "4004", &wrong_code(&right), &[], 5).await;
    let locked = app.verify("4004", &right).await.xml_status();

    // Act
    let out = run_cli(&app.prefix, TEST_KEY, &[], &["customers", "unlock", "4004"]).await;

    // Assert
    assert_eq!(locked, "locked");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "customer 4004: unlocked\n",
        "the result alone on stdout; logs go to stderr"
    );
    assert_eq!(app.verify("4004", &right).await.xml_status(), "success");
}
