//! Live settings: `GET/PATCH /admin/v1/settings` and its history, seen by every instance sharing the
//! store within 2 seconds, all or nothing, secrets never shown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::{
    LONG_ADMIN_TOKEN, StoreKind, TestApp, admin_tokens, spawn_app_sharing, spawn_app_with,
};

/// An admin answer: status, ETag and JSON body.
pub struct Reply {
    pub status: u16,
    pub etag: String,
    pub body: Value,
}

async fn settings_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    if_match: Option<&str>,
    patch: Option<Value>,
) -> Reply {
    settings_call_as(app, method, path, LONG_ADMIN_TOKEN, if_match, &[], patch).await
}

/// A settings request with `token`, `If-Match` and `headers`; any 5xx fails the test.
pub async fn settings_call_as(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    headers: &[(&str, &str)],
    patch: Option<Value>,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(p) = patch {
        req = req
            .header("Content-Type", "application/merge-patch+json")
            .body(p.to_string());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = res.text().await.expect("body");
    assert!(status < 500, "server answered {status}: {text}");
    Reply {
        status,
        etag,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn get(app: &TestApp) -> Reply {
    settings_call(app, reqwest::Method::GET, "/admin/v1/settings", None, None).await
}

async fn patch(app: &TestApp, etag: &str, p: Value) -> Reply {
    settings_call(
        app,
        reqwest::Method::PATCH,
        "/admin/v1/settings",
        Some(etag),
        Some(p),
    )
    .await
}

/// Asserts the patch was refused (400) with `key` named beside the form's field.
#[track_caller]
fn assert_refused(reply: &Reply, key: &str) {
    assert_eq!(reply.status, 400, "{key}: {}", reply.body);
    assert_eq!(reply.body["key"], key, "{}", reply.body);
}

/// Polls `check` on a fresh answer every 100 ms for up to 2 s: the promise every instance keeps.
async fn within_two_seconds<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 2 seconds");
}

async fn a_patch_through_one_instance_changes_the_other(kind: StoreKind) {
    // Arrange: two instances of one deployment.
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let b = spawn_app_sharing(&a, &admin_tokens()).await;
    a.add_alice().await;
    let before = get(&a).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["codes"]["digits"], 6);

    // Act
    let changed = patch(
        &a,
        &before.etag,
        json!({"codes": {"digits": 8}, "statuses": {"success": "verified"}}),
    )
    .await;

    // Assert: the answer, then the other instance within 2 s.
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["codes"]["digits"], 8);
    assert_ne!(changed.etag, before.etag);
    // What B uses, read without asking it to re-read (a GET would).
    within_two_seconds("instance B taking the change", || async {
        b.state.snapshot().settings.codes.digits == 8
    })
    .await;
    assert_eq!(b.send("1001", "Email").await.xml_status(), "verified");
    let code = b.last_code_to("alice@example.com");
    assert_eq!(code.len(), 8);
    assert_eq!(b.verify("1001", &code).await.xml_status(), "verified");
    assert_eq!(get(&b).await.etag, changed.etag, "both serve one version");
}
both_stores!(
    a_patch_through_one_instance_changes_the_other_within_2s,
    a_patch_through_one_instance_changes_the_other
);

