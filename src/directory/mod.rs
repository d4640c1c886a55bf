//! Customers and their verified contact methods. [`Directory`] is the one facade the rest of the
//! service uses; where contacts come from is a [`Source`] (`directory.source`): the store's own
//! records (`store.rs`, the default), any REST API (`http.rs`) or Genesys Cloud External Contacts
//! (`genesys_cloud.rs`), whose answers are cached in the store, sealed (`cache.rs`). Authenticator
//! secrets always live in the store, encrypted (see `crypto`) and bound to the customer id so they
//! cannot be moved to another record; with an external source the customer's record holds only that.

pub mod cache;
pub mod genesys_cloud;
pub mod http;
pub mod oauth;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::TotpSettings;
use crate::config::directory::{DirectorySettings, DirectorySource};
use crate::crypto::Keyring;
use crate::domain::{CustomerId, Email, PhoneNumber};
use crate::store::{Keys, Store, StoreError};
use crate::totp::{self, Enrolment};

/// Customers a seed file or an import writes at a time: enough to keep a pipelined Redis
/// connection busy, few enough that a large file does not flood the store.
const LOAD_CONCURRENCY: usize = 64;

/// A customer as the seed file, the import command and the admin API write it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Base32; write-only.
    #[serde(default)]
    pub totp_secret: Option<String>,
}

/// A customer as read back: the secret is never returned, only whether there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerView {
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub totp_enrolled: bool,
}

/// What is stored per customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Customer {
    #[serde(default, deserialize_with = "stored::email")]
    pub email: Option<Email>,
    #[serde(default, deserialize_with = "stored::phone")]
    pub phone: Option<PhoneNumber>,
    /// `v1.<key id>.<ciphertext>` of the raw secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_sealed: Option<String>,
    /// The contacts' revision (see [`contacts_rev`]): a pending code carries the one it was sent
    /// under, and the store refuses it once the record holds another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
}

/// A keyed tag of a customer's contacts: equal for equal contacts, and telling nothing of them
/// without the service key, so it may sit beside a pending code.
pub fn contacts_rev(
    keyring: &Keyring,
    id: &CustomerId,
    email: Option<&Email>,
    phone: Option<&PhoneNumber>,
) -> String {
    let mut tag = keyring.digest(&contacts_parts(id, email, phone));
    tag.truncate(16);
    tag
}

/// The same tag under each key of the ring, current first: what a customer looked up outside the
/// store matches pending codes by, so codes sent by an instance on the other key still match
/// during a key rotation.
pub fn contacts_revs(
    keyring: &Keyring,
    id: &CustomerId,
    email: Option<&Email>,
    phone: Option<&PhoneNumber>,
) -> Vec<String> {
    let mut tags = keyring.digests(&contacts_parts(id, email, phone));
    tags.iter_mut().for_each(|t| t.truncate(16));
    tags
}

fn contacts_parts<'a>(
    id: &'a CustomerId,
    email: Option<&'a Email>,
    phone: Option<&'a PhoneNumber>,
) -> [&'a str; 4] {
    [
        "contacts",
        id.as_str(),
        email.map(Email::as_str).unwrap_or(""),
        phone.map(PhoneNumber::e164).unwrap_or(""),
    ]
}

/// Contacts as read back from the store: validated when written, so only their form is checked on
/// every read (a full phone-number check was a quarter of a request's CPU).
mod stored {
    use serde::{Deserialize, Deserializer, de::Error};

    use crate::domain::{Email, PhoneNumber};

    pub fn email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Email>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(Email::from_stored)
            .transpose()
            .map_err(D::Error::custom)
    }

    pub fn phone<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PhoneNumber>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(PhoneNumber::from_stored)
            .transpose()
            .map_err(D::Error::custom)
    }
}

impl Customer {
    pub fn has_authenticator(&self) -> bool {
        self.totp_sealed.is_some()
    }
}

/// A customer's contacts as a source answers them, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// Read back from the (sealed) cache with the store's light checks: validated when fetched.
    #[serde(default, deserialize_with = "stored::email")]
    pub email: Option<Email>,
    #[serde(default, deserialize_with = "stored::phone")]
    pub phone: Option<PhoneNumber>,
}

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

/// A validated input, ready to store.
pub struct ValidCustomer {
    pub id: CustomerId,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
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

