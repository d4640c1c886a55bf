//! Routes: the callflow endpoints under `/v1`, the admin API under `/admin/v1`, health and metrics.

pub mod admin;
pub mod body_deadline;
pub mod caller_auth;
pub mod check_methods;
pub mod health;
pub mod params;
pub mod send_code;
pub mod verify_code;

use actix_web::{HttpResponse, web};

use crate::codes::Outcome;
use crate::config::Statuses;
use crate::error::{ApiError, ErrorKind, XML_CONTENT_TYPE};
use crate::state::AppState;
use crate::xml::Endpoint;

/// Everything on one listener (`admin.bind` empty).
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_public(cfg);
    configure_admin(cfg);
}

/// The public listener: callflow endpoints and health.
pub fn configure_public(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .wrap(actix_web::middleware::from_fn(caller_auth::guard))
            .service(callflow(
                "/check-verified-contact-methods",
                Endpoint::CheckMethods,
                check_methods::check_methods,
            ))
            .service(callflow(
                "/send-authentication-code",
                Endpoint::SendCode,
                send_code::send_code,
            ))
            .service(callflow(
                "/code-authentication",
                Endpoint::VerifyCode,
                verify_code::verify_code,
            )),
    )
    .configure(configure_health);
}

/// `/healthz`, `/readyz`, `/version`: on the public listener, and on the admin one too.
pub fn configure_health(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/version", web::get().to(health::version));
}

/// The admin surface: `/metrics` and `/admin/v1`, on the admin listener when `admin.bind` is set.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(health::metrics))
        .configure(admin::configure);
}

/// A callflow resource: GET and POST; anything else is 405 in the endpoint's XML.
fn callflow<F, Args>(path: &str, endpoint: Endpoint, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::post().to(handler))
        .default_service(web::to(move |state: web::Data<AppState>| async move {
            Err::<HttpResponse, _>(ApiError::new(
                endpoint,
                ErrorKind::MethodNotAllowed,
                &state.snapshot().settings.statuses.error,
                "use GET or POST",
            ))
        }))
}

/// The configured status string for an outcome.
pub fn status_of(s: &Statuses, outcome: Outcome) -> &str {
    match outcome {
        Outcome::Success => &s.success,
        Outcome::NotFound => &s.not_found,
        Outcome::IncorrectCode => &s.incorrect_code,
        Outcome::CodeExpired => &s.code_expired,
        Outcome::Locked(_) => &s.locked,
        Outcome::SendLimited(_) => &s.send_limited,
        Outcome::Error => &s.error,
    }
}

/// The answer for an outcome: its status, and a `<message>` naming the limit when one refused.
pub fn answer(statuses: &Statuses, endpoint: Endpoint, outcome: Outcome) -> HttpResponse {
    let status = status_of(statuses, outcome);
    xml_ok(match outcome.message() {
        Some(message) => crate::xml::error(endpoint, status, message),
        None => crate::xml::status(endpoint, status),
    })
}

pub fn xml_ok(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type(XML_CONTENT_TYPE).body(body)
}