async fn stale_or_invalid_patches_change_nothing(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let b = spawn_app_sharing(&a, &admin_tokens()).await;
    let first = get(&a).await;
    let moved = patch(&a, &first.etag, json!({"codes": {"ttl_seconds": 240}})).await;
    assert_eq!(moved.status, 200, "{}", moved.body);

    // Act
    let stale = patch(&b, &first.etag, json!({"codes": {"digits": 8}})).await;
    let invalid = patch(
        &a,
        &moved.etag,
        json!({"codes": {"digits": 12, "ttl_seconds": 60}}),
    )
    .await;
    let wrong_type = patch(
        &a,
        &moved.etag,
        json!({"lockout": {"max_failures": "many"}}),
    )
    .await;
    let not_live = patch(&a, &moved.etag, json!({"server": {"bind": "0.0.0.0:80"}})).await;
    let file_path = patch(
        &a,
        &moved.etag,
        json!({"email": {"smtp": {"password_file": "/etc/shadow"}}}),
    )
    .await;
    let bad_status = patch(
        &a,
        &moved.etag,
        json!({"sms": {"success_statuses": ["2xx", "9xx"]}}),
    )
    .await;
    let no_if_match = settings_call(
        &a,
        reqwest::Method::PATCH,
        "/admin/v1/settings",
        None,
        Some(json!({"codes": {"digits": 8}})),
    )
    .await;

    // Assert
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_refused(&invalid, "codes.digits");
    assert!(
        invalid.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("must be 4 to 10")),
        "the start-up message: {}",
        invalid.body
    );
    assert_refused(&wrong_type, "lockout.max_failures");
    assert_refused(&not_live, "server");
    assert_refused(&file_path, "email.smtp.password_file");
    assert_refused(&bad_status, "sms.success_statuses");
    assert!(
        bad_status.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"9xx\" is neither a status")),
        "{}",
        bad_status.body
    );
    assert_eq!(no_if_match.status, 428);
    for app in [&a, &b] {
        let now = get(app).await;
        assert_eq!(now.etag, moved.etag, "nothing applied");
        assert_eq!(now.body["codes"]["digits"], 6, "nothing half-applied");
        assert_eq!(now.body["codes"]["ttl_seconds"], 240);
    }
}
both_stores!(
    stale_or_invalid_patches_change_nothing_on_any_instance,
    stale_or_invalid_patches_change_nothing
);

async fn the_sms_gateway_changes_live(kind: StoreKind) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&gateway)
        .await;
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let b = spawn_app_sharing(&a, &admin_tokens()).await;
    a.add_alice().await;
    let url = format!(
        "http://gw-user:gw-pass-31337@127.0.0.1:{}/send?api_key=k-99887",
        gateway.address().port()
    );

    // Act
    let first = get(&a).await;
    let changed = patch(
        &a,
        &first.etag,
        json!({"sms": {"url": url, "request_headers": ["X-Api-Token: tok-55443", "Content-Type: text/plain"], "request_body": "{message}"}}),
    )
    .await;
    // The form sends back what GET showed: the secrets stay as they are.
    let shown = get(&b).await;
    let resent = patch(
        &b,
        &shown.etag,
        json!({"sms": {"url": shown.body["sms"]["url"], "request_headers": shown.body["sms"]["request_headers"], "from": "Bank"}}),
    )
    .await;

    // Assert
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(resent.status, 200, "{}", resent.body);
    let text = format!("{} {} {}", changed.body, shown.body, resent.body);
    for secret in ["gw-pass-31337", "k-99887", "tok-55443"] {
        assert!(
            !text.contains(secret),
            "a GET or PATCH answer shows {secret}: {text}"
        );
    }
    assert_eq!(shown.body["secrets"]["sms.url"], "set");
    assert_eq!(
        shown.body["secrets"]["sms.request_headers.X-Api-Token"],
        "set"
    );
    within_two_seconds("instance A sending SMS through the new gateway", || async {
        a.send("1001", "SMS").await.xml_status() == "success"
            && gateway
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .any(|r| {
                    r.headers
                        .get("x-api-token")
                        .is_some_and(|v| v == "tok-55443")
                        && r.url.query().is_some_and(|q| q.contains("api_key=k-99887"))
                })
    })
    .await;
    let stored = format!("{:?}", a.store().dump(&a.prefix).await.unwrap());
    for secret in ["gw-pass-31337", "k-99887", "tok-55443"] {
        assert!(
            !stored.contains(secret),
            "the store holds {secret} in clear"
        );
    }
}
both_stores!(
    the_sms_gateway_changes_live_with_secrets_write_only,
    the_sms_gateway_changes_live
);

