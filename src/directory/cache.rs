//! Answers of an external source kept in the store for `directory.cache_ttl_seconds`, so a callflow
//! (three requests in a minute) asks the source once, and every instance shares the answer. They
//! are personal data: each is sealed with the service key, bound to the customer id, so the store
//! never holds a contact in clear. An unknown customer is kept too, for a shorter time.

use std::sync::Arc;
use std::time::Duration;

use super::Contacts;
use crate::crypto::Keyring;
use crate::domain::CustomerId;
use crate::store::{Keys, Store, StoreError};

/// How long "unknown customer" is kept (or the TTL, if shorter): a customer added to the source a
/// moment ago is found soon, and a flood of made-up ids holds little in the store.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);

pub struct Cache {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Arc<Keyring>,
    ttl: Duration,
}

impl Cache {
    pub fn new(store: Arc<dyn Store>, keys: Keys, keyring: Arc<Keyring>, ttl: Duration) -> Cache {
        Cache {
            store,
            keys,
            keyring,
            ttl,
        }
    }

    fn context(id: &CustomerId) -> String {
        format!("directory-cache:{id}")
    }

    /// The kept answer (`Some(None)`: known to be unknown), or `None` when there is none. An entry
    /// that does not open (a retired key) is a miss, not an error.
    pub async fn get(&self, id: &CustomerId) -> Result<Option<Option<Contacts>>, StoreError> {
        if self.ttl.is_zero() {
            return Ok(None);
        }
        let Some(sealed) = self.store.get(&self.keys.directory_cache(id)).await? else {
            return Ok(None);
        };
        let answer = self
            .keyring
            .decrypt(&sealed, &Self::context(id))
            .ok()
            .and_then(|json| serde_json::from_slice::<Option<Contacts>>(&json).ok());
        Ok(answer)
    }

    pub async fn put(&self, id: &CustomerId, answer: &Option<Contacts>) -> Result<(), StoreError> {
        if self.ttl.is_zero() {
            return Ok(());
        }
        let ttl = match answer {
            Some(_) => self.ttl,
            None => self.ttl.min(NEGATIVE_TTL),
        };
        let json = serde_json::to_vec(answer).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let sealed = self.keyring.encrypt(&json, &Self::context(id));
        self.store
            .set(&self.keys.directory_cache(id), &sealed, Some(ttl))
            .await
    }
}
