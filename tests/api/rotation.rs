//! Key rotation during a rolling deploy: two instances share one store, one already on the new key
//! K2 (K1 previous), one still on K1 (K2 previous, so it understands what the new ones write). Sent
//! codes and authenticators work whichever instance a request lands on; `twofactor keys reseal`
//! moves every authenticator secret to the current key, after which K1 can be dropped.

use reqwest::Method;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{
    StoreKind, TEST_KEY, TestApp, admin_tokens, authenticator, output_text, rand_u64, run_cli,
    spawn_app_sharing, spawn_app_with, unix_now,
};

/// The old key, current before the deploy.
const K1: &str = TEST_KEY;
/// The new key.
const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

/// `[security]` with `current` and the `previous` keys, plus the admin API.
fn keys(current: &str, previous: &[&str]) -> String {
    let previous: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "{}[security]\nencryption_key = \"{current}\"\nprevious_encryption_keys = [{}]\n",
        admin_tokens(),
        previous.join(", ")
    )
}

/// Step 1 of the deploy (A: K1 current, K2 known) and step 2 (B: K2 current, K1 known), on one store.
async fn instances_mid_rotation(kind: StoreKind) -> (TestApp, TestApp) {
    let a = spawn_app_with(kind, &keys(K1, &[K2])).await;
    let b = spawn_app_sharing(&a, &keys(K2, &[K1])).await;
    assert_eq!(a.prefix, b.prefix, "one deployment, one store");
    assert_ne!(
        a.state.keyring.current_id(),
        b.state.keyring.current_id(),
        "the two instances seal under different keys"
    );
    (a, b)
}

async fn sent_codes_cross_instances(kind: StoreKind) {
    // Arrange
    let (a, b) = instances_mid_rotation(kind).await;
    a.add_alice().await;

    // Act: a code sent through the old instance is keyed on the new one, and the other way round.
    assert_eq!(a.send("1001", "Email").await.xml_status(), "success");
    let from_a = a.last_code_to("alice@example.com");
    let checked_on_b = b
        .verify_with("1001", &from_a, &[("TwoFactorAuthSelectedMethod", "Email")])
        .await;
    assert_eq!(b.send("1001", "SMS").await.xml_status(), "success");
    let from_b = b.last_code_to("447911123456");
    let checked_on_a = a
        .verify_with("1001", &from_b, &[("TwoFactorAuthSelectedMethod", "SMS")])
        .await;

    // Assert
    assert_eq!(
        checked_on_b.xml_status(),
        "success",
        "a code sent under K1 verifies on the K2 instance: {}",
        checked_on_b.body
    );
    assert_eq!(
        checked_on_a.xml_status(),
        "success",
        "a code sent under K2 verifies on the K1 instance: {}",
        checked_on_a.body
    );
}
both_stores!(
    sent_codes_verify_on_either_instance_during_rotation,
    sent_codes_cross_instances
);

/// Enrols `id` through `app`'s admin API and answers the secret.
async fn enrol(app: &TestApp, id: &str) -> String {
    let put = app
        .admin_call(
            Method::PUT,
            &format!("/admin/v1/customers/{id}"),
            Some(json!({"email": format!("c{id}@example.com")})),
        )
        .await;
    assert!(put.status == 201 || put.status == 200, "{}", put.body);
    let res = app
        .admin_call(
            Method::POST,
            &format!("/admin/v1/customers/{id}/totp"),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["secret"]
        .as_str()
        .expect("the enrolment answers the secret")
        .to_string()
}

/// `id`'s authenticator code now, checked as an authenticator code on `app`.
async fn check_authenticator(app: &TestApp, id: &str, secret: &str) -> String {
    let code = authenticator(secret, 6).generate(unix_now()).to_string();
    app.verify_with(
        id,
        &code,
        &[("TwoFactorAuthSelectedMethod", "Authenticator")],
    )
    .await
    .xml_status()
}

async fn authenticator_crosses_instances(kind: StoreKind) {
    // Arrange
    let (a, b) = instances_mid_rotation(kind).await;

    // Act: enrolled (and sealed under K1) through A, used through B.
    let secret = enrol(&a, "2001").await;
    let on_b = check_authenticator(&b, "2001", &secret).await;

    // Assert
    assert_eq!(on_b, "success", "B opens a secret A sealed under K1");
}
both_stores!(
    authenticator_enrolled_on_old_instance_verifies_on_new_one,
    authenticator_crosses_instances
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reseal_moves_every_secret_to_the_current_key() {
    // Arrange: three authenticators sealed under K1, and a customer without one.
    let prefix = format!("reseal{:016x}:", rand_u64());
    let on_prefix = format!("[store]\nkey_prefix = \"{prefix}\"\n");
    let a = spawn_app_with(StoreKind::Redis, &format!("{on_prefix}{}", keys(K1, &[K2]))).await;
    let ids = ["2001", "2002", "2003"];
    let mut secrets = Vec::new();
    for id in ids {
        secrets.push(enrol(&a, id).await);
    }
    a.add_customer("2004", Some("plain@example.com"), None, None)
        .await;
    // Before the reseal, an instance that knows only K2 cannot open them.
    let d = spawn_app_sharing(&a, &keys(K2, &[])).await;
    let before = check_authenticator(&d, "2001", &secrets[0]).await;

    // Act
    let first = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let second = run_cli(&prefix, K2, &[K1], &["keys", "reseal"]).await;
    let c = spawn_app_sharing(&a, &keys(K2, &[])).await;
    let mut after = Vec::new();
    for (id, secret) in ids.iter().zip(&secrets) {
        after.push(check_authenticator(&c, id, secret).await);
    }

    // Assert
    assert_ne!(
        before, "success",
        "without K1 a K1-sealed secret cannot be opened"
    );
    let (first_out, second_out) = (output_text(&first), output_text(&second));
    assert!(first.status.success(), "{first_out}");
    assert!(
        first_out.contains("resealed 3 authenticator secrets"),
        "every enrolled customer is resealed, no one else: {first_out}"
    );
    assert!(second.status.success(), "{second_out}");
    assert!(
        regex::Regex::new(r"\bresealed 0\b")
            .expect("regex")
            .is_match(&second_out),
        "a second run has nothing left to do: {second_out}"
    );
    assert_eq!(
        after,
        ["success", "success", "success"],
        "after the reseal K1 is no longer needed"
    );
}