async fn every_change_is_in_the_history(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let first = get(&a).await;
    let one = patch(&a, &first.etag, json!({"codes": {"digits": 7}})).await;
    let two = patch(
        &a,
        &one.etag,
        json!({"email": {"smtp": {"password": "hunter2-smtp"}}, "codes": {"digits": null}}),
    )
    .await;
    assert_eq!(two.status, 200, "{}", two.body);

    let history = settings_call(
        &a,
        reqwest::Method::GET,
        "/admin/v1/settings/history",
        None,
        None,
    )
    .await;

    assert_eq!(history.status, 200);
    let changes = history.body["changes"].as_array().expect("a list");
    assert_eq!(changes.len(), 2, "{}", history.body);
    let newest = &changes[0];
    assert!(newest["by"].as_str().is_some_and(|b| !b.is_empty()));
    assert!(newest["at"].as_str().is_some_and(|t| t.contains('T')));
    let keys: Vec<&str> = newest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"codes.digits"), "{newest}");
    let password = newest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "email.smtp.password")
        .expect("the password change is named");
    assert_eq!(password["old"], "unset");
    assert_eq!(password["new"], "set");
    assert_eq!(
        two.body["codes"]["digits"], 6,
        "null takes the key back to the file's value"
    );
    let everything = format!("{} {}", history.body, get(&a).await.body);
    assert!(!everything.contains("hunter2-smtp"), "{everything}");
    assert_eq!(changes[1]["changes"][0]["new"], "7");
}
both_stores!(
    every_change_is_in_the_history_with_secrets_as_set,
    every_change_is_in_the_history
);

