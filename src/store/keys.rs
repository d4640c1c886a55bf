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
    /// Present while the customer is locked; `desk` (and no expiry) when only the support desk's
    /// unlock lifts it.
    pub fn lock(&self, id: &CustomerId) -> String {
        self.per_customer("lock", id)
    }
    /// Wrong codes in a row, across locks and windows (`lockout.max_consecutive_failures`); no
    /// expiry: only a success or the desk's unlock removes it.
    pub fn streak(&self, id: &CustomerId) -> String {
        self.per_customer("streak", id)
    }
    /// Last accepted TOTP step.
    pub fn totp_step(&self, id: &CustomerId) -> String {
        self.per_customer("totp:step", id)
    }
    /// An external directory source's answer for the customer, sealed (`directory.cache_ttl_seconds`).
    pub fn directory_cache(&self, id: &CustomerId) -> String {
        self.per_customer("directory", id)
    }
    /// The digest of the code accepted last in a call (retry grace).
    pub fn accepted(&self, id: &CustomerId) -> String {
        self.per_customer("accepted", id)
    }
    /// Wrong codes from one caller number (keyed by its digest) for one customer, when
    /// `lockout.scope = "caller"`; in the customer's slot, beside the customer's other keys.
    pub fn pair_failures(&self, id: &CustomerId, caller_digest: &str) -> String {
        format!("{}:{caller_digest}", self.failures(id))
    }
    /// Present while one caller number is locked out of one customer.
    pub fn pair_lock(&self, id: &CustomerId, caller_digest: &str) -> String {
        format!("{}:{caller_digest}", self.lock(id))
    }
    /// Wrong codes in a row from one caller number for one customer (`lockout.scope = "caller"`).
    pub fn pair_streak(&self, id: &CustomerId, caller_digest: &str) -> String {
        format!("{}:{caller_digest}", self.streak(id))
    }
    /// The caller-number digests whose pair lock was set on this customer (newest first), so an
    /// unlock finds them without walking the keyspace.
    pub fn pair_locks(&self, id: &CustomerId) -> String {
        self.per_customer("pairs", id)
    }
    /// Attempts from one caller number across all customers; keyed by a digest, not the number.
    pub fn caller_failures(&self, caller_digest: &str) -> String {
        format!("{}caller:failures:{{{caller_digest}}}", self.prefix)
    }
    /// Present while one caller number is locked.
    pub fn caller_lock(&self, caller_digest: &str) -> String {
        format!("{}caller:lock:{{{caller_digest}}}", self.prefix)
    }
    /// Codes sent from one caller number across all customers in the current send window.
    pub fn caller_sends(&self, caller_digest: &str) -> String {
        format!("{}caller:sends:{{{caller_digest}}}", self.prefix)
    }
    /// The live settings overlay (JSON; secrets sealed), shared by every instance.
    pub fn settings(&self) -> String {
        format!("{}settings:overlay", self.prefix)
    }
    /// The last settings changes, newest first.
    pub fn settings_history(&self) -> String {
        format!("{}settings:history", self.prefix)
    }
    /// The pub/sub channel that tells instances the overlay changed.
    pub fn settings_channel(&self) -> String {
        format!("{}settings:changed", self.prefix)
    }
    /// Every customer record's key starts with this.
    pub fn customer_prefix(&self) -> String {
        format!("{}customer:", self.prefix)
    }
    /// Every customer record whose id starts with `id_prefix` has a key starting with this.
    pub fn customer_id_prefix(&self, id_prefix: &str) -> String {
        format!("{}{{{id_prefix}", self.customer_prefix())
    }
    /// The customer id in a key from [`Keys::customer`].
    pub fn customer_id_of(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.customer_prefix())?
            .strip_prefix('{')?
            .strip_suffix('}')
            .map(str::to_string)
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
    /// An admin page session, keyed by a digest of its cookie value, never the value itself.
    pub fn admin_session(&self, id_digest: &str) -> String {
        format!("{}admin:session:{id_digest}", self.prefix)
    }
    /// Wrong admin logins from one peer address (its `caller_auth::peer_key`) in the current minute.
    pub fn admin_login_failures(&self, peer: &str) -> String {
        format!("{}admin:login-failures:{peer}", self.prefix)
    }
    /// An OAuth access token's record (client id, expiry), keyed by a keyed digest of the token,
    /// never the token itself.
    pub fn oauth_token(&self, token_digest: &str) -> String {
        format!("{}oauth:token:{token_digest}", self.prefix)
    }
    /// Failed client authentications at `/oauth/token` for one client id (keyed by a digest, so
    /// any string a caller sends makes a short key) in the current window.
    pub fn oauth_client_failures(&self, client_digest: &str) -> String {
        format!("{}oauth:failures:client:{client_digest}", self.prefix)
    }
    /// Failed client authentications at `/oauth/token` from one peer address (its
    /// `caller_auth::peer_key`) in the current window.
    pub fn oauth_peer_failures(&self, peer: &str) -> String {
        format!("{}oauth:failures:peer:{peer}", self.prefix)
    }
    /// Set while a client id's guessing has been reported in the current window, so the warning is
    /// logged once per window, not once per guess.
    pub fn oauth_client_alert(&self, client_digest: &str) -> String {
        format!("{}oauth:alerted:client:{client_digest}", self.prefix)
    }
    /// Wrong Basic passwords on the callflow endpoints from one peer address (its
    /// `caller_auth::peer_key`) in the current window.
    pub fn basic_failures(&self, peer: &str) -> String {
        format!("{}caller:basic-failures:{peer}", self.prefix)
    }
    /// `<prefix><kind>:{<id>}`, written into one allocation of the right size: a check builds six.
    fn per_customer(&self, kind: &str, id: &CustomerId) -> String {
        let id = id.as_str();
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + id.len() + 3);
        for part in [self.prefix.as_str(), kind, ":{", id, "}"] {
            key.push_str(part);
        }
        key
    }
}
