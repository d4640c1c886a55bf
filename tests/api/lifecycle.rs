//! Codes die with their contact: a pending code (and the remembered method) is discarded when the
//! customer's email or phone changes, whichever way it changes (admin PUT, DELETE then PUT, import).
//! Which code an attempt without a method judges; revoking an authenticator (admin API, PUT with a
//! null secret, the `twofactor totp revoke` command); unknown customers leave nothing in the store.

use reqwest::Method;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{
    StoreKind, TEST_KEY, TestApp, admin_tokens, authenticator, output_text, rand_u64, run_cli,
    spawn_app_with, unix_now, wrong_code,
};

const ALICE_EMAIL: &str = "alice@example.com";
const ALICE_PHONE: &str = "+447911123456";
/// Where the outbox SMS to `ALICE_PHONE` goes (no `+`, as `sms.plus_symbol_before_recipient_number`
/// defaults to false).
const ALICE_SMS_TO: &str = "447911123456";
const NEW_PHONE: &str = "+447911123457";
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const PATH_1001: &str = "/admin/v1/customers/1001";

/// An app with the admin API on and alice (1001, email and phone) in it.
async fn app_with_alice(kind: StoreKind) -> TestApp {
    let app = spawn_app_with(kind, &admin_tokens()).await;
    app.add_alice().await;
    app
}

/// Sends alice a code by `method` and returns it.
async fn send_to_alice(app: &TestApp, method: &str) -> String {
    let sent = app.send("1001", method).await;
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let to = if method == "SMS" {
        ALICE_SMS_TO
    } else {
        ALICE_EMAIL
    };
    app.last_code_to(to)
}

/// PUTs customer 1001 and checks the admin API took it.
async fn put_1001(app: &TestApp, body: serde_json::Value) {
    let res = app.admin_call(Method::PUT, PATH_1001, Some(body)).await;
    assert!(
        res.status == 200 || res.status == 201,
        "PUT answered {}: {}",
        res.status,
        res.body
    );
}

/// Keys `code` for 1001 as the pending code of `method`.
async fn key_code(app: &TestApp, method: &str, code: &str) -> String {
    app.verify_with("1001", code, &[("TwoFactorAuthSelectedMethod", method)])
        .await
        .xml_status()
}

async fn phone_change_discards_the_sms_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: the phone the code went to is no longer the customer's.
    put_1001(&app, json!({"email": ALICE_EMAIL, "phone": NEW_PHONE})).await;

    // Assert
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "expired",
        "a code sent to the old phone dies with it"
    );
}
both_stores!(
    phone_change_discards_the_pending_code,
    phone_change_discards_the_sms_code
);

async fn email_change_discards_the_email_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "Email").await;

    // Act
    put_1001(
        &app,
        json!({"email": "alice.new@example.com", "phone": ALICE_PHONE}),
    )
    .await;

    // Assert
    assert_eq!(
        key_code(&app, "Email", &code).await,
        "expired",
        "a code sent to the old address dies with it"
    );
}
both_stores!(
    email_change_discards_the_pending_code,
    email_change_discards_the_email_code
);

async fn phone_removal_discards_the_sms_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: a PUT without phone removes it.
    put_1001(&app, json!({"email": ALICE_EMAIL})).await;

    // Assert
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "expired",
        "a code sent to a removed phone dies with it"
    );
}
both_stores!(
    phone_removal_discards_the_pending_code,
    phone_removal_discards_the_sms_code
);

async fn delete_and_recreate_discards_the_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: the customer is deleted, then created again with the very same contacts.
    let deleted = app.admin_call(Method::DELETE, PATH_1001, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let created = app
        .admin_call(
            Method::PUT,
            PATH_1001,
            Some(json!({"email": ALICE_EMAIL, "phone": ALICE_PHONE})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    // Assert: a new customer record starts with no code of the old one's.
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "expired",
        "a deleted customer's code does not survive into the new record"
    );
}
both_stores!(
    delete_then_put_discards_the_pending_code,
    delete_and_recreate_discards_the_code
);

async fn import_phone_change_discards_the_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: the same code path as `twofactor customers import`.
    let imported = app
        .state
        .directory
        .import_json(&json!([{"id": "1001", "email": ALICE_EMAIL, "phone": NEW_PHONE}]).to_string())
        .await
        .expect("import");
    assert_eq!(imported, 1);

    // Assert
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "expired",
        "an import that changes the phone discards the code sent to the old one"
    );
}
both_stores!(
    import_changing_the_phone_discards_the_pending_code,
    import_phone_change_discards_the_code
);

