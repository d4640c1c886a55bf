//! The admin page and what it stands on: named tokens with roles, the session cookie with its CSRF
//! token, idle expiry, login limits, the headers of every `/admin` answer, and (in headless
//! Chromium) the page itself.

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::AdminAnswer;
use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, spawn_app_with, twofactor_command};

const OPS_TOKEN: &str = "ops-admin-token-0c9d2e7f41a8b3d6e5f0";
const DESK_TOKEN: &str = "desk-read-token-7a1b93c4d2e8f605a4b1";

/// One admin token and one read token, in the two named forms.
fn roles() -> String {
    format!(
        "[admin]\ntokens = [\"ops:admin:{OPS_TOKEN}\", {{ name = \"desk\", role = \"read\", token = \"{DESK_TOKEN}\" }}]\n"
    )
}

/// What a browser holds after logging in.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

/// One request to `path` with whichever credentials are given; any 5xx fails the test.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    session: Option<(&str, Option<&str>)>,
    body: Option<Value>,
) -> AdminAnswer {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some((cookie, csrf)) = session {
        req = req.header("cookie", format!("tfa_admin={cookie}"));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    AdminAnswer::of(req).await
}

async fn login_answer(app: &TestApp, token: &str) -> AdminAnswer {
    call(
        app,
        Method::POST,
        "/admin/session",
        None,
        None,
        Some(json!({ "token": token })),
    )
    .await
}

async fn login(app: &TestApp, token: &str) -> Session {
    let res = login_answer(app, token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let set_cookie = res.header("set-cookie");
    let cookie = set_cookie
        .strip_prefix("tfa_admin=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {set_cookie:?}"))
        .to_string();
    Session {
        cookie,
        csrf: res.json()["csrf_token"]
            .as_str()
            .expect("csrf_token")
            .to_string(),
    }
}

/// With the cookie and, for changes, the CSRF token: what the page sends.
async fn as_page(
    app: &TestApp,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> AdminAnswer {
    call(
        app,
        method,
        path,
        None,
        Some((&s.cookie, Some(&s.csrf))),
        body,
    )
    .await
}

async fn roles_limit_what_a_token_may_do(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &roles()).await;
    app.add_customer("3001", Some("r@example.com"), None, None)
        .await;
    let path = "/admin/v1/customers/3001";
    let put = || Some(json!({ "email": "changed@example.com" }));
    let refused: [(Method, &str, Option<Value>); 4] = [
        (Method::PUT, path, put()),
        (Method::DELETE, path, None),
        (Method::POST, "/admin/v1/customers/3001/totp", None),
        (Method::DELETE, "/admin/v1/customers/3001/totp", None),
    ];

    // Act + Assert: the read token may look, and nothing else.
    let got = call(&app, Method::GET, path, Some(DESK_TOKEN), None, None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["email"], "r@example.com");
    let missing = call(
        &app,
        Method::GET,
        "/admin/v1/customers/3999",
        Some(DESK_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    for (method, p, body) in refused.clone() {
        let res = call(&app, method.clone(), p, Some(DESK_TOKEN), None, body).await;
        assert_eq!(res.status, 403, "read {method} {p}: {}", res.body);
        assert_eq!(
            res.json(),
            json!({ "error": "forbidden", "message": format!("role read may not {method} {p}") })
        );
    }
    let after = call(&app, Method::GET, path, Some(DESK_TOKEN), None, None).await;
    assert_eq!(
        after.json()["email"],
        "r@example.com",
        "a refused PUT changed nothing"
    );

    // The admin token may do all of it (deleting the customer last).
    let [put, delete, enrol, revoke] = refused;
    for (method, p, body) in [put, enrol, revoke, delete] {
        let res = call(&app, method.clone(), p, Some(OPS_TOKEN), None, body).await;
        assert!(
            [200, 201, 204].contains(&res.status),
            "admin {method} {p}: {} {}",
            res.status,
            res.body
        );
    }
}
both_stores!(read_tokens_only_look, roles_limit_what_a_token_may_do);

async fn bare_tokens_keep_working_as_admin(kind: StoreKind) {
    // Arrange: a list written before names existed.
    let app = spawn_app_with(kind, &format!("[admin]\ntokens = [\"{OPS_TOKEN}\"]\n")).await;

    // Act
    let put = call(
        &app,
        Method::PUT,
        "/admin/v1/customers/3002",
        Some(OPS_TOKEN),
        None,
        Some(json!({ "email": "b@example.com" })),
    )
    .await;
    let s = login(&app, OPS_TOKEN).await;
    let me = as_page(&app, &s, Method::GET, "/admin/session", None).await;

    // Assert
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(me.json()["name"], "token-1");
    assert_eq!(me.json()["role"], "admin");
}
both_stores!(
    bare_tokens_are_admin_tokens,
    bare_tokens_keep_working_as_admin
);

async fn session_cookie_with_csrf_and_logout(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &roles()).await;
    app.add_customer("3003", Some("s@example.com"), None, None)
        .await;
    let path = "/admin/v1/customers/3003";
    let body = || Some(json!({ "email": "new@example.com" }));

    // Act: log in.
    let res = login_answer(&app, OPS_TOKEN).await;

    // Assert: who, what role, a CSRF token, and a cookie only this origin's /admin gets.
    assert_eq!(res.status, 200, "{}", res.body);
    let answer = res.json();
    assert_eq!(answer["name"], "ops");
    assert_eq!(answer["role"], "admin");
    let csrf = answer["csrf_token"].as_str().expect("csrf").to_string();
    assert!(csrf.len() >= 40, "{csrf}");
    let set_cookie = res.header("set-cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert_eq!(res.header("cache-control"), "no-store");
    let s = login(&app, OPS_TOKEN).await;
    assert_ne!(s.csrf, csrf, "each login has its own CSRF token");

    // The session answers who it is; reads need no CSRF token.
    let me = call(
        &app,
        Method::GET,
        "/admin/session",
        None,
        Some((&s.cookie, None)),
        None,
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.json(),
        json!({ "name": "ops", "role": "admin", "csrf_token": s.csrf })
    );
    let got = call(&app, Method::GET, path, None, Some((&s.cookie, None)), None).await;
    assert_eq!(got.status, 200, "{}", got.body);

    // A change without the CSRF token, or with another session's, is refused and changes nothing.
    for csrf in [None, Some("wrong"), Some(csrf.as_str()), Some("")] {
        let res = call(
            &app,
            Method::PUT,
            path,
            None,
            Some((&s.cookie, csrf)),
            body(),
        )
        .await;
        assert_eq!(res.status, 403, "csrf {csrf:?}: {}", res.body);
        assert_eq!(res.json()["error"], "csrf", "{}", res.body);
    }
    let unchanged = as_page(&app, &s, Method::GET, path, None).await;
    assert_eq!(unchanged.json()["email"], "s@example.com");
    let changed = as_page(&app, &s, Method::PUT, path, body()).await;
    assert_eq!(changed.status, 200, "{}", changed.body);

    // The store holds the session under a digest: the cookie's value is nowhere in it.
    let stored = app.store().dump(&app.prefix).await.expect("dump");
    assert!(stored.iter().any(|(k, _)| k.contains("admin:session:")));
    assert!(
        stored.iter().all(|(k, v)| !k.contains(&s.cookie)
            && !v.contains(&s.cookie)
            && !v.contains(OPS_TOKEN)),
        "the session id or token is stored in clear"
    );

    // Logging out needs the CSRF token too, then ends the session and clears the cookie.
    let no_csrf = call(
        &app,
        Method::DELETE,
        "/admin/session",
        None,
        Some((&s.cookie, None)),
        None,
    )
    .await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let out = as_page(&app, &s, Method::DELETE, "/admin/session", None).await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert!(
        out.header("set-cookie").contains("Max-Age=0"),
        "{:?}",
        out.headers
    );
    for p in ["/admin/session", path] {
        let after = as_page(&app, &s, Method::GET, p, None).await;
        assert_eq!(after.status, 401, "{p} after logout: {}", after.body);
    }
}
both_stores!(session_and_csrf, session_cookie_with_csrf_and_logout);

async fn read_sessions_and_unknown_cookies(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &roles()).await;
    app.add_customer("3004", Some("d@example.com"), None, None)
        .await;
    let path = "/admin/v1/customers/3004";

    // Act
    let s = login(&app, DESK_TOKEN).await;
    let me = as_page(&app, &s, Method::GET, "/admin/session", None).await;
    let got = as_page(&app, &s, Method::GET, path, None).await;
    let put = as_page(
        &app,
        &s,
        Method::PUT,
        path,
        Some(json!({ "email": "x@example.com" })),
    )
    .await;
    let forged = call(
        &app,
        Method::GET,
        path,
        None,
        Some(("forged-session-id", None)),
        None,
    )
    .await;
    let none = call(&app, Method::GET, "/admin/session", None, None, None).await;

    // Assert: the session has the read role of its token.
    assert_eq!(me.json()["role"], "read");
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(put.status, 403, "{}", put.body);
    assert_eq!(
        put.json()["message"],
        format!("role read may not PUT {path}")
    );
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert_eq!(none.status, 401, "{}", none.body);
}
both_stores!(read_sessions, read_sessions_and_unknown_cookies);

async fn sessions_end_when_idle(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &format!("{}session_idle_seconds = 1\n", roles())).await;
    let s = login(&app, OPS_TOKEN).await;
    let pause = |ms| tokio::time::sleep(std::time::Duration::from_millis(ms));

    // Act + Assert: each request restarts the idle timer, so use keeps it alive past one second.
    for _ in 0..3 {
        pause(500).await;
        let me = as_page(&app, &s, Method::GET, "/admin/session", None).await;
        assert_eq!(me.status, 200, "{}", me.body);
    }
    pause(1_600).await;
    let later = as_page(&app, &s, Method::GET, "/admin/session", None).await;
    assert_eq!(later.status, 401, "{}", later.body);
    assert!(
        later.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("log in again")
    );
}
both_stores!(idle_sessions_expire, sessions_end_when_idle);

async fn changing_tokens_reaches_open_sessions(kind: StoreKind) {
    // Arrange: a session for each token.
    let app = spawn_app_with(kind, &roles()).await;
    let ops = login(&app, OPS_TOKEN).await;
    let desk = login(&app, DESK_TOKEN).await;

    // Act: ops's token is replaced and desk is made an admin, as a restart with new settings would.
    let settings = crate::helpers::test_settings(
        kind,
        app.dir.path(),
        &app.prefix,
        &format!(
            "[admin]\ntokens = [\"ops:admin:{OPS_TOKEN}-new\", \"desk:admin:{DESK_TOKEN}\"]\n"
        ),
    );
    app.state
        .live
        .store(twofactor::live::Snapshot::build(settings).expect("snapshot"));
    let ops_after = as_page(&app, &ops, Method::GET, "/admin/session", None).await;
    let desk_after = as_page(&app, &desk, Method::GET, "/admin/session", None).await;

    // Assert: the old token's session is over; the other session has its token's current role.
    assert_eq!(ops_after.status, 401, "{}", ops_after.body);
    assert_eq!(desk_after.status, 200, "{}", desk_after.body);
    assert_eq!(desk_after.json()["role"], "admin");
}
both_stores!(
    token_changes_reach_sessions,
    changing_tokens_reaches_open_sessions
);

async fn wrong_logins_are_limited_per_address(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(kind, &roles()).await;

    // Act + Assert: five wrong tokens are answered 401, then the address waits, right token or not.
    for i in 0..5 {
        let res = login_answer(&app, &format!("wrong-token-{i}")).await;
        assert_eq!(res.status, 401, "{}", res.body);
        assert!(!res.body.contains("wrong-token"), "{}", res.body);
        assert!(res.header("set-cookie").is_empty());
    }
    for token in ["wrong-again", OPS_TOKEN] {
        let res = login_answer(&app, token).await;
        assert_eq!(res.status, 429, "{}", res.body);
        assert_eq!(res.json()["error"], "too-many-attempts");
        assert_eq!(res.header("retry-after"), "60");
    }
    // Bad bodies are 400s, and not counted as guesses.
    let bad = call(
        &app,
        Method::POST,
        "/admin/session",
        None,
        None,
        Some(json!({ "tokn": "x" })),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}
both_stores!(login_limits, wrong_logins_are_limited_per_address);

const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

async fn every_admin_answer_is_hardened(kind: StoreKind) {
    // Arrange
    let app = spawn_app_with(
        kind,
        &format!("{}allowed_origins = [\"https://desk.example\"]\n", roles()),
    )
    .await;
    let cases: [(&str, u16); 8] = [
        ("/admin/", 200),
        ("/admin/app.js", 200),
        ("/admin/app.css", 200),
        ("/admin/session", 401),
        ("/admin/v1/customers/1", 401),
        ("/admin/v1/nothing", 401),
        ("/admin/nothing", 404),
        ("/admin", 308),
    ];
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    for (path, status) in cases {
        for origin in ["https://evil.example", "https://desk.example"] {
            // Act
            let res = no_redirects
                .get(format!("{}{path}", app.address))
                .header("origin", origin)
                .send()
                .await
                .expect("request");

            // Assert
            assert_eq!(res.status().as_u16(), status, "{path}");
            for (name, value) in SECURITY_HEADERS {
                assert_eq!(
                    res.headers().get(name).and_then(|v| v.to_str().ok()),
                    Some(value),
                    "{path}: {name}"
                );
            }
            let allowed = res
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok());
            if origin == "https://desk.example" {
                assert_eq!(allowed, Some(origin), "{path}");
            } else {
                assert!(
                    !res.headers()
                        .keys()
                        .any(|k| k.as_str().starts_with("access-control-")),
                    "{path}: CORS headers for an unlisted origin: {:?}",
                    res.headers()
                );
            }
        }
    }
    let redirect = no_redirects
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .expect("request");
    assert_eq!(
        redirect.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/admin/"[..])
    );

    // A preflight from the listed origin is answered before any credential is asked for.
    let preflight = app
        .client
        .request(
            Method::OPTIONS,
            format!("{}/admin/v1/customers/1", app.address),
        )
        .header("origin", "https://desk.example")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status().as_u16(), 204);
    let allow_headers = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(allow_headers.contains("Authorization"), "{allow_headers}");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let foreign = app
        .client
        .request(
            Method::OPTIONS,
            format!("{}/admin/v1/customers/1", app.address),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .expect("preflight");
    assert_eq!(foreign.status().as_u16(), 401);
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
both_stores!(admin_headers, every_admin_answer_is_hardened);

#[tokio::test]
async fn the_page_is_served_from_the_binary() {
    // Arrange
    let app = spawn_app_with(StoreKind::Memory, &roles()).await;
    let get = |path: &'static str| {
        let req = app.client.get(format!("{}{path}", app.address));
        async move { req.send().await.expect("request") }
    };

    // Act + Assert
    // Its files from the binary with the right types, and no inline script or style.
    let page = get("/admin/").await;
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("<script src=\"app.js\" defer></script>"),
        "{html}"
    );
    assert!(
        html.contains("<link rel=\"stylesheet\" href=\"app.css\">"),
        "{html}"
    );
    assert_eq!(
        html.matches("<script").count(),
        1,
        "one external script only"
    );
    for inline in [
        "<style",
        " style=",
        " onclick=",
        " onsubmit=",
        "javascript:",
        "http://",
        "https://",
    ] {
        assert!(!html.contains(inline), "the page holds {inline:?}");
    }
    let js = get("/admin/app.js").await;
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/javascript")
    );
    let js = js.text().await.expect("js");
    assert!(
        !js.contains("innerHTML"),
        "the page builds DOM nodes, never HTML strings"
    );
}

