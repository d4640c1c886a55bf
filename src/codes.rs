//! The rules of the three callflow operations: which methods a customer has, sending a code, and
//! checking one (sent code or authenticator). Handlers parse; this module decides; the store keeps.
//!
//! Every outcome is one of [`Outcome`], which the HTTP layer maps to the configured status strings.
//! Each decision is written as one audit line (target `audit`) with customer, call, method, outcome.

use std::time::Duration;

use secrecy::SecretString;

use crate::delivery::CodeMessage;
use crate::directory::Customer;
use crate::domain::{CallId, CustomerId, Email, Method, PhoneNumber};
use crate::state::AppState;
use crate::store::{Attempt, CodeCheck};

/// However a store stalls, a callflow hears an answer within this. Sending is bounded by its
/// transports' own timeouts instead, so its clean-up after a failed delivery always runs.
const STORE_DEADLINE: Duration = Duration::from_secs(5);

/// What happened, before it becomes a status string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    NotFound,
    IncorrectCode,
    CodeExpired,
    Locked,
    SendLimited,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NotFound => "not_found",
            Outcome::IncorrectCode => "incorrect_code",
            Outcome::CodeExpired => "code_expired",
            Outcome::Locked => "locked",
            Outcome::SendLimited => "send_limited",
            Outcome::Error => "error",
        }
    }
}

/// A customer's verified methods, in the order the reference document lists them.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    pub email: Option<Email>,
    pub authenticator: bool,
    pub sms: Option<PhoneNumber>,
}

