//! What a callflow operation can end in, before it becomes a configured status string, and which
//! limit refused a request.

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
    pub(super) fn for_desk(self, desk: bool) -> Limit {
        match (self, desk) {
            (Limit::Customer, true) => Limit::Desk,
            (Limit::CustomerFromCaller, true) => Limit::DeskFromCaller,
            (other, _) => other,
        }
    }

    /// The label of `twofactor_lockouts_total` and `twofactor_send_refused_total`.
    pub(super) fn label(self) -> &'static str {
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
