//! The admin page at `/admin/` (three files compiled into the binary: no CDN, no build step) and
//! what every `/admin` answer carries: a strict Content-Security-Policy and friends (HSTS too in
//! production), and CORS headers only for the origins `admin.allowed_origins` lists.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, ResponseError, web};

use super::{AdminError, session};
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// The page's own files only; `data:` images for the enrolment QR code; no framing, no `<base>`,
/// forms post nowhere else. No inline script or style is needed, so none is allowed.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `Strict-Transport-Security` on every `/admin` answer in production: one year.
pub const HSTS: &str = "max-age=31536000";

/// Mounts `/admin/` (the page) and `/admin/session` beside `/admin/v1`, which must be mounted first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(surface))
            .app_data(super::json_config(super::MAX_JSON_BYTES))
            .route(
                "",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/admin/"))
                        .finish()
                }),
            )
            .route(
                "/",
                web::get().to(|| file("text/html; charset=utf-8", INDEX_HTML)),
            )
            .route(
                "/app.js",
                web::get().to(|| file("text/javascript; charset=utf-8", APP_JS)),
            )
            .route(
                "/app.css",
                web::get().to(|| file("text/css; charset=utf-8", APP_CSS)),
            )
            .service(
                web::resource("/session")
                    .route(web::post().to(session::login))
                    .route(web::get().to(session::get))
                    .route(web::delete().to(session::logout))
                    .default_service(web::to(|| async {
                        super::method_not_allowed("GET, POST, DELETE")
                    })),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(AdminError::not_found("no such admin resource"))
            })),
    );
}

async fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // A new binary may bring a new page; the few kilobytes are cheap to fetch again.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}

/// Middleware for everything under `/admin`: refuses peers outside `admin.allowed_networks`,
/// answers CORS preflights for listed origins, and adds the security headers to every answer.
pub async fn surface(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (refusal, origin, production) = match req.app_data::<web::Data<AppState>>() {
        Some(state) => {
            let snapshot = state.snapshot();
            let production =
                snapshot.settings.server.environment == crate::config::Environment::Production;
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .filter(|o| {
                    snapshot
                        .settings
                        .admin
                        .allowed_origins
                        .iter()
                        .any(|a| a.as_bytes() == o.as_bytes())
                })
                .cloned();
            (
                super::auth::network_refusal(state, &req),
                origin,
                production,
            )
        }
        None => (
            Some(AdminError::internal(&"application state missing")),
            None,
            false,
        ),
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = match (refusal, &origin) {
        (Some(e), _) => req.into_response(e.error_response()).map_into_right_body(),
        (None, Some(_)) if preflight => req
            .into_response(HttpResponse::new(StatusCode::NO_CONTENT))
            .map_into_right_body(),
        (None, _) => next.call(req).await?.map_into_left_body(),
    };
    secure(res.headers_mut());
    if production {
        // Production is reached over TLS (here or at a proxy): browsers must never try plain HTTP
        // for the admin page again, where the session cookie could be caught. Not
        // includeSubDomains: other hosts of the domain are not this service's to decide.
        res.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if let Some(origin) = origin {
        cors(res.headers_mut(), origin, preflight);
    }
    Ok(res)
}

fn secure(h: &mut HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// CORS for a listed origin: scripts there may call the API with a bearer token. No
/// `Allow-Credentials`: the session cookie is for the page on this origin only.
fn cors(h: &mut HeaderMap, origin: HeaderValue, preflight: bool) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let more: &[(HeaderName, &'static str)] = if preflight {
        &[
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, HEAD, POST, PUT, PATCH, DELETE",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match, X-CSRF-Token",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ]
    } else {
        &[(header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag")]
    };
    for (name, value) in more {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
}
