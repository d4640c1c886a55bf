//! Errors a caller sees. A malformed callflow request answers 4xx with the endpoint's own root
//! element (or JSON, when the request asked for it), the configured error status and a message
//! naming the problem: never a 5xx.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::http::answer::{self, Format};
use crate::xml::Endpoint;

/// Stable kinds, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    /// The body did not arrive within `server.body_timeout_ms`.
    RequestTimeout,
    /// A limit refused the caller for a while (the answer's `Retry-After` says how long).
    TooManyRequests,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub endpoint: Endpoint,
    pub kind: ErrorKind,
    pub message: String,
    /// The configured `statuses.error` string.
    pub status: String,
    /// The shape the request asked for.
    pub format: Format,
}

impl ApiError {
    pub fn new(
        endpoint: Endpoint,
        kind: ErrorKind,
        status: &str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            endpoint,
            kind,
            message: message.into(),
            status: status.to_string(),
            format: Format::Xml,
        }
    }

    /// The same error, answered in `format`.
    pub fn in_format(mut self, format: Format) -> ApiError {
        self.format = format;
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.content_type(self.format.content_type());
        match self.kind {
            ErrorKind::MethodNotAllowed => {
                res.insert_header((header::ALLOW, HeaderValue::from_static("GET, POST")));
            }
            ErrorKind::Unauthorized => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"twofactor\", charset=\"UTF-8\""),
                ));
            }
            // The rest of a slow body may still be on its way; the connection cannot be reused.
            ErrorKind::RequestTimeout => {
                res.force_close();
            }
            _ => {}
        }
        res.body(answer::body(
            self.format,
            self.endpoint,
            &self.status,
            Some(&self.message),
        ))
    }
}
