//! The support desk's admin endpoints: unlock a customer, page through customers, import a seed
//! file's list, and send a test email or SMS with the live settings.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::auth::AdminPrincipal;
use super::customers::{audit, json};
use crate::delivery::test_send::{self, TestSend};
use crate::directory::CustomerView;
use crate::domain::{CustomerId, Email, PhoneNumber};
use crate::state::AppState;

/// An import carries a whole seed file: about 40 000 customers fit. Bigger lists go through the
/// `twofactor customers import` command.
pub const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

/// Customers per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// Cursors this store hands out are short (a number, or a key); anything longer is not one.
const MAX_CURSOR_CHARS: usize = 512;
/// Customer records read at once while filling a page.
const READS_IN_FLIGHT: usize = 16;

/// DELETE …/lock: lifts the customer's lock and every caller-number lock on it, and clears their
/// failure counts; 204, or 404 when there is no such customer.
pub async fn unlock(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = CustomerId::parse(&path).map_err(AdminError::bad_request)?;
    if state.directory.get(&id).await?.is_none() {
        audit(&admin, "admin-customer-unlock", &id, "not found");
        return Err(AdminError::not_found(format!("no customer {id}")));
    }
    let removed = crate::desk::unlock(state.store.as_ref(), &state.keys, &id).await?;
    audit(
        &admin,
        "admin-customer-unlock",
        &id,
        if removed { "unlocked" } else { "not locked" },
    );
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct Page {
    customers: Vec<CustomerView>,
    next_cursor: Option<String>,
}

/// GET /customers?prefix=&cursor=&limit=: one page of customers, one store step per request.
pub async fn list(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let (mut prefix, mut cursor, mut limit) = (String::new(), String::new(), None);
    // Parsed by hand: a malformed query gets this API's JSON error, not actix's text.
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "prefix" => prefix = value.into_owned(),
            "cursor" => cursor = value.into_owned(),
            "limit" => limit = Some(value.into_owned()),
            other => {
                return Err(AdminError::bad_request(format!(
                    "unknown parameter {other:?}: use prefix, cursor and limit"
                )));
            }
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AdminError::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    if !prefix.is_empty() {
        // A prefix of an id is held to an id's rules, so it cannot reach into other keys.
        CustomerId::parse(&prefix)
            .ok()
            .filter(|id| id.as_str() == prefix)
            .ok_or_else(|| {
                AdminError::bad_request(
                    "prefix may hold only visible ASCII characters other than { }, at most 64",
                )
            })?;
    }
    if cursor.chars().count() > MAX_CURSOR_CHARS {
        return Err(AdminError::bad_request(
            "cursor is not one this API gave out",
        ));
    }
    let (keys, next_cursor) = state
        .store
        .scan_page(&state.keys.customer_id_prefix(&prefix), &cursor, limit)
        .await?;
    let ids: Vec<CustomerId> = keys
        .iter()
        .filter_map(|k| state.keys.customer_id_of(k))
        .filter_map(|id| CustomerId::parse(&id).ok())
        .collect();
    let directory = &state.directory;
    let views: Vec<Option<CustomerView>> = futures_util::stream::iter(ids)
        .map(|id| async move { directory.view(&id).await })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let customers: Vec<CustomerView> = views.into_iter().flatten().collect();
    tracing::info!(
        target: "audit",
        event = "admin-customers-list",
        admin = %admin.name,
        listed = customers.len(),
        outcome = if next_cursor.is_some() { "more" } else { "end" },
    );
    Ok(json(
        StatusCode::OK,
        &Page {
            customers,
            next_cursor,
        },
    ))
}

#[derive(Serialize)]
struct Imported {
    imported: usize,
}

/// POST /customers:import: the seed file's JSON list, all or nothing, as `customers import` does.
pub async fn import(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, AdminError> {
    let result = state
        .directory
        .import_json(&body.into_inner().to_string())
        .await;
    let outcome = match &result {
        Ok(_) => "imported",
        Err(crate::directory::DirectoryError::Invalid(_)) => "refused",
        Err(_) => "failed",
    };
    tracing::info!(
        target: "audit",
        event = "admin-customers-import",
        admin = %admin.name,
        imported = result.as_ref().ok(),
        outcome,
    );
    Ok(json(StatusCode::OK, &Imported { imported: result? }))
}

/// `{"to": "…"}` of a test send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestTo {
    to: String,
}

fn audit_test(admin: &AdminPrincipal, event: &str, to: &str, report: &TestSend) {
    tracing::info!(
        target: "audit",
        event,
        admin = %admin.name,
        to,
        elapsed_ms = report.elapsed_ms,
        outcome = if report.sent { "sent" } else { "not sent" },
    );
}

/// POST /test-email: a test email to `to` with the live settings; 200 with what the server said.
pub async fn test_email(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    body: web::Json<TestTo>,
) -> Result<HttpResponse, AdminError> {
    let to = Email::parse(&body.to).map_err(|e| AdminError::bad_request(format!("to: {e}")))?;
    let snapshot = state.snapshot();
    let report = test_send::email(&snapshot.settings, snapshot.email.as_deref(), &to).await;
    audit_test(&admin, "admin-test-email", &to.masked(), &report);
    Ok(json(StatusCode::OK, &report))
}

/// POST /test-sms: a test SMS to `to` with the live settings; 200 with what the gateway said.
pub async fn test_sms(
    admin: AdminPrincipal,
    state: web::Data<AppState>,
    body: web::Json<TestTo>,
) -> Result<HttpResponse, AdminError> {
    let snapshot = state.snapshot();
    let to = PhoneNumber::parse_in(&body.to, snapshot.settings.directory.default_region.0)
        .map_err(|e| AdminError::bad_request(format!("to: {e}")))?;
    let report = test_send::sms(&snapshot.settings, snapshot.sms.as_deref(), &to).await;
    audit_test(&admin, "admin-test-sms", &to.masked(), &report);
    Ok(json(StatusCode::OK, &report))
}
