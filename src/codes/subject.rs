//! Who a request counts against: the customer's (or the pair's) lock and counters, the caller
//! line's, and the digests that bind a code to its customer, call and method.

use super::{Call, Limit, Rules};
use crate::config::LockoutScope;
use crate::domain::{CallId, CallerNumber, Method};
use crate::store::AttemptKeys;

/// What a stored digest binds a code to: customer, call (if any), method and code. (The contacts
/// it went to are bound by their revision, kept beside the digest.) One digest per key of the key
/// ring, current first (what a send stores).
pub(super) fn digests(r: &Rules<'_>, call: &Call, method: Method, code: &str) -> Vec<String> {
    r.keyring.digests(&[
        call.customer.as_str(),
        call.id.as_ref().map(CallId::as_str).unwrap_or(""),
        method.as_str(),
        code,
    ])
}

/// The keys of a caller number's own limit, when it applies to this request, and the limit.
pub(super) struct Line {
    pub(super) lock: String,
    pub(super) count: String,
    pub(super) max: u32,
}

pub(super) fn line(r: &Rules<'_>, call: &Call) -> Option<Line> {
    let number = call.number.as_ref()?;
    let l = &r.settings.lockout;
    // Withheld numbers share one line, so it has a limit of its own sized for many callers.
    let max = if number.is_withheld() {
        l.max_failures_withheld
    } else {
        l.max_failures_per_caller
    };
    (max > 0).then(|| {
        let d = caller_digest(r, number);
        Line {
            lock: r.keys.caller_lock(&d),
            count: r.keys.caller_failures(&d),
            max,
        }
    })
}

/// Caller numbers are keyed by a digest, so the keyspace holds no number.
pub(super) fn caller_digest(r: &Rules<'_>, number: &CallerNumber) -> String {
    r.keyring.digest(&["caller-number", number.as_str()])
}

/// The keys a request's customer lock lives in: the customer's, or with `lockout.scope =
/// "caller"` the pair's (customer, caller number).
pub(super) struct Counted {
    pub(super) lock: String,
    pub(super) failures: String,
    pub(super) streak: String,
    pub(super) limit: Limit,
}

/// Who `lockout.max_failures` and `lockout.max_consecutive_failures` count for this request.
pub(super) fn counted(r: &Rules<'_>, call: &Call) -> Counted {
    let (keys, id) = (&r.keys, &call.customer);
    match (r.settings.lockout.scope, call.number.as_ref()) {
        (LockoutScope::Caller, Some(number)) => {
            let d = caller_digest(r, number);
            Counted {
                lock: keys.pair_lock(id, &d),
                failures: keys.pair_failures(id, &d),
                streak: keys.pair_streak(id, &d),
                limit: Limit::CustomerFromCaller,
            }
        }
        _ => Counted {
            lock: keys.lock(id),
            failures: keys.failures(id),
            streak: keys.streak(id),
            limit: Limit::Customer,
        },
    }
}

/// The keys a check touches, and which limit its lock is.
pub(super) fn attempt_keys(r: &Rules<'_>, call: &Call) -> (AttemptKeys, Limit) {
    let Counted {
        lock,
        failures,
        streak,
        limit,
    } = counted(r, call);
    let keys = &r.keys;
    (
        AttemptKeys {
            lock,
            failures,
            streak,
            accepted: keys.accepted(&call.customer),
            choice: keys.choice(&call.customer),
            code: keys.code(&call.customer),
            record: keys.customer(&call.customer),
        },
        limit,
    )
}
