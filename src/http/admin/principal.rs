//! Who an admin request acts as: the [`AdminPrincipal`] the guard (`auth`) and the page's sessions
//! (`session`) both hand to handlers, the token lookup both use, and their 401/403 answers.
//!
//! Tokens are compared as SHA-256 digests with `subtle`, against every configured token without an
//! early exit, so neither the time taken nor a length mismatch tells how close a guess came.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use secrecy::ExposeSecret;
use subtle::{Choice, ConditionallySelectable};

use super::AdminError;
pub use crate::config::admin::Role;
use crate::config::admin::{AdminToken, AdminTokens};

/// Proof that the request passed the admin guard; admin handlers take it as an argument, so a
/// handler mounted outside the guarded scope fails closed (401) instead of running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// The credential's name in `admin.tokens`: who acted, for audit lines, never the token.
    pub name: String,
    pub role: Role,
}

impl FromRequest for AdminPrincipal {
    type Error = AdminError;
    type Future = std::future::Ready<Result<AdminPrincipal, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<AdminPrincipal>()
                .cloned()
                .ok_or_else(unauthorized),
        )
    }
}

pub(super) fn unauthorized() -> AdminError {
    AdminError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send Authorization: Bearer <one of admin.tokens>, or log in at /admin/",
    )
}

pub(super) fn disabled() -> AdminError {
    AdminError::new(
        StatusCode::FORBIDDEN,
        "admin-disabled",
        "the admin API is disabled: set admin.tokens to enable it",
    )
}

/// The configured token equal to `presented`, compared with every token in constant time.
pub fn find_token<'a>(tokens: &'a AdminTokens, presented: &str) -> Option<&'a AdminToken> {
    let mut matched = Choice::from(0);
    let mut index = 0u64;
    for (i, token) in tokens.iter().enumerate() {
        let hit = crate::crypto::same_secret(
            token.token.expose_secret().as_bytes(),
            presented.as_bytes(),
        );
        // Which token matched is picked without a branch, so the loop takes the same time either way.
        index.conditional_assign(&(i as u64), hit);
        matched |= hit;
    }
    if bool::from(matched) {
        usize::try_from(index)
            .ok()
            .and_then(|i| tokens.iter().nth(i))
    } else {
        None
    }
}
