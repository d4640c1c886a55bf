//! OAuth 2.0 client credentials (RFC 6749 §4.4) for callflow callers such as Genesys Cloud Data
//! Actions: checking a client's secret, minting access tokens and recognising them.
//!
//! A token is 256 random bits from the operating system's CSPRNG (via `rand`'s thread generator,
//! which is seeded from it). The store keeps only a keyed digest of it (HMAC under the key ring, so
//! a copy of Redis yields nothing to replay) with the client id and expiry, for the token's life,
//! so every instance sharing the store accepts it.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::{OAuthClient, SecuritySettings};
use crate::state::AppState;
use crate::store::StoreError;

/// A token longer than this was never issued here; it is refused without a store lookup.
const MAX_TOKEN_LEN: usize = 128;

/// What the store keeps per token.
#[derive(Serialize, Deserialize)]
struct Record {
    client: String,
    expires_at: u64,
}

/// The configured client `id` whose secret is `secret`, if any. Every client's digest is compared,
/// in constant time, whatever the id, so timing shows neither which ids exist nor how much of a
/// secret was right.
pub fn authenticate<'a>(
    sec: &'a SecuritySettings,
    id: &str,
    secret: &str,
) -> Option<&'a OAuthClient> {
    use subtle::ConstantTimeEq;
    let presented = crate::crypto::sha256_hex(secret.as_bytes());
    let mut found = None;
    for client in &sec.oauth_clients {
        let id_ok = crate::crypto::same_secret(id.as_bytes(), client.id.as_bytes());
        let secret_ok = presented
            .as_bytes()
            .ct_eq(client.secret_sha256.to_ascii_lowercase().as_bytes());
        if bool::from(id_ok & secret_ok) {
            found = Some(client);
        }
    }
    found
}

/// A new access token for `client`, recorded in the store for `security.oauth_token_ttl_seconds`.
pub async fn issue(
    state: &AppState,
    sec: &SecuritySettings,
    client: &str,
) -> Result<String, StoreError> {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let ttl = sec.oauth_token_ttl_seconds;
    let record = Record {
        client: client.to_string(),
        expires_at: state.clock.now_unix() + ttl,
    };
    let value = serde_json::to_string(&record).map_err(|e| StoreError::Protocol(e.to_string()))?;
    let key = state
        .keys
        .oauth_token(&state.keyring.digest(&[DIGEST_LABEL, &token]));
    state
        .store
        .set(&key, &value, Some(Duration::from_secs(ttl)))
        .await?;
    Ok(token)
}

const DIGEST_LABEL: &str = "oauth access token";

/// The client a bearer token was issued to, while it is valid: issued here (under the current or a
/// previous key), not expired, and its client still configured (removing a client revokes its
/// tokens).
pub async fn token_client(
    state: &AppState,
    sec: &SecuritySettings,
    token: &str,
) -> Result<Option<String>, StoreError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    for digest in state.keyring.digests(&[DIGEST_LABEL, token]) {
        let Some(raw) = state.store.get(&state.keys.oauth_token(&digest)).await? else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<Record>(&raw) else {
            continue;
        };
        let live = record.expires_at > state.clock.now_unix();
        let configured = sec.oauth_clients.iter().any(|c| c.id == record.client);
        return Ok((live && configured).then_some(record.client));
    }
    Ok(None)
}
