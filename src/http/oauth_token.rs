//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4). The client authenticates
//! with HTTP Basic or with `client_id` and `client_secret` in the form body (§2.3.1); errors are
//! §5.2 JSON. Failed client authentications are counted per peer address (IPv6 by /64, see
//! `caller_auth::peer_key`): over `security.oauth_max_failures` in
//! `security.oauth_failure_window_seconds` the endpoint answers 429 to that address, whatever the
//! secret, until the window ends. They are counted per client id too, but only to warn: a client id
//! is no secret, and refusing by id would let a stranger who knows it stop that client everywhere,
//! so the right secret from an address that has not been guessing always gets its token.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::json;

use super::caller_auth::BASIC_CHALLENGE;
use super::params::{BodyError, form_decode};
use crate::auth::oauth;
use crate::domain::truncate;
use crate::state::AppState;

/// An RFC 6749 §5.2 error answer; never cached. The description keeps to the characters §5.2
/// allows (printable ASCII but `"` and `\\`), so a caller's odd parameter name cannot break clients.
fn error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    let description: String = description
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect();
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, BASIC_CHALLENGE));
    }
    res.json(json!({ "error": code, "error_description": description }))
}

fn invalid_request(description: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client() -> HttpResponse {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
}

/// Store trouble: the request may be fine, so it is a 503 the client may retry, with §5.2's shape.
fn unavailable() -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the token store cannot be reached: try again shortly",
    )
}

/// Any method but POST.
pub async fn method_not_allowed() -> HttpResponse {
    let mut res = invalid_request("use POST with an application/x-www-form-urlencoded body");
    *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    res
}

/// How the client presented its credentials.
enum Credentials {
    None,
    Pair {
        id: String,
        secret: String,
    },
    /// Malformed, or presented twice (header and body): RFC 6749 §2.3 allows one method only.
    Bad(&'static str),
}

fn credentials(req: &HttpRequest, form: &[(String, String)]) -> Credentials {
    let body_id = find(form, "client_id");
    let body_secret = find(form, "client_secret");
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match (header, body_id) {
        (Some(_), Some(_)) => Credentials::Bad(
            "client credentials were sent both in the Authorization header and in the body: use one",
        ),
        (Some(h), None) => basic(h),
        (None, Some(id)) => match body_secret {
            Some(secret) => Credentials::Pair {
                id: id.to_string(),
                secret: secret.to_string(),
            },
            None => Credentials::None,
        },
        (None, None) => Credentials::None,
    }
}

/// `Basic base64(id:secret)`. RFC 6749 §2.3.1 form-encodes id and secret before base64, which many
/// clients skip; both readings are tried by the caller (see [`candidates`]).
fn basic(header: &str) -> Credentials {
    let Some((scheme, encoded)) = header.trim().split_once(' ') else {
        return Credentials::None;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::None;
    }
    let Some(decoded) = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Credentials::Bad("the Authorization header is not valid Basic credentials");
    };
    match decoded.split_once(':') {
        Some((id, secret)) => Credentials::Pair {
            id: id.to_string(),
            secret: secret.to_string(),
        },
        None => Credentials::Bad("the Authorization header is not valid Basic credentials"),
    }
}

/// The id and secret as sent, and form-decoded when that differs (RFC 6749 §2.3.1).
fn candidates(id: &str, secret: &str) -> Vec<(String, String)> {
    let mut out = vec![(id.to_string(), secret.to_string())];
    if let (Some(i), Some(s)) = (form_decode(id), form_decode(secret))
        && (i != id || s != secret)
    {
        out.push((i, s));
    }
    out
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let sec = &settings.security;
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    if !super::caller_auth::peer_in(&sec.allowed_networks, req.peer_addr()) {
        tracing::warn!(target: "audit", event = "oauth-token", peer = %peer, outcome = "address-refused", "token refused: address not in security.allowed_networks");
        return error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "caller address is not allowed",
        );
    }
    let form = match read_form(&req, payload, settings).await {
        Ok(form) => form,
        Err(res) => return res,
    };
    match find(&form, "grant_type") {
        None => return invalid_request("missing grant_type: send grant_type=client_credentials"),
        Some("client_credentials") => {}
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!(
                    "grant_type {} is not supported: only client_credentials",
                    truncate(other, 64)
                ),
            );
        }
    }
    let (id, secret) = match credentials(&req, &form) {
        Credentials::Pair { id, secret } => (id, secret),
        Credentials::None => {
            tracing::warn!(target: "audit", event = "oauth-token", peer = %peer, outcome = "no-credentials", "token refused: no client credentials");
            return invalid_client();
        }
        Credentials::Bad(why) => return invalid_request(why),
    };

    // The address is counted before the secret is looked at, so a burst of parallel guesses meets
    // the limit too; a right secret gives its count back. Only the address is ever refused: a
    // client id is no secret, so refusing per id would let anyone who knows it stop that client.
    let window = Duration::from_secs(sec.oauth_failure_window_seconds);
    let peer_counter = state
        .keys
        .oauth_peer_failures(&super::caller_auth::peer_key_of(req.peer_addr()));
    let attempts = match state.store.incr_window(&peer_counter, window).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "token refused: store unavailable");
            return unavailable();
        }
    };
    let give_back = || async {
        if let Err(e) = state.store.decr(&peer_counter).await {
            tracing::warn!(error = %e, "could not give back a token attempt");
        }
    };
    let client_log = format!("{:?}", truncate(&id, 64));
    if attempts > sec.oauth_max_failures {
        give_back().await;
        let retry_after = match state.store.ttl(&peer_counter).await {
            // Rounded up, so a client that waits exactly this long finds the window over.
            Ok(crate::store::Ttl::Left(d)) => d.as_millis().div_ceil(1000).max(1) as u64,
            _ => window.as_secs(),
        };
        tracing::warn!(target: "audit", event = "oauth-token", client = %client_log, peer = %peer, outcome = "rate-limited", "token refused: too many failed client authentications from this address");
        let mut res = error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_client",
            "too many failed client authentications from this address: try again later",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return res;
    }
    let client = candidates(&id, &secret)
        .iter()
        .find_map(|(i, s)| oauth::authenticate(sec, i, s));
    let Some(client) = client else {
        tracing::warn!(target: "audit", event = "oauth-token", client = %client_log, peer = %peer, outcome = "bad-credentials", "token refused: unknown client or wrong secret");
        alert_client_guessing(&state, sec, &id, &client_log, window).await;
        return invalid_client();
    };
    give_back().await;
    let token = match oauth::issue(&state, sec, &client.id).await {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "token not issued: store unavailable");
            return unavailable();
        }
    };
    tracing::info!(target: "audit", event = "oauth-token", client = %client.id, peer = %peer, outcome = "issued", "access token issued");
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": sec.oauth_token_ttl_seconds,
        }))
}

