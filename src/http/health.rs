//! `/healthz` (the process answers), `/readyz` (the store takes writes, probed at most once a
//! second), `/version`, `/metrics`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// What a refused `/metrics` says, and what start-up logs when production would refuse everyone.
pub const METRICS_REFUSED: &str = "in production /metrics is served on the admin listener (admin.bind) or to admin.allowed_networks only: set one of them\n";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 while the store takes the writes the service makes, else 503; `warnings` lists risks that
/// do not stop the service (a Redis that may evict keys, live settings this instance cannot use).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state
        .readiness
        .verdict(state.store.as_ref(), &state.keys)
        .await
    {
        Ok(mut warnings) => {
            // Not a reason to leave the rotation: the instance serves, on its last good settings.
            warnings.extend(state.live.problem());
            for w in &warnings {
                tracing::debug!(warning = %w, "ready, with a warning");
            }
            HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "warnings": warnings }))
        }
        Err(cause) => {
            tracing::warn!(cause = %cause, "not ready: the store does not take writes");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "status": "store unavailable", "warnings": [] }))
        }
    }
}

pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// Prometheus text. In production without `admin.bind` this is the public listener, so only peers in
/// `admin.allowed_networks` get it (nobody, with that list empty): the counters tell an outsider
/// how the service is used and attacked. On the admin listener, and in development, it is open.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let public_listener = settings.admin.bind.is_empty();
    if public_listener
        && settings.server.environment == crate::config::Environment::Production
        && (settings.admin.allowed_networks.is_empty()
            || !crate::http::caller_auth::peer_in(
                &settings.admin.allowed_networks,
                req.peer_addr(),
            ))
    {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(METRICS_REFUSED);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::metrics_handle().render())
}
