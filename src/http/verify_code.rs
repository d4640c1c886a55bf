//! `/v1/code-authentication`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::params::{self, Ctx};
use super::{status_of, xml_ok};
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::{self, Endpoint};

pub async fn verify_code(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ctx = Ctx {
        endpoint: Endpoint::VerifyCode,
        state: &state,
    };
    let params = params::extract(&ctx, &req, payload).await?;
    let customer = params.customer_id(&ctx)?;
    let call = params.call_id(&ctx)?;
    let method = params.method(&ctx)?;
    // Present but empty (the caller said nothing) is a wrong code; absent is a malformed request.
    let code = params.get("authCode_nbest1").ok_or_else(|| {
        ctx.err(
            ErrorKind::BadRequest,
            "missing authCode_nbest1: send the code the caller entered",
        )
    })?;
    let outcome = crate::codes::verify(&state, &customer, call.as_ref(), method, code).await;
    Ok(xml_ok(xml::status(
        Endpoint::VerifyCode,
        status_of(&state, outcome),
    )))
}
