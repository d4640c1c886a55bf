//! The admin API under `/admin/v1`: its own scope behind its own bearer-token guard (`auth`), JSON in
//! and out, JSON errors. Handlers take an [`auth::AdminPrincipal`], so none can run unguarded.

pub mod auth;
pub mod customers;
pub mod desk;
pub mod page;
pub mod principal;
pub mod session;
pub mod settings;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Serialize;

/// Admin bodies are small JSON documents; anything bigger is refused before parsing.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// Mounts `/admin/v1`. Everything inside, unknown paths included, passes the guard first, so an
/// unauthenticated client learns nothing about what exists.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .wrap(from_fn(auth::require_admin))
            .wrap(from_fn(page::surface))
            .app_data(json_config(MAX_JSON_BYTES))
            .service(
                web::resource("/customers/{id}")
                    .route(web::get().to(customers::get))
                    .route(web::put().to(customers::put))
                    .route(web::delete().to(customers::delete))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("GET, PUT, DELETE")
                    })),
            )
            .service(
                web::resource("/customers/{id}/totp")
                    .route(web::post().to(customers::enrol))
                    .route(web::delete().to(customers::revoke))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("POST, DELETE")
                    })),
            )
            .service(
                web::resource("/customers")
                    .route(web::get().to(desk::list))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("GET")
                    })),
            )
            .service(
                web::resource("/customers:import")
                    .app_data(json_config(desk::MAX_IMPORT_BYTES))
                    .route(web::post().to(desk::import))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("POST")
                    })),
            )
            .service(
                web::resource("/customers/{id}/lock")
                    .route(web::delete().to(desk::unlock))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("DELETE")
                    })),
            )
            .service(
                web::resource("/settings")
                    .route(web::get().to(settings::get))
                    .route(web::patch().to(settings::patch))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("GET, PATCH")
                    })),
            )
            .service(
                web::resource("/settings/history")
                    .route(web::get().to(settings::history))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("GET")
                    })),
            )
            .service(
                web::resource("/test-email")
                    .route(web::post().to(desk::test_email))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("POST")
                    })),
            )
            .service(
                web::resource("/test-sms")
                    .route(web::post().to(desk::test_sms))
                    .default_service(web::to(|_: auth::AdminPrincipal| async {
                        method_not_allowed("POST")
                    })),
            )
            .default_service(web::to(|_: auth::AdminPrincipal| async {
                Err::<HttpResponse, _>(AdminError::not_found("no such admin resource"))
            })),
    );
    // After /admin/v1, so that scope keeps its paths: the page and /admin/session.
    page::configure(cfg);
}

fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, AdminError> {
    let mut e = AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("use {allow}"),
    );
    e.allow = Some(allow);
    Err(e)
}

/// Bad or oversized JSON answers 400/413 with a JSON error, never a 5xx or actix's plain text.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, req| {
            use actix_web::error::JsonPayloadError as E;
            let e = match &err {
                E::Payload(p) if crate::http::body_deadline::is_timeout(p) => {
                    let ms = req
                        .app_data::<web::Data<crate::state::AppState>>()
                        .map(|s| s.snapshot().settings.server.body_timeout_ms)
                        .unwrap_or_default();
                    AdminError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request-timeout",
                        crate::http::body_deadline::timeout_message(ms),
                    )
                }
                E::OverflowKnownLength { .. } | E::Overflow { .. } => AdminError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    format!("the body is larger than {limit} bytes"),
                ),
                E::ContentType => AdminError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "send Content-Type: application/json",
                ),
                E::Deserialize(e) => AdminError::bad_request(format!("invalid JSON: {e}")),
                other => AdminError::bad_request(format!("cannot read the body: {other}")),
            };
            e.into()
        })
}

/// An admin API error: `{"error": "<stable kebab-case code>", "message": "<what to fix>"}`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// The setting a refused settings change is about, so a form can show the message beside it.
    pub key: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            code,
            message: message.into(),
            allow: None,
            key: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }
    pub fn not_found(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::NOT_FOUND, "not-found", message)
    }
    /// Logs the cause and answers an opaque 500 (503 when the store is down): internals stay in logs.
    pub fn internal(cause: &dyn std::fmt::Display) -> AdminError {
        tracing::error!(cause = %cause, "admin operation failed");
        AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the log has details under this request's id",
        )
    }
}

impl From<crate::directory::DirectoryError> for AdminError {
    fn from(e: crate::directory::DirectoryError) -> AdminError {
        use crate::directory::DirectoryError as D;
        match e {
            D::Invalid(m) => AdminError::bad_request(m),
            D::Store(s) => AdminError::from(s),
            D::ReadOnly(_) => {
                AdminError::new(StatusCode::CONFLICT, "read-only-directory", e.to_string())
            }
            D::Source(cause) => {
                tracing::error!(cause = %cause, "admin operation failed: directory source");
                AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "directory-unavailable",
                    format!(
                        "the customer directory ({}) did not answer; try again",
                        cause.source_name
                    ),
                )
            }
            other => AdminError::internal(&other),
        }
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> AdminError {
        use crate::store::StoreError as S;
        match e {
            S::Unavailable(m) => {
                tracing::error!(cause = %m, "admin operation failed: store unavailable");
                AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "the store is unreachable; try again",
                )
            }
            S::Unsupported(m) => AdminError::new(StatusCode::NOT_IMPLEMENTED, "not-supported", m),
            S::Invalid(m) => AdminError::bad_request(m),
            other => AdminError::internal(&other),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"twofactor-admin\""),
            ));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a slow body may still be on its way; the connection cannot be reused.
            res.force_close();
        }
        if let Some(allow) = self.allow {
            res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        res.json(ErrorBody {
            error: self.code,
            message: &self.message,
            key: self.key.as_deref(),
        })
    }
}
