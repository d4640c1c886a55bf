//! The default source: contacts are the store's own customer records, written by the seed file,
//! `customers import` and the admin API.

use super::{Contacts, Customer, Source, SourceError};
use crate::domain::CustomerId;

pub struct StoreSource;

#[async_trait::async_trait]
impl Source for StoreSource {
    fn name(&self) -> &'static str {
        "store"
    }
    fn in_store(&self) -> bool {
        true
    }
    async fn lookup(
        &self,
        _id: &CustomerId,
        stored: Option<&Customer>,
    ) -> Result<Option<Contacts>, SourceError> {
        Ok(stored.map(|c| Contacts {
            email: c.email.clone(),
            phone: c.phone.clone(),
        }))
    }
}
