//! send-authentication-code: the line's and the customer's limits, the code written in one atomic
//! step, the delivery, and taking back what a failed delivery leaves.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::audit::{audit, fault};
use super::methods::{Found, Methods};
use super::subject::{Counted, caller_digest, counted, digests, line};
use super::{Call, Limit, Outcome, Rules, STORE_DEADLINE};
use crate::delivery::CodeMessage;
use crate::domain::{Email, Method, PhoneNumber};
use crate::store::{Claim, Reserve, SendAsk, SendKeys, Started, Store};

/// A uniformly random code of `digits` digits from the thread CSPRNG (rejection sampling, no modulo bias).
pub fn generate_code(digits: u32) -> SecretString {
    let n = rand::random_range(0..10u64.pow(digits));
    SecretString::from(format!("{n:0width$}", width = digits as usize))
}

/// send-authentication-code.
pub async fn send(r: &Rules<'_>, call: &Call, method: Method) -> Outcome {
    match send_inner(r, call, method).await {
        Ok((outcome, detail)) => {
            audit("send", call, Some(method), outcome, detail);
            outcome
        }
        Err(e) => fault(r.clock, "send", call, Some(method), &e),
    }
}

/// A code written to the store and not yet delivered: what a failed delivery must take back.
struct Pending {
    code: SecretString,
    code_key: String,
    digest: String,
    counters: Vec<String>,
}

async fn send_inner(
    r: &Rules<'_>,
    call: &Call,
    method: Method,
) -> anyhow::Result<(Outcome, &'static str)> {
    let counted = async {
        let line = match claim_line_send(r, call).await? {
            Err(answer) => return Ok(Err(answer)),
            Ok(line) => line,
        };
        // A claim has read the line's lock already (it refuses a locked line).
        let prepared = prepare_send(r, call, method, line.is_none()).await;
        match (prepared, &line) {
            (Ok(Ok((methods, mut pending))), _) => {
                // A failed delivery gives the line's send back with the customer's.
                pending.counters.extend(line);
                Ok(Ok((methods, pending)))
            }
            // Nothing goes out: the line's send is given back.
            (other, Some(key)) => {
                r.store.decr(key).await?;
                other
            }
            (other, None) => other,
        }
    };
    let prepared = tokio::time::timeout(STORE_DEADLINE, counted)
        .await
        .map_err(|_| anyhow::anyhow!("the store did not answer in time"))??;
    let (methods, pending) = match prepared {
        Err(answer) => return Ok(answer),
        Ok(p) => p,
    };
    let message = CodeMessage {
        code: &pending.code,
        minutes: r.settings.codes.ttl_seconds.div_ceil(60),
    };
    let delivery = async {
        match (method, &r.email, &r.sms, &methods) {
            (
                Method::Email,
                Some(sender),
                _,
                Methods {
                    email: Some(to), ..
                },
            ) => sender.send(to, &message).await.map_err(|e| e.to_string()),
            (Method::Sms, _, Some(sender), Methods { sms: Some(to), .. }) => {
                sender.send(to, &message).await.map_err(|e| e.to_string())
            }
            _ => Err("no transport or destination for the chosen method".to_string()),
        }
    };
    // Each transport has its own timeout; this bound holds even if one overran it.
    let budget_ms = match method {
        Method::Email => r.settings.email.smtp.timeout_ms,
        _ => r.settings.sms.timeout_ms,
    } + 1000;
    let started = std::time::Instant::now();
    let delivered = tokio::time::timeout(Duration::from_millis(budget_ms), delivery)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {budget_ms} ms")));
    metrics::histogram!("twofactor_delivery_duration_seconds", "channel" => method.as_str(), "outcome" => if delivered.is_ok() { "sent" } else { "failed" })
        .record(started.elapsed().as_secs_f64());
    if let Err(cause) = delivered {
        // No usable code may outlive a failed delivery, and the caller's send allowance is
        // returned; only this send's code goes (a racing resend's code stays). The clean-up runs
        // on its own task, so it completes even when the store is slow and the answer has gone.
        let store: Arc<dyn Store> = r.store.clone();
        let cleanup = tokio::spawn(async move {
            let _ = store.discard_code(&pending.code_key, &pending.digest).await;
            for key in &pending.counters {
                let _ = store.decr(key).await;
            }
        });
        // Normally done before the answer; a stalled store delays the answer by a second at most,
        // and the clean-up then finishes on its own.
        let _ = tokio::time::timeout(Duration::from_secs(1), cleanup).await;
        let to = match method {
            Method::Email => methods.email.as_ref().map(Email::masked),
            _ => methods.sms.as_ref().map(PhoneNumber::masked),
        };
        tracing::error!(customer = %call.customer, method = %method, to = to.unwrap_or_default(), budget_ms, cause = %cause, "delivery failed");
        metrics::counter!("twofactor_delivery_failures_total", "method" => method.as_str())
            .increment(1);
        return Ok((Outcome::Error, "delivery failed"));
    }
    Ok((Outcome::Success, "code sent"))
}

