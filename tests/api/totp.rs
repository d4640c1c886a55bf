//! Authenticator apps end to end: skew, replay (also across instances sharing Redis), the choice
//! recorded by sending for `Authenticator`, lockout, enrolment's QR code, secrets at rest, rotation.
//!
//! Most tests run on a settable clock (`helpers::TestClock`, through the `Clock` seam), so step
//! boundaries are chosen, not met by chance; the QR test uses the real clock to cover that path too.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::admin::{ADMIN, enrol, put_customer};
use crate::both_stores;
use crate::helpers::{StoreKind, TEST_KEY, TestApp, TestClock, rand_u64, spawn_app_with_clock};

/// A fresh 160-bit secret as base32, as a seed file would hold it.
pub fn new_secret() -> String {
    twofactor::totp::to_base32(&twofactor::totp::generate_secret())
}

/// The code `secret` shows at `t` under the app's TOTP settings.
pub fn code_at(app: &TestApp, secret_b32: &str, t: u64) -> String {
    let secret = twofactor::totp::from_base32(secret_b32).expect("base32");
    twofactor::totp::build(&app.state.snapshot().settings.totp, &secret, "test")
        .expect("totp")
        .generate(t)
        .to_string()
}

async fn skew_window(kind: StoreKind) {
    // Arrange: an authenticator-only customer, so code-authentication needs no method.
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, "", clock.clone()).await;
    let secret = new_secret();
    app.add_customer("3001", None, None, Some(&secret)).await;
    let now = clock.now();

    // Act + Assert: too old first (refusals move nothing), then in increasing step order, since a
    // step at or before the last accepted one is refused.
    for (label, t, want) in [
        ("three steps ago", now - 90, "incorrect code"),
        ("two steps ago", now - 60, "incorrect code"),
        ("two steps ahead", now + 60, "incorrect code"),
        ("previous step", now - 30, "success"),
        ("current step", now, "success"),
        ("next step", now + 30, "success"),
    ] {
        let code = code_at(&app, &secret, t);
        assert_eq!(
            app.verify("3001", &code).await.xml_status(),
            want,
            "{label}"
        );
    }
    // Once the next step is used, the current one counts as a replay.
    let current = code_at(&app, &secret, now);
    assert_eq!(
        app.verify("3001", &current).await.xml_status(),
        "incorrect code"
    );
}
both_stores!(totp_skew_accepts_previous_current_next_only, skew_window);

async fn same_code_twice(kind: StoreKind) {
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, "", clock.clone()).await;
    let secret = new_secret();
    app.add_customer("3002", None, None, Some(&secret)).await;
    let code = code_at(&app, &secret, clock.now());

    assert_eq!(app.verify("3002", &code).await.xml_status(), "success");
    assert_eq!(
        app.verify("3002", &code).await.xml_status(),
        "incorrect code",
        "the same code twice"
    );
    // Still refused later in the same step and in the next one (within the skew window).
    clock.advance(10);
    assert_eq!(
        app.verify("3002", &code).await.xml_status(),
        "incorrect code"
    );
    clock.advance(30);
    assert_eq!(
        app.verify("3002", &code).await.xml_status(),
        "incorrect code"
    );
    // The next code the app shows works: a second login waits for it.
    let next = code_at(&app, &secret, clock.now());
    assert_ne!(next, code);
    assert_eq!(app.verify("3002", &next).await.xml_status(), "success");
}
both_stores!(totp_same_code_twice_is_refused, same_code_twice);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_replay_on_second_instance_sharing_redis_is_refused() {
    // Arrange: two instances over one Redis prefix, as a load-balanced deployment runs.
    let shared = format!("[store]\nkey_prefix = \"shared{:016x}:\"\n", rand_u64());
    let clock = TestClock::mid_step();
    let first = spawn_app_with_clock(StoreKind::Redis, &shared, clock.clone()).await;
    let second = spawn_app_with_clock(StoreKind::Redis, &shared, clock.clone()).await;
    assert_eq!(first.prefix, second.prefix);
    let secret = new_secret();
    first.add_customer("3003", None, None, Some(&secret)).await;
    let now = clock.now();
    let code = code_at(&first, &secret, now);

    // Act + Assert
    assert_eq!(first.verify("3003", &code).await.xml_status(), "success");
    assert_eq!(
        second.verify("3003", &code).await.xml_status(),
        "incorrect code",
        "the second instance must see the step the first accepted"
    );
    let next = code_at(&first, &secret, now + 30);
    assert_eq!(second.verify("3003", &next).await.xml_status(), "success");
    assert_eq!(
        first.verify("3003", &next).await.xml_status(),
        "incorrect code"
    );
}

