//! `/v1/code-authentication`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::answer;
use super::params::{self, Ctx};
use crate::http::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::Endpoint;

pub async fn verify_code(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot();
    let mut ctx = Ctx::new(Endpoint::VerifyCode, &snapshot.settings, &req);
    let params = params::extract(&mut ctx, &req, payload).await?;
    let call = params.call(&ctx)?;
    let method = params.method(&ctx)?;
    // Present but empty (the caller said nothing) is a wrong code; absent is a malformed request.
    let code = params.get("authCode_nbest1").ok_or_else(|| {
        ctx.err(
            ErrorKind::BadRequest,
            "missing authCode_nbest1: send the code the caller entered",
        )
    })?;
    let outcome = crate::codes::verify(&super::rules(&state, &snapshot), &call, method, code).await;
    Ok(answer::outcome(
        ctx.format,
        &snapshot.settings.statuses,
        Endpoint::VerifyCode,
        outcome,
    ))
}