async fn no_credential_or_secret_in_any_get_answer(kind: StoreKind) {
    // Arrange: a customer with an authenticator, a page session, and a bearer client.
    let app = spawn_app_with(kind, &roles()).await;
    app.add_customer("3005", Some("l@example.com"), Some("+447911123456"), None)
        .await;
    let enrolled = call(
        &app,
        Method::POST,
        "/admin/v1/customers/3005/totp",
        Some(OPS_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let secret = enrolled.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let s = login(&app, DESK_TOKEN).await;
    let paths = [
        "/admin/",
        "/admin/app.js",
        "/admin/session",
        "/admin/v1/customers/3005",
        "/admin/v1/customers/3999",
        "/admin/v1/nothing",
        "/admin/nothing",
    ];

    for path in paths {
        for (bearer, session) in [
            (Some(OPS_TOKEN), None),
            (Some(DESK_TOKEN), None),
            (None, Some((s.cookie.as_str(), None))),
            (Some("wrong-token-0123456789abcdef0123"), None),
        ] {
            // Act
            let res = call(&app, Method::GET, path, bearer, session, None).await;

            // Assert
            let all = format!("{:?} {}", res.headers, res.body);
            for (what, secret) in [
                ("ops token", OPS_TOKEN),
                ("desk token", DESK_TOKEN),
                ("session id", s.cookie.as_str()),
                ("TOTP secret", secret.as_str()),
                ("wrong token", "wrong-token-0123456789abcdef0123"),
            ] {
                assert!(!all.contains(secret), "GET {path} shows the {what}: {all}");
            }
        }
    }
}
both_stores!(
    no_secrets_in_get_answers,
    no_credential_or_secret_in_any_get_answer
);

#[tokio::test]
async fn named_tokens_come_from_the_environment_too() {
    // Arrange: the variable form docs/admin.md gives, and a role nobody knows.
    let run = |tokens: &str| {
        let mut cmd = twofactor_command();
        cmd.arg("check-config")
            .env("TFA__ADMIN__TOKENS", tokens)
            .stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
    };

    // Act
    let good = run(&format!(
        "[{{ name = \"desk\", role = \"read\", token = \"{DESK_TOKEN}\" }}, \"ops:admin:{OPS_TOKEN}\", \"{OPS_TOKEN}x\"]"
    ))
    .await
    .expect("task");
    let bad = run(&format!("[\"desk:owner:{DESK_TOKEN}\"]"))
        .await
        .expect("task");

    // Assert
    let good_text = crate::helpers::output_text(&good);
    assert!(good.status.success(), "{good_text}");
    assert!(
        good_text.contains("admin:    desk (read), ops (admin), token-3 (admin)"),
        "{good_text}"
    );
    let bad_text = crate::helpers::output_text(&bad);
    assert!(!bad.status.success(), "{bad_text}");
    assert!(bad_text.contains("admin.tokens"), "{bad_text}");
    assert!(bad_text.contains("unknown role \"owner\""), "{bad_text}");
    for text in [&good_text, &bad_text] {
        assert!(
            !text.contains(DESK_TOKEN) && !text.contains(OPS_TOKEN),
            "{text}"
        );
    }
}

// ---- In headless Chromium ---------------------------------------------------------------------

/// chromedriver on a free port, stopped (and reaped) on drop, panics included.
struct Chromedriver {
    child: std::process::Child,
    port: u16,
    /// Chromium's profile directory, removed with the driver.
    profile: tempfile::TempDir,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn chromedriver() -> Chromedriver {
    assert!(
        installed("chromium") && installed("chromedriver"),
        "the admin page tests drive headless Chromium: install it with \
         `apt-get install -y chromium chromium-driver` (Debian/Ubuntu)"
    );
    let port = crate::helpers::free_port();
    let driver = Chromedriver {
        child: std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
        port,
        profile: tempfile::tempdir().expect("profile dir"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Chromedriver) -> fantoccini::Client {
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1000",
        &format!("--user-data-dir={}", driver.profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    fantoccini::ClientBuilder::rustls()
        .expect("TLS roots for the WebDriver client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// `target/admin-page/`, under `CARGO_TARGET_DIR` when set, else the crate's own `target/`.
fn screenshot_dir() -> std::path::PathBuf {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| manifest.join(t))
        .unwrap_or_else(|| manifest.join("target"));
    let dir = target.join("admin-page");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("screenshot saved");
}

fn css(selector: &str) -> fantoccini::Locator<'_> {
    fantoccini::Locator::Css(selector)
}

/// Waits (up to 10 s) until the element's text satisfies `ok`, and returns that text.
async fn wait_text(c: &fantoccini::Client, selector: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(css(selector)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{selector} never got there; its text was {last:?}");
}

async fn fill(c: &fantoccini::Client, selector: &str, text: &str) {
    let e = c.find(css(selector)).await.expect(selector);
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

async fn click(c: &fantoccini::Client, selector: &str) {
    c.find(css(selector))
        .await
        .expect(selector)
        .click()
        .await
        .expect("click");
}

/// The text of the QR code in a PNG.
fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_logs_in_finds_edits_enrols_and_revokes() {
    let run = async {
        // Arrange: an SMS gateway stand-in for the test send, and a short lockout to unlock.
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
        let sink = MockServer::start().await;
        Mock::given(matchers::method("POST"))
            .respond_with(ResponseTemplate::new(202).set_body_string("queued as m-77"))
            .mount(&sink)
            .await;
        let overrides = format!(
            "{}[lockout]\nmax_failures = 3\n[sms]\nurl = \"http://127.0.0.1:{}/send\"\n",
            roles(),
            sink.address().port()
        );
        let app = spawn_app_with(StoreKind::Memory, &overrides).await;
        app.add_customer(
            "4001",
            Some("page@example.com"),
            Some("+447911123456"),
            None,
        )
        .await;
        let driver = chromedriver().await;
        let c = browser(&driver).await;
        let customer = || async {
            call(
                &app,
                Method::GET,
                "/admin/v1/customers/4001",
                Some(OPS_TOKEN),
                None,
                None,
            )
            .await
            .json()
        };

        // Act + Assert: a wrong token is refused on the page, the right one logs in.
        c.goto(&format!("{}/admin/", app.address))
            .await
            .expect("page");
        c.wait()
            .for_element(css("#login-token"))
            .await
            .expect("login form");
        screenshot(&c, "login").await;
        fill(&c, "#login-token", "not-the-token").await;
        click(&c, "#login-form button[type=submit]").await;
        wait_text(&c, "#login-status", |t| {
            t.contains("not one of admin.tokens")
        })
        .await;
        fill(&c, "#login-token", OPS_TOKEN).await;
        click(&c, "#login-form button[type=submit]").await;
        wait_text(&c, "#who", |t| t == "Logged in as ops (admin)").await;

        // Look a customer up.
        fill(&c, "#customer-id", "4001").await;
        click(&c, "#lookup-form button[type=submit]").await;
        wait_text(&c, "#customer-status", |t| t == "Customer 4001 found.").await;
        let details = wait_text(&c, "#customer-details", |t| t.contains("page@example.com")).await;
        assert!(
            details.contains("+447911123456") && details.contains("not enrolled"),
            "{details}"
        );
        screenshot(&c, "customers").await;

        // Edit the email.
        fill(&c, "#edit-email", "edited@example.com").await;
        click(&c, "#edit-form button[type=submit]").await;
        wait_text(&c, "#customer-status", |t| t == "Contacts saved.").await;
        assert_eq!(customer().await["email"], "edited@example.com");

        // Enrol an authenticator: the QR code on the page carries the secret the page shows.
        click(&c, "#enrol").await;
        wait_text(&c, "#customer-status", |t| {
            t.starts_with("Authenticator enrolled")
        })
        .await;
        let secret = wait_text(&c, "#secret", |t| !t.is_empty()).await;
        let uri = c
            .find(css("#otpauth"))
            .await
            .expect("uri")
            .text()
            .await
            .expect("uri text");
        let img = c.find(css("#qr")).await.expect("qr");
        let src = img.attr("src").await.expect("src").unwrap_or_default();
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .expect("a data: URL");
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(decode_qr(&png), uri);
        // What Chromium drew decodes too: the CSP let the data: image through.
        assert_eq!(decode_qr(&img.screenshot().await.expect("qr pixels")), uri);
        assert!(
            uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
            "{uri}"
        );
        screenshot(&c, "enrolment").await;
        assert_eq!(customer().await["totp_enrolled"], true);
        let code = crate::helpers::authenticator(&secret, 6)
            .generate(crate::helpers::unix_now())
            .to_string();
        let verified = app
            .verify_with(
                "4001",
                &code,
                &[("TwoFactorAuthSelectedMethod", "Authenticator")],
            )
            .await;
        assert_eq!(verified.xml_status(), "success", "{}", verified.body);

        // Revoke it, after the page asks to be sure.
        click(&c, "#revoke").await;
        c.accept_alert().await.expect("confirm dialog");
        wait_text(&c, "#customer-status", |t| t == "Authenticator revoked.").await;
        assert_eq!(customer().await["totp_enrolled"], false);

        // Settings: a refusal beside its field, then a new code length that the next code has.
        settings_screen(&c).await;
        assert_eq!(app.send("4001", "Email").await.xml_status(), "success");
        assert_eq!(
            app.last_code_to("edited@example.com").len(),
            8,
            "a sent code has the length set on the page"
        );

        // The history names the change and who made it.
        click(&c, ".tab[data-screen=history]").await;
        let rows = wait_text(&c, "#history-rows", |t| t.contains("codes.digits")).await;
        assert!(rows.contains("ops") && rows.contains('8'), "{rows}");
        screenshot(&c, "history").await;

        // Test sends show what the server said.
        click(&c, ".tab[data-screen=tests]").await;
        fill(&c, "#test-email-to", "ops@example.com").await;
        click(&c, "#test-email-form button[type=submit]").await;
        wait_text(&c, "#test-email-form .status", |t| {
            t.starts_with("Sent in") && t.contains("appended to")
        })
        .await;
        fill(&c, "#test-sms-to", "+447911123456").await;
        click(&c, "#test-sms-form button[type=submit]").await;
        let said = wait_text(&c, "#test-sms-form .status", |t| t.starts_with("Sent in")).await;
        assert!(
            said.contains("202") && said.contains("queued as m-77"),
            "{said}"
        );
        screenshot(&c, "test-sends").await;
        assert_eq!(sink.received_requests().await.unwrap_or_default().len(), 1);

        // Unlock a customer that wrong codes locked.
        for _ in 0..3 {
            app.verify("4001", "00000000").await;
        }
        assert_eq!(app.verify("4001", "00000000").await.xml_status(), "locked");
        click(&c, ".tab[data-screen=customers]").await;
        fill(&c, "#customer-id", "4001").await;
        click(&c, "#lookup-form button[type=submit]").await;
        wait_text(&c, "#customer-details", |t| t.contains("locked (")).await;
        click(&c, "#unlock").await;
        wait_text(&c, "#customer-status", |t| t == "Customer unlocked.").await;
        screenshot(&c, "unlocked").await;
        assert_eq!(customer().await["locked"], false);
        assert_eq!(app.send("4001", "Email").await.xml_status(), "success");
        let code = app.last_code_to("edited@example.com");
        assert_eq!(app.verify("4001", &code).await.xml_status(), "success");

        // A reload keeps the session; logging out ends it.
        c.refresh().await.expect("reload");
        wait_text(&c, "#who", |t| t == "Logged in as ops (admin)").await;
        click(&c, "#logout").await;
        wait_text(&c, "#login-status", |t| t == "Logged out.").await;
        c.refresh().await.expect("reload");
        c.wait()
            .for_element(css("#login-token"))
            .await
            .expect("login form");
        assert!(
            !c.find(css("#app"))
                .await
                .expect("app")
                .is_displayed()
                .await
                .expect("shown")
        );

        // A read token's session sees the same screens with every change disabled.
        fill(&c, "#login-token", DESK_TOKEN).await;
        click(&c, "#login-form button[type=submit]").await;
        wait_text(&c, "#who", |t| t == "Logged in as desk (read)").await;
        for button in ["#enrol", "#delete", "#edit-form button[type=submit]"] {
            let disabled = c
                .find(css(button))
                .await
                .expect(button)
                .prop("disabled")
                .await;
            assert_eq!(disabled.expect("prop").as_deref(), Some("true"), "{button}");
        }
        c.close().await.expect("browser closes");
    };
    tokio::time::timeout(std::time::Duration::from_secs(50), run)
        .await
        .expect("the browser test finishes within 50 s");
}

/// The settings form: a refusal shows beside its setting, and a save sends only the changed fields
/// (the server takes them as a merge patch under If-Match with the CSRF token).
async fn settings_screen(c: &fantoccini::Client) {
    click(c, ".tab[data-screen=settings]").await;
    wait_text(c, "#settings-status", |t| t == "Settings loaded.").await;
    let form = wait_text(c, "#settings-fields", |t| t.contains("skew steps")).await;
    for legend in [
        "email",
        "email.smtp",
        "sms",
        "codes",
        "lockout",
        "statuses",
        "totp",
    ] {
        assert!(
            form.lines().any(|l| l.trim() == legend),
            "no {legend} in {form}"
        );
    }
    let password = c
        .find(css("#setting-email-smtp-password"))
        .await
        .expect("a write-only password field")
        .attr("placeholder")
        .await
        .expect("placeholder");
    assert_eq!(password.as_deref(), Some("unset"));

    // Out of range: the start-up rule's message beside codes.digits, and nothing saved.
    fill(c, "#setting-codes-digits", "12").await;
    click(c, "#settings-form button[type=submit]").await;
    wait_text(c, "#setting-codes-digits-error", |t| {
        t.contains("codes.digits: 12 is out of range: must be 4 to 10")
    })
    .await;
    wait_text(c, "#settings-status", |t| {
        t == "Not saved: see codes.digits."
    })
    .await;
    screenshot(c, "settings-refused").await;

    // In range: saved, and the form reloads with the new value.
    fill(c, "#setting-codes-digits", "8").await;
    click(c, "#settings-form button[type=submit]").await;
    wait_text(c, "#settings-status", |t| t == "Saved.").await;
    let digits = c
        .find(css("#setting-codes-digits"))
        .await
        .expect("digits")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(digits.as_deref(), Some("8"));
    screenshot(c, "settings").await;
}
