//! Request loops against an app while a test breaks something, and what their answers must be.

use super::*;

/// Every `<status>` the test settings can answer (`STATUSES`).
pub const KNOWN_STATUSES: [&str; 7] = [
    "success",
    "not found",
    "incorrect code",
    "expired",
    "locked",
    "send limited",
    "error",
];

/// One request a load loop made.
#[derive(Debug, Clone)]
pub struct Shot {
    /// When it was sent.
    pub at: std::time::Instant,
    pub took: Duration,
    pub path: &'static str,
    /// The HTTP status; 0 when no answer came (connection refused or reset).
    pub http: u16,
    /// The `<status>` text, or what went wrong without an answer.
    pub status: String,
}

/// Request loops running against an app while a test breaks its store: each loop takes one
/// customer and cycles through the three callflow endpoints (wrong codes, so nothing needs an
/// outbox read), recording every answer and how long it took.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    loops: Vec<tokio::task::JoinHandle<Vec<Shot>>>,
}

impl Load {
    pub fn start(app: &TestApp, customers: &[String]) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loops = customers
            .iter()
            .map(|customer| {
                let (stop, client, base, customer) = (
                    stop.clone(),
                    app.client.clone(),
                    app.address.clone(),
                    customer.clone(),
                );
                tokio::spawn(async move {
                    let mut shots = Vec::new();
                    let steps: [(&'static str, &[(&str, &str)]); 3] = [
                        (METHODS, &[]),
                        (SEND, &[("TwoFactorAuthSelectedMethod", "Email")]),
                        (VERIFY, &[("authCode_nbest1", "000000")]),
                    ];
                    for (path, extra) in steps.iter().cycle() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let at = std::time::Instant::now();
                        let sent = client
                            .get(format!("{base}{path}"))
                            .query(&[("CustomerId", customer.as_str())])
                            .query(extra)
                            .send()
                            .await;
                        let (http, status) = match sent {
                            Ok(res) => {
                                let http = res.status().as_u16();
                                let body = res.text().await.unwrap_or_default();
                                let status = between(&body, "<status>", "</status>")
                                    .unwrap_or_else(|| format!("no <status> in {body:?}"));
                                (http, status)
                            }
                            Err(e) => (0, format!("no answer: {e}")),
                        };
                        shots.push(Shot {
                            at,
                            took: at.elapsed(),
                            path,
                            http,
                            status,
                        });
                    }
                    shots
                })
            })
            .collect();
        Load { stop, loops }
    }

    /// Stops the loops and returns every shot, in the order each loop made them.
    pub async fn stop(self) -> Vec<Shot> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for l in self.loops {
            all.extend(l.await.expect("a load loop ends without panicking"));
        }
        all
    }
}

/// Asserts every shot was an XML answer with a known status, 200 or 4xx never 5xx, within `limit`.
pub fn assert_shots_sane(shots: &[Shot], limit: Duration) {
    assert!(!shots.is_empty(), "the load loops made no requests");
    for s in shots {
        assert!(
            (200..500).contains(&s.http) && KNOWN_STATUSES.contains(&s.status.as_str()),
            "{} answered {} {:?}",
            s.path,
            s.http,
            s.status
        );
        assert!(
            s.took < limit,
            "{} took {:?} (limit {limit:?}), answering {:?}",
            s.path,
            s.took,
            s.status
        );
    }
}

/// Polls `check` every 100 ms until it holds; fails the test with `what` after `within`.
pub async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not so after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
