//! Who may call the callflow endpoints: `security.allowed_networks` (peer address in one of the
//! CIDRs, else 403) and `security.auth_scheme`: `basic` (user id and password, as Genesys protects
//! its own REST APIs), `bearer` (a token from `/oauth/token`) or both; else 401 with one
//! `WWW-Authenticate` challenge per listed scheme. Refusals use the endpoint's shape, XML or JSON.
//!
//! Wrong Basic passwords are counted per peer address in the store: past
//! `security.basic_max_failures` in `security.basic_failure_window_seconds` that address gets 429
//! with `Retry-After`, the right password included, until the window ends; other addresses are not
//! touched. Addresses outside `security.allowed_networks` are refused before anything is counted.
//!
//! The peer address is the TCP peer: `X-Forwarded-For` is not trusted, since any caller can set it.
//! Every per-address counter (here, `/oauth/token`, the admin login) keys it by [`peer_key`].

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
use crate::http::error::{ApiError, ErrorKind};
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
        Refusal::BasicLimited { retry_after } => (
            ErrorKind::TooManyRequests,
            format!(
                "too many wrong credentials from this address: retry after {retry_after} seconds"
            ),
        ),
    };
    let err = ApiError::new(endpoint, kind, &snapshot.settings.statuses.error, message)
        .in_format(format());
    let mut res = err.error_response();
    if let Refusal::BasicLimited { retry_after } = refusal {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
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
    /// The address is over `security.basic_max_failures`; seconds left in its window.
    BasicLimited {
        retry_after: u64,
    },
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
        let right = basic_ok(rest, sec);
        if let Some(retry_after) = basic_limited(req, state, sec, right).await? {
            metrics::counter!("twofactor_caller_refused_total", "reason" => "basic_limited")
                .increment(1);
            tracing::warn!(peer = ?req.peer_addr().map(|a| a.ip()), retry_after, "caller refused: too many wrong Basic credentials from this address");
            return Ok(Some(Refusal::BasicLimited { retry_after }));
        }
        if right {
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

/// Counts a wrong Basic password against the peer's address and tells whether that address is
/// over `security.basic_max_failures`; `Some` holds the seconds left in its window.
///
/// The password is judged first (no store needed), then one store operation decides: a wrong one
/// increments, a right one only reads. Redis (or the memory store's lock) orders those operations,
/// so however many guesses race, a right password is accepted only while fewer than the limit of
/// wrong ones came before it.
async fn basic_limited(
    req: &ServiceRequest,
    state: &AppState,
    sec: &SecuritySettings,
    right: bool,
) -> Result<Option<u64>, crate::store::StoreError> {
    if sec.basic_max_failures == 0 {
        return Ok(None);
    }
    let key = state.keys.basic_failures(&peer_key_of(req.peer_addr()));
    let window = std::time::Duration::from_secs(sec.basic_failure_window_seconds);
    let over = if right {
        let count = bounded(state.store.get(&key))
            .await?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        count >= sec.basic_max_failures
    } else {
        bounded(state.store.incr_window(&key, window)).await? > sec.basic_max_failures
    };
    if !over {
        return Ok(None);
    }
    let left = match bounded(state.store.ttl(&key)).await? {
        // Rounded up, so a client that waits exactly this long finds the window over.
        crate::store::Ttl::Left(d) => d.as_millis().div_ceil(1000).max(1) as u64,
        // Gone in between: the window has just ended.
        crate::store::Ttl::Missing => 1,
        crate::store::Ttl::Forever => window.as_secs(),
    };
    Ok(Some(left))
}

/// A store call bounded like the token lookup, so a slow store still leaves the handler time to
/// answer the callflow.
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, crate::store::StoreError> {
    tokio::time::timeout(TOKEN_LOOKUP_DEADLINE, call)
        .await
        .map_err(|_| {
            crate::store::StoreError::Unavailable("the store did not answer in time".into())
        })?
}

/// The key a peer's per-address counters are kept under: an IPv4 address as it is (an IPv4-mapped
/// IPv6 address as its IPv4), any other IPv6 address as its /64 network (`2001:db8:1:2::/64`).
/// One subscriber or host is usually handed a whole /64, so counting single IPv6 addresses would
/// let it rotate through 2^64 of them: past every limit, and filling the store with counters.
pub fn peer_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ipnet::Ipv6Net::new(v6, 64)
                .map(|n| n.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
    }
}

/// [`peer_key`] of a request's TCP peer; `unknown` without one (one shared counter, never none).
pub fn peer_key_of(peer: Option<std::net::SocketAddr>) -> String {
    peer.map(|a| peer_key(a.ip()))
        .unwrap_or_else(|| "unknown".to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_keys_group_ipv6_by_64_and_keep_ipv4() {
        let cases = [
            ("192.0.2.7", "192.0.2.7", "IPv4 as it is"),
            (
                "::ffff:192.0.2.7",
                "192.0.2.7",
                "IPv4-mapped IPv6 is its IPv4",
            ),
            (
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                "2001:db8:1:2::/64",
                "IPv6 is its /64",
            ),
            (
                "2001:db8:1:2::1",
                "2001:db8:1:2::/64",
                "another address of that /64 shares its key",
            ),
            (
                "2001:db8:1:3::1",
                "2001:db8:1:3::/64",
                "the next /64 does not",
            ),
            ("::1", "::/64", "loopback"),
        ];
        for (ip, want, what) in cases {
            let ip: std::net::IpAddr = ip.parse().expect("an address");
            assert_eq!(peer_key(ip), want, "{what}");
        }
        assert_eq!(peer_key_of(None), "unknown");
    }
}
