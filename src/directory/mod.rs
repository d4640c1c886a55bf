//! Customers and their verified contact methods. [`Directory`] is the one facade the rest of the
//! service uses; where contacts come from is a [`Source`] (`directory.source`): the store's own
//! records (`store.rs`, the default), any REST API (`http.rs`) or Genesys Cloud External Contacts
//! (`genesys_cloud.rs`), whose answers are cached in the store, sealed (`cache.rs`). Authenticator
//! secrets always live in the store, encrypted (see `crypto`) and bound to the customer id so they
//! cannot be moved to another record; with an external source the customer's record holds only that.
//!
//! Here: the `Source` trait and the `Directory` facade (reading, writing, authenticator enrolment,
//! revocation and resealing). The customer record, its validation and the contacts' revision are
//! `customer.rs`; imports and the seed file `import.rs`; what `check-config` says `describe.rs`.

pub mod cache;
mod customer;
mod describe;
pub mod genesys_cloud;
pub mod http;
mod import;
pub mod oauth;
pub mod store;

pub use customer::{
    Contacts, Customer, CustomerInput, CustomerView, ValidCustomer, contacts_rev, contacts_revs,
};
pub use describe::{Description, describe};

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::TotpSettings;
use crate::config::directory::{DirectorySettings, DirectorySource};
use crate::crypto::Keyring;
use crate::domain::CustomerId;
use crate::store::{Keys, Store, StoreError};
use crate::totp::{self, Enrolment};

/// Why a source could not answer. The text names the cause (a status, a timeout, a missing
/// field), never contact data, so it can be logged as it is.
#[derive(Debug, thiserror::Error)]
#[error("directory source {source_name}: {cause}")]
pub struct SourceError {
    pub source_name: &'static str,
    pub cause: String,
}

/// Where customers' contacts come from.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// `store`, `http` or `genesys_cloud`, as `directory.source` names it.
    fn name(&self) -> &'static str;
    /// Whether the contacts are the store's own records, which the seed file, imports and the
    /// admin API write. Otherwise they are read from elsewhere and only looked at here.
    fn in_store(&self) -> bool {
        false
    }
    /// The contacts of `id`, `None` for a customer the source does not know. `stored` is the
    /// customer's record in the store, already read by the caller.
    async fn lookup(
        &self,
        id: &CustomerId,
        stored: Option<&Customer>,
    ) -> Result<Option<Contacts>, SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored TOTP secret for {0} cannot be decrypted: {1}")]
    Secret(String, crate::crypto::CryptoError),
    #[error("stored record for {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A contact write while contacts come from an external source.
    #[error(
        "customers' contacts come from directory.source = \"{0}\": change them there (only \
         authenticators are enrolled and revoked here)"
    )]
    ReadOnly(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("cannot build the provisioning URI or QR code: {0}")]
    Provisioning(String),
}

pub struct Directory {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Arc<Keyring>,
    default_region: Option<phonenumber::country::Id>,
    source: Arc<dyn Source>,
    cache: cache::Cache,
}

impl Directory {
    /// The directory `directory.source` names, with its cache.
    pub fn from_settings(
        store: Arc<dyn Store>,
        keys: Keys,
        keyring: Arc<Keyring>,
        settings: &DirectorySettings,
    ) -> anyhow::Result<Directory> {
        let region = settings.default_region.0;
        let source: Arc<dyn Source> = match settings.source {
            DirectorySource::Store => Arc::new(store::StoreSource),
            DirectorySource::Http => {
                Arc::new(http::HttpSource::from_settings(&settings.http, region)?)
            }
            DirectorySource::GenesysCloud => {
                Arc::new(genesys_cloud::source(&settings.genesys_cloud, region)?)
            }
        };
        let cache = cache::Cache::new(
            store.clone(),
            keys.clone(),
            keyring.clone(),
            Duration::from_secs(settings.cache_ttl_seconds),
        );
        Ok(Directory {
            store,
            keys,
            keyring,
            default_region: region,
            source,
            cache,
        })
    }

    /// Refuses contact writes while contacts come from elsewhere.
    fn writable(&self) -> Result<(), DirectoryError> {
        if self.source.in_store() {
            Ok(())
        } else {
            Err(DirectoryError::ReadOnly(self.source.name()))
        }
    }

    /// What the source itself answers for `id`, past the cache: `twofactor directory test`.
    pub async fn ask_source(&self, id: &CustomerId) -> Result<Option<Contacts>, DirectoryError> {
        let record = self.store.get(&self.keys.customer(id)).await?;
        let stored = record.map(|json| Self::parse(id, &json)).transpose()?;
        Ok(self.source.lookup(id, stored.as_ref()).await?)
    }

