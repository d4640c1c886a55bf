//! The admin surface in production: the session cookie's `Secure` attribute (`admin.cookie_secure`),
//! HSTS on every `/admin` answer, the absolute session lifetime (`admin.session_max_seconds`), and
//! `/metrics` kept off the public listener. Production runs on Redis only (it refuses the memory
//! store); development cases run on both.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::admin::AdminAnswer;
use crate::both_stores;
use crate::caller_credentials::client_from;
use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const OPS_TOKEN: &str = "ops-admin-token-0c9d2e7f41a8b3d6e5f0";

/// Production, with callers checked by network as its rules require.
const PRODUCTION: &str = "[server]\nenvironment = \"production\"\n\
                          [security]\nallowed_networks = [\"127.0.0.0/8\"]\n";

fn admin(extra: &str) -> String {
    format!("[admin]\ntokens = [\"ops:admin:{OPS_TOKEN}\"]\n{extra}\n")
}

async fn request(app: &TestApp, method: Method, path: &str, cookie: Option<&str>) -> AdminAnswer {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("tfa_admin={c}"));
    }
    AdminAnswer::of(req).await
}

/// Logs in with the ops token: the whole `Set-Cookie` and the session id in it.
async fn login(app: &TestApp) -> (String, String) {
    let res = AdminAnswer::of(
        app.client
            .post(format!("{}/admin/session", app.address))
            .json(&json!({ "token": OPS_TOKEN })),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let set_cookie = res.header("set-cookie");
    let id = set_cookie
        .strip_prefix("tfa_admin=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {set_cookie:?}"))
        .to_string();
    (set_cookie, id)
}

fn has_secure(set_cookie: &str) -> bool {
    set_cookie.split(';').any(|p| p.trim() == "Secure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_cookies_are_secure_unless_said_otherwise() {
    let cases = [
        ("production, unset", PRODUCTION, "", true),
        (
            "production, cookie_secure = false",
            PRODUCTION,
            "cookie_secure = false",
            false,
        ),
        ("development, unset", "", "", false),
        (
            "development, cookie_secure = true",
            "",
            "cookie_secure = true",
            true,
        ),
    ];
    for (what, env, extra, secure) in cases {
        // Arrange
        let app = spawn_app_with(StoreKind::Redis, &format!("{env}{}", admin(extra))).await;

        // Act
        let (set_cookie, id) = login(&app).await;
        let logout = AdminAnswer::of(
            app.client
                .delete(format!("{}/admin/session", app.address))
                .header("cookie", format!("tfa_admin={id}"))
                .header(
                    "x-csrf-token",
                    request(&app, Method::GET, "/admin/session", Some(&id))
                        .await
                        .json()["csrf_token"]
                        .as_str()
                        .expect("csrf_token"),
                ),
        )
        .await;

        // Assert: the login's cookie and the logout's clearing one agree.
        for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
            assert!(set_cookie.contains(part), "{what}: {set_cookie}");
        }
        assert_eq!(has_secure(&set_cookie), secure, "{what}: {set_cookie}");
        let cleared = logout.header("set-cookie");
        assert!(cleared.contains("Max-Age=0"), "{what}: {cleared}");
        assert_eq!(has_secure(&cleared), secure, "{what}: {cleared}");
    }
}

