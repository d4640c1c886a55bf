//! code-authentication: the caller line's claim, the code judged in one atomic store step (an
//! authenticator code in two), and the locks that follow.

use std::time::Duration;

use super::audit::{audit, fault};
use super::methods::Found;
use super::spoken::normalise_code;
use super::subject::{attempt_keys, caller_digest, digests, line};
use super::{Call, Limit, Outcome, Rules, STORE_DEADLINE};
use crate::domain::{CallerNumber, Method};
use crate::store::{Checked, Claim, CodeCheck, Judged, Lockout, TotpCheck};

/// How many caller numbers locked out of one customer an unlock can find.
const PAIR_LOCKS_LISTED: usize = 1000;

/// code-authentication. `raw_code` is `authCode_nbest1` as received.
pub async fn verify(r: &Rules<'_>, call: &Call, method: Option<Method>, raw_code: &str) -> Outcome {
    let work = verify_inner(r, call, method, raw_code);
    match tokio::time::timeout(STORE_DEADLINE, work).await {
        Ok(Ok((outcome, used, detail))) => {
            audit("verify", call, used, outcome, detail);
            outcome
        }
        Ok(Err(e)) => fault(r.clock, "verify", call, method, &e),
        Err(_) => fault(
            r.clock,
            "verify",
            call,
            method,
            &"the store did not answer in time",
        ),
    }
}

