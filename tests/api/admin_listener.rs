//! The admin surface: `admin.bind` moves `/admin` and `/metrics` to a listener of their own (the
//! public one answers 404 for them), and `admin.allowed_networks` limits who reaches the admin API on
//! either listener.

use reqwest::Method;

use crate::admin::{ADMIN, ADMIN_TOKEN};
use crate::both_stores;
use crate::helpers::{StoreKind, spawn_app_with};

async fn status(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: bool,
) -> (u16, String) {
    let mut req = client.request(method, url);
    if token {
        req = req.bearer_auth(ADMIN_TOKEN);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

async fn admin_bind_moves_the_admin_surface(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &format!("{ADMIN}\nbind = \"127.0.0.1:0\"\n")).await;
    app.add_alice().await;
    let admin = app.admin_address.clone().expect("an admin listener");
    let public = app.address.clone();
    let c = &app.client;

    // Act and assert: the admin surface is on the admin listener only.
    let customer = "/admin/v1/customers/1001";
    assert_eq!(
        status(c, Method::GET, format!("{admin}{customer}"), true)
            .await
            .0,
        200
    );
    assert_eq!(
        status(c, Method::GET, format!("{public}{customer}"), true)
            .await
            .0,
        404
    );
    assert_eq!(
        status(c, Method::GET, format!("{public}/admin/v1/anything"), true)
            .await
            .0,
        404
    );
    let (s, metrics) = status(c, Method::GET, format!("{admin}/metrics"), false).await;
    assert_eq!(s, 200);
    assert!(
        metrics.contains("twofactor_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert_eq!(
        status(c, Method::GET, format!("{public}/metrics"), false)
            .await
            .0,
        404
    );
    // Health stays public, and is on the admin listener too; callflows stay public only.
    for path in ["/healthz", "/readyz", "/version"] {
        assert_eq!(
            status(c, Method::GET, format!("{public}{path}"), false)
                .await
                .0,
            200,
            "{path}"
        );
        assert_eq!(
            status(c, Method::GET, format!("{admin}{path}"), false)
                .await
                .0,
            200,
            "{path}"
        );
    }
    assert_eq!(app.methods("1001").await.xml_status(), "success");
    let (s, _) = status(
        c,
        Method::GET,
        format!("{admin}/v1/check-verified-contact-methods?CustomerId=1001"),
        false,
    )
    .await;
    assert_eq!(s, 404);
}
both_stores!(admin_bind, admin_bind_moves_the_admin_surface);

async fn admin_networks_refuse_other_addresses_on_either_listener(kind: StoreKind) {
    for bind in ["", "127.0.0.1:0"] {
        // Arrange: 127.0.0.1 (the test's address) is not in the list.
        let app = spawn_app_with(
            kind,
            &format!("{ADMIN}\nbind = \"{bind}\"\nallowed_networks = [\"10.0.0.0/8\"]\n"),
        )
        .await;
        app.add_alice().await;
        let base = app.admin_address.clone().unwrap_or(app.address.clone());

        // Act
        let (s, body) = status(
            &app.client,
            Method::GET,
            format!("{base}/admin/v1/customers/1001"),
            true,
        )
        .await;

        // Assert
        assert_eq!(s, 403, "bind {bind:?}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["error"], "forbidden", "{body}");
        assert!(
            json["message"]
                .as_str()
                .is_some_and(|m| m.contains("admin.allowed_networks"))
        );
        // Callers are not affected.
        assert_eq!(app.methods("1001").await.xml_status(), "success");
    }
    // And the address that is listed gets through.
    let app = spawn_app_with(
        kind,
        &format!("{ADMIN}\nbind = \"127.0.0.1:0\"\nallowed_networks = [\"127.0.0.0/8\"]\n"),
    )
    .await;
    app.add_alice().await;
    let admin = app.admin_address.clone().expect("an admin listener");
    let (s, body) = status(
        &app.client,
        Method::GET,
        format!("{admin}/admin/v1/customers/1001"),
        true,
    )
    .await;
    assert_eq!(s, 200, "{body}");
}
both_stores!(
    admin_networks,
    admin_networks_refuse_other_addresses_on_either_listener
);
