//! One deadline for reading a whole request body: `server.body_timeout_ms` from the moment the
//! headers are in. actix times out slow headers but not slow bodies, so a client trickling a byte a
//! second would otherwise hold a connection (and a file descriptor) for as long as it likes.
//!
//! The middleware swaps the request's payload for a stream that fails once the deadline passes;
//! whoever reads the body turns that failure into a 408 in their own shape ([`is_timeout`]). A
//! response sent before the body was read to its end closes the connection, so an unread trickle
//! (a route that ignores the body) is not kept alive either.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;

use crate::state::AppState;

/// The marker inside the `io::Error` the payload fails with, so readers can tell it apart.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body not received in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// True when reading the body failed because `server.body_timeout_ms` passed.
pub fn is_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<BodyTimedOut>()))
}

/// The message every 408 carries, naming the key to change.
pub fn timeout_message(timeout_ms: u64) -> String {
    format!("request body not received within server.body_timeout_ms ({timeout_ms} ms)")
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when the body was read to its end; anything else closes the connection after the answer.
    complete: Rc<Cell<bool>>,
    failed: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        // The deadline first: a client that keeps a byte ready on every poll must not outrun it.
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.failed = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                BodyTimedOut,
            )))));
        }
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            this.complete.set(true);
        }
        next
    }
}

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout_ms = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.snapshot().settings.server.body_timeout_ms);
    let Some(timeout_ms) = timeout_ms.filter(|_| has_body(&req)) else {
        return next.call(req).await;
    };
    let complete = Rc::new(Cell::new(false));
    let deadline = Deadline {
        inner: req.take_payload(),
        sleep: Box::pin(tokio::time::sleep(Duration::from_millis(timeout_ms))),
        complete: complete.clone(),
        failed: false,
    };
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(deadline);
    req.set_payload(Payload::from(stream));
    let mut res = next.call(req).await?;
    if !complete.get() {
        // Unread bytes may still be trickling in: keeping the connection would mean draining them.
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