    /// An external source's answer for `id`, from the cache while it is fresh.
    async fn external_contacts(&self, id: &CustomerId) -> Result<Option<Contacts>, DirectoryError> {
        let source = self.source.name();
        if let Some(kept) = self.cache.get(id).await? {
            metrics::counter!("twofactor_directory_lookups_total", "source" => source, "outcome" => "cached").increment(1);
            return Ok(kept);
        }
        let started = std::time::Instant::now();
        let answer = self.source.lookup(id, None).await;
        let outcome = match &answer {
            Ok(Some(_)) => "found",
            Ok(None) => "unknown",
            Err(_) => "error",
        };
        metrics::counter!("twofactor_directory_lookups_total", "source" => source, "outcome" => outcome).increment(1);
        metrics::histogram!("twofactor_directory_lookup_duration_seconds", "source" => source, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        let answer = answer?;
        self.cache.put(id, &answer).await?;
        Ok(answer)
    }

    /// Whether contacts are the store's own records (`directory.source = "store"`).
    pub fn in_store(&self) -> bool {
        self.source.in_store()
    }

    /// The configured source's name (`store`, `http`, `genesys_cloud`).
    pub fn source_name(&self) -> &'static str {
        self.source.name()
    }

    /// The customer: the store's record, or with an external source the contacts it answers
    /// (through the cache) with the authenticator secret the store holds. `None`: unknown.
    pub async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, DirectoryError> {
        let record = self.store.get(&self.keys.customer(id)).await?;
        let stored = record.map(|json| Self::parse(id, &json)).transpose()?;
        if self.source.in_store() {
            return Ok(stored);
        }
        let contacts = self.external_contacts(id).await?;
        Ok(contacts.map(|c| Customer {
            email: c.email,
            phone: c.phone,
            totp_sealed: stored.and_then(|s| s.totp_sealed),
            rev: None,
        }))
    }

    pub async fn view(&self, id: &CustomerId) -> Result<Option<CustomerView>, DirectoryError> {
        Ok(self.get(id).await?.map(|c| CustomerView {
            id: id.to_string(),
            email: c.email.map(String::from),
            phone: c.phone.map(String::from),
            totp_enrolled: c.totp_sealed.is_some(),
        }))
    }

    /// Stores email and phone as given; keeps the existing TOTP secret unless a new one is given.
    /// Answers whether a customer with this id existed before.
    pub async fn upsert(&self, c: ValidCustomer) -> Result<bool, DirectoryError> {
        self.writable()?;
        let old = self.get(&c.id).await?;
        let existed = old.is_some();
        let contacts_changed = old
            .as_ref()
            .is_some_and(|o| o.email != c.email || o.phone != c.phone);
        let old_sealed = old.and_then(|o| o.totp_sealed);
        let totp_sealed = match &c.totp_secret {
            Some(secret) => {
                // Re-importing the same secret keeps its replay history, so the last accepted
                // code cannot be used again; a different secret starts afresh.
                let same = old_sealed
                    .as_deref()
                    .and_then(|s| self.keyring.decrypt(s, c.id.as_str()).ok())
                    .is_some_and(|old| old.as_slice() == secret.as_slice());
                if !same {
                    self.store.del(&self.keys.totp_step(&c.id)).await?;
                    self.store.del(&self.keys.accepted(&c.id)).await?;
                }
                Some(self.keyring.encrypt(secret, c.id.as_str()))
            }
            None => old_sealed,
        };
        self.write(
            &c.id,
            &Customer {
                email: c.email,
                phone: c.phone,
                totp_sealed,
                rev: None,
            },
        )
        .await?;
        if contacts_changed {
            self.forget_pending(&c.id).await?;
        }
        Ok(existed)
    }

    /// A sent code is valid only for the destination it went to: when a contact changes, the
    /// pending code, the remembered method and the retry-grace record go. (A code also carries the
    /// contacts' revision, which the check script compares with the record's, so a send racing
    /// this change still cannot verify afterwards.)
    async fn forget_pending(&self, id: &CustomerId) -> Result<(), DirectoryError> {
        for key in [
            self.keys.code(id),
            self.keys.choice(id),
            self.keys.accepted(id),
        ] {
            self.store.del(&key).await?;
        }
        Ok(())
    }

    /// Removes the customer's authenticator (a lost or stolen phone) and its replay record; false
    /// when there is no such customer or no authenticator.
    pub async fn revoke_totp(&self, id: &CustomerId) -> Result<bool, DirectoryError> {
        let Some(mut c) = self.get(id).await? else {
            return Ok(false);
        };
        if c.totp_sealed.take().is_none() {
            return Ok(false);
        }
        if self.source.in_store() {
            self.write(id, &c).await?;
        } else {
            // The record held only the secret.
            self.store.del(&self.keys.customer(id)).await?;
        }
        self.store.del(&self.keys.totp_step(id)).await?;
        self.store.del(&self.keys.accepted(id)).await?;
        Ok(true)
    }