async fn authenticator_choice(kind: StoreKind) {
    // Arrange: a customer with two methods, so code-authentication alone cannot tell which.
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, "", clock.clone()).await;
    let secret = new_secret();
    app.add_customer("3004", Some("carol@example.com"), None, Some(&secret))
        .await;
    let code = code_at(&app, &secret, clock.now());

    // With no choice and no pending sent code, an enrolled authenticator is what is checked.
    assert_eq!(app.verify("3004", &code).await.xml_status(), "success");
    clock.advance(30);
    let code = code_at(&app, &secret, clock.now());
    // An email send makes the pending email code the one checked.
    assert_eq!(app.send("3004", "Email").await.xml_status(), "success");
    assert_eq!(
        app.verify("3004", &code).await.xml_status(),
        "incorrect code"
    );
    let sent_before = app.outbox_messages().len();

    // Act
    let sent = app.send("3004", "authenticator").await;

    // Assert: success, nothing sent, and the choice makes the next check a TOTP check.
    assert_eq!(sent.xml_status(), "success");
    assert_eq!(
        app.outbox_messages().len(),
        sent_before,
        "nothing may be sent"
    );
    assert_eq!(app.verify("3004", &code).await.xml_status(), "success");
}
both_stores!(
    totp_send_records_choice_then_code_is_checked,
    authenticator_choice
);

async fn wrong_codes_lock(kind: StoreKind) {
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, "[lockout]\nmax_failures = 3\n", clock.clone()).await;
    let secret = new_secret();
    app.add_customer("3005", None, None, Some(&secret)).await;
    let good = code_at(&app, &secret, clock.now());
    let wrong = format!(
        "{:06}",
        (good.parse::<u32>().expect("digits") + 1) % 1_000_000
    );

    assert_eq!(
        app.verify("3005", &wrong).await.xml_status(),
        "incorrect code"
    );
    assert_eq!(
        app.verify("3005", "12345a").await.xml_status(),
        "incorrect code"
    );
    assert_eq!(
        app.verify("3005", &wrong).await.xml_status(),
        "incorrect code"
    );
    assert_eq!(
        app.verify("3005", &good).await.xml_status(),
        "locked",
        "three wrong authenticator codes lock like three wrong sent codes"
    );
}
both_stores!(totp_wrong_codes_count_towards_lockout, wrong_codes_lock);

/// Reads the QR code in a PNG.
fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
        img.width() as usize,
        img.height() as usize,
        |x, y| img.get_pixel(x as u32, y as u32)[0],
    );
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    grids[0].decode().expect("QR decodes").1
}

