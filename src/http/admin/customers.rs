//! `/admin/v1/customers/{id}`: read, write and delete a customer in the seed file's JSON shape, and
//! `/admin/v1/customers/{id}/totp`: enrol an authenticator. Secrets go in, never come back out, except
//! the one fresh secret an enrolment hands over once.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, web};

use super::AdminError;
use super::auth::AdminPrincipal;
use crate::directory::CustomerInput;
use crate::domain::CustomerId;
use crate::state::AppState;

fn customer_id(raw: &str) -> Result<CustomerId, AdminError> {
    CustomerId::parse(raw).map_err(AdminError::bad_request)
}

/// Admin answers can carry customer data or a secret: no cache may keep them.
pub(super) fn json(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

pub(super) fn audit(admin: &AdminPrincipal, event: &str, customer: &CustomerId, outcome: &str) {
    tracing::info!(
        target: "audit",
        event,
        customer = %customer,
        admin = %admin.name,
        outcome,
    );
}

/// The customer as GET shows it: the record and, for the support desk, its lock and pending code.
#[derive(serde::Serialize)]
struct Detail {
    #[serde(flatten)]
    view: crate::directory::CustomerView,
    #[serde(flatten)]
    standing: crate::desk::Standing,
}

/// GET: the customer without any secret, only whether an authenticator is enrolled, with whether
/// it is locked, the attempts counted and the pending code's method and life (never the code).
pub async fn get(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = customer_id(&path)?;
    let view = state.directory.view(&id).await?;
    audit(
        &admin,
        "admin-customer-get",
        &id,
        if view.is_some() { "found" } else { "not found" },
    );
    let Some(view) = view else {
        return Err(AdminError::not_found(format!("no customer {id}")));
    };
    Ok(json(StatusCode::OK, &detail(&state, &id, view).await?))
}

async fn detail(
    state: &AppState,
    id: &CustomerId,
    view: crate::directory::CustomerView,
) -> Result<Detail, AdminError> {
    let standing = crate::desk::standing(state.store.as_ref(), &state.keys, id).await?;
    Ok(Detail { view, standing })
}

/// PUT: creates (201) or replaces (200) the customer; email and phone are replaced as given, the
/// TOTP secret only when one is given.
pub async fn put(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, AdminError> {
    let id = customer_id(&path)?;
    // serde would also read a struct from a JSON array; only an object is a customer.
    let body = body.into_inner();
    if !body.is_object() {
        return Err(AdminError::bad_request(
            "invalid JSON: expected an object {email, phone, totp_secret}",
        ));
    }
    // `"totp_secret": null` revokes the authenticator; leaving the key out keeps it.
    let revoke = body
        .get("totp_secret")
        .is_some_and(serde_json::Value::is_null);
    let input: CustomerInput = serde_json::from_value(body)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON: {e}")))?;
    if let Some(body_id) = input.id.as_deref()
        && body_id.trim() != id.as_str()
    {
        return Err(AdminError::bad_request(
            "id in the body differs from the id in the path",
        ));
    }
    let valid = state
        .directory
        .validate(&input, Some(id.as_str()))
        .map_err(AdminError::bad_request)?;
    let existed = state.directory.upsert(valid).await?;
    if revoke && state.directory.revoke_totp(&id).await? {
        audit(&admin, "admin-totp-revoke", &id, "revoked");
    }
    audit(
        &admin,
        "admin-customer-put",
        &id,
        if existed { "replaced" } else { "created" },
    );
    let view = state
        .directory
        .view(&id)
        .await?
        .ok_or_else(|| AdminError::internal(&"customer vanished right after it was written"))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, &detail(&state, &id, view).await?))
}

/// DELETE: 204, or 404 when there was no such customer.
pub async fn delete(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = customer_id(&path)?;
    let existed = state.directory.delete(&id).await?;
    audit(
        &admin,
        "admin-customer-delete",
        &id,
        if existed { "deleted" } else { "not found" },
    );
    if existed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(AdminError::not_found(format!("no customer {id}")))
    }
}

/// POST …/totp: a new secret for an existing customer, replacing any earlier one; answers
/// `{"secret", "otpauth_uri", "qr_png_base64"}` this once.
pub async fn enrol(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = customer_id(&path)?;
    let enrolment = state
        .directory
        .enrol(&state.snapshot().settings.totp, &id)
        .await
        .map_err(|e| match e {
            crate::directory::EnrolError::Directory(d) => AdminError::from(d),
            other => AdminError::internal(&other),
        })?;
    audit(
        &admin,
        "admin-totp-enrol",
        &id,
        if enrolment.is_some() {
            "enrolled"
        } else {
            "not found"
        },
    );
    match enrolment {
        Some(e) => Ok(json(StatusCode::OK, &e)),
        None => Err(AdminError::not_found(match state.directory.source_name() {
            "store" => format!("no customer {id}: create it with PUT first"),
            source => {
                format!("no customer {id} in the directory (directory.source = \"{source}\")")
            }
        })),
    }
}

/// DELETE …/totp: removes the authenticator (a lost or stolen phone); 204, or 404 when there is
/// none. Its codes stop working at once and it is no longer offered.
pub async fn revoke(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = customer_id(&path)?;
    let revoked = state.directory.revoke_totp(&id).await?;
    audit(
        &admin,
        "admin-totp-revoke",
        &id,
        if revoked { "revoked" } else { "not found" },
    );
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(AdminError::not_found(format!(
            "customer {id} has no authenticator (or does not exist)"
        )))
    }
}
