//! A customer as written and as stored: the input (`CustomerInput`) and its validation
//! (`Directory::validate`, `ValidCustomer`), the record (`Customer`, `Directory::parse`), what the
//! admin API shows (`CustomerView`), the contacts a source answers (`Contacts`), and the contacts'
//! revision kept beside a code's digest (`contacts_rev`, `contacts_revs`).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Directory, DirectoryError};
use crate::crypto::Keyring;
use crate::domain::{CustomerId, Email, PhoneNumber};
use crate::totp;

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

/// A validated input, ready to store.
pub struct ValidCustomer {
    pub id: CustomerId,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
}

impl Directory {
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

    /// A stored record as read by a caller that fetched it itself (with other keys, in one trip).
    pub fn parse(id: &CustomerId, json: &str) -> Result<Customer, DirectoryError> {
        serde_json::from_str(json)
            .map_err(|e| DirectoryError::Corrupt(id.to_string(), e.to_string()))
    }
}
