//! The admin guard: a `from_fn` middleware that accepts `Authorization: Bearer <token>` when the token
//! is one of `admin.tokens`, and records the caller as an [`AdminPrincipal`] in the request.
//!
//! Tokens are compared as SHA-256 digests with `subtle`, against every configured token without an
//! early exit, so neither the time taken nor a length mismatch tells how close a guess came.
//! With no token configured the admin API is off: every request answers 403.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use secrecy::{ExposeSecret, SecretString};
use subtle::Choice;

use super::AdminError;
use crate::state::AppState;

/// Proof that the request passed the admin guard; admin handlers take it as an argument, so a
/// handler mounted outside the guarded scope fails closed (401) instead of running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// Position (from 1) of the matching token in `admin.tokens`: which credential acted, for the
    /// audit log, without the token itself.
    pub token_number: usize,
}

impl FromRequest for AdminPrincipal {
    type Error = AdminError;
    type Future = std::future::Ready<Result<AdminPrincipal, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<AdminPrincipal>()
                .copied()
                .ok_or_else(unauthorized),
        )
    }
}

fn unauthorized() -> AdminError {
    AdminError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send Authorization: Bearer <one of admin.tokens>",
    )
}

/// Checks an `Authorization` header against the configured tokens.
pub fn authenticate(
    tokens: &[SecretString],
    header: Option<&HeaderValue>,
) -> Result<AdminPrincipal, AdminError> {
    if tokens.iter().all(|t| t.expose_secret().is_empty()) {
        return Err(AdminError::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "the admin API is disabled: set admin.tokens to enable it",
        ));
    }
    let presented = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let mut matched = Choice::from(0);
    let mut number = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        let token = token.expose_secret();
        let hit = crate::crypto::same_secret(token.as_bytes(), presented.as_bytes())
            & Choice::from(u8::from(!token.is_empty()));
        // Which token matched is only needed for the audit line once the check has passed.
        number |= (i + 1) * usize::from(hit.unwrap_u8());
        matched |= hit;
    }
    if bool::from(matched) {
        Ok(AdminPrincipal {
            token_number: number,
        })
    } else {
        Err(unauthorized())
    }
}

/// The scope's middleware: lets authenticated requests through with an [`AdminPrincipal`] attached
/// and answers everything else itself (401 or 403 as JSON).
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        // The address first: a peer outside admin.allowed_networks learns nothing about tokens.
        Some(state)
            if !crate::http::caller_auth::peer_in(
                &state.snapshot().settings.admin.allowed_networks,
                req.peer_addr(),
            ) =>
        {
            Err(AdminError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this address may not use the admin API (admin.allowed_networks)",
            ))
        }
        Some(state) => authenticate(
            &state.snapshot().settings.admin.tokens,
            req.headers().get(AUTHORIZATION),
        ),
        None => Err(AdminError::internal(&"application state missing")),
    };
    match verdict {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => {
            tracing::warn!(target: "audit", event = "admin-auth", outcome = e.code, path = %req.path(), "admin request refused");
            Ok(req.into_response(e.error_response()).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|t| SecretString::from(t.to_string()))
            .collect()
    }

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).expect("header")
    }

    #[test]
    fn accepts_any_configured_token_and_names_which() {
        let t = tokens(&["alpha-token", "beta-token"]);
        let auth = |v: &str| authenticate(&t, Some(&header(v))).map(|p| p.token_number);
        assert_eq!(auth("Bearer alpha-token").ok(), Some(1));
        assert_eq!(auth("bearer  beta-token ").ok(), Some(2));
        for bad in [
            "Bearer alpha",
            "Bearer alpha-token-x",
            "Bearer ",
            "Basic alpha-token",
            "alpha-token",
            "Bearer ALPHA-TOKEN",
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
        for t in [tokens(&[]), tokens(&[""])] {
            let e = authenticate(&t, Some(&header("Bearer "))).expect_err("disabled");
            assert_eq!(e.status, StatusCode::FORBIDDEN);
            assert_eq!(e.code, "admin-disabled");
        }
    }
}
