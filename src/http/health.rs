//! `/healthz` (the process answers), `/readyz` (the store takes writes, probed at most once a
//! second), `/version`, `/metrics`.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// What a refused `/metrics` says, and what start-up logs when production would refuse everyone.
pub const METRICS_REFUSED: &str = "in production /metrics is served on the admin listener (admin.bind) or to admin.allowed_networks only: set one of them\n";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// However the store stalls (a Sentinel lookup against a host that drops packets, say), a probe
/// hears an answer within this: an orchestrator's probe timeout is often a second or two.
const READY_DEADLINE: Duration = Duration::from_millis(1500);

/// How long a probe's verdict answers `/readyz`: a probe costs the store a write (and more on
/// Cluster), and `/readyz` is open to anyone who reaches the listener, so requests must not be
/// able to multiply probes.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the store's readiness check found: warnings when it takes writes, else why not.
type Verdict = Result<Vec<String>, String>;

/// The last probe of the store and when it finished, shared by every request of one instance:
/// at most one probe a second, and one at a time (a burst waits for none; it answers from the
/// last verdict while one request probes).
#[derive(Default)]
pub struct Readiness {
    last: std::sync::Mutex<Option<(Instant, Verdict)>>,
    probing: tokio::sync::Mutex<()>,
}

impl Readiness {
    fn last(&self, max_age: Option<Duration>) -> Option<Verdict> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| max_age.is_none_or(|age| at.elapsed() < age))
            .map(|(_, v)| v.clone())
    }

    /// The verdict `/readyz` answers with: the last probe's while it is fresh, else a new probe's.
    async fn verdict(&self, state: &AppState) -> Verdict {
        if let Some(fresh) = self.last(Some(PROBE_EVERY)) {
            return fresh;
        }
        let _probing = match self.probing.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.last(None) {
                // Another request is probing: its answer will be at most as old as this one.
                Some(last) => return last,
                // The first probe since start is under way: wait for it (its deadline bounds this).
                None => self.probing.lock().await,
            },
        };
        // A probe may have finished while this request waited for the lock.
        if let Some(fresh) = self.last(Some(PROBE_EVERY)) {
            return fresh;
        }
        let verdict = probe(state).await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), verdict.clone()));
        verdict
    }
}

/// One readiness check of the store, bounded by [`READY_DEADLINE`]: no answer is a failure.
async fn probe(state: &AppState) -> Verdict {
    let key = state.keys.readiness_probe();
    match tokio::time::timeout(READY_DEADLINE, state.store.readiness(&key)).await {
        Ok(Ok(warnings)) => Ok(warnings),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            READY_DEADLINE.as_millis()
        )),
    }
}

/// 200 while the store takes the writes the service makes, else 503; `warnings` lists risks that
/// do not stop the service (a Redis that may evict keys, live settings this instance cannot use).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness.verdict(&state).await {
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
