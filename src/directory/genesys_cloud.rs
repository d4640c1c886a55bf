//! `directory.source = "genesys_cloud"`: Genesys Cloud External Contacts through the HTTP source,
//! preset. The region gives the hosts (`https://login.<region>` for the token, `https://api.<region>`
//! for the API); the token is OAuth client credentials (`POST /oauth/token`, client id and secret
//! as Basic auth).
//!
//! By id: `GET /api/v2/externalcontacts/contacts/{id}` (404: unknown). By a field
//! (`search_pointer`, e.g. an account-number custom field): `GET
//! /api/v2/externalcontacts/contacts?q={id}&pageSize=25`, a keyword search over the contacts' fields,
//! then the one entity whose value at `search_pointer` equals the id exactly; none is unknown, two
//! or more is an error (either could be the caller).

use std::sync::Arc;
use std::time::Duration;

use super::http::{Auth, HttpSource, Mapping, Select};
use super::oauth::ClientCredentials;
use crate::config::directory::GenesysCloud;
use crate::outbound::client;

/// Keyword matches answered per search; the exact match is picked among them.
const SEARCH_PAGE: u32 = 25;

pub fn source(
    g: &GenesysCloud,
    default_region: Option<phonenumber::country::Id>,
) -> anyhow::Result<HttpSource> {
    let timeout = Duration::from_millis(g.timeout_ms);
    let client = client(timeout)?;
    let api = g.api_base();
    let (url, select) = if g.search_pointer.is_empty() {
        (
            format!("{api}/api/v2/externalcontacts/contacts/{{customer_id}}"),
            Select::Whole,
        )
    } else {
        (
            format!(
                "{api}/api/v2/externalcontacts/contacts?q={{customer_id}}&pageSize={SEARCH_PAGE}"
            ),
            Select::Search {
                list: "/entities".into(),
                key: g.search_pointer.clone(),
            },
        )
    };
    Ok(HttpSource {
        name: "genesys_cloud",
        auth: Auth::OAuth(Arc::new(ClientCredentials::new(
            client.clone(),
            format!("{}/oauth/token", g.login_base()),
            g.client_id.clone(),
            g.client_secret.clone(),
            String::new(),
        ))),
        client,
        method: reqwest::Method::GET,
        url,
        headers: Vec::new(),
        timeout,
        mapping: Mapping {
            email: g.email_pointers.clone(),
            phone: g.phone_pointers.clone(),
            email_verified: None,
            phone_verified: None,
        },
        select,
        default_region,
    })
}
