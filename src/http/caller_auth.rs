//! Who may call the callflow endpoints: `security.allowed_networks` (peer address in one of the
//! CIDRs, else 403) and `security.auth_scheme`: `basic` (user id and password, as Genesys protects
//! its own REST APIs), `bearer` (a token from `/oauth/token`) or both; else 401 with one
//! `WWW-Authenticate` challenge per listed scheme. Refusals use the endpoint's shape, XML or JSON.
//!
//! The peer address is the TCP peer: `X-Forwarded-For` is not trusted, since any caller can set it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use base64::Engine;
use secrecy::ExposeSecret;

use super::answer::{self, Format};
use crate::codes::Outcome;
use crate::config::{AuthScheme, Network, SecuritySettings};
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::Endpoint;

/// How long a bearer token's lookup in the store may take.
const TOKEN_LOOKUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let snapshot = state.snapshot();
    let sec = &snapshot.settings.security;
    let endpoint = Endpoint::from_path(req.path()).unwrap_or(Endpoint::CheckMethods);
    // Worked out only for a refusal: a request let through gets its format from its parameters.
    let format = || Format::of_request(req.headers(), req.query_string());
    let refusal = if !peer_allowed(&req, sec) {
        metrics::counter!("twofactor_caller_refused_total", "reason" => "network").increment(1);
        tracing::warn!(peer = ?req.peer_addr().map(|a| a.ip()), "caller refused: address not in security.allowed_networks");
        Some(Refusal::Forbidden)
    } else if sec.auth_scheme.is_none() {
        None
    } else {
        match credentials_ok(&req, &state, sec).await {
            Ok(verdict) => verdict,
            Err(e) => {
                // The token cannot be checked: answer as any other store fault does.
                tracing::error!(error = %e, "caller not checked: store unavailable");
                let res = answer::outcome(
                    format(),
                    &snapshot.settings.statuses,
                    endpoint,
                    Outcome::Error,
                );
                return Ok(req.into_response(res));
            }
        }
    };
    let Some(refusal) = refusal else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (kind, message) = match refusal {
        Refusal::Forbidden => (ErrorKind::Forbidden, "caller address is not allowed".to_string()),
        Refusal::NoCredentials | Refusal::WrongBasic => {
            (ErrorKind::Unauthorized, format!("authentication required: {}", wanted(sec)))
        }
        Refusal::BadToken => (
            ErrorKind::Unauthorized,
            "the bearer token is not valid: it is unknown, expired or revoked; fetch a new one from /oauth/token".to_string(),
        ),
    };
    let err = ApiError::new(endpoint, kind, &snapshot.settings.statuses.error, message)
        .in_format(format());
    let mut res = err.error_response();
    if kind == ErrorKind::Unauthorized {
        // One challenge per scheme the caller may use; a refused token says why (RFC 6750 §3.1).
        let headers = res.headers_mut();
        headers.remove(header::WWW_AUTHENTICATE);
        for scheme in sec.auth_scheme.list() {
            let challenge = match (scheme, refusal) {
                (AuthScheme::Basic, _) => BASIC_CHALLENGE,
                (AuthScheme::Bearer, Refusal::BadToken) => INVALID_TOKEN_CHALLENGE,
                (AuthScheme::Bearer, _) => BEARER_CHALLENGE,
                (AuthScheme::None, _) => continue,
            };
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
    }
    Ok(req.into_response(res))
}

pub(super) const BASIC_CHALLENGE: &str = "Basic realm=\"twofactor\", charset=\"UTF-8\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"twofactor\"";
const INVALID_TOKEN_CHALLENGE: &str = "Bearer realm=\"twofactor\", error=\"invalid_token\"";

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Forbidden,
    NoCredentials,
    WrongBasic,
    BadToken,
}

/// What the 401 message asks for.
fn wanted(sec: &SecuritySettings) -> &'static str {
    match (
        sec.auth_scheme.has(AuthScheme::Basic),
        sec.auth_scheme.has(AuthScheme::Bearer),
    ) {
        (true, true) => {
            "Basic scheme with the configured user id and password, or a bearer token from /oauth/token"
        }
        (false, true) => "a bearer token from /oauth/token",
        _ => "Basic scheme with the configured user id and password",
    }
}

/// `None` when the request carries credentials of a listed scheme that check out.
async fn credentials_ok(
    req: &ServiceRequest,
    state: &AppState,
    sec: &SecuritySettings,
) -> Result<Option<Refusal>, crate::store::StoreError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") && sec.auth_scheme.has(AuthScheme::Basic) {
        if basic_ok(rest, sec) {
            return Ok(None);
        }
        metrics::counter!("twofactor_caller_refused_total", "reason" => "credentials").increment(1);
        tracing::warn!("caller refused: wrong Basic credentials");
        return Ok(Some(Refusal::WrongBasic));
    }
    if scheme.eq_ignore_ascii_case("bearer") && sec.auth_scheme.has(AuthScheme::Bearer) {
        // Bounded on its own, so that with the handler's store deadline after it a callflow still
        // hears an answer in good time when the store is slow.
        let lookup = crate::auth::oauth::token_client(state, sec, rest.trim());
        let client = tokio::time::timeout(TOKEN_LOOKUP_DEADLINE, lookup)
            .await
            .map_err(|_| {
                crate::store::StoreError::Unavailable(
                    "the token lookup did not answer in time".into(),
                )
            })??;
        if client.is_some() {
            return Ok(None);
        }
        metrics::counter!("twofactor_caller_refused_total", "reason" => "token").increment(1);
        tracing::warn!("caller refused: unknown, expired or revoked bearer token");
        return Ok(Some(Refusal::BadToken));
    }
    metrics::counter!("twofactor_caller_refused_total", "reason" => "credentials").increment(1);
    tracing::warn!("caller refused: no credentials of a scheme in security.auth_scheme");
    Ok(Some(Refusal::NoCredentials))
}

fn peer_allowed(req: &ServiceRequest, sec: &SecuritySettings) -> bool {
    peer_in(&sec.allowed_networks, req.peer_addr())
}

/// Whether the TCP peer is in one of `networks`; an empty list allows everyone. Shared by the
/// callflow guard (`security.allowed_networks`) and the admin guard (`admin.allowed_networks`).
pub fn peer_in(networks: &[Network], peer: Option<std::net::SocketAddr>) -> bool {
    if networks.is_empty() {
        return true;
    }
    let Some(ip) = peer.map(|a| a.ip()) else {
        return false;
    };
    // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    networks.iter().any(|n| n.0.contains(&ip))
}

fn basic_ok(encoded: &str, sec: &SecuritySettings) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    // Both compared every time, so a right user id with a wrong password takes the same time.
    let user_ok = crate::crypto::same_secret(user, sec.user_id.as_bytes());
    let password_ok = crate::crypto::same_secret(password, sec.password.expose_secret().as_bytes());
    bool::from(user_ok & password_ok)
}
