//! Code policy as a callflow sees it: expiry, tries per code, sends per window, resends, lockout,
//! unknown customers and methods, failed delivery.

use std::time::Duration;

use crate::both_stores;
use crate::helpers::wrong_code;
use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const ALICE: &str = "alice@example.com";

/// Send windows and locks that a test waits out: long enough that the "still limited" or "still
/// locked" checks land inside them on a loaded machine.
const WAIT_OUT_SECONDS: u64 = 2;

/// Sleeps until a window or lock of `WAIT_OUT_SECONDS` started just before has ended, with half a
/// second to spare.
async fn wait_out() {
    tokio::time::sleep(Duration::from_secs(WAIT_OUT_SECONDS) + Duration::from_millis(500)).await;
}

async fn app(kind: StoreKind, overrides: &str) -> TestApp {
    let app = spawn_app_with(kind, overrides).await;
    app.add_customer("1001", Some(ALICE), None, None).await;
    app
}

async fn send_code(app: &TestApp) -> String {
    let sent = app.send("1001", "Email").await;
    assert_eq!(sent.xml_status(), "success", "{sent:?}");
    app.last_code_to(ALICE)
}

async fn a_code_expires(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nttl_seconds = 1").await;
    let code = send_code(&app).await;

    // Act
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = app.verify("1001", &code).await;

    // Assert
    assert_eq!(late.xml_status(), "expired", "{late:?}");
}
both_stores!(a_code_expires_on, a_code_expires);

async fn a_code_allows_a_few_tries(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nmax_verify_attempts = 3").await;
    let code = send_code(&app).await;

    // Act
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(app.verify("1001", &wrong_code(&code)).await.xml_status());
    }
    let right = app.verify("1001", &code).await;

    // Assert
    assert_eq!(answers, ["incorrect code"; 3]);
    assert_eq!(
        right.xml_status(),
        "expired",
        "the third wrong try discards the code"
    );
}
both_stores!(a_code_allows_a_few_tries_on, a_code_allows_a_few_tries);

async fn sends_are_limited_per_window(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nmax_sends = 2").await;
    let _first = send_code(&app).await;
    let second = send_code(&app).await;

    // Act
    let third = app.send("1001", "Email").await;

    // Assert
    assert_eq!(third.xml_status(), "send limited", "{third:?}");
    assert_eq!(app.messages_to(ALICE), 2, "a refused send sends nothing");
    assert_eq!(
        app.verify("1001", &second).await.xml_status(),
        "success",
        "a refused send leaves the pending code alone"
    );
}
both_stores!(
    sends_are_limited_per_window_on,
    sends_are_limited_per_window
);

async fn the_send_window_ends(kind: StoreKind) {
    // Arrange
    let app = app(
        kind,
        &format!("[codes]\nmax_sends = 1\nsend_window_seconds = {WAIT_OUT_SECONDS}"),
    )
    .await;
    send_code(&app).await;
    assert_eq!(app.send("1001", "Email").await.xml_status(), "send limited");

    // Act
    wait_out().await;
    let later = app.send("1001", "Email").await;

    // Assert
    assert_eq!(
        later.xml_status(),
        "success",
        "a new window allows sends again"
    );
}
both_stores!(the_send_window_ends_on, the_send_window_ends);

async fn a_resend_replaces_the_pending_code(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[codes]\nmax_sends = 20").await;
    let old = send_code(&app).await;
    let mut new = send_code(&app).await;
    while new == old {
        new = send_code(&app).await;
    }

    // Act
    let with_old = app.verify("1001", &old).await;
    let with_new = app.verify("1001", &new).await;

    // Assert
    assert_eq!(with_old.xml_status(), "incorrect code", "{with_old:?}");
    assert_eq!(with_new.xml_status(), "success", "{with_new:?}");
}
both_stores!(
    a_resend_replaces_the_pending_code_on,
    a_resend_replaces_the_pending_code
);

