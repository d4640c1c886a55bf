//! The three endpoints end to end: methods, send by email and SMS, verify from the outbox.

use crate::both_stores;
use crate::helpers::{StoreKind, spawn_app, spawn_app_with};

async fn email_code_round_trip(kind: StoreKind) {
    // Arrange
    let app = spawn_app(kind).await;
    app.add_alice().await;

    // Act
    let methods = app.methods("1001").await;
    let sent = app.send("1001", "Email").await;
    let code = app.last_code_to("alice@example.com");
    let verified = app.verify("1001", &code).await;
    let again = app.verify("1001", &code).await;

    // Assert
    assert_eq!(methods.status, 200);
    assert_eq!(methods.content_type, "application/xml; charset=utf-8");
    assert_eq!(
        methods.body,
        "<checkVerifiedContactMethods><status>success</status><methods>\
         <method name=\"email\" value=\"alice@example.com\"/><method name=\"SMS\" value=\"447911123456\"/>\
         </methods></checkVerifiedContactMethods>"
    );
    assert_eq!(
        sent.body,
        "<sendAuthenticationCode><status>success</status></sendAuthenticationCode>"
    );
    assert_eq!(code.len(), 6);
    assert_eq!(
        verified.body,
        "<codeAuthentication><status>success</status></codeAuthentication>"
    );
    assert_eq!(again.xml_status(), "expired", "a code is single use");
}
both_stores!(email_code_round_trip_works, email_code_round_trip);

async fn sms_code_round_trip(kind: StoreKind) {
    let app = spawn_app_with(kind, "[codes]\ndigits = 8").await;
    app.add_customer("1002", None, Some("+1 415 555 2671"), None)
        .await;

    assert_eq!(app.send("1002", "sms").await.xml_status(), "success");
    let code = app.last_code_to("14155552671");

    assert_eq!(code.len(), 8);
    assert_eq!(
        app.verify("1002", "00000000").await.xml_status(),
        "incorrect code"
    );
    assert_eq!(app.verify("1002", &code).await.xml_status(), "success");
}
both_stores!(sms_code_round_trip_works, sms_code_round_trip);
