//! Routes: the callflow endpoints under `/v1`, the OAuth token endpoint, the admin API under
//! `/admin/v1`, health and metrics.

pub mod admin;
pub mod answer;
pub mod body_deadline;
pub mod caller_auth;
pub mod check_methods;
pub mod error;
pub mod health;
pub mod oauth_token;
pub mod params;
pub mod send_code;
pub mod verify_code;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::codes::Rules;
use crate::http::error::{ApiError, ErrorKind};
use crate::live::Snapshot;
use crate::state::AppState;
use crate::xml::Endpoint;

/// Everything on one listener (`admin.bind` empty).
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_public(cfg);
    configure_admin(cfg);
}

/// The public listener: callflow endpoints, the token endpoint and health.
pub fn configure_public(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/token")
            .route(web::post().to(oauth_token::token))
            .default_service(web::to(oauth_token::method_not_allowed)),
    )
    .service(
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

/// A callflow resource: GET and POST; anything else is 405 in the endpoint's shape.
fn callflow<F, Args>(path: &str, endpoint: Endpoint, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::post().to(handler))
        .default_service(web::to(
            move |req: HttpRequest, state: web::Data<AppState>| async move {
                Err::<HttpResponse, _>(
                    ApiError::new(
                        endpoint,
                        ErrorKind::MethodNotAllowed,
                        &state.snapshot().settings.statuses.error,
                        "use GET or POST",
                    )
                    .in_format(answer::Format::of_request(
                        req.headers(),
                        req.query_string(),
                    )),
                )
            },
        ))
}

/// What the rules see of one callflow request: `snapshot`'s settings and senders, and the state's
/// seams. Built here, on the HTTP side, so the rules never name the state.
fn rules<'a>(state: &'a AppState, snapshot: &'a Snapshot) -> Rules<'a> {
    Rules {
        settings: &snapshot.settings,
        email: snapshot.email.as_deref(),
        sms: snapshot.sms.as_deref(),
        store: &state.store,
        keys: &state.keys,
        keyring: &state.keyring,
        directory: &state.directory,
        clock: state.clock.as_ref(),
    }
}