async fn unknown_customers_and_methods(kind: StoreKind) {
    // Arrange: one customer with email only.
    let app = app(kind, "").await;

    // Act / Assert: (what, answer, expected status)
    let cases = [
        (
            "methods, unknown customer",
            app.methods("9999").await,
            "not found",
        ),
        (
            "send Email, unknown customer",
            app.send("9999", "Email").await,
            "not found",
        ),
        (
            "send SMS, unknown customer",
            app.send("9999", "SMS").await,
            "not found",
        ),
        (
            "send Authenticator, unknown customer",
            app.send("9999", "Authenticator").await,
            "not found",
        ),
        (
            "verify, unknown customer: as a known one with no code",
            app.verify("9999", "123456").await,
            "expired",
        ),
        (
            "send SMS, customer without a phone",
            app.send("1001", "SMS").await,
            "not found",
        ),
        (
            "send Authenticator, customer without one",
            app.send("1001", "Authenticator").await,
            "not found",
        ),
        (
            "verify, known customer with no code pending",
            app.verify("1001", "123456").await,
            "expired",
        ),
    ];
    for (what, answer, want) in cases {
        assert_eq!(answer.status, 200, "{what}");
        assert_eq!(answer.xml_status(), want, "{what}: {answer:?}");
    }
    assert!(app.outbox_messages().is_empty(), "nothing may be sent");
}
both_stores!(
    unknown_customers_and_methods_on,
    unknown_customers_and_methods
);