async fn a_send_racing_a_phone_change_cannot_verify(kind: StoreKind) {
    // Arrange: a code sent to the old number.
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: the record takes the new number, as a PUT writes it, while the code stays: what a
    // send's code write landing just after the PUT's clean-up leaves behind.
    let id = twofactor::domain::CustomerId::parse("1001").expect("id");
    let phone = twofactor::domain::PhoneNumber::parse(NEW_PHONE).expect("phone");
    let email = twofactor::domain::Email::parse(ALICE_EMAIL).expect("email");
    let rev =
        twofactor::directory::contacts_rev(&app.state.keyring, &id, Some(&email), Some(&phone));
    let record = json!({"email": ALICE_EMAIL, "phone": NEW_PHONE, "rev": rev}).to_string();
    app.state
        .store
        .set(&app.state.keys.customer(&id), &record, None)
        .await
        .expect("write");

    // Assert
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "expired",
        "a code sent to the old number never verifies against the new one"
    );
}
both_stores!(
    a_code_sent_to_the_old_number_dies_even_when_it_outlived_the_change,
    a_send_racing_a_phone_change_cannot_verify
);

async fn unchanged_contacts_keep_the_code(kind: StoreKind) {
    // Arrange
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act: a PUT that changes nothing the code depends on.
    put_1001(&app, json!({"email": ALICE_EMAIL, "phone": ALICE_PHONE})).await;

    // Assert
    assert_eq!(
        key_code(&app, "SMS", &code).await,
        "success",
        "only a changed destination discards a code"
    );
}
both_stores!(
    put_with_the_same_contacts_keeps_the_pending_code,
    unchanged_contacts_keep_the_code
);

async fn phone_change_discards_the_remembered_method(kind: StoreKind) {
    // Arrange: the send remembers SMS as alice's choice.
    let app = app_with_alice(kind).await;
    let code = send_to_alice(&app, "SMS").await;

    // Act
    put_1001(&app, json!({"email": ALICE_EMAIL, "phone": NEW_PHONE})).await;
    let answer = app.verify("1001", &code).await;

    // Assert
    assert_ne!(
        answer.xml_status(),
        "success",
        "without a method, the old code must not pass through the remembered choice: {}",
        answer.body
    );
}
both_stores!(
    phone_change_discards_the_remembered_choice,
    phone_change_discards_the_remembered_method
);

async fn forgotten_choice_falls_back_to_the_authenticator(kind: StoreKind) {
    // Arrange: phone and authenticator; sending by SMS remembers SMS as the choice.
    let app = spawn_app_with(kind, &admin_tokens()).await;
    app.add_customer("1001", None, Some(ALICE_PHONE), Some(SECRET))
        .await;
    send_to_alice(&app, "SMS").await;

    // Act: the phone changes, so the code and the remembered SMS choice both go; with nothing sent
    // and nothing chosen, an attempt without a method is an authenticator check.
    put_1001(&app, json!({"phone": NEW_PHONE})).await;
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();
    let answer = app.verify("1001", &totp).await;

    // Assert: had SMS still been remembered, the app's code would have been judged as an SMS code.
    assert_eq!(answer.xml_status(), "success", "{}", answer.body);
}
both_stores!(
    after_a_phone_change_the_authenticator_is_checked,
    forgotten_choice_falls_back_to_the_authenticator
);

