//! One audit line per decision (target `audit`), and faults logged within a rate.

use super::{Call, Outcome};
use crate::clock::Clock;
use crate::domain::{CallId, CallerNumber, Method};

pub(super) fn audit(
    op: &'static str,
    call: &Call,
    method: Option<Method>,
    outcome: Outcome,
    detail: &str,
) {
    metrics::counter!("twofactor_operations_total", "operation" => op, "outcome" => outcome.as_str()).increment(1);
    tracing::info!(
        target: "audit",
        event = op,
        customer = %call.customer,
        call = call.id.as_ref().map(CallId::as_str).unwrap_or(""),
        caller = call.number.as_ref().map(CallerNumber::masked).unwrap_or_default(),
        method = method.map(Method::as_str).unwrap_or(""),
        outcome = outcome.as_str(),
        detail,
    );
}

/// Fault lines logged per second at most: in an outage every request faults, and a line for each
/// (16 000 a second, measured) would flood the log. `twofactor_operations_total{outcome="error"}`
/// still counts every one.
const FAULT_LINES_PER_SECOND: u32 = 10;

/// Whether a fault at `now` (Unix seconds) may be logged, and how many were left out since the
/// last that was. One budget for the process, since the log is one.
fn fault_line(now: u64) -> Option<u64> {
    // (second, lines logged in it, lines left out since the last logged)
    static LOG: std::sync::Mutex<(u64, u32, u64)> = std::sync::Mutex::new((0, 0, 0));
    let mut log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    if log.0 != now {
        *log = (now, 0, log.2);
    }
    if log.1 >= FAULT_LINES_PER_SECOND {
        log.2 += 1;
        return None;
    }
    log.1 += 1;
    Some(std::mem::take(&mut log.2))
}

/// Logs a fault with its cause (never a code), within the rate above, and answers `Error`.
pub(super) fn fault(
    clock: &dyn Clock,
    op: &'static str,
    call: &Call,
    method: Option<Method>,
    cause: &dyn std::fmt::Display,
) -> Outcome {
    if let Some(left_out) = fault_line(clock.now_unix()) {
        tracing::error!(customer = %call.customer, operation = op, cause = %cause, similar_left_out = left_out, "operation failed");
    }
    audit(op, call, method, Outcome::Error, "fault");
    Outcome::Error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lines_are_limited_per_second() {
        // A second no other test uses, since the budget is the process's.
        let second = 7;
        let logged = (0..1000).filter(|_| fault_line(second).is_some()).count();
        assert_eq!(logged, FAULT_LINES_PER_SECOND as usize);
        assert_eq!(
            fault_line(second + 1),
            Some(1000 - u64::from(FAULT_LINES_PER_SECOND)),
            "the next second logs again, saying how many were left out"
        );
    }
}
