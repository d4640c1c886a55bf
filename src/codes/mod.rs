//! The rules of the three callflow operations: which methods a customer has, sending a code, and
//! checking one (sent code or authenticator). Handlers parse; this module decides; the store keeps.
//! One file per job:
//!
//! | file | job |
//! | --- | --- |
//! | `outcome.rs` | what can happen ([`Outcome`]) and which limit refused ([`Limit`]) |
//! | `methods.rs` | a customer's offered methods, and where the customer comes from (`directory.source`) |
//! | `subject.rs` | who a request counts against: the locks, counters and digests of a call |
//! | `send.rs` | send-authentication-code: limits, the code's write, delivery, taking back a failed one |
//! | `verify.rs` | code-authentication: the caller line's claim, judging the code, locks |
//! | `spoken.rs` | what the caller keyed or said, as digits |
//! | `audit.rs` | the audit line of each decision, and faults logged within a rate |
//!
//! Every outcome is one of [`Outcome`], which the HTTP layer maps to the configured status strings.
//! Each decision is written as one audit line (target `audit`) with customer, call, caller number
//! (masked), method, outcome and what decided it.

mod audit;
mod methods;
mod outcome;
mod send;
mod spoken;
mod subject;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::delivery::{EmailSender, SmsSender};
use crate::directory::Directory;
use crate::domain::{CallId, CallerNumber, CustomerId};
use crate::store::{Keys, Store};

pub use methods::{Methods, verified_methods};
pub use outcome::{Limit, Outcome};
pub use send::{generate_code, send};
pub use spoken::normalise_code;
pub use verify::verify;

/// However a store stalls, a callflow hears an answer within this (sending: plus its transport's
/// own timeout).
const STORE_DEADLINE: Duration = Duration::from_secs(5);

/// What the rules see of one request's world: one snapshot's settings and senders, and the seams.
/// Built once per request (by the HTTP side, from the state), so every rule reads the same settings
/// even while they change.
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

/// Who a request is about: the customer, and the call and caller number when GIA passes them.
#[derive(Debug, Clone)]
pub struct Call {
    pub customer: CustomerId,
    pub id: Option<CallId>,
    pub number: Option<CallerNumber>,
}