type Decision = (Outcome, Option<Method>, &'static str);

async fn verify_inner(
    r: &Rules<'_>,
    call: &Call,
    method: Option<Method>,
    raw_code: &str,
) -> anyhow::Result<Decision> {
    let window = Duration::from_secs(r.settings.lockout.window_seconds);
    // The line's own limit comes first, counted before any code is judged, so parallel guesses
    // from one number never have more than max_failures_per_caller judged. A full count refuses
    // without locking: attempts in flight may yet succeed and give theirs back.
    let line = line(r, call);
    let claim = match &line {
        Some(l) => Some(
            r.store
                .claim_capped(&l.lock, &l.count, l.max, window)
                .await?,
        ),
        None => None,
    };
    let judge = !matches!(claim, Some(Claim::Locked | Claim::Full));
    let decision = match judge_code(r, call, method, raw_code, judge).await {
        Ok(d) => d,
        Err(e) => {
            // Nothing was judged (a store or directory fault): the line's attempt is given back,
            // so an outage does not use up a caller number's allowance.
            if let (Some(line), Some(Claim::Allowed(_))) = (&line, claim) {
                let _ = r.store.decr(&line.count).await;
            }
            return Err(e);
        }
    };
    if !judge && decision.0 != Outcome::Success {
        // Only a repeat of the code just accepted in this call passes a refused line.
        return Ok((
            Outcome::Locked(Limit::CallerNumber),
            decision.1,
            Limit::CallerNumber.message(),
        ));
    }
    if let (Some(line), Some(Claim::Allowed(n))) = (&line, claim) {
        match decision.0 {
            Outcome::IncorrectCode | Outcome::CodeExpired => {
                if n >= u64::from(line.max) {
                    let lock_for = Duration::from_secs(r.settings.lockout.duration_seconds);
                    r.store.set(&line.lock, "1", Some(lock_for)).await?;
                    r.store.del(&line.count).await?;
                    locked_now(call, Limit::CallerNumber);
                }
            }
            // Not a wrong code: the attempt is given back.
            _ => r.store.decr(&line.count).await?,
        }
    }
    Ok(decision)
}

fn locked_now(call: &Call, limit: Limit) {
    metrics::counter!("twofactor_lockouts_total", "limit" => limit.label()).increment(1);
    tracing::warn!(target: "audit", event = "locked", customer = %call.customer, caller = call.number.as_ref().map(CallerNumber::masked).unwrap_or_default(), outcome = "locked", detail = limit.message(), "locked after too many wrong codes");
}

/// Judges one code for the customer in one atomic store step (see `Ledger::check_code`); an
/// authenticator code takes a second (see `Ledger::verify_totp`). With `judge` false only a repeat
/// of the accepted code is recognised.
async fn judge_code(
    r: &Rules<'_>,
    call: &Call,
    method: Option<Method>,
    raw_code: &str,
    judge: bool,
) -> anyhow::Result<Decision> {
    let s = &r.settings;
    let code = normalise_code(raw_code);
    let code = code.as_deref().unwrap_or("-");
    let Some(found) = Found::of(r, &call.customer).await? else {
        return Ok((Outcome::CodeExpired, method, "unknown customer"));
    };
    let (keys, limit) = attempt_keys(r, call);
    let l = &s.lockout;
    let rule = Lockout {
        max: l.max_failures,
        window: Duration::from_secs(l.window_seconds),
        lock_for: Duration::from_secs(l.duration_seconds),
        // Without a call id a repeat cannot be told from a guess: it counts as any attempt.
        grace: match &call.id {
            Some(_) => Duration::from_secs(s.codes.retry_grace_seconds),
            None => Duration::ZERO,
        },
        discard_code_on_lock: limit == Limit::Customer,
        max_in_a_row: l.max_consecutive_failures,
    };
    // The store chooses the method when none is named, so the code is digested for each sent-code
    // method that may be chosen.
    let may = |m: Method| method.is_none_or(|named| named == m);
    let for_method = |m: Method| {
        if may(m) {
            digests(r, call, m, code)
        } else {
            Vec::new()
        }
    };
    let (email, sms) = (for_method(Method::Email), for_method(Method::Sms));
    let ask = CodeCheck {
        named: method,
        email_offered: r.email.is_some(),
        sms_offered: r.sms.is_some(),
        email: &email,
        sms: &sms,
        max_tries: s.codes.max_verify_attempts,
        known: found.known(),
    };
    let (verdict, used) = match r.store.check_code(&keys, &ask, &rule, judge).await? {
        // Unknown customers leave nothing in the store, so a flood of random ids cannot fill it;
        // they answer as a customer with no pending code does, after the same round trip.
        Checked::Unknown => return Ok((Outcome::CodeExpired, method, "unknown customer")),
        Checked::Judged(used, verdict) => (verdict, used),
        Checked::Authenticator(json) => {
            // Judged against the authenticator only: a pending sent code is never touched here,
            // even for a customer without an authenticator (whose attempt then counts as wrong).
            let record = found.customer(&call.customer, &json)?;
            let secret = r.directory.totp_secret(&call.customer, &record)?;
            let matched = secret
                .as_deref()
                .and_then(|secret| crate::totp::check(&s.totp, secret, code, r.clock.now_unix()));
            let step_ttl = s.totp.period_seconds * (2 * u64::from(s.totp.skew_steps) + 2);
            let candidates = digests(r, call, Method::Authenticator, code);
            let totp = TotpCheck {
                step_key: &r.keys.totp_step(&call.customer),
                matched_step: matched,
                step_ttl: Duration::from_secs(step_ttl),
                candidates: &candidates,
            };
            let verdict = r.store.verify_totp(&keys, &totp, &rule, judge).await?;
            (verdict, Some(Method::Authenticator))
        }
    };
    let limit = limit.for_desk(verdict.desk);
    if verdict.locked_now {
        locked_now(call, limit);
        if matches!(limit, Limit::CustomerFromCaller | Limit::DeskFromCaller)
            && let Some(number) = call.number.as_ref()
        {
            // Listed for the support desk's unlock; a bounded list, as strangers' lines are many.
            // The verdict is stored by now: a failed listing is logged, not answered as a fault
            // (which would also give the line's attempt back for a code that was judged).
            if let Err(e) = r
                .store
                .push_capped(
                    &r.keys.pair_locks(&call.customer),
                    &caller_digest(r, number),
                    PAIR_LOCKS_LISTED,
                )
                .await
            {
                tracing::warn!(customer = %call.customer, error = %e, "lock not listed for the support desk's unlock; it still expires by itself");
            }
        }
    }
    Ok(match verdict.judged {
        Judged::Repeat => (
            Outcome::Success,
            used,
            "repeat of the code accepted in this call",
        ),
        Judged::Accepted => (Outcome::Success, used, "code accepted"),
        Judged::Locked => (Outcome::Locked(limit), used, limit.message()),
        Judged::Missing => (Outcome::CodeExpired, used, "no pending code"),
        Judged::Wrong => (Outcome::IncorrectCode, used, "wrong code"),
        Judged::Exhausted => (
            Outcome::IncorrectCode,
            used,
            "wrong code, code discarded after too many tries",
        ),
        Judged::Replayed => (Outcome::IncorrectCode, used, "authenticator code replayed"),
    })
}
