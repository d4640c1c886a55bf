//! `/v1/check-verified-contact-methods`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::answer;
use super::params::{self, Ctx};
use crate::codes::Outcome;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::xml::Endpoint;

pub async fn check_methods(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot();
    let mut ctx = Ctx::new(Endpoint::CheckMethods, &snapshot.settings, &req);
    let params = params::extract(&mut ctx, &req, payload).await?;
    let customer = params.customer_id(&ctx)?;
    let statuses = &snapshot.settings.statuses;
    let rules = super::rules(&state, &snapshot);
    Ok(
        match crate::codes::verified_methods(&rules, &customer).await {
            Ok(Some(methods)) => answer::methods(
                ctx.format,
                &statuses.success,
                &methods,
                snapshot.settings.sms.plus_symbol_before_recipient_number,
            ),
            Ok(None) => answer::outcome(
                ctx.format,
                statuses,
                Endpoint::CheckMethods,
                Outcome::NotFound,
            ),
            Err(outcome) => answer::outcome(ctx.format, statuses, Endpoint::CheckMethods, outcome),
        },
    )
}
