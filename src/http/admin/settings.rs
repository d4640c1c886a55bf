//! `/admin/v1/settings`: the live settings as JSON with an `ETag`, changed by a JSON merge patch
//! (RFC 7396) under `If-Match`, and `/admin/v1/settings/history`, the last changes. The rules live
//! in `live`; this file speaks HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AdminError;
use super::auth::AdminPrincipal;
use crate::live::{self, PatchError};
use crate::state::AppState;

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn answer(version: u64, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::ETAG, etag(version)))
        .json(body)
}

/// GET: the live settings; secrets only as `set`/`unset`.
pub async fn get(
    _: AdminPrincipal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (version, view) = live::current(&state.live).await.map_err(fault)?;
    Ok(answer(version, &view))
}

/// PATCH: a merge patch of live keys, applied whole or not at all.
pub async fn patch(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, AdminError> {
    // The scope's JSON reader takes application/merge-patch+json (a +json type) and answers bad,
    // oversized or slow bodies in the admin API's own JSON shape.
    let expected = match req.headers().get(header::IF_MATCH) {
        None => {
            return Err(AdminError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "send If-Match with the ETag of GET /admin/v1/settings, so a change made meanwhile is not overwritten",
            ));
        }
        Some(v) => v
            .to_str()
            .ok()
            .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|s| s.parse::<u64>().ok()),
    };
    let stale = || {
        AdminError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "the settings changed since you read them: GET them again and reapply your change",
        )
    };
    let expected = expected.ok_or_else(stale)?;
    // Replacing an overlay this instance cannot open discards what it held: only when asked so.
    let replace = req
        .headers()
        .get("x-replace-unreadable")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    match live::patch(
        &state.live,
        expected,
        body.into_inner(),
        &admin.name,
        replace,
    )
    .await
    {
        Ok((version, settings)) => Ok(answer(version, &live::view(&settings))),
        Err(PatchError::Stale(_)) => Err(stale()),
        Err(e @ PatchError::Unreadable { .. }) => Err(AdminError::new(
            StatusCode::CONFLICT,
            "settings-unreadable",
            e.to_string(),
        )),
        Err(PatchError::Invalid { key, message }) => {
            let mut e = AdminError::new(StatusCode::BAD_REQUEST, "invalid-setting", message);
            e.key = key;
            Err(e)
        }
        Err(PatchError::Fault(e)) => Err(fault(e)),
    }
}

/// GET …/history: the last changes, newest first.
pub async fn history(
    _: AdminPrincipal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let changes = live::history(&state.live).await.map_err(fault)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(serde_json::json!({ "changes": changes })))
}

/// A store that is away answers 503 as elsewhere in the admin API; anything else is an opaque 500.
fn fault(e: anyhow::Error) -> AdminError {
    match e.downcast::<crate::store::StoreError>() {
        Ok(store) => AdminError::from(store),
        Err(other) => AdminError::internal(&format!("{other:#}")),
    }
}
