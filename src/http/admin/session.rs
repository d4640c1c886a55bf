//! `/admin/session`: the admin page logs in with a token once and then holds a session cookie, so
//! the token never sits in the browser's storage.
//!
//! The cookie (`tfa_admin`, HttpOnly, SameSite=Strict, Path=/admin) holds a random id; the store
//! keeps the session under a digest of that id, so a copy of the store cannot be replayed as a
//! cookie. A session ends after `admin.session_idle_seconds` without a request,
//! `admin.session_max_seconds` after login however busy it is, on logout, and when its token is
//! removed or changed in `admin.tokens`. The cookie is `Secure` when `admin.cookie_secure` says so
//! (by default in production, or when this server speaks TLS). Every state-changing request made with the
//! cookie must carry `X-CSRF-Token` (the session's token, handed out at login), as Genesys' own
//! cookie sessions do: a page on another site can make the browser send the cookie, but cannot
//! read the token.

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::principal::{AdminPrincipal, Role, disabled, find_token, unauthorized};
use crate::config::AdminSettings;
use crate::state::AppState;

pub const COOKIE: &str = "tfa_admin";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Wrong logins one peer address may make per [`LOGIN_WINDOW`] before it must wait.
pub const LOGIN_FAILURES_ALLOWED: u64 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// What the store keeps for a session.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The token's name in `admin.tokens`.
    name: String,
    /// A keyed digest of the token the session was made with: changing that token ends the session.
    token: String,
    csrf: String,
    /// When the session was made (Unix seconds), for its absolute lifetime. A record written
    /// before this existed reads as 0, so it has outlived any lifetime and ends.
    #[serde(default)]
    login_at: u64,
}

/// A session that passed its checks.
pub struct Resumed {
    pub principal: AdminPrincipal,
    csrf: SecretString,
}

/// `{"name", "role", "csrf_token"}`: what the page needs to know about its session.
#[derive(Serialize)]
struct SessionView<'a> {
    name: &'a str,
    role: Role,
    csrf_token: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: SecretString,
}

fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn session_key(state: &AppState, id: &str) -> String {
    state
        .keys
        .admin_session(&state.keyring.digest(&["admin-session", id]))
}

fn token_digest(state: &AppState, token: &SecretString) -> String {
    state
        .keyring
        .digest(&["admin-token", token.expose_secret()])
}

/// The session id in the request's `Cookie` headers, if it has the shape of one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
        // Anything longer is not an id this server made; no need to hash megabytes of it.
        .filter(|v| v.len() <= 64)
}

fn store_error(e: crate::store::StoreError) -> AdminError {
    AdminError::from(crate::directory::DirectoryError::Store(e))
}

fn expired() -> AdminError {
    AdminError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the session has expired or ended: log in again",
    )
}

/// Loads the session `id`, checks that its token still exists and, for a change, its CSRF token,
/// then restarts its idle timer.
pub async fn resume(
    state: &AppState,
    admin: &AdminSettings,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Resumed, AdminError> {
    let key = session_key(state, id);
    let raw = state
        .store
        .get(&key)
        .await
        .map_err(store_error)?
        .ok_or_else(expired)?;
    let record: Record = serde_json::from_str(&raw).map_err(|_| expired())?;
    let token = admin
        .tokens
        .iter()
        .find(|t| t.name == record.name)
        .filter(|t| {
            bool::from(crate::crypto::same_secret(
                token_digest(state, &t.token).as_bytes(),
                record.token.as_bytes(),
            ))
        });
    let Some(token) = token else {
        // The token was removed or replaced: the session goes with it.
        state.store.del(&key).await.map_err(store_error)?;
        return Err(expired());
    };
    // However busy, a session ends this long after login: a stolen cookie is not good forever.
    let age = state.clock.now_unix().saturating_sub(record.login_at);
    let Some(left) = admin
        .session_max_seconds
        .checked_sub(age)
        .filter(|l| *l > 0)
    else {
        state.store.del(&key).await.map_err(store_error)?;
        return Err(expired());
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !bool::from(crate::crypto::same_secret(
            sent.as_bytes(),
            record.csrf.as_bytes(),
        )) || sent.is_empty()
        {
            return Err(AdminError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a change made with the session cookie needs the X-CSRF-Token header the login answered",
            ));
        }
    }
    // Only the timer restarts: a logout racing this request stays a logout. Never past the
    // absolute end, so the store drops the session then by itself.
    state
        .store
        .expire(
            &key,
            Duration::from_secs(admin.session_idle_seconds.min(left)),
        )
        .await
        .map_err(store_error)?;
    Ok(Resumed {
        principal: AdminPrincipal {
            name: record.name,
            role: token.role,
        },
        csrf: SecretString::from(record.csrf),
    })
}

/// `Set-Cookie` for a new session, or (with `None`) one that makes the browser forget it.
fn set_cookie(state: &AppState, id: Option<&str>) -> String {
    let secure = if state.snapshot().settings.admin_cookie_secure() {
        "; Secure"
    } else {
        ""
    };
    match id {
        Some(id) => format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/admin{secure}"),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=0{secure}"),
    }
}

