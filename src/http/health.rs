//! `/healthz` (the process answers), `/readyz` (the store takes writes), `/version`, `/metrics`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// What a refused `/metrics` says, and what start-up logs when production would refuse everyone.
pub const METRICS_REFUSED: &str = "in production /metrics is served on the admin listener (admin.bind) or to admin.allowed_networks only: set one of them\n";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 while the store takes the writes the service makes, else 503; `warnings` lists risks that
/// do not stop the service (a Redis that may evict keys).
/// However the store stalls (a Sentinel lookup against a host that drops packets, say), a probe
/// hears an answer within this: an orchestrator's probe timeout is often a second or two.
const READY_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let key = state.keys.readiness_probe();
    let probe = state.store.readiness(&key);
    let verdict = tokio::time::timeout(READY_DEADLINE, probe)
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::Unavailable(format!(
                "no answer within {} ms",
                READY_DEADLINE.as_millis()
            )))
        });
    match verdict {
        Ok(warnings) => {
            for w in &warnings {
                tracing::debug!(warning = %w, "ready, with a warning");
            }
            HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "warnings": warnings }))
        }
        Err(e) => {
            tracing::warn!(cause = %e, "not ready: the store does not take writes");
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
