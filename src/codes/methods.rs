//! A customer's verified methods as offered, and where a request's customer comes from
//! (`directory.source`): the store's own record, or a lookup outside it.

use super::audit::{audit, fault};
use super::{Call, Outcome, Rules, STORE_DEADLINE};
use crate::directory::{Customer, Directory, DirectoryError, contacts_revs};
use crate::domain::{CustomerId, Email, PhoneNumber};
use crate::store::Known;

/// A customer's verified methods that are offered, in the order the reference document lists them.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    pub email: Option<Email>,
    pub authenticator: bool,
    pub sms: Option<PhoneNumber>,
}

impl Methods {
    /// What `c` has, less the channels the service does not offer (no transport in production).
    pub(super) fn offered(r: &Rules<'_>, c: &Customer) -> Methods {
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

/// Where a request's customer comes from (`directory.source`).
pub(super) enum Found {
    /// The store's own record, which the store's scripts read in the same step that decides.
    InStore,
    /// Looked up outside the store (through the cache), with the authenticator the store holds;
    /// the scripts go by `known`. The customer's `rev` is the revision a new code is bound to.
    Outside { customer: Customer, known: Known },
}

impl Found {
    /// `None`: a customer the source does not know. A failing source is an error, so the `error`
    /// status.
    pub(super) async fn of(r: &Rules<'_>, id: &CustomerId) -> anyhow::Result<Option<Found>> {
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

    pub(super) fn known(&self) -> Option<&Known> {
        match self {
            Found::InStore => None,
            Found::Outside { known, .. } => Some(known),
        }
    }

    /// The customer the store's script decided for: the one looked up, or the record it read.
    pub(super) fn customer(self, id: &CustomerId, json: &str) -> Result<Customer, DirectoryError> {
        match self {
            Found::InStore => Directory::parse(id, json),
            Found::Outside { customer, .. } => Ok(customer),
        }
    }
}

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
        Err(e) => Err(fault(r.clock, "methods", &call, None, &e)),
    }
}
