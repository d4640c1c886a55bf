//! The rules of the three callflow operations: which methods a customer has, sending a code, and
//! checking one (sent code or authenticator). Handlers parse; this module decides; the store keeps.
//!
//! Every outcome is one of [`Outcome`], which the HTTP layer maps to the configured status strings.
//! Each decision is written as one audit line (target `audit`) with customer, call, caller number
//! (masked), method, outcome and what decided it.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::LockoutScope;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::delivery::CodeMessage;
use crate::delivery::{EmailSender, SmsSender};
use crate::directory::Customer;
use crate::directory::{Directory, DirectoryError, contacts_revs};
use crate::domain::{CallId, CallerNumber, CustomerId, Email, Method, PhoneNumber};
use crate::state::{AppState, Clock};
use crate::store::Keys;
use crate::store::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Known, Lockout, SendAsk, SendKeys, Started,
    Store,
};

/// However a store stalls, a callflow hears an answer within this (sending: plus its transport's
/// own timeout).
const STORE_DEADLINE: Duration = Duration::from_secs(5);

/// What the rules see of one request's world: one snapshot's settings and senders, and the seams.
/// Built once per request, so every rule reads the same settings even while they change.
pub struct Rules<'a> {
    pub settings: &'a Settings,
    pub email: Option<&'a dyn EmailSender>,
    pub sms: Option<&'a dyn SmsSender>,
    pub store: &'a Arc<dyn Store>,
    pub keys: &'a Keys,
    pub keyring: &'a Keyring,
    pub directory: &'a Directory,
    pub clock: &'a dyn Clock,
}

impl<'a> Rules<'a> {
    pub fn new(state: &'a AppState, snapshot: &'a crate::config::live::Snapshot) -> Rules<'a> {
        Rules {
            settings: &snapshot.settings,
            email: snapshot.email.as_deref(),
            sms: snapshot.sms.as_deref(),
            store: &state.store,
            keys: &state.keys,
            keyring: &state.keyring,
            directory: &state.directory,
            clock: state.clock.as_ref(),
        }
    }
}

/// How many caller numbers locked out of one customer an unlock can find.
const PAIR_LOCKS_LISTED: usize = 1000;

/// Which limit refused a request: answers and audit lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `lockout.max_failures` for the customer.
    Customer,
    /// `lockout.max_failures` for the customer from this caller number (`lockout.scope = "caller"`).
    CustomerFromCaller,
    /// `lockout.max_failures_per_caller` for the caller number, across customers
    /// (`lockout.max_failures_withheld` for the withheld line).
    CallerNumber,
    /// `lockout.max_consecutive_failures` for the customer: locked until the desk unlocks.
    Desk,
    /// The same for the customer from this caller number (`lockout.scope = "caller"`).
    DeskFromCaller,
    /// `codes.max_sends_per_caller`: sends from the caller number across customers.
    CallerSends,
}

impl Limit {
    pub fn message(self) -> &'static str {
        match self {
            Limit::Customer => "customer locked after too many wrong codes",
            Limit::CustomerFromCaller => {
                "customer locked for this caller number after too many wrong codes"
            }
            Limit::CallerNumber => "caller number locked after too many wrong codes",
            Limit::Desk => {
                "customer locked after too many wrong codes in a row: the support desk must unlock"
            }
            Limit::DeskFromCaller => {
                "customer locked for this caller number after too many wrong codes in a row: the support desk must unlock"
            }
            Limit::CallerSends => "too many codes sent from this caller number",
        }
    }

    /// The same limit when the lock it met or set lasts until the desk unlocks.
    fn for_desk(self, desk: bool) -> Limit {
        match (self, desk) {
            (Limit::Customer, true) => Limit::Desk,
            (Limit::CustomerFromCaller, true) => Limit::DeskFromCaller,
            (other, _) => other,
        }
    }

    /// The label of `twofactor_lockouts_total` and `twofactor_send_refused_total`.
    fn label(self) -> &'static str {
        match self {
            Limit::Customer => "customer",
            Limit::CustomerFromCaller => "customer_from_caller",
            Limit::CallerNumber => "caller_number",
            Limit::Desk => "consecutive",
            Limit::DeskFromCaller => "consecutive_from_caller",
            Limit::CallerSends => "caller_sends",
        }
    }
}