impl Methods {
    fn of(c: &Customer) -> Methods {
        Methods {
            email: c.email.clone(),
            authenticator: c.has_authenticator(),
            sms: c.phone.clone(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && !self.authenticator && self.sms.is_none()
    }
    fn has(&self, m: Method) -> bool {
        match m {
            Method::Email => self.email.is_some(),
            Method::Sms => self.sms.is_some(),
            Method::Authenticator => self.authenticator,
        }
    }
    /// The method when there is exactly one.
    fn only(&self) -> Option<Method> {
        let all = [
            self.email.as_ref().map(|_| Method::Email),
            self.authenticator.then_some(Method::Authenticator),
            self.sms.as_ref().map(|_| Method::Sms),
        ];
        let mut present = all.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }
}

fn audit(
    op: &str,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Option<Method>,
    outcome: Outcome,
    detail: &str,
) {
    metrics::counter!("twofactor_operations_total", "operation" => op.to_string(), "outcome" => outcome.as_str()).increment(1);
    tracing::info!(
        target: "audit",
        event = op,
        customer = %customer,
        call = call.map(CallId::as_str).unwrap_or(""),
        method = method.map(Method::as_str).unwrap_or(""),
        outcome = outcome.as_str(),
        detail,
    );
}

/// Logs a fault with its cause (never a code) and answers `Error`.
fn fault(
    op: &str,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Option<Method>,
    cause: &dyn std::fmt::Display,
) -> Outcome {
    tracing::error!(customer = %customer, operation = op, cause = %cause, "operation failed");
    audit(op, customer, call, method, Outcome::Error, "fault");
    Outcome::Error
}

/// check-verified-contact-methods: `None` when the customer is unknown or has no verified method.
pub async fn verified_methods(
    state: &AppState,
    customer: &CustomerId,
) -> Result<Option<Methods>, Outcome> {
    let lookup = tokio::time::timeout(STORE_DEADLINE, state.directory.get(customer)).await;
    let lookup = lookup.unwrap_or_else(|_| {
        Err(crate::store::StoreError::Unavailable("the store did not answer in time".into()).into())
    });
    match lookup {
        Ok(Some(c)) => {
            let methods = Methods::of(&c);
            let outcome = if methods.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Success
            };
            audit("methods", customer, None, None, outcome, "");
            Ok((!methods.is_empty()).then_some(methods))
        }
        Ok(None) => {
            audit(
                "methods",
                customer,
                None,
                None,
                Outcome::NotFound,
                "unknown customer",
            );
            Ok(None)
        }
        Err(e) => Err(fault("methods", customer, None, None, &e)),
    }
}

/// A uniformly random code of `digits` digits from the thread CSPRNG (rejection sampling, no modulo bias).
pub fn generate_code(digits: u32) -> SecretString {
    let n = rand::random_range(0..10u64.pow(digits));
    SecretString::from(format!("{n:0width$}", width = digits as usize))
}

/// What the stored digest binds a code to: the customer, the call (if any), the method and the code.
fn digest(
    state: &AppState,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Method,
    code: &str,
) -> String {
    state.keyring.digest(&[
        customer.as_str(),
        call.map(CallId::as_str).unwrap_or(""),
        method.as_str(),
        code,
    ])
}

/// send-authentication-code.
pub async fn send(
    state: &AppState,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Method,
) -> Outcome {
    match send_inner(state, customer, call, method).await {
        Ok((outcome, detail)) => {
            audit("send", customer, call, Some(method), outcome, detail);
            outcome
        }
        Err(e) => fault("send", customer, call, Some(method), &e),
    }
}

async fn send_inner(
    state: &AppState,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Method,
) -> anyhow::Result<(Outcome, &'static str)> {
    let s = &state.settings;
    let keys = &state.keys;
    let Some(record) = state.directory.get(customer).await? else {
        return Ok((Outcome::NotFound, "unknown customer"));
    };
    let methods = Methods::of(&record);
    if !methods.has(method) {
        return Ok((Outcome::NotFound, "method not verified for customer"));
    }
    if state.store.get(&keys.lock(customer)).await?.is_some() {
        return Ok((Outcome::SendLimited, "customer locked"));
    }
    let ttl = Duration::from_secs(s.codes.ttl_seconds);
    if method == Method::Authenticator {
        state
            .store
            .set(&keys.choice(customer), method.as_str(), Some(ttl))
            .await?;
        return Ok((Outcome::Success, "authenticator chosen, nothing sent"));
    }
    // Count first, so racing sends cannot all slip under the limit.
    let sends_key = keys.sends(customer);
    let sends = state
        .store
        .incr_window(&sends_key, Duration::from_secs(s.codes.send_window_seconds))
        .await?;
    if sends > u64::from(s.codes.max_sends) {
        metrics::counter!("twofactor_send_refused_total", "reason" => "send_limit").increment(1);
        return Ok((Outcome::SendLimited, "send limit reached"));
    }
    let mut number_key = None;
    if let (Method::Sms, Some(phone)) = (method, &methods.sms) {
        // Keyed by a digest, so the keyspace holds no phone number.
        let key = keys.sms_number(&state.keyring.digest(&["sms-number", phone.e164()]));
        if let Some(reason) = sms_refusal(state, phone, &key).await? {
            state.store.decr(&sends_key).await?;
            metrics::counter!("twofactor_send_refused_total", "reason" => reason).increment(1);
            tracing::warn!(customer = %customer, number = %phone, reason, "SMS send refused");
            return Ok((Outcome::SendLimited, reason));
        }
        number_key = (s.sms.max_per_number_per_hour > 0).then_some(key);
    }

    let code = generate_code(s.codes.digits);
    let code_key = keys.code(customer);
    let code_digest = {
        use secrecy::ExposeSecret;
        digest(state, customer, call, method, code.expose_secret())
    };
    state.store.put_code(&code_key, &code_digest, ttl).await?;
    state
        .store
        .set(&keys.choice(customer), method.as_str(), Some(ttl))
        .await?;
    let message = CodeMessage {
        code: &code,
        minutes: s.codes.ttl_seconds.div_ceil(60),
    };
    let delivered = match (method, &methods.email, &methods.sms) {
        (Method::Email, Some(to), _) => state.email.send(to, &message).await,
        (Method::Sms, _, Some(to)) => state.sms.send(to, &message).await,
        _ => Err(crate::delivery::DeliveryError::Rejected(
            "no destination for the chosen method".into(),
        )),
    };
    if let Err(e) = delivered {
        // No usable code may outlive a failed delivery, and the caller's send allowance is returned.
        // Only this send's code goes: a racing resend's code stays.
        state.store.discard_code(&code_key, &code_digest).await?;
        state.store.decr(&sends_key).await?;
        if let Some(k) = &number_key {
            state.store.decr(k).await?;
        }
        let to = match method {
            Method::Email => methods.email.as_ref().map(Email::masked),
            _ => methods.sms.as_ref().map(PhoneNumber::masked),
        };
        tracing::error!(customer = %customer, method = %method, to = to.unwrap_or_default(), cause = %e, "delivery failed");
        metrics::counter!("twofactor_delivery_failures_total", "method" => method.as_str())
            .increment(1);
        return Ok((Outcome::Error, "delivery failed"));
    }
    Ok((Outcome::Success, "code sent"))
}

/// Why an SMS to `phone` must not go out: a country outside the allow-list, or the number's hourly cap.
async fn sms_refusal(
    state: &AppState,
    phone: &PhoneNumber,
    number_key: &str,
) -> anyhow::Result<Option<&'static str>> {
    let sms = &state.settings.sms;
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
        let n = state
            .store
            .incr_window(number_key, Duration::from_secs(3600))
            .await?;
        if n > u64::from(sms.max_per_number_per_hour) {
            return Ok(Some("number hourly cap"));
        }
    }
    Ok(None)
}