/// Counts a send against the caller's line (`codes.max_sends_per_caller`, across customers; the
/// withheld line is one line), before anything else of the send: the key to give back when no code
/// goes out, or the answer that refuses it.
async fn claim_line_send(
    r: &Rules<'_>,
    call: &Call,
) -> anyhow::Result<Result<Option<String>, (Outcome, &'static str)>> {
    let max = r.settings.codes.max_sends_per_caller;
    let Some(number) = call.number.as_ref().filter(|_| max > 0) else {
        return Ok(Ok(None));
    };
    let d = caller_digest(r, number);
    let (lock, count) = (r.keys.caller_lock(&d), r.keys.caller_sends(&d));
    let window = Duration::from_secs(r.settings.codes.send_window_seconds);
    let limit = match r.store.claim_capped(&lock, &count, max, window).await? {
        Claim::Allowed(_) => return Ok(Ok(Some(count))),
        // The line's own lock (`lockout.max_failures_per_caller`) answers as it does below.
        Claim::Locked => Limit::CallerNumber,
        Claim::Full => Limit::CallerSends,
    };
    metrics::counter!("twofactor_send_refused_total", "reason" => limit.label()).increment(1);
    Ok(Err((Outcome::SendLimited(Some(limit)), limit.message())))
}

/// The store part of a send, under the store deadline: the checks, the counts and the code write,
/// in one round trip (plus one for a caller number's lock unless its send claim read it, and for an
/// SMS number's cap).
/// `Err` is an answer that ends the send there.
async fn prepare_send(
    r: &Rules<'_>,
    call: &Call,
    method: Method,
    read_line_lock: bool,
) -> anyhow::Result<Result<(Methods, Pending), (Outcome, &'static str)>> {
    let s = &r.settings;
    let Some(found) = Found::of(r, &call.customer).await? else {
        return Ok(Err((Outcome::NotFound, "unknown customer")));
    };
    let Counted { lock, limit, .. } = counted(r, call);
    let keys = SendKeys {
        record: r.keys.customer(&call.customer),
        lock,
        choice: r.keys.choice(&call.customer),
        code: r.keys.code(&call.customer),
        sends: r.keys.sends(&call.customer),
    };
    // The caller number's lock lives in the number's own slot, so it is read first.
    let line_locked = match line(r, call).filter(|_| read_line_lock) {
        Some(line) => r.store.get(&line.lock).await?.is_some(),
        None => false,
    };
    let code = generate_code(s.codes.digits);
    let digest = digests(r, call, method, code.expose_secret()).swap_remove(0);
    let window = Duration::from_secs(s.codes.send_window_seconds);
    let ttl = Duration::from_secs(s.codes.ttl_seconds);
    // An SMS number's checks need the number from the record and its cap lives in the number's
    // own slot: the first step then only checks, and the code is written after them.
    let number_checks = method == Method::Sms
        && (s.sms.max_per_number_per_hour > 0 || !s.sms.allowed_country_codes.is_empty());
    let ask = SendAsk {
        method,
        offered: match method {
            Method::Email => r.email.is_some(),
            Method::Sms => r.sms.is_some(),
            Method::Authenticator => true,
        },
        line_locked,
        reserve: !number_checks,
        max: s.codes.max_sends,
        window,
        digest: &digest,
        ttl,
        known: found.known(),
    };
    let limited = || {
        metrics::counter!("twofactor_send_refused_total", "reason" => "send_limit").increment(1);
        Ok(Err((Outcome::SendLimited(None), "send limit reached")))
    };
    let (json, reserved) = match r.store.start_send(&keys, &ask).await? {
        Started::Unknown => return Ok(Err((Outcome::NotFound, "unknown customer"))),
        Started::NotVerified => {
            return Ok(Err((Outcome::NotFound, "method not verified for customer")));
        }
        Started::NotOffered => {
            return Ok(Err((
                Outcome::Error,
                "channel not offered: no transport for it",
            )));
        }
        Started::Locked { desk } => {
            let limit = limit.for_desk(desk);
            return Ok(Err((Outcome::SendLimited(Some(limit)), limit.message())));
        }
        Started::LineLocked => {
            let limit = Limit::CallerNumber;
            return Ok(Err((Outcome::SendLimited(Some(limit)), limit.message())));
        }
        Started::Authenticator => {
            return Ok(Err((
                Outcome::Success,
                "authenticator chosen, nothing sent",
            )));
        }
        Started::Limited => return limited(),
        Started::Checked(json) => (json, false),
        Started::Reserved(json) => (json, true),
    };
    let record = match found.customer(&call.customer, &json) {
        Ok(c) => c,
        Err(e) => {
            // The script found the contact it needed, but the record does not read back as a
            // customer: take back a code and a count already written.
            if reserved {
                r.store.discard_code(&keys.code, &digest).await?;
                r.store.decr(&keys.sends).await?;
            }
            return Err(e.into());
        }
    };
    let methods = Methods::offered(r, &record);
    let mut counters = Vec::new();
    if !reserved {
        let Some(phone) = &methods.sms else {
            anyhow::bail!("the record changed its form between two reads");
        };
        // Keyed by a digest, so the keyspace holds no phone number.
        let key = r
            .keys
            .sms_number(&r.keyring.digest(&["sms-number", phone.e164()]));
        if let Some(reason) = sms_refusal(r, phone, &key).await? {
            metrics::counter!("twofactor_send_refused_total", "reason" => reason).increment(1);
            tracing::warn!(customer = %call.customer, number = %phone, reason, "SMS send refused");
            return Ok(Err((Outcome::SendLimited(None), reason)));
        }
        if s.sms.max_per_number_per_hour > 0 {
            counters.push(key);
        }
        // Counted and written in one atomic step, so racing sends cannot all slip under the limit.
        let send = Reserve {
            sends: &keys.sends,
            code: &keys.code,
            choice: &keys.choice,
            max: s.codes.max_sends,
            window,
            digest: &digest,
            method,
            rev: record.rev.as_deref().unwrap_or(""),
            ttl,
        };
        let written = r.store.reserve_send(&send).await?;
        if written.is_none() {
            for key in &counters {
                r.store.decr(key).await?;
            }
            return limited();
        }
    }
    counters.push(keys.sends);
    Ok(Ok((
        methods,
        Pending {
            code,
            code_key: keys.code,
            digest,
            counters,
        },
    )))
}