async fn explicit_authenticator_never_touches_the_sent_code(kind: StoreKind) {
    // Arrange: alice has no authenticator; an SMS code is pending, allowed 3 wrong tries.
    let app = spawn_app_with(
        kind,
        &format!("{}[codes]\nmax_verify_attempts = 3\n", admin_tokens()),
    )
    .await;
    app.add_alice().await;
    let code = send_to_alice(&app, "SMS").await;
    let wrong = wrong_code(&code);

    // Act: five attempts that name the authenticator, with wrong codes and with the SMS code itself.
    let mut answers = Vec::new();
    for attempt in [&wrong, &code, &wrong, &code, &wrong] {
        let a = app
            .verify_with(
                "1001",
                attempt,
                &[("TwoFactorAuthSelectedMethod", "Authenticator")],
            )
            .await;
        answers.push(a.xml_status());
    }
    let sms = key_code(&app, "SMS", &code).await;

    // Assert: none passed, and none used up a try of the SMS code (three would have deleted it).
    assert!(
        answers.iter().all(|a| a != "success"),
        "an authenticator check for a customer without one never succeeds: {answers:?}"
    );
    assert_eq!(
        sms, "success",
        "the pending SMS code was not touched by authenticator attempts"
    );
}
both_stores!(
    authenticator_attempts_leave_the_pending_code_alone,
    explicit_authenticator_never_touches_the_sent_code
);

async fn nothing_sent_means_the_authenticator(kind: StoreKind) {
    // Arrange: email and authenticator, and nothing sent or chosen.
    let app = spawn_app_with(kind, "").await;
    app.add_customer("1001", Some(ALICE_EMAIL), None, Some(SECRET))
        .await;
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();

    // Act
    let answer = app.verify("1001", &totp).await;

    // Assert
    assert_eq!(
        answer.xml_status(),
        "success",
        "with no choice and no pending code, the authenticator is checked: {}",
        answer.body
    );
}
both_stores!(
    without_method_or_pending_code_the_authenticator_is_checked,
    nothing_sent_means_the_authenticator
);

async fn one_attempt_judges_one_code(kind: StoreKind) {
    // Arrange: email and authenticator; an email code is sent, so Email is the remembered choice.
    let app = spawn_app_with(kind, "").await;
    app.add_customer("1001", Some(ALICE_EMAIL), None, Some(SECRET))
        .await;
    let sent = app.send("1001", "Email").await;
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let email_code = app.last_code_to(ALICE_EMAIL);
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();

    // Act: the app's right code, without a method, is judged as the email code it was chosen for.
    let as_email = app.verify("1001", &totp).await;
    let email = app.verify("1001", &email_code).await;

    // Assert
    assert_eq!(
        as_email.xml_status(),
        "incorrect code",
        "an attempt is not tried against a second code when the first does not match: {}",
        as_email.body
    );
    assert_eq!(email.xml_status(), "success", "{}", email.body);
}
both_stores!(
    an_attempt_without_method_is_judged_against_one_code_only,
    one_attempt_judges_one_code
);

/// Whether check-verified-contact-methods offers the authenticator.
async fn offers_authenticator(app: &TestApp, customer: &str) -> bool {
    app.methods(customer)
        .await
        .body
        .contains("<method name=\"authenticator\"/>")
}

async fn admin_revokes_the_authenticator(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &admin_tokens()).await;
    app.add_customer("1001", Some(ALICE_EMAIL), None, Some(SECRET))
        .await;
    assert!(offers_authenticator(&app, "1001").await, "enrolled first");
    let path = "/admin/v1/customers/1001/totp";

    // Act
    let revoked = app.admin_call(Method::DELETE, path, None).await;
    let again = app.admin_call(Method::DELETE, path, None).await;
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();
    let chosen = app
        .verify_with(
            "1001",
            &totp,
            &[("TwoFactorAuthSelectedMethod", "Authenticator")],
        )
        .await;
    let unchosen = app.verify("1001", &totp).await;

    // Assert
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(again.status, 404, "nothing left to revoke: {}", again.body);
    assert!(
        again.json()["error"].is_string(),
        "a JSON error: {}",
        again.body
    );
    assert!(
        !offers_authenticator(&app, "1001").await,
        "a revoked authenticator is no longer offered"
    );
    assert_ne!(chosen.xml_status(), "success", "{}", chosen.body);
    assert_ne!(unchosen.xml_status(), "success", "{}", unchosen.body);
    let view = app.admin_call(Method::GET, PATH_1001, None).await;
    assert_eq!(
        view.json(),
        json!({"id": "1001", "email": ALICE_EMAIL, "phone": null, "totp_enrolled": false, "locked": false, "locked_seconds_left": null, "needs_desk": false, "failures": 2, "failures_in_a_row": 2, "pending": null}),
        "only the authenticator went"
    );
}
both_stores!(
    admin_delete_totp_revokes_then_404s,
    admin_revokes_the_authenticator
);