async fn qr_round_trip(kind: StoreKind) {
    // Arrange: the real clock here.
    let overrides = format!("{ADMIN}\n[totp]\nissuer = \"Acme Bank\"\n");
    let app = crate::helpers::spawn_app_with(kind, &overrides).await;
    let put = put_customer(
        &app,
        "3006",
        serde_json::json!({"email": "dan@example.com"}),
    )
    .await;
    assert_eq!(put.status, 201, "{}", put.body);

    // Act
    let res = enrol(&app, "3006").await;

    // Assert
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), "no-store");
    let body = res.json();
    let uri = body["otpauth_uri"].as_str().expect("uri").to_string();
    let secret = body["secret"].as_str().expect("secret").to_string();
    let png = STANDARD
        .decode(body["qr_png_base64"].as_str().expect("qr"))
        .expect("base64");
    assert_eq!(decode_qr(&png), uri, "the QR code holds the URI");
    assert!(uri.starts_with("otpauth://totp/Acme%20Bank:3006?"), "{uri}");
    assert!(uri.contains("issuer=Acme%20Bank"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(
        twofactor::totp::from_base32(&secret).expect("base32").len() * 8 >= 160,
        "at least 160 bits"
    );
    // What an app does with the scanned URI: its code now is accepted. A step boundary between
    // generating and checking is harmless: with skew 1 the previous step still counts.
    let scanned = totp_rs::Totp::from_url(&uri).expect("app reads the URI");
    let code = scanned.generate_current().to_string();
    assert_eq!(
        app.verify("3006", "000000").await.xml_status(),
        "incorrect code",
        "before choosing, with no code pending, the enrolled authenticator is checked"
    );
    assert_eq!(
        app.send("3006", "Authenticator").await.xml_status(),
        "success"
    );
    assert_eq!(app.verify("3006", &code).await.xml_status(), "success");
    assert_eq!(
        app.methods("3006")
            .await
            .body
            .matches("authenticator")
            .count(),
        1
    );
}
both_stores!(
    totp_qr_png_decodes_to_uri_and_its_code_is_accepted,
    qr_round_trip
);

async fn re_enrolment(kind: StoreKind) {
    let clock = TestClock::mid_step();
    let app = spawn_app_with_clock(kind, ADMIN, clock.clone()).await;
    put_customer(&app, "3007", serde_json::json!({})).await;
    let first = enrol(&app, "3007").await.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let first_code = code_at(&app, &first, clock.now());
    assert_eq!(
        app.verify("3007", &first_code).await.xml_status(),
        "success"
    );

    // A new phone: enrol again within the same 30 seconds.
    let second = enrol(&app, "3007").await.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(first, second);
    let second_code = code_at(&app, &second, clock.now());
    assert_ne!(first_code, second_code);

    // The old app's codes stop working; the new app's current code works at once, because the
    // replay step belonged to the old secret and was reset.
    let old_next = code_at(&app, &first, clock.now() + 30);
    assert_eq!(
        app.verify("3007", &old_next).await.xml_status(),
        "incorrect code"
    );
    assert_eq!(
        app.verify("3007", &second_code).await.xml_status(),
        "success"
    );
    assert_eq!(
        app.verify("3007", &second_code).await.xml_status(),
        "incorrect code"
    );
}
both_stores!(
    totp_re_enrolment_replaces_secret_and_resets_replay_step,
    re_enrolment
);

async fn no_clear_secret_at_rest(kind: StoreKind) {
    // Arrange
    let app = crate::helpers::spawn_app_with(kind, ADMIN).await;
    put_customer(
        &app,
        "3008",
        serde_json::json!({"email": "erin@example.com"}),
    )
    .await;

    // Act
    let res = enrol(&app, "3008").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let secret_b32 = res.json()["secret"].as_str().expect("secret").to_string();
    let raw = twofactor::totp::from_base32(&secret_b32).expect("base32");

    // Assert: no encoding of the secret appears in any key or value.
    let dump = app.store().dump(&app.prefix).await.expect("dump");
    let all: String = dump.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect();
    assert!(
        all.contains("customer:{3008}"),
        "the dump is not empty: {all}"
    );
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let forms = [
        secret_b32.clone(),
        secret_b32.to_lowercase(),
        hex.clone(),
        hex.to_uppercase(),
        STANDARD.encode(&raw),
        STANDARD_NO_PAD.encode(&raw),
        URL_SAFE.encode(&raw),
        URL_SAFE_NO_PAD.encode(&raw),
    ];
    for form in &forms {
        assert!(
            !all.contains(form.as_str()),
            "secret found at rest as {form:?}"
        );
    }
    // It is there, sealed under the current key.
    let record = dump
        .iter()
        .find(|(k, _)| k.ends_with("customer:{3008}"))
        .map(|(_, v)| v.clone())
        .expect("record");
    let record: serde_json::Value = serde_json::from_str(&record).expect("JSON");
    let sealed = record["totp_sealed"].as_str().expect("sealed secret");
    assert!(
        sealed.starts_with(&format!("v1.{}.", app.state.keyring.current_id())),
        "{sealed}"
    );
    // And the admin API never gives it back.
    let got = crate::admin::admin(
        &app,
        reqwest::Method::GET,
        "/admin/v1/customers/3008",
        Some(crate::admin::ADMIN_TOKEN),
        None,
    )
    .await;
    assert!(!got.body.contains(&secret_b32), "{}", got.body);
}
both_stores!(
    totp_store_dump_after_enrolment_holds_no_clear_secret,
    no_clear_secret_at_rest
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_key_rotation_redis_old_secrets_open_new_ones_use_new_key() {
    // Arrange: enrol under key A.
    const KEY_B: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";
    let shared = format!("[store]\nkey_prefix = \"rot{:016x}:\"\n", rand_u64());
    let clock = TestClock::mid_step();
    let old =
        spawn_app_with_clock(StoreKind::Redis, &format!("{ADMIN}{shared}"), clock.clone()).await;
    put_customer(&old, "3009", serde_json::json!({})).await;
    let secret = enrol(&old, "3009").await.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    // Act: "restart" with key B current and A kept as previous, over the same Redis prefix.
    let rotated = format!(
        "{ADMIN}{shared}[security]\nencryption_key = \"{KEY_B}\"\nprevious_encryption_keys = [\"{TEST_KEY}\"]\n"
    );
    let new = spawn_app_with_clock(StoreKind::Redis, &rotated, clock.clone()).await;
    // Without A, the old secret cannot be opened at all: rotation is what the previous list is for.
    let b_only = format!("{ADMIN}{shared}[security]\nencryption_key = \"{KEY_B}\"\n");
    let forgetful = spawn_app_with_clock(StoreKind::Redis, &b_only, clock.clone()).await;

    // Assert
    assert_ne!(
        old.state.keyring.current_id(),
        new.state.keyring.current_id()
    );
    let code = code_at(&new, &secret, clock.now());
    assert_eq!(forgetful.verify("3009", &code).await.xml_status(), "error");
    assert_eq!(new.verify("3009", &code).await.xml_status(), "success");

    put_customer(&new, "3010", serde_json::json!({})).await;
    assert_eq!(enrol(&new, "3010").await.status, 200);
    let sealed_of = |dump: &[(String, String)], id: &str| -> String {
        let v = &dump
            .iter()
            .find(|(k, _)| k.ends_with(&format!("customer:{{{id}}}")))
            .expect("record")
            .1;
        let v: serde_json::Value = serde_json::from_str(v).expect("JSON");
        v["totp_sealed"].as_str().expect("sealed").to_string()
    };
    let dump = new.store().dump(&new.prefix).await.expect("dump");
    let a = format!("v1.{}.", old.state.keyring.current_id());
    let b = format!("v1.{}.", new.state.keyring.current_id());
    assert!(
        sealed_of(&dump, "3009").starts_with(&a),
        "old secret stays under A"
    );
    assert!(
        sealed_of(&dump, "3010").starts_with(&b),
        "new secret is sealed under B"
    );
}
