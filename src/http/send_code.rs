//! `/v1/send-authentication-code`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::params::{self, Ctx};
use super::{status_of, xml_ok};
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::xml::{self, Endpoint};

pub async fn send_code(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ctx = Ctx {
        endpoint: Endpoint::SendCode,
        state: &state,
    };
    let params = params::extract(&ctx, &req, payload).await?;
    let customer = params.customer_id(&ctx)?;
    let call = params.call_id(&ctx)?;
    let method = params.method(&ctx)?.ok_or_else(|| {
        ctx.err(
            ErrorKind::BadRequest,
            "missing TwoFactorAuthSelectedMethod: send Email, SMS or Authenticator",
        )
    })?;
    let outcome = crate::codes::send(&state, &customer, call.as_ref(), method).await;
    Ok(xml_ok(xml::status(
        Endpoint::SendCode,
        status_of(&state, outcome),
    )))
}
