//! Every key the service writes, built in one place with the deployment's prefix.

use crate::domain::CustomerId;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The customer record (JSON; the TOTP secret inside is encrypted).
    pub fn customer(&self, id: &CustomerId) -> String {
        format!("{}customer:{id}", self.prefix)
    }
    /// The one pending code of a customer (digest and wrong tries).
    pub fn code(&self, id: &CustomerId) -> String {
        format!("{}code:{id}", self.prefix)
    }
    /// The method the caller last chose, so code-authentication can omit it.
    pub fn choice(&self, id: &CustomerId) -> String {
        format!("{}choice:{id}", self.prefix)
    }
    /// Sends in the current send window.
    pub fn sends(&self, id: &CustomerId) -> String {
        format!("{}sends:{id}", self.prefix)
    }
    /// Wrong codes in the current lockout window.
    pub fn failures(&self, id: &CustomerId) -> String {
        format!("{}failures:{id}", self.prefix)
    }
    /// Present while the customer is locked.
    pub fn lock(&self, id: &CustomerId) -> String {
        format!("{}lock:{id}", self.prefix)
    }
    /// Last accepted TOTP step.
    pub fn totp_step(&self, id: &CustomerId) -> String {
        format!("{}totp:step:{id}", self.prefix)
    }
    /// SMS sent to one number in the current hour; keyed by a digest, not the number.
    pub fn sms_number(&self, number_digest: &str) -> String {
        format!("{}sms:number:{number_digest}", self.prefix)
    }
    /// Settings changed at run time through the admin API.
    pub fn settings(&self) -> String {
        format!("{}settings", self.prefix)
    }
}