    /// Checks one input; `id` overrides the input's own id (admin PUT names it in the path).
    pub fn validate(
        &self,
        input: &CustomerInput,
        id: Option<&str>,
    ) -> Result<ValidCustomer, String> {
        let raw_id = id.or(input.id.as_deref()).ok_or("id is missing")?;
        let id = CustomerId::parse(raw_id)?;
        let nonempty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let email = nonempty(&input.email)
            .map(|e| Email::parse(&e))
            .transpose()?;
        let phone = nonempty(&input.phone)
            .map(|p| PhoneNumber::parse_in(&p, self.default_region))
            .transpose()?;
        let totp_secret = nonempty(&input.totp_secret)
            .map(|s| totp::from_base32(&s).map(Zeroizing::new))
            .transpose()?;
        Ok(ValidCustomer {
            id,
            email,
            phone,
            totp_secret,
        })
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

    /// A stored record as read by a caller that fetched it itself (with other keys, in one trip).
    pub fn parse(id: &CustomerId, json: &str) -> Result<Customer, DirectoryError> {
        serde_json::from_str(json)
            .map_err(|e| DirectoryError::Corrupt(id.to_string(), e.to_string()))
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

    /// Validates every entry of a seed file's JSON list first, then stores them all: one bad entry
    /// stores nothing, and the error lists each bad entry by position and id.
    pub async fn import_json(&self, json: &str) -> Result<usize, DirectoryError> {
        self.load_json(json, false).await
    }

    /// Like [`Directory::import_json`], but leaves customers that already exist as they are: what
    /// `directory.seed_file` does at every start, so a restart never undoes changes made since
    /// through the admin API or an import.
    pub async fn seed_json(&self, json: &str) -> Result<usize, DirectoryError> {
        self.load_json(json, true).await
    }

    async fn load_json(&self, json: &str, only_new: bool) -> Result<usize, DirectoryError> {
        self.writable()?;
        let inputs: Vec<CustomerInput> = serde_json::from_str(json).map_err(|e| {
            DirectoryError::Invalid(format!(
                "not a JSON list of {{id, email, phone, totp_secret}}: {e}"
            ))
        })?;
        let mut valid = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, input) in inputs.iter().enumerate() {
            match self.validate(input, None) {
                Ok(v) if !seen.insert(v.id.clone()) => {
                    errors.push(format!("entry {} ({}): id appears twice", i + 1, v.id))
                }
                Ok(v) => valid.push(v),
                Err(e) => errors.push(format!(
                    "entry {} ({}): {e}",
                    i + 1,
                    input.id.as_deref().unwrap_or("no id")
                )),
            }
        }
        if !errors.is_empty() {
            return Err(DirectoryError::Invalid(errors.join("; ")));
        }
        // Several customers at a time: one by one, a seed file of 100 000 customers that were all
        // there already held every start up for 8 s.
        use futures_util::StreamExt;
        let mut n = 0;
        // After a failure no more are started, but those under way finish: an upsert is several
        // store calls, and one dropped halfway could leave a customer half-written.
        let failed = std::cell::Cell::new(false);
        let mut first_error = None;
        let mut results = futures_util::stream::iter(valid)
            .map(|v| {
                let failed = &failed;
                async move {
                    if failed.get() {
                        return Ok(false);
                    }
                    let written = self.load_one(v, only_new).await;
                    if written.is_err() {
                        failed.set(true);
                    }
                    written
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        while let Some(result) = results.next().await {
            match result {
                Ok(written) => n += usize::from(written),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Writes one customer of a seed or an import; false when `only_new` and it exists already.
    async fn load_one(&self, v: ValidCustomer, only_new: bool) -> Result<bool, DirectoryError> {
        if only_new && self.get(&v.id).await?.is_some() {
            return Ok(false);
        }
        self.upsert(v).await?;
        Ok(true)
    }
}

/// What `check-config` says of the directory settings, and what `--probe` can try.
pub struct Description {
    pub summary: String,
    source: Option<http::HttpSource>,
}

/// Builds the configured source (which checks what only building can) and describes it, secrets left out.
pub fn describe(s: &DirectorySettings) -> anyhow::Result<Description> {
    let region = s.default_region.0;
    let cache = match s.cache_ttl_seconds {
        0 => "cache off".to_string(),
        n => format!("cached {n} s"),
    };
    Ok(match s.source {
        DirectorySource::Store => Description {
            summary: "store (seed file, import, admin API)".into(),
            source: None,
        },
        DirectorySource::Http => Description {
            summary: format!(
                "http {} {} (auth {}, timeout {} ms, {cache})",
                s.http.method,
                crate::redact::redact_url(&s.http.url),
                format!("{:?}", s.http.auth).to_lowercase(),
                s.http.timeout_ms
            ),
            source: Some(http::HttpSource::from_settings(&s.http, region)?),
        },
        DirectorySource::GenesysCloud => {
            let g = &s.genesys_cloud;
            let by = match g.search_pointer.as_str() {
                "" => "by contact id".to_string(),
                p => format!("by search on {p}"),
            };
            Description {
                summary: format!(
                    "genesys_cloud {} (token from {}/oauth/token, {by}, timeout {} ms, {cache})",
                    g.api_base(),
                    g.login_base(),
                    g.timeout_ms
                ),
                source: Some(genesys_cloud::source(g, region)?),
            }
        }
    })
}

impl Description {
    /// Fetches an OAuth token when the source uses one; `None` when there is nothing to try.
    pub async fn probe(&self) -> Option<Result<String, String>> {
        let oauth = self.source.as_ref()?.oauth()?;
        Some(oauth.probe().await.map(|f| match f.expires_in {
            Some(s) => format!("token fetched (expires in {s} s)"),
            None => "token fetched (no expires_in given)".to_string(),
        }))
    }
}