/// code-authentication. `raw_code` is `authCode_nbest1` as received.
pub async fn verify(
    state: &AppState,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Option<Method>,
    raw_code: &str,
) -> Outcome {
    let work = verify_inner(state, customer, call, method, raw_code);
    match tokio::time::timeout(STORE_DEADLINE, work).await {
        Ok(Ok((outcome, used, detail))) => {
            audit("verify", customer, call, used, outcome, detail);
            outcome
        }
        Ok(Err(e)) => fault("verify", customer, call, method, &e),
        Err(_) => fault(
            "verify",
            customer,
            call,
            method,
            &"the store did not answer in time",
        ),
    }
}

async fn verify_inner(
    state: &AppState,
    customer: &CustomerId,
    call: Option<&CallId>,
    method: Option<Method>,
    raw_code: &str,
) -> anyhow::Result<(Outcome, Option<Method>, &'static str)> {
    let s = &state.settings;
    let keys = &state.keys;
    let code = normalise_code(raw_code);
    // Unknown customers go down the same path as known ones with no pending code, so neither the
    // status nor the time taken tells them apart.
    let record = state.directory.get(customer).await?;
    // Each attempt is claimed before any code is looked at, in one atomic step with the lock check,
    // so racing guesses can never have more than lockout.max_failures codes checked per window.
    let l = &s.lockout;
    let attempt = state
        .store
        .claim_attempt(
            &keys.lock(customer),
            &keys.failures(customer),
            l.max_failures,
            Duration::from_secs(l.window_seconds),
            Duration::from_secs(l.duration_seconds),
        )
        .await?;
    let Attempt::Allowed(attempt) = attempt else {
        return Ok((Outcome::Locked, method, "customer locked"));
    };
    let methods = record.as_ref().map(Methods::of).unwrap_or_default();
    let chosen = match method {
        Some(m) => Some(m),
        None => match state.store.get(&keys.choice(customer)).await? {
            Some(m) => Method::parse(&m).ok(),
            None => methods.only(),
        },
    };

    if chosen == Some(Method::Authenticator)
        && let Some(record) = record.as_ref().filter(|r| r.has_authenticator())
    {
        let secret = state
            .directory
            .totp_secret(customer, record)?
            .unwrap_or_default();
        let now = state.clock.now_unix();
        let matched = code
            .as_deref()
            .and_then(|c| crate::totp::check(&s.totp, &secret, c, now));
        return match matched {
            Some(step) => {
                let window = s.totp.period_seconds * (2 * u64::from(s.totp.skew_steps) + 2);
                if state
                    .store
                    .advance_step(&keys.totp_step(customer), step, Duration::from_secs(window))
                    .await?
                {
                    succeed(state, customer).await?;
                    Ok((Outcome::Success, chosen, "authenticator code accepted"))
                } else {
                    let o = fail(state, customer, attempt).await?;
                    Ok((o, chosen, "authenticator code replayed"))
                }
            }
            None => {
                let o = fail(state, customer, attempt).await?;
                Ok((o, chosen, "wrong authenticator code"))
            }
        };
    }

    let used = chosen.filter(|m| *m != Method::Authenticator);
    let candidate = digest(
        state,
        customer,
        call,
        used.unwrap_or(Method::Email),
        code.as_deref().unwrap_or("-"),
    );
    let check = state
        .store
        .check_code(
            &keys.code(customer),
            &candidate,
            s.codes.max_verify_attempts,
        )
        .await?;
    match check {
        CodeCheck::Matched if record.is_some() && used.is_some() => {
            succeed(state, customer).await?;
            Ok((Outcome::Success, used, "code accepted"))
        }
        CodeCheck::Matched | CodeCheck::Missing => {
            Ok((Outcome::CodeExpired, used, "no pending code"))
        }
        CodeCheck::Wrong { .. } => {
            let o = fail(state, customer, attempt).await?;
            Ok((o, used, "wrong code"))
        }
        CodeCheck::Exhausted => {
            let o = fail(state, customer, attempt).await?;
            Ok((o, used, "wrong code, code discarded after too many tries"))
        }
    }
}