    /// Re-encrypts every stored authenticator secret under the current key, so previous keys can
    /// be retired. Each record is replaced only if unchanged since it was read, so an enrolment
    /// racing the reseal is never undone. Answers how many were resealed.
    pub async fn reseal_all(&self) -> Result<usize, DirectoryError> {
        let mut resealed = 0;
        for key in self
            .store
            .keys_with_prefix(&self.keys.customer_prefix())
            .await?
        {
            let Some(id) = self.keys.customer_id_of(&key) else {
                continue;
            };
            let id = CustomerId::parse(&id).map_err(|e| DirectoryError::Corrupt(id, e))?;
            let Some(json) = self.store.get(&key).await? else {
                continue;
            };
            let mut c: Customer = serde_json::from_str(&json)
                .map_err(|e| DirectoryError::Corrupt(id.to_string(), e.to_string()))?;
            let Some(sealed) = c.totp_sealed.as_deref() else {
                continue;
            };
            if self.keyring.is_current(sealed) {
                continue;
            }
            let secret = self
                .keyring
                .decrypt(sealed, id.as_str())
                .map_err(|e| DirectoryError::Secret(id.to_string(), e))?;
            c.totp_sealed = Some(self.keyring.encrypt(&secret, id.as_str()));
            let new = serde_json::to_string(&c)
                .map_err(|e| DirectoryError::Corrupt(id.to_string(), e.to_string()))?;
            if self.store.compare_and_set(&key, Some(&json), &new).await? {
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    /// Enrols (or re-enrols) an existing customer: a fresh secret, stored only encrypted, replacing any
    /// earlier one. `None` when there is no such customer.
    pub async fn enrol(
        &self,
        settings: &TotpSettings,
        id: &CustomerId,
    ) -> Result<Option<Enrolment>, EnrolError> {
        let secret = Zeroizing::new(totp::generate_secret());
        // Build the answer first, so a failure here leaves the old secret in place.
        let enrolment = totp::provisioning(settings, &secret, &totp::account_name(id))
            .map_err(EnrolError::Provisioning)?;
        if !self.set_totp(id, &secret).await? {
            return Ok(None);
        }
        Ok(Some(enrolment))
    }

    /// Replaces the TOTP secret of an existing customer; false when there is no such customer.
    /// The last accepted step belonged to the old secret: it is cleared, so the new app's current
    /// code works at once.
    pub async fn set_totp(&self, id: &CustomerId, secret: &[u8]) -> Result<bool, DirectoryError> {
        let Some(mut c) = self.get(id).await? else {
            return Ok(false);
        };
        c.totp_sealed = Some(self.keyring.encrypt(secret, id.as_str()));
        self.write(id, &c).await?;
        self.store.del(&self.keys.totp_step(id)).await?;
        // A code of the old app accepted moments ago must not pass again as a retry.
        self.store.del(&self.keys.accepted(id)).await?;
        Ok(true)
    }

    async fn write(&self, id: &CustomerId, c: &Customer) -> Result<(), DirectoryError> {
        // With an external source the record keeps the authenticator only: contacts read from the
        // source are never written to the store in clear. In the store, the record carries its
        // contacts' revision, which pending codes are bound to.
        let c = if self.source.in_store() {
            Customer {
                rev: Some(contacts_rev(
                    &self.keyring,
                    id,
                    c.email.as_ref(),
                    c.phone.as_ref(),
                )),
                ..c.clone()
            }
        } else {
            Customer {
                email: None,
                phone: None,
                totp_sealed: c.totp_sealed.clone(),
                rev: None,
            }
        };
        let json = serde_json::to_string(&c)
            .map_err(|e| DirectoryError::Corrupt(id.to_string(), e.to_string()))?;
        self.store.set(&self.keys.customer(id), &json, None).await?;
        Ok(())
    }

    /// Deletes the record, its replay history and any pending code; true when there was a record.
    pub async fn delete(&self, id: &CustomerId) -> Result<bool, DirectoryError> {
        self.writable()?;
        let existed = self.store.del(&self.keys.customer(id)).await?;
        self.store.del(&self.keys.totp_step(id)).await?;
        self.forget_pending(id).await?;
        Ok(existed)
    }

    /// The customer's TOTP secret in clear, for one check; wiped when dropped.
    pub fn totp_secret(
        &self,
        id: &CustomerId,
        c: &Customer,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, DirectoryError> {
        c.totp_sealed
            .as_deref()
            .map(|sealed| {
                self.keyring
                    .decrypt(sealed, id.as_str())
                    .map_err(|e| DirectoryError::Secret(id.to_string(), e))
            })
            .transpose()
    }
}