/// Why an SMS to `phone` must not go out: a country outside the allow-list, or the number's hourly cap.
async fn sms_refusal(
    r: &Rules<'_>,
    phone: &PhoneNumber,
    number_key: &str,
) -> anyhow::Result<Option<&'static str>> {
    let sms = &r.settings.sms;
    if !sms.allowed_country_codes.is_empty() {
        let cc = phone.country_code();
        if !sms
            .allowed_country_codes
            .iter()
            .any(|a| a.trim_start_matches('+') == cc)
        {
            return Ok(Some("country not allowed"));
        }
    }
    if sms.max_per_number_per_hour > 0 {
        let n = r
            .store
            .incr_window(number_key, Duration::from_secs(3600))
            .await?;
        if n > u64::from(sms.max_per_number_per_hour) {
            return Ok(Some("number hourly cap"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_configured_length_and_vary() {
        use secrecy::ExposeSecret;
        for digits in 4..=10 {
            let c = generate_code(digits);
            assert_eq!(c.expose_secret().len(), digits as usize);
            assert!(c.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        }
        let distinct: std::collections::HashSet<String> = (0..50)
            .map(|_| generate_code(8).expose_secret().to_string())
            .collect();
        assert!(
            distinct.len() > 45,
            "codes repeat too often: {}",
            distinct.len()
        );
    }
}
