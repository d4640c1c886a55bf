//! Guessing and pumping: customer lockout, per-number SMS cap, country allow-list.

use crate::both_stores;
use crate::helpers::{StoreKind, spawn_app_with};

const LOCKOUT: &str = r#"
[codes]
max_verify_attempts = 10
[lockout]
max_failures = 4
window_seconds = 60
duration_seconds = 60
"#;

async fn lockout_spans_codes_and_blocks_the_right_code(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, LOCKOUT).await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;

    // Act: two wrong tries on one code, a resend (which must not reset the count), two more.
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let first = app.last_code_to("alice@example.com");
    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        app.verify("1001", wrong).await.xml_status(),
        "incorrect code"
    );
    assert_eq!(
        app.verify("1001", wrong).await.xml_status(),
        "incorrect code"
    );
    assert_eq!(app.send("1001", "Email").await.xml_status(), "success");
    let second = app.last_code_to("alice@example.com");
    let wrong = if second == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        app.verify("1001", wrong).await.xml_status(),
        "incorrect code"
    );
    let fourth = app.verify("1001", wrong).await;

    // Assert
    assert_eq!(
        fourth.xml_status(),
        "incorrect code",
        "the failure that locks still reports a wrong code"
    );
    assert_eq!(
        app.verify("1001", &second).await.xml_status(),
        "locked",
        "locked even for the right code"
    );
    assert_eq!(
        app.send("1001", "Email").await.xml_status(),
        "send limited",
        "no sends while locked"
    );
    assert_eq!(
        app.outbox_messages().len(),
        2,
        "nothing was sent while locked"
    );
}
both_stores!(
    lockout_across_codes,
    lockout_spans_codes_and_blocks_the_right_code
);

async fn lockout_expires(kind: StoreKind) {
    let app = spawn_app_with(kind, "[lockout]\nmax_failures = 2\nduration_seconds = 1").await;
    app.add_customer("1001", Some("alice@example.com"), None, None)
        .await;
    app.send("1001", "Email").await;
    let code = app.last_code_to("alice@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.verify("1001", wrong).await;
    app.verify("1001", wrong).await;
    assert_eq!(app.verify("1001", &code).await.xml_status(), "locked");

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    assert_eq!(
        app.send("1001", "Email").await.xml_status(),
        "success",
        "the lock has expired"
    );
    let code = app.last_code_to("alice@example.com");
    assert_eq!(app.verify("1001", &code).await.xml_status(), "success");
}
both_stores!(lockout_expiry, lockout_expires);

async fn per_number_cap_holds_across_customers(kind: StoreKind) {
    // Arrange: three customers share one number; the cap is two SMS an hour.
    let app = spawn_app_with(kind, "[sms]\nmax_per_number_per_hour = 2").await;
    for id in ["a1", "a2", "a3"] {
        app.add_customer(id, None, Some("+447911123456"), None)
            .await;
    }

    // Act
    let statuses: Vec<String> = [
        app.send("a1", "SMS").await,
        app.send("a2", "SMS").await,
        app.send("a3", "SMS").await,
    ]
    .iter()
    .map(|a| a.xml_status())
    .collect();

    // Assert
    assert_eq!(statuses, ["success", "success", "send limited"]);
    assert_eq!(app.outbox_messages().len(), 2);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("twofactor_send_refused_total")
                && l.contains("number hourly cap")),
        "refusals are counted: {metrics}"
    );
}
both_stores!(per_number_cap, per_number_cap_holds_across_customers);

async fn country_allow_list_refuses_other_countries(kind: StoreKind) {
    let app = spawn_app_with(kind, "[sms]\nallowed_country_codes = [\"44\", \"+353\"]").await;
    app.add_customer("uk", None, Some("+447911123456"), None)
        .await;
    app.add_customer("us", None, Some("+14155552671"), None)
        .await;

    assert_eq!(app.send("us", "SMS").await.xml_status(), "send limited");
    assert_eq!(app.send("uk", "SMS").await.xml_status(), "success");
    let sent: Vec<_> = app
        .outbox_messages()
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sent,
        ["447911123456"],
        "only the allowed country got a message"
    );
    // A refused SMS gives back the customer's send allowance: the same customer can still try email.
    assert_eq!(app.send("us", "SMS").await.xml_status(), "send limited");
}
both_stores!(
    country_allow_list,
    country_allow_list_refuses_other_countries
);
