//! `directory.source = "genesys_cloud"`: External Contacts, with wiremock standing in for both the
//! login host (`POST /oauth/token`, client credentials) and the API host. Lookups by contact id and
//! by a search on an account-number custom field; the whole callflow on both stores.

use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_stores;
use crate::directory_http::{EMAIL, PHONE, assert_full_callflow, requests_to};
use crate::helpers::{StoreKind, spawn_app_with};

const CONTACT_ID: &str = "2b3c4d5e-0000-4000-8000-00000000a1ce";

/// An External Contact as the API answers it (trimmed).
fn contact(
    id: &str,
    account: &str,
    work_email: Option<&str>,
    personal_email: Option<&str>,
) -> serde_json::Value {
    json!({
        "id": id,
        "firstName": "Alice",
        "lastName": "Example",
        "workEmail": work_email,
        "personalEmail": personal_email,
        "cellPhone": {
            "display": "+44 7911 123456",
            "e164": PHONE,
            "countryCode": "GB",
            "acceptsSMS": true
        },
        "customFields": {"account_number_text": account},
        "selfUri": format!("/api/v2/externalcontacts/contacts/{id}")
    })
}

/// A Genesys Cloud org at `gc`: one token endpoint, expecting the client's credentials.
async fn genesys(gc: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        // base64("gc-client:gc-secret")
        .and(header(
            "authorization",
            "Basic Z2MtY2xpZW50OmdjLXNlY3JldA==",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "gc-token", "token_type": "bearer", "expires_in": 86399
        })))
        .mount(gc)
        .await;
}

fn settings(gc: &MockServer, extra: &str) -> String {
    format!(
        r#"
[directory]
source = "genesys_cloud"
[directory.genesys_cloud]
region = "mypurecloud.ie"
login_url = "{0}"
api_url = "{0}"
client_id = "gc-client"
client_secret = "gc-secret"
{extra}
"#,
        gc.uri()
    )
}

async fn by_contact_id(kind: StoreKind) {
    // Arrange
    let gc = MockServer::start().await;
    genesys(&gc).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/api/v2/externalcontacts/contacts/{CONTACT_ID}"
        )))
        .and(header("authorization", "Bearer gc-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(
            CONTACT_ID,
            "ACC-1001",
            Some(EMAIL),
            Some("alice.home@example.com"),
        )))
        .mount(&gc)
        .await;
    Mock::given(path("/api/v2/externalcontacts/contacts/no-such-contact"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"code": "not.found"})))
        .mount(&gc)
        .await;
    let app = spawn_app_with(kind, &settings(&gc, "")).await;

    // Act + Assert: workEmail wins over personalEmail; cellPhone's E.164 is the SMS number.
    assert_full_callflow(&app, CONTACT_ID).await;
    assert_eq!(
        app.methods("no-such-contact").await.xml_status(),
        "not found"
    );
    assert_eq!(
        requests_to(&gc, "/oauth/token").await.len(),
        1,
        "one token for the whole callflow"
    );
}
both_stores!(full_callflow_by_external_contact_id, by_contact_id);

async fn by_account_number(kind: StoreKind) {
    // Arrange: the keyword search also matches a longer account number; only the exact one counts.
    let gc = MockServer::start().await;
    genesys(&gc).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/externalcontacts/contacts"))
        .and(query_param("q", "ACC-1001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "entities": [
                contact("other", "ACC-10010", Some("bob@example.com"), None),
                contact(CONTACT_ID, "ACC-1001", None, Some(EMAIL)),
            ],
            "pageSize": 25, "pageNumber": 1, "total": 2
        })))
        .mount(&gc)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/externalcontacts/contacts"))
        .and(query_param("q", "ACC-2002"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "entities": [contact("other", "ACC-20021", Some("bob@example.com"), None)],
            "pageSize": 25, "pageNumber": 1, "total": 1
        })))
        .mount(&gc)
        .await;
    let app = spawn_app_with(
        kind,
        &settings(
            &gc,
            "search_pointer = \"/customFields/account_number_text\"",
        ),
    )
    .await;

    // Act + Assert: personalEmail is used when there is no workEmail.
    assert_full_callflow(&app, "ACC-1001").await;
    assert_eq!(app.methods("ACC-2002").await.xml_status(), "not found");
    assert_eq!(
        app.send("ACC-2002", "Email").await.xml_status(),
        "not found"
    );
}
both_stores!(full_callflow_by_account_number_search, by_account_number);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overridden_mapping_is_used() {
    // Arrange: email from personalEmail only, phone from homePhone.
    let gc = MockServer::start().await;
    genesys(&gc).await;
    let mut c = contact(CONTACT_ID, "ACC-1", Some("work@example.com"), Some(EMAIL));
    c["homePhone"] = json!({"e164": "+14155552671"});
    Mock::given(path(format!(
        "/api/v2/externalcontacts/contacts/{CONTACT_ID}"
    )))
    .respond_with(ResponseTemplate::new(200).set_body_json(c))
    .mount(&gc)
    .await;
    let app = spawn_app_with(
        StoreKind::Memory,
        &settings(
            &gc,
            "email_pointers = [\"/personalEmail\"]\nphone_pointers = [\"/homePhone/e164\"]",
        ),
    )
    .await;

    let methods = app.methods(CONTACT_ID).await;

    assert_eq!(
        methods.body,
        format!(
            "<checkVerifiedContactMethods><status>success</status><methods>\
             <method name=\"email\" value=\"{EMAIL}\"/><method name=\"SMS\" value=\"14155552671\"/>\
             </methods></checkVerifiedContactMethods>"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_down_answers_error() {
    let gc = MockServer::start().await;
    genesys(&gc).await;
    Mock::given(path(format!(
        "/api/v2/externalcontacts/contacts/{CONTACT_ID}"
    )))
    .respond_with(ResponseTemplate::new(503))
    .mount(&gc)
    .await;
    let app = spawn_app_with(StoreKind::Redis, &settings(&gc, "")).await;

    assert_eq!(app.methods(CONTACT_ID).await.xml_status(), "error");
    assert_eq!(app.send(CONTACT_ID, "SMS").await.xml_status(), "error");
    assert_eq!(app.verify(CONTACT_ID, "123456").await.xml_status(), "error");
}
