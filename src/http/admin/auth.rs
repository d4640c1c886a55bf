//! The admin guard: a `from_fn` middleware that accepts `Authorization: Bearer <token>` when the token
//! is one of `admin.tokens`, or the admin page's session cookie (with `X-CSRF-Token` on every change),
//! checks the credential's role against the method, and records the caller as an [`AdminPrincipal`].
//! With no token configured the admin API is off: every request answers 403.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use super::AdminError;
// The principal lives apart from this guard so sessions can make one without importing the guard.
pub use super::principal::{AdminPrincipal, Role};
use super::principal::{disabled, find_token, unauthorized};
use crate::config::admin::AdminTokens;
use crate::state::AppState;

/// Checks an `Authorization` header against the configured tokens.
pub fn authenticate(
    tokens: &AdminTokens,
    header: Option<&HeaderValue>,
) -> Result<AdminPrincipal, AdminError> {
    if tokens.is_empty() {
        return Err(disabled());
    }
    let presented = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    find_token(tokens, presented)
        .map(|t| AdminPrincipal {
            name: t.name.clone(),
            role: t.role,
        })
        .ok_or_else(unauthorized)
}

/// Whether the request's peer may reach the admin surface at all (`admin.allowed_networks`).
pub(super) fn network_refusal(state: &AppState, req: &ServiceRequest) -> Option<AdminError> {
    (!crate::http::caller_auth::peer_in(
        &state.snapshot().settings.admin.allowed_networks,
        req.peer_addr(),
    ))
    .then(|| {
        AdminError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this address may not use the admin API (admin.allowed_networks)",
        )
    })
}

/// Who is asking: a bearer token when one is sent (a script), else the page's session cookie.
async fn principal(state: &AppState, req: &ServiceRequest) -> Result<AdminPrincipal, AdminError> {
    let snapshot = state.snapshot();
    let admin = &snapshot.settings.admin;
    if admin.tokens.is_empty() {
        return Err(disabled());
    }
    if let Some(header) = req.headers().get(AUTHORIZATION) {
        return authenticate(&admin.tokens, Some(header));
    }
    match super::session::cookie(req.headers()) {
        Some(id) => super::session::resume(state, admin, &id, req.method(), req.headers())
            .await
            .map(|s| s.principal),
        None => Err(unauthorized()),
    }
}

/// The scope's middleware: lets authenticated requests their role allows through with an
/// [`AdminPrincipal`] attached, and answers everything else itself (401 or 403 as JSON).
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        // The address first: a peer outside admin.allowed_networks learns nothing about tokens.
        Some(state) => match network_refusal(state, &req) {
            Some(refusal) => Err(refusal),
            None => principal(state, &req).await,
        },
        None => Err(AdminError::internal(&"application state missing")),
    };
    let verdict = verdict.and_then(|p| {
        if p.role.allows(req.method().as_str()) {
            Ok(p)
        } else {
            Err(AdminError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("role {} may not {} {}", p.role, req.method(), req.path()),
            ))
        }
    });
    match verdict {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => {
            tracing::warn!(target: "audit", event = "admin-auth", outcome = e.code, method = %req.method(), path = %req.path(), "admin request refused");
            Ok(req.into_response(e.error_response()).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &str) -> AdminTokens {
        #[derive(serde::Deserialize)]
        struct Doc {
            tokens: AdminTokens,
        }
        toml::from_str::<Doc>(&format!("tokens = {list}"))
            .expect("tokens")
            .tokens
    }

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).expect("header")
    }

    #[test]
    fn accepts_any_configured_token_and_names_which() {
        let t = tokens(r#"["alpha-token", "desk:read:beta-token"]"#);
        let auth = |v: &str| authenticate(&t, Some(&header(v))).map(|p| (p.name, p.role));
        assert_eq!(
            auth("Bearer alpha-token").ok(),
            Some(("token-1".into(), Role::Admin))
        );
        assert_eq!(
            auth("bearer  beta-token ").ok(),
            Some(("desk".into(), Role::Read))
        );
        for bad in [
            "Bearer alpha",
            "Bearer alpha-token-x",
            "Bearer ",
            "Basic alpha-token",
            "alpha-token",
            "Bearer ALPHA-TOKEN",
            "Bearer desk:read:beta-token",
        ] {
            let e = auth(bad).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        assert_eq!(
            authenticate(&t, None).map_err(|e| e.status).err(),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn no_tokens_means_disabled() {
        for t in [tokens("[]"), tokens(r#"[""]"#)] {
            let e = authenticate(&t, Some(&header("Bearer "))).expect_err("disabled");
            assert_eq!(e.status, StatusCode::FORBIDDEN);
            assert_eq!(e.code, "admin-disabled");
        }
    }
}