async fn succeed(state: &AppState, customer: &CustomerId) -> anyhow::Result<()> {
    state.store.del(&state.keys.failures(customer)).await?;
    state.store.del(&state.keys.choice(customer)).await?;
    Ok(())
}

/// A wrong code: when it was the customer's last allowed attempt in the window, lock them now
/// (the attempt was already counted by `claim_attempt`).
async fn fail(state: &AppState, customer: &CustomerId, attempt: u64) -> anyhow::Result<Outcome> {
    let l = &state.settings.lockout;
    if attempt >= u64::from(l.max_failures) {
        let keys = &state.keys;
        let lock_for = Duration::from_secs(l.duration_seconds);
        state
            .store
            .set(&keys.lock(customer), "1", Some(lock_for))
            .await?;
        state.store.del(&keys.code(customer)).await?;
        state.store.del(&keys.failures(customer)).await?;
        metrics::counter!("twofactor_lockouts_total").increment(1);
        tracing::warn!(target: "audit", event = "locked", customer = %customer, outcome = "locked", "customer locked after too many wrong codes");
    }
    Ok(Outcome::IncorrectCode)
}

/// What the caller keyed or said, as digits: spaces, dashes, dots and commas dropped; spoken digits
/// ("one two three", "oh" for 0, "double five") turned into digits, as ASR n-best results come.
/// `None` when anything else is left, which then counts as a wrong code.
pub fn normalise_code(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    let mut out = String::new();
    let mut repeat = 1;
    for token in lower.split(|c: char| c.is_whitespace() || matches!(c, '-' | '.' | ',' | '_')) {
        if token.is_empty() {
            continue;
        }
        let word = match token {
            "zero" | "oh" | "o" | "nought" | "nil" => Some('0'),
            "one" => Some('1'),
            "two" => Some('2'),
            "three" => Some('3'),
            "four" => Some('4'),
            "five" => Some('5'),
            "six" => Some('6'),
            "seven" => Some('7'),
            "eight" => Some('8'),
            "nine" => Some('9'),
            "double" => {
                repeat = 2;
                continue;
            }
            "triple" => {
                repeat = 3;
                continue;
            }
            _ => None,
        };
        match word {
            Some(d) => (0..repeat).for_each(|_| out.push(d)),
            None if token.bytes().all(|b| b.is_ascii_digit()) => {
                let mut chars = token.chars();
                if let Some(first) = chars.next() {
                    (0..repeat).for_each(|_| out.push(first));
                }
                out.extend(chars);
            }
            None => return None,
        }
        repeat = 1;
        if out.len() > 32 {
            return None;
        }
    }
    (!out.is_empty() && repeat == 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_keyed_and_spoken_codes() {
        let cases = [
            ("123456", Some("123456")),
            ("123 456", Some("123456")),
            ("12-34-56", Some("123456")),
            ("1.2.3.4.5.6", Some("123456")),
            ("one two three four five six", Some("123456")),
            ("oh one two three four five", Some("012345")),
            ("One Two 3 4 five 6", Some("123456")),
            ("double five one two three", Some("55123")),
            ("triple 0 one", Some("0001")),
            ("12345a", None),
            ("", None),
            ("   ", None),
            ("double", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_code(raw).as_deref(), want, "input {raw:?}");
        }
    }

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
