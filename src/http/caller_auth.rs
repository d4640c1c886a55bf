//! Who may call the callflow endpoints: `security.allowed_networks` (peer address in one of the
//! CIDRs, else 403) and `security.auth_scheme = "basic"` (user id and password, as Genesys protects
//! its own REST APIs; else 401 with `WWW-Authenticate`). Refusals use the endpoint's XML shape.
//!
//! The peer address is the TCP peer: `X-Forwarded-For` is not trusted, since any caller can set it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use base64::Engine;
use secrecy::ExposeSecret;

use crate::config::{AuthScheme, Network, SecuritySettings};
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::Endpoint;

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let snapshot = state.snapshot();
    let sec = &snapshot.settings.security;
    let refusal = if !peer_allowed(&req, sec) {
        metrics::counter!("twofactor_caller_refused_total", "reason" => "network").increment(1);
        tracing::warn!(peer = ?req.peer_addr().map(|a| a.ip()), "caller refused: address not in security.allowed_networks");
        Some((ErrorKind::Forbidden, "caller address is not allowed"))
    } else if sec.auth_scheme == AuthScheme::Basic && !basic_ok(&req, sec) {
        metrics::counter!("twofactor_caller_refused_total", "reason" => "credentials").increment(1);
        tracing::warn!("caller refused: missing or wrong Basic credentials");
        Some((
            ErrorKind::Unauthorized,
            "authentication required: Basic scheme with the configured user id and password",
        ))
    } else {
        None
    };
    match refusal {
        Some((kind, message)) => {
            let endpoint = Endpoint::from_path(req.path()).unwrap_or(Endpoint::CheckMethods);
            let err = ApiError::new(endpoint, kind, &snapshot.settings.statuses.error, message);
            Ok(req.into_response(err.error_response()))
        }
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
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

fn basic_ok(req: &ServiceRequest, sec: &SecuritySettings) -> bool {
    let Some(encoded) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    else {
        return false;
    };
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
