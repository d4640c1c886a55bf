//! Logs, request ids and metrics. Every request gets an id (from `X-Request-Id` when it is sane,
//! else a new one), carried on its span and echoed in the response. Only the path is logged, never
//! the query string or body, which can carry codes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber; `RUST_LOG` wins over `filter`. A second call is a no-op.
///
/// Lines are written to stdout by a thread of their own through a bounded queue (16 384 lines), so a log reader
/// that stalls (a full pipe to journald or a container runtime) never blocks a request; when the
/// queue is full, lines are dropped rather than waited for. Keep the guard until exit: dropping it
/// writes out what is queued.
/// The service logs to stdout; every other command to stderr, so that its result is all its stdout
/// holds and a script can read it (`twofactor keys reseal` until it prints `resealed 0`).
pub fn init(
    format: LogFormat,
    filter: &str,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    init_to(format, filter, std::io::stdout())
}

/// [`init`], with the lines written to `sink` (a command's stderr).
pub fn init_to(
    format: LogFormat,
    filter: &str,
    sink: impl std::io::Write + Send + 'static,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // 16 384 queued lines is a fifth of a second of the busiest load measured, and bounds the
    // queue at a few megabytes (the default, 128 000 lines, took RSS from 38 to 42 MB under wrk).
    let (stdout, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(16_384)
        .finish(sink);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(stdout),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(stdout))
            .try_init(),
    };
    installed.ok().map(|()| guard)
}

/// Latency buckets in seconds: sub-millisecond memory-store answers up to the slowest SMTP/SMS sends.
/// Buckets make the latency a Prometheus histogram (aggregatable across instances) of fixed size,
/// where the default summary keeps every sample until something renders it.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded samples are folded into the histograms. Without it, samples pile up (about
/// 21 bytes a request) for as long as nothing scrapes `/metrics`.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with its upkeep thread.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // The buckets are constants, sorted and non-empty, so this cannot fail; keep the default if it did.
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(cause = %e, "metrics: latency buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (several apps in one test process); keep ours readable.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        // A plain thread, not a task: it must outlive any one actix system or test runtime.
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(cause = %e, "metrics: cannot start the upkeep thread");
        }
        handle
    })
}

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    .then(|| s.to_string())
}

fn new_request_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// Records a request's latency under its route and status. Each worker thread keeps the histograms
/// it has used: finding one in the recorder's registry (hashing the name and both labels, and
/// making the labels) on every request cost more than recording in it. Routes are patterns, not
/// paths, and statuses are few, so the map stays small.
fn record_latency(route: String, status: u16, elapsed: Duration) {
    thread_local! {
        static HISTOGRAMS: RefCell<HashMap<(String, u16), metrics::Histogram>> =
            RefCell::new(HashMap::new());
    }
    HISTOGRAMS.with_borrow_mut(|histograms| {
        histograms
            .entry((route, status))
            .or_insert_with_key(|(route, status)| {
                metrics::histogram!("twofactor_http_request_duration_seconds", "route" => route.clone(), "status" => status.to_string())
            })
            .record(elapsed.as_secs_f64());
    });
}

/// Request id, span, access log line and latency metric for every request.
pub async fn request_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    record_latency(route, status, elapsed);
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed.as_millis() as u64, "request"));
    Ok(res)
}
