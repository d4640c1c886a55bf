//! `/v1/check-verified-contact-methods`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::params::{self, Ctx};
use super::xml_ok;
use crate::error::ApiError;
use crate::state::AppState;
use crate::xml::{self, Endpoint};

pub async fn check_methods(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot();
    let ctx = Ctx {
        endpoint: Endpoint::CheckMethods,
        settings: &snapshot.settings,
    };
    let params = params::extract(&ctx, &req, payload).await?;
    let customer = params.customer_id(&ctx)?;
    let statuses = &snapshot.settings.statuses;
    let rules = crate::codes::Rules::new(&state, &snapshot);
    let body = match crate::codes::verified_methods(&rules, &customer).await {
        Ok(Some(methods)) => xml::methods(
            &statuses.success,
            &methods,
            snapshot.settings.sms.plus_symbol_before_recipient_number,
        ),
        Ok(None) => xml::status(Endpoint::CheckMethods, &statuses.not_found),
        Err(outcome) => xml::status(Endpoint::CheckMethods, super::status_of(statuses, outcome)),
    };
    Ok(xml_ok(body))
}