async fn an_overlay_that_cannot_apply_keeps_the_last_good_settings(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let b = spawn_app_sharing(&a, &format!("{}[codes]\nmax_sends = 7\n", admin_tokens())).await;
    let first = get(&a).await;
    assert_eq!(
        patch(&a, &first.etag, json!({"codes": {"digits": 8}}))
            .await
            .status,
        200
    );
    within_two_seconds("B at 8 digits", || async {
        b.state.snapshot().settings.codes.digits == 8
    })
    .await;

    // Act: an overlay written by hand, bypassing validation.
    let key = format!("{}settings:overlay", a.prefix);
    a.store()
        .set(
            &key,
            &json!({"version": 99, "doc": {"codes": {"digits": 99}}}).to_string(),
            None,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Assert: B keeps 8 digits, stays ready, and says so.
    assert_eq!(b.state.snapshot().settings.codes.digits, 8);
    let ready = b
        .client
        .get(format!("{}/readyz", b.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The admin mends it through the API: the ETag is the stored version, and a patch over it
    // is validated as a whole, naming the bad key until it is fixed.
    let shown = get(&b).await;
    assert_eq!(shown.etag, "\"99\"");
    assert_eq!(shown.body["codes"]["digits"], 8, "the settings in effect");
    let still_bad = patch(&b, &shown.etag, json!({"codes": {"ttl_seconds": 120}})).await;
    assert_refused(&still_bad, "codes.digits");
    let mended = patch(&b, &shown.etag, json!({"codes": {"digits": 7}})).await;
    assert_eq!(mended.status, 200, "{}", mended.body);
    within_two_seconds("A at 7 digits", || async {
        a.state.snapshot().settings.codes.digits == 7
    })
    .await;
}
both_stores!(
    an_overlay_that_cannot_apply_keeps_the_last_good_settings_and_readiness,
    an_overlay_that_cannot_apply_keeps_the_last_good_settings
);

async fn stored_credentials_never_follow_a_new_host(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let first = get(&a).await;
    let set = patch(
        &a,
        &first.etag,
        json!({
            "email": {"smtp": {"host": "mail.bank.example", "password": "smtp-pw-1"}},
            "sms": {
                "url": "https://gw.bank.example/send",
                "request_headers": ["Authorization: Bearer gw-token-1"],
                "request_body": "user=bank&password=gw-pw-1&to={recipient}&text={message}"
            }
        }),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let shown = get(&a).await;
    assert!(
        shown.body["sms"].get("request_body").is_none(),
        "the body is write-only"
    );
    assert_eq!(shown.body["secrets"]["sms.request_body"], "set");

    // Act: new hosts, with the stored credentials left in place or sent back as placeholders.
    let sms_host = patch(
        &a,
        &shown.etag,
        json!({"sms": {"url": "https://attacker.example/send",
                       "request_headers": shown.body["sms"]["request_headers"]}}),
    )
    .await;
    let smtp_host = patch(
        &a,
        &shown.etag,
        json!({"email": {"smtp": {"host": "attacker.example"}}}),
    )
    .await;
    let restated = patch(
        &a,
        &shown.etag,
        json!({"sms": {"url": "https://gw2.bank.example/send",
                       "request_headers": ["Authorization: Bearer gw-token-2"],
                       "request_body": "user=bank&password=gw-pw-2&to={recipient}&text={message}"}}),
    )
    .await;

    // Assert
    assert_refused(&sms_host, "sms.request_headers");
    assert_refused(&smtp_host, "email.smtp.password");
    assert_eq!(
        restated.status, 200,
        "restated in full, a new host is fine: {}",
        restated.body
    );
}
both_stores!(
    stored_credentials_never_follow_a_new_host_agree,
    stored_credentials_never_follow_a_new_host
);

/// Credentials set over `https` and `tls`, and the same settings with the channel made weaker.
async fn weaker_channels_need_credentials_restated(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let first = get(&a).await;
    let set = patch(
        &a,
        &first.etag,
        json!({
            "email": {"smtp": {"host": "mail.bank.example", "port": 465, "security": "tls", "password": "smtp-pw-1"}},
            "sms": {
                "url": "https://gw.bank.example/send",
                "request_headers": ["Authorization: Bearer gw-token-1"],
                "request_body": "user=bank&password=gw-pw-1&to={recipient}&text={message}"
            }
        }),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let shown = get(&a).await;

    // Act: the same hosts, over plain http and weaker SMTP security, credentials left in place.
    let http = patch(
        &a,
        &shown.etag,
        json!({"sms": {"url": "http://gw.bank.example/send",
                       "request_headers": shown.body["sms"]["request_headers"]}}),
    )
    .await;
    let starttls = patch(
        &a,
        &shown.etag,
        json!({"email": {"smtp": {"port": 587, "security": "starttls"}}}),
    )
    .await;
    let plain = patch(
        &a,
        &shown.etag,
        json!({"email": {"smtp": {"port": 25, "security": "none"}}}),
    )
    .await;
    let http_restated = patch(
        &a,
        &shown.etag,
        json!({"sms": {"url": "http://gw.bank.example/send",
                       "request_headers": ["Authorization: Bearer gw-token-2"],
                       "request_body": "user=bank&password=gw-pw-2&to={recipient}&text={message}"}}),
    )
    .await;
    let now = get(&a).await;
    let plain_restated = patch(
        &a,
        &now.etag,
        json!({"email": {"smtp": {"port": 25, "security": "none", "password": "smtp-pw-2"}}}),
    )
    .await;

    // Assert
    assert_refused(&http, "sms.request_headers");
    // tls to starttls, and tls to none
    for weaker in [&starttls, &plain] {
        assert_refused(weaker, "email.smtp.password");
    }
    assert_eq!(
        http_restated.status, 200,
        "restated: {}",
        http_restated.body
    );
    assert_eq!(
        plain_restated.status, 200,
        "restated: {}",
        plain_restated.body
    );
}
both_stores!(
    weaker_channels_need_credentials_restated_,
    weaker_channels_need_credentials_restated
);

/// Link-local hosts (a cloud metadata service) are refused live and at start, in any environment.
async fn link_local_hosts_are_refused(kind: StoreKind) {
    let a = spawn_app_with(kind, &admin_tokens()).await;
    let first = get(&a).await;

    let metadata = patch(
        &a,
        &first.etag,
        json!({"sms": {"url": "http://169.254.169.254/latest/meta-data?to={recipient}"}}),
    )
    .await;
    let v6 = patch(
        &a,
        &first.etag,
        json!({"email": {"smtp": {"host": "fe80::1"}}}),
    )
    .await;
    let at_start = [
        (
            "[sms]\nurl = \"http://169.254.169.254/x?to={recipient}\"\n",
            "sms.url",
        ),
        ("[sms]\nurl = \"https://[fe80::1]/x\"\n", "sms.url"),
        ("[email.smtp]\nhost = \"169.254.10.1\"\n", "email.smtp.host"),
        ("[email.smtp]\nhost = \"[fe80::a:1]\"\n", "email.smtp.host"),
    ]
    .map(|(toml, key)| {
        let err = twofactor::config::Settings::from_toml(toml)
            .map(|_| ())
            .err();
        (err.map(|e| e.to_string()).unwrap_or_default(), key)
    });

    assert_refused(&metadata, "sms.url");
    assert_refused(&v6, "email.smtp.host");
    for (err, key) in at_start {
        assert!(
            err.contains(key) && err.contains("link-local"),
            "{key}: {err:?}"
        );
    }
    assert_eq!(
        get(&a).await.etag,
        first.etag,
        "nothing was changed by a refused patch"
    );
}
both_stores!(link_local_hosts_are_refused_, link_local_hosts_are_refused);
