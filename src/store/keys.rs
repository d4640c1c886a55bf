//! Every key the service writes, built in one place with the deployment's prefix.
//!
//! Per-customer keys carry the customer id as a Redis Cluster hash tag (`{1001}`; ids cannot hold
//! braces), so the keys one script touches together always live in the same slot.

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
        self.per_customer("customer", id)
    }
    /// The one pending code of a customer (digest and wrong tries).
    pub fn code(&self, id: &CustomerId) -> String {
        self.per_customer("code", id)
    }
    /// The method the caller last chose, so code-authentication can omit it.
    pub fn choice(&self, id: &CustomerId) -> String {
        self.per_customer("choice", id)
    }
    /// Sends in the current send window.
    pub fn sends(&self, id: &CustomerId) -> String {
        self.per_customer("sends", id)
    }
    /// Wrong codes in the current lockout window.
    pub fn failures(&self, id: &CustomerId) -> String {
        self.per_customer("failures", id)
    }
    /// Present while the customer is locked.
    pub fn lock(&self, id: &CustomerId) -> String {
        self.per_customer("lock", id)
    }
    /// Last accepted TOTP step.
    pub fn totp_step(&self, id: &CustomerId) -> String {
        self.per_customer("totp:step", id)
    }
    /// SMS sent to one number in the current hour; keyed by a digest, not the number.
    pub fn sms_number(&self, number_digest: &str) -> String {
        format!("{}sms:number:{number_digest}", self.prefix)
    }
    /// A short-lived key the readiness check writes, new each time, so on Cluster successive checks
    /// land on different masters.
    pub fn readiness_probe(&self) -> String {
        let token: u64 = rand::random();
        format!("{}ready:{token:016x}", self.prefix)
    }
    fn per_customer(&self, kind: &str, id: &CustomerId) -> String {
        format!("{}{kind}:{{{id}}}", self.prefix)
    }
}