async fn put_null_secret_revokes(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &admin_tokens()).await;
    app.add_customer("1001", Some(ALICE_EMAIL), None, Some(SECRET))
        .await;

    // Act + Assert: a PUT without the key keeps the authenticator.
    put_1001(&app, json!({"email": ALICE_EMAIL})).await;
    let kept = app.admin_call(Method::GET, PATH_1001, None).await;
    assert_eq!(kept.json()["totp_enrolled"], true, "{}", kept.body);
    assert!(offers_authenticator(&app, "1001").await);

    // Act + Assert: an explicit null revokes it.
    put_1001(&app, json!({"email": ALICE_EMAIL, "totp_secret": null})).await;
    let gone = app.admin_call(Method::GET, PATH_1001, None).await;
    assert_eq!(gone.json()["totp_enrolled"], false, "{}", gone.body);
    assert!(!offers_authenticator(&app, "1001").await);
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();
    let answer = app
        .verify_with(
            "1001",
            &totp,
            &[("TwoFactorAuthSelectedMethod", "Authenticator")],
        )
        .await;
    assert_ne!(answer.xml_status(), "success", "{}", answer.body);
}
both_stores!(
    put_with_null_totp_secret_revokes_and_without_it_keeps,
    put_null_secret_revokes
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_totp_revoke_revokes_at_once_then_fails_with_nothing_to_revoke() {
    // Arrange: the CLI refuses memory://, so Redis only; it shares the service's prefix and key.
    let prefix = format!("revoke{:016x}:", rand_u64());
    let app = spawn_app_with(
        StoreKind::Redis,
        &format!("[store]\nkey_prefix = \"{prefix}\"\n"),
    )
    .await;
    app.add_customer("1001", Some(ALICE_EMAIL), None, Some(SECRET))
        .await;
    assert!(offers_authenticator(&app, "1001").await, "enrolled first");

    // Act
    let first = run_cli(&prefix, TEST_KEY, &[], &["totp", "revoke", "1001"]).await;
    let offered_after = offers_authenticator(&app, "1001").await;
    let second = run_cli(&prefix, TEST_KEY, &[], &["totp", "revoke", "1001"]).await;

    // Assert
    assert!(
        first.status.success(),
        "revoke exits 0: {}",
        output_text(&first)
    );
    assert!(
        !offered_after,
        "the running service stops offering the authenticator at once"
    );
    assert!(
        !second.status.success(),
        "nothing left to revoke is an error: {}",
        output_text(&second)
    );
    let totp = authenticator(SECRET, 6).generate(unix_now()).to_string();
    assert_ne!(
        app.verify_with(
            "1001",
            &totp,
            &[("TwoFactorAuthSelectedMethod", "Authenticator")]
        )
        .await
        .xml_status(),
        "success"
    );
    assert!(
        app.methods("1001")
            .await
            .body
            .contains("<method name=\"email\""),
        "the customer's other methods stay"
    );
}

async fn unknown_customers_leave_no_trace(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "").await;
    let ids: Vec<String> = (0..200)
        .map(|i| format!("ghost{i}x{:x}", rand_u64()))
        .collect();

    // Act
    let mut answers = Vec::new();
    for id in &ids {
        answers.push(app.verify(id, "123456").await.xml_status());
    }
    let dump = app.store().dump(&app.prefix).await.expect("dump");

    // Assert: answered like a known customer with no code, and nothing kept to fill the store with.
    assert!(
        answers.iter().all(|a| a == "expired"),
        "unknown customers answer as if no code were pending: {answers:?}"
    );
    let traces: Vec<&(String, String)> = dump
        .iter()
        .filter(|(k, v)| ids.iter().any(|id| k.contains(id) || v.contains(id)))
        .collect();
    assert!(
        traces.is_empty(),
        "{} keys about unknown customers were kept, e.g. {:?}",
        traces.len(),
        traces.first()
    );
}
both_stores!(
    unknown_customers_leave_nothing_in_the_store,
    unknown_customers_leave_no_trace
);