/// Counts a failed authentication against the client id (keyed by a digest, so any string a caller
/// sends makes a short key) and, past `security.oauth_max_failures` in the window, warns once per
/// window per id and counts `twofactor_oauth_client_guessing_total`. Never refuses: someone is
/// guessing that client's secret from many addresses, which the operator should hear about, but
/// the client's own requests from its own addresses must keep working.
async fn alert_client_guessing(
    state: &AppState,
    sec: &crate::config::SecuritySettings,
    id: &str,
    client_log: &str,
    window: Duration,
) {
    let digest = state
        .keyring
        .digest(&["oauth client id", &truncate(id, 256)]);
    let counted = state
        .store
        .incr_window(&state.keys.oauth_client_failures(&digest), window)
        .await;
    let first_alert = match counted {
        Ok(n) if n > sec.oauth_max_failures => {
            state
                .store
                .set_nx(&state.keys.oauth_client_alert(&digest), "1", window)
                .await
        }
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    };
    match first_alert {
        Ok(true) => {
            metrics::counter!("twofactor_oauth_client_guessing_total").increment(1);
            tracing::warn!(target: "audit", event = "oauth-token", client = %client_log, outcome = "client-guessing", max_failures = sec.oauth_max_failures, window_seconds = window.as_secs(), "more failed client authentications for this client id than security.oauth_max_failures in the window, from any addresses: someone may be guessing its secret (not refused; add security.allowed_networks to fence it)");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not count a failed client authentication against its client id")
        }
    }
}

/// The form body (RFC 6749 §4.4.2: `application/x-www-form-urlencoded`), each name at most once.
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    settings: &crate::config::Settings,
) -> Result<Vec<(String, String)>, HttpResponse> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(invalid_request(
            "send the parameters as an application/x-www-form-urlencoded body",
        ));
    }
    let body = super::params::read_body(req, payload, settings)
        .await
        .map_err(|e| {
            let mut res = invalid_request(&e.message(settings));
            match e {
                BodyError::TooLarge => *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::TimedOut => {
                    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
                    res.head_mut()
                        .set_connection_type(actix_web::http::ConnectionType::Close);
                }
                BodyError::Broken => {}
            }
            res
        })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| invalid_request("request body is not valid UTF-8"))?;
    let pairs = super::params::form_pairs(text).map_err(|e| invalid_request(&e))?;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if v.len() > settings.server.max_param_bytes {
            return Err(invalid_request(&format!(
                "parameter {} is longer than {} bytes",
                truncate(k, 64),
                settings.server.max_param_bytes
            )));
        }
        // RFC 6749 §3.2: parameters must not be included more than once.
        if pairs[..i].iter().any(|(p, _)| p == k) {
            return Err(invalid_request(&format!(
                "parameter {} is given more than once",
                truncate(k, 64)
            )));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_form_decoded_too() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("gc%3Aone:s+e%2Bcret")
        );
        let Credentials::Pair { id, secret } = basic(&header) else {
            panic!("a pair");
        };
        assert_eq!(
            candidates(&id, &secret),
            vec![
                ("gc%3Aone".to_string(), "s+e%2Bcret".to_string()),
                ("gc:one".to_string(), "s e+cret".to_string())
            ]
        );
        assert!(matches!(basic("Bearer abc"), Credentials::None));
        assert!(matches!(basic("Basic !!!"), Credentials::Bad(_)));
    }
}