/// What happened, before it becomes a status string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    NotFound,
    IncorrectCode,
    CodeExpired,
    Locked(Limit),
    /// Too many sends, a capped number, or (with the limit) a locked customer or line.
    SendLimited(Option<Limit>),
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NotFound => "not_found",
            Outcome::IncorrectCode => "incorrect_code",
            Outcome::CodeExpired => "code_expired",
            Outcome::Locked(_) => "locked",
            Outcome::SendLimited(_) => "send_limited",
            Outcome::Error => "error",
        }
    }

    /// The `<message>` an answer carries: which limit refused, when one did.
    pub fn message(self) -> Option<&'static str> {
        match self {
            Outcome::Locked(limit) | Outcome::SendLimited(Some(limit)) => Some(limit.message()),
            _ => None,
        }
    }
}

/// Who a request is about: the customer, and the call and caller number when GIA passes them.
#[derive(Debug, Clone)]
pub struct Call {
    pub customer: CustomerId,
    pub id: Option<CallId>,
    pub number: Option<CallerNumber>,
}

/// A customer's verified methods that are offered, in the order the reference document lists them.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    pub email: Option<Email>,
    pub authenticator: bool,
    pub sms: Option<PhoneNumber>,
}

impl Methods {
    /// What `c` has, less the channels the service does not offer (no transport in production).
    fn offered(r: &Rules<'_>, c: &Customer) -> Methods {
        Methods {
            email: c.email.clone().filter(|_| r.email.is_some()),
            authenticator: c.has_authenticator(),
            sms: c.phone.clone().filter(|_| r.sms.is_some()),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && !self.authenticator && self.sms.is_none()
    }
}

fn audit(op: &'static str, call: &Call, method: Option<Method>, outcome: Outcome, detail: &str) {
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

/// Whether this fault may be logged, and how many were left out since the last that was.
fn fault_line() -> Option<u64> {
    // (second, lines logged in it, lines left out since the last logged)
    static LOG: std::sync::Mutex<(u64, u32, u64)> = std::sync::Mutex::new((0, 0, 0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
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
fn fault(
    op: &'static str,
    call: &Call,
    method: Option<Method>,
    cause: &dyn std::fmt::Display,
) -> Outcome {
    if let Some(left_out) = fault_line() {
        tracing::error!(customer = %call.customer, operation = op, cause = %cause, similar_left_out = left_out, "operation failed");
    }
    audit(op, call, method, Outcome::Error, "fault");
    Outcome::Error
}

// --- The customer directory seam (`directory.source`) -------------------------------------------

/// Where a request's customer comes from (`directory.source`).
enum Found {
    /// The store's own record, which the store's scripts read in the same step that decides.
    InStore,
    /// Looked up outside the store (through the cache), with the authenticator the store holds;
    /// the scripts go by `known`. The customer's `rev` is the revision a new code is bound to.
    Outside { customer: Customer, known: Known },
}

impl Found {
    /// `None`: a customer the source does not know. A failing source is an error, so the `error`
    /// status.
    async fn of(r: &Rules<'_>, id: &CustomerId) -> anyhow::Result<Option<Found>> {
        if r.directory.in_store() {
            return Ok(Some(Found::InStore));
        }
        Ok(r.directory.get(id).await?.map(|mut customer| {
            let revs = contacts_revs(
                r.keyring,
                id,
                customer.email.as_ref(),
                customer.phone.as_ref(),
            );
            customer.rev = revs.first().cloned();
            let known = Known {
                email: customer.email.is_some(),
                phone: customer.phone.is_some(),
                authenticator: customer.has_authenticator(),
                revs,
            };
            Found::Outside { customer, known }
        }))
    }

    fn known(&self) -> Option<&Known> {
        match self {
            Found::InStore => None,
            Found::Outside { known, .. } => Some(known),
        }
    }

    /// The customer the store's script decided for: the one looked up, or the record it read.
    fn customer(self, id: &CustomerId, json: &str) -> Result<Customer, DirectoryError> {
        match self {
            Found::InStore => Directory::parse(id, json),
            Found::Outside { customer, .. } => Ok(customer),
        }
    }
}

// --------------------------------------------------------------------------------------------------

/// check-verified-contact-methods: `None` when the customer is unknown or has no verified method.
pub async fn verified_methods(
    r: &Rules<'_>,
    customer: &CustomerId,
) -> Result<Option<Methods>, Outcome> {
    let call = Call {
        customer: customer.clone(),
        id: None,
        number: None,
    };
    let lookup = tokio::time::timeout(STORE_DEADLINE, r.directory.get(customer)).await;
    let lookup = lookup.unwrap_or_else(|_| {
        Err(crate::store::StoreError::Unavailable("the store did not answer in time".into()).into())
    });
    match lookup {
        Ok(Some(c)) => {
            let methods = Methods::offered(r, &c);
            let outcome = if methods.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Success
            };
            audit("methods", &call, None, outcome, "");
            Ok((!methods.is_empty()).then_some(methods))
        }
        Ok(None) => {
            audit(
                "methods",
                &call,
                None,
                Outcome::NotFound,
                "unknown customer",
            );
            Ok(None)
        }
        Err(e) => Err(fault("methods", &call, None, &e)),
    }
}

/// A uniformly random code of `digits` digits from the thread CSPRNG (rejection sampling, no modulo bias).
pub fn generate_code(digits: u32) -> SecretString {
    let n = rand::random_range(0..10u64.pow(digits));
    SecretString::from(format!("{n:0width$}", width = digits as usize))
}

/// What a stored digest binds a code to: customer, call (if any), method and code. (The contacts
/// it went to are bound by their revision, kept beside the digest.) One digest per key of the key
/// ring, current first (what a send stores).
fn digests(r: &Rules<'_>, call: &Call, method: Method, code: &str) -> Vec<String> {
    r.keyring.digests(&[
        call.customer.as_str(),
        call.id.as_ref().map(CallId::as_str).unwrap_or(""),
        method.as_str(),
        code,
    ])
}

/// The keys of a caller number's own limit, when it applies to this request, and the limit.
struct Line {
    lock: String,
    count: String,
    max: u32,
}

fn line(r: &Rules<'_>, call: &Call) -> Option<Line> {
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
fn caller_digest(r: &Rules<'_>, number: &CallerNumber) -> String {
    r.keyring.digest(&["caller-number", number.as_str()])
}

/// The keys a request's customer lock lives in: the customer's, or with `lockout.scope =
/// "caller"` the pair's (customer, caller number).
struct Counted {
    lock: String,
    failures: String,
    streak: String,
    limit: Limit,
}

/// Who `lockout.max_failures` and `lockout.max_consecutive_failures` count for this request.
fn counted(r: &Rules<'_>, call: &Call) -> Counted {
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

/// send-authentication-code.
pub async fn send(r: &Rules<'_>, call: &Call, method: Method) -> Outcome {
    match send_inner(r, call, method).await {
        Ok((outcome, detail)) => {
            audit("send", call, Some(method), outcome, detail);
            outcome
        }
        Err(e) => fault("send", call, Some(method), &e),
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
        let prepared = prepare_send(r, call, method).await;
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
/// in one round trip (plus one for a caller number's lock, and for an SMS number's cap).
/// `Err` is an answer that ends the send there.
async fn prepare_send(
    r: &Rules<'_>,
    call: &Call,
    method: Method,
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
    let line_locked = match line(r, call) {
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
        let written = r
            .store
            .reserve_send(
                &keys.sends,
                &keys.code,
                &keys.choice,
                s.codes.max_sends,
                window,
                &digest,
                method.as_str(),
                record.rev.as_deref().unwrap_or(""),
                ttl,
            )
            .await?;
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

/// The keys a check touches, and which limit its lock is.
fn attempt_keys(r: &Rules<'_>, call: &Call) -> (AttemptKeys, Limit) {
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

/// code-authentication. `raw_code` is `authCode_nbest1` as received.
pub async fn verify(r: &Rules<'_>, call: &Call, method: Option<Method>, raw_code: &str) -> Outcome {
    let work = verify_inner(r, call, method, raw_code);
    match tokio::time::timeout(STORE_DEADLINE, work).await {
        Ok(Ok((outcome, used, detail))) => {
            audit("verify", call, used, outcome, detail);
            outcome
        }
        Ok(Err(e)) => fault("verify", call, method, &e),
        Err(_) => fault("verify", call, method, &"the store did not answer in time"),
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

/// Judges one code for the customer in one atomic store step (see `Store::check_code`); an
/// authenticator code takes a second (see `Store::verify_totp`). With `judge` false only a repeat
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
            let verdict = r
                .store
                .verify_totp(
                    &keys,
                    &r.keys.totp_step(&call.customer),
                    matched,
                    Duration::from_secs(step_ttl),
                    &candidates,
                    &rule,
                    judge,
                )
                .await?;
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
    fn fault_lines_are_limited_per_second() {
        let logged = (0..1000).filter(|_| fault_line().is_some()).count();
        // The loop may straddle a second boundary, so up to two seconds' worth.
        assert!(
            (1..=2 * FAULT_LINES_PER_SECOND as usize).contains(&logged),
            "{logged} of 1000 logged"
        );
    }

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
