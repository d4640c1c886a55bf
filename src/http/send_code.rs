//! `/v1/send-authentication-code`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::answer;
use super::params::{self, Ctx};
use crate::http::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::Endpoint;

pub async fn send_code(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot();
    let mut ctx = Ctx::new(Endpoint::SendCode, &snapshot.settings, &req);
    let params = params::extract(&mut ctx, &req, payload).await?;
    let call = params.call(&ctx)?;
    let method = params.method(&ctx)?.ok_or_else(|| {
        ctx.err(
            ErrorKind::BadRequest,
            "missing TwoFactorAuthSelectedMethod: send Email, SMS or Authenticator",
        )
    })?;
    let outcome = crate::codes::send(&super::rules(&state, &snapshot), &call, method).await;
    Ok(answer::outcome(
        ctx.format,
        &snapshot.settings.statuses,
        Endpoint::SendCode,
        outcome,
    ))
}