async fn hsts_is_sent_on_admin_answers_in_production_only(kind: StoreKind) {
    // Production needs Redis: on the memory store only development is checked.
    let envs: &[(&str, &str, bool)] = match kind {
        StoreKind::Redis => &[("production", PRODUCTION, true), ("development", "", false)],
        StoreKind::Memory => &[("development", "", false)],
    };
    for (what, env, hsts) in envs {
        // Arrange
        let app = spawn_app_with(kind, &format!("{env}{}", admin(""))).await;
        for (path, status) in [
            ("/admin/", 200),
            ("/admin/session", 401),
            ("/admin/v1/customers/1001", 401),
            ("/admin/nothing", 404),
        ] {
            // Act
            let res = request(&app, Method::GET, path, None).await;

            // Assert
            assert_eq!(res.status, status, "{what} {path}: {}", res.body);
            let got = res.header("strict-transport-security");
            if *hsts {
                assert_eq!(got, "max-age=31536000", "{what} {path}");
            } else {
                assert_eq!(got, "", "{what} {path}: no HSTS outside production");
            }
        }
        // Callflows and health are not the admin surface.
        let health = AdminAnswer::of(app.client.get(format!("{}/healthz", app.address))).await;
        assert_eq!(health.header("strict-transport-security"), "", "{what}");
    }
}
both_stores!(hsts, hsts_is_sent_on_admin_answers_in_production_only);

async fn sessions_end_at_their_absolute_lifetime_however_busy(kind: StoreKind) {
    // Arrange: two seconds of life, a long idle timeout.
    let app = spawn_app_with(kind, &admin("session_max_seconds = 2")).await;
    let (_, id) = login(&app).await;
    let start = Instant::now();

    // Act: a request every half second for three seconds.
    let mut answers = Vec::new();
    while start.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let res = request(&app, Method::GET, "/admin/session", Some(&id)).await;
        answers.push((start.elapsed(), res.status, res.body));
    }

    // Assert: served while young, refused once past two seconds since login, used or not.
    for (at, status, body) in &answers {
        if *at < Duration::from_millis(1_500) {
            assert_eq!(*status, 200, "at {at:?}: {body}");
        }
        if *at > Duration::from_millis(2_100) {
            assert_eq!(*status, 401, "at {at:?}: {body}");
            assert!(body.contains("log in again"), "at {at:?}: {body}");
        }
    }
    // The same token logs in again at once.
    login(&app).await;
}
both_stores!(
    absolute_lifetime,
    sessions_end_at_their_absolute_lifetime_however_busy
);

async fn get_metrics(client: &reqwest::Client, base: &str) -> (u16, String) {
    let res = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serves_metrics_to_the_admin_side_only() {
    let (local, other) = (client_from("127.0.0.1"), client_from("127.0.0.2"));

    // No admin.bind, no admin.allowed_networks: nobody gets them on the public listener.
    let app = spawn_app_with(StoreKind::Redis, PRODUCTION).await;
    let (status, body) = get_metrics(&local, &app.address).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("admin.bind") && body.contains("admin.allowed_networks"),
        "the refusal says what to set: {body}"
    );

    // No admin.bind, 127.0.0.1 listed: that address gets them, another does not.
    let app = spawn_app_with(
        StoreKind::Redis,
        &format!("{PRODUCTION}[admin]\nallowed_networks = [\"127.0.0.1/32\"]\n"),
    )
    .await;
    let (status, body) = get_metrics(&local, &app.address).await;
    assert_eq!(status, 200, "listed address: {body}");
    assert!(body.contains("twofactor_"), "{body}");
    let (status, body) = get_metrics(&other, &app.address).await;
    assert_eq!(status, 403, "unlisted address: {body}");

    // With admin.bind: on the admin listener only, for anyone who reaches it.
    let app = spawn_app_with(
        StoreKind::Redis,
        &format!("{PRODUCTION}[admin]\nbind = \"127.0.0.1:0\"\n"),
    )
    .await;
    let admin = app.admin_address.clone().expect("an admin listener");
    let (status, body) = get_metrics(&other, &admin).await;
    assert_eq!(status, 200, "admin listener: {body}");
    let (status, _) = get_metrics(&local, &app.address).await;
    assert_eq!(status, 404, "public listener");
}

async fn development_serves_metrics_on_the_public_listener(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, "").await;

    // Act
    let (status, body) = get_metrics(&client_from("127.0.0.2"), &app.address).await;

    // Assert
    assert_eq!(status, 200, "{body}");
}
both_stores!(
    development_metrics,
    development_serves_metrics_on_the_public_listener
);