fn answer(resumed: &Resumed, cookie: Option<String>) -> Result<HttpResponse, AdminError> {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Some(c) = cookie {
        let value =
            HeaderValue::from_str(&c).map_err(|e| AdminError::internal(&format!("cookie: {e}")))?;
        res.insert_header((header::SET_COOKIE, value));
    }
    Ok(res.json(SessionView {
        name: &resumed.principal.name,
        role: resumed.principal.role,
        csrf_token: resumed.csrf.expose_secret(),
    }))
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// POST: a token in, a session out. Wrong tokens are audited and limited per peer address.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Login>,
) -> Result<HttpResponse, AdminError> {
    let snapshot = state.snapshot();
    let admin = &snapshot.settings.admin;
    if admin.tokens.is_empty() {
        return Err(disabled());
    }
    let peer = peer(&req);
    // Peers outside admin.allowed_networks never get here: the /admin middleware refuses them
    // before anything is counted.
    let failures_key = state
        .keys
        .admin_login_failures(&crate::http::caller_auth::peer_key_of(req.peer_addr()));
    // Counted before the token is looked at, so a burst of parallel guesses meets the limit too;
    // a right token gives its count back.
    let attempts = state
        .store
        .incr_window(&failures_key, LOGIN_WINDOW)
        .await
        .map_err(store_error)?;
    if attempts > LOGIN_FAILURES_ALLOWED {
        state.store.decr(&failures_key).await.map_err(store_error)?;
        tracing::warn!(target: "audit", event = "admin-login", peer = %peer, outcome = "rate-limited", "admin login refused");
        let mut res = AdminError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "too many wrong tokens from this address: wait a minute",
        )
        .error_response();
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(LOGIN_WINDOW.as_secs()),
        );
        return Ok(res);
    }
    let Some(token) = find_token(&admin.tokens, body.token.expose_secret().trim()) else {
        tracing::warn!(target: "audit", event = "admin-login", peer = %peer, outcome = "wrong-token", "admin login refused");
        return Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "that is not one of admin.tokens",
        ));
    };
    state.store.decr(&failures_key).await.map_err(store_error)?;
    let id = random_id();
    let record = Record {
        name: token.name.clone(),
        token: token_digest(&state, &token.token),
        csrf: random_id(),
        login_at: state.clock.now_unix(),
    };
    let raw = serde_json::to_string(&record).map_err(|e| AdminError::internal(&e))?;
    state
        .store
        .set(
            &session_key(&state, &id),
            &raw,
            Some(Duration::from_secs(
                admin.session_idle_seconds.min(admin.session_max_seconds),
            )),
        )
        .await
        .map_err(store_error)?;
    tracing::info!(target: "audit", event = "admin-login", admin = %token.name, peer = %peer, outcome = "ok", "admin logged in");
    let resumed = Resumed {
        principal: AdminPrincipal {
            name: record.name,
            role: token.role,
        },
        csrf: SecretString::from(record.csrf),
    };
    answer(&resumed, Some(set_cookie(&state, Some(&id))))
}

/// The session behind the request's cookie: 401 without one.
async fn current(req: &HttpRequest, state: &AppState) -> Result<(Resumed, String), AdminError> {
    let snapshot = state.snapshot();
    let admin = &snapshot.settings.admin;
    if admin.tokens.is_empty() {
        return Err(disabled());
    }
    let id = cookie(req.headers()).ok_or_else(unauthorized)?;
    let resumed = resume(state, admin, &id, req.method(), req.headers()).await?;
    Ok((resumed, id))
}

/// GET: who this session is, and its CSRF token (a reloaded page picks its session up again).
pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let (resumed, _) = current(&req, &state).await?;
    answer(&resumed, None)
}

/// DELETE: logs out (needs the CSRF token like any change), and tells the browser to drop the cookie.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (resumed, id) = current(&req, &state).await?;
    state
        .store
        .del(&session_key(&state, &id))
        .await
        .map_err(store_error)?;
    tracing::info!(target: "audit", event = "admin-logout", admin = %resumed.principal.name, outcome = "ok", "admin logged out");
    let value = HeaderValue::from_str(&set_cookie(&state, None))
        .map_err(|e| AdminError::internal(&format!("cookie: {e}")))?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, value))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).expect("header"));
        }
        h
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        assert_eq!(
            cookie(&headers(&["a=1; tfa_admin=abc; b=2"])).as_deref(),
            Some("abc")
        );
        assert_eq!(
            cookie(&headers(&["a=1", "tfa_admin=xyz"])).as_deref(),
            Some("xyz")
        );
        assert_eq!(cookie(&headers(&["tfa_admin=", "x_tfa_admin=1"])), None);
        assert_eq!(
            cookie(&headers(&[&format!("tfa_admin={}", "a".repeat(65))])),
            None
        );
        assert_eq!(cookie(&HeaderMap::new()), None);
    }
}