async fn a_customer_without_methods_is_not_found(kind: StoreKind) {
    // Arrange: a record whose phone was removed, say.
    let app = app(kind, "").await;
    let imported = app.state.directory.import_json(r#"[{"id": "1005"}]"#).await;

    // Act
    let methods = app.methods("1005").await;

    // Assert: stored or refused at import, the callflow hears "not found".
    assert_eq!(
        methods.xml_status(),
        "not found",
        "import gave {imported:?}: {methods:?}"
    );
}
both_stores!(
    a_customer_without_methods_is_not_found_on,
    a_customer_without_methods_is_not_found
);

async fn too_many_wrong_codes_lock_the_customer(kind: StoreKind) {
    // Arrange
    let app = app(
        kind,
        &format!(
            "[codes]\nmax_verify_attempts = 10\n[lockout]\nmax_failures = 3\nduration_seconds = {WAIT_OUT_SECONDS}"
        ),
    )
    .await;
    let code = send_code(&app).await;
    for _ in 0..3 {
        assert_eq!(
            app.verify("1001", &wrong_code(&code)).await.xml_status(),
            "incorrect code"
        );
    }

    // Act
    let right = app.verify("1001", &code).await;
    let sent = app.send("1001", "Email").await;

    // Assert
    assert_eq!(
        right.xml_status(),
        "locked",
        "even the right code: {right:?}"
    );
    assert_ne!(
        sent.xml_status(),
        "success",
        "no code for a locked customer: {sent:?}"
    );
    assert_eq!(
        app.messages_to(ALICE),
        1,
        "a locked customer gets no message"
    );

    // The lock ends after lockout.duration_seconds, and the customer can start again.
    wait_out().await;
    let code = send_code(&app).await;
    assert_eq!(app.verify("1001", &code).await.xml_status(), "success");
}
both_stores!(
    too_many_wrong_codes_lock_the_customer_on,
    too_many_wrong_codes_lock_the_customer
);

async fn wrong_codes_count_only_within_the_lockout_window(kind: StoreKind) {
    // Arrange: three wrong codes lock, but only within lockout.window_seconds.
    let app = app(
        kind,
        &format!(
            "[codes]\nmax_verify_attempts = 10\n[lockout]\nmax_failures = 3\nwindow_seconds = {WAIT_OUT_SECONDS}"
        ),
    )
    .await;
    let code = send_code(&app).await;
    for _ in 0..2 {
        assert_eq!(
            app.verify("1001", &wrong_code(&code)).await.xml_status(),
            "incorrect code"
        );
    }

    // Act: two more once the window has ended.
    wait_out().await;
    for _ in 0..2 {
        assert_eq!(
            app.verify("1001", &wrong_code(&code)).await.xml_status(),
            "incorrect code"
        );
    }
    let right = app.verify("1001", &code).await;

    // Assert
    assert_eq!(
        right.xml_status(),
        "success",
        "four wrong codes in two windows do not lock: {right:?}"
    );
}
both_stores!(
    wrong_codes_count_only_within_the_lockout_window_on,
    wrong_codes_count_only_within_the_lockout_window
);

async fn a_resend_does_not_reset_the_failure_count(kind: StoreKind) {
    // Arrange: 4 failures lock; each code allows 3 tries.
    let app = app(kind, "[lockout]\nmax_failures = 4").await;
    let first = send_code(&app).await;
    for _ in 0..2 {
        app.verify("1001", &wrong_code(&first)).await;
    }
    let second = send_code(&app).await;
    for _ in 0..2 {
        app.verify("1001", &wrong_code(&second)).await;
    }

    // Act
    let right = app.verify("1001", &second).await;

    // Assert
    assert_eq!(
        right.xml_status(),
        "locked",
        "2 + 2 failures across a resend lock: {right:?}"
    );
}
both_stores!(
    a_resend_does_not_reset_the_failure_count_on,
    a_resend_does_not_reset_the_failure_count
);

async fn a_right_code_resets_the_failure_count(kind: StoreKind) {
    // Arrange
    let app = app(kind, "[lockout]\nmax_failures = 3").await;
    for round in 0..3 {
        let code = send_code(&app).await;
        // Act: two wrong tries, then the right code, three times over.
        for _ in 0..2 {
            app.verify("1001", &wrong_code(&code)).await;
        }
        let right = app.verify("1001", &code).await;
        // Assert
        assert_eq!(right.xml_status(), "success", "round {round}: {right:?}");
    }
}
both_stores!(
    a_right_code_resets_the_failure_count_on,
    a_right_code_resets_the_failure_count
);

async fn a_failed_delivery_leaves_no_code_and_no_count(kind: StoreKind) {
    // Arrange: an outbox that cannot be written.
    let app = app(
        kind,
        "[delivery]\noutbox_file = \"/nonexistent-dir/twofactor/outbox.jsonl\"\n[codes]\nmax_sends = 1",
    )
    .await;

    // Act
    let first = app.send("1001", "Email").await;
    let second = app.send("1001", "Email").await;
    let stored = app.store().dump(&app.prefix).await.unwrap();

    // Assert
    assert_eq!(first.xml_status(), "error", "{first:?}");
    assert_eq!(
        second.xml_status(),
        "error",
        "the failed send was not counted against max_sends = 1: {second:?}"
    );
    assert!(
        !stored.iter().any(|(k, _)| k.contains("code:")),
        "no usable code may outlive a failed delivery: {stored:?}"
    );
}
both_stores!(
    a_failed_delivery_leaves_no_code_and_no_count_on,
    a_failed_delivery_leaves_no_code_and_no_count
);

async fn sms_to_one_number_is_capped(kind: StoreKind) {
    // Arrange: two customers share a number.
    let app = spawn_app_with(kind, "[sms]\nmax_per_number_per_hour = 1").await;
    app.add_customer("2001", None, Some("+447911123456"), None)
        .await;
    app.add_customer("2002", None, Some("+447911123456"), None)
        .await;

    // Act
    let first = app.send("2001", "SMS").await;
    let second = app.send("2002", "SMS").await;

    // Assert
    assert_eq!(first.xml_status(), "success");
    assert_eq!(second.xml_status(), "send limited", "{second:?}");
    assert_eq!(app.messages_to("447911123456"), 1);
}
both_stores!(sms_to_one_number_is_capped_on, sms_to_one_number_is_capped);

async fn an_authenticator_code_is_single_use(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "").await;
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    app.add_customer("1003", None, None, Some(secret)).await;
    let bytes = twofactor::totp::from_base32(secret).unwrap();
    let totp = twofactor::totp::build(&app.state.snapshot().settings.totp, &bytes, "test").unwrap();
    let token = totp.generate(app.state.clock.now_unix()).to_string();
    assert_eq!(
        app.send("1003", "Authenticator").await.xml_status(),
        "success"
    );

    // Act: the only method is the authenticator, so no method needs naming.
    let first = app.verify("1003", &token).await;
    let replay = app.verify("1003", &token).await;

    // Assert
    assert_eq!(first.xml_status(), "success", "{first:?}");
    assert_eq!(
        replay.xml_status(),
        "incorrect code",
        "a replayed TOTP: {replay:?}"
    );
    assert!(
        app.outbox_messages().is_empty(),
        "nothing is sent for the authenticator"
    );
}
both_stores!(
    an_authenticator_code_is_single_use_on,
    an_authenticator_code_is_single_use
);
