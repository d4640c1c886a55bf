//! OAuth 2.0 client credentials (RFC 6749 §4.4) for a directory source: one token per instance,
//! shared by every lookup, fetched on first use, refreshed shortly before it expires and once more
//! when the source refuses it. The token is held under an async mutex for the whole fetch, so a
//! burst of lookups makes one token request (single flight) and the rest use its answer.
//!
//! Hand-written rather than through the `oauth2` crate: the exchange is one form POST, and that
//! crate's bundled client is another reqwest major version.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token is renewed this long before `expires_in` runs out (or halfway, for shorter tokens), so a
/// lookup never sends one that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the token endpoint does not say (`expires_in` is only RECOMMENDED).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The longest a token is used, whatever `expires_in` says (Genesys Cloud's last a day).
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

pub struct ClientCredentials {
    client: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    current: Mutex<Option<Token>>,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
}

/// What a probe reports of a token, never the token itself.
pub struct Fetched {
    pub expires_in: Option<u64>,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl ClientCredentials {
    pub fn new(
        client: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        scope: String,
    ) -> ClientCredentials {
        ClientCredentials {
            client,
            token_url,
            client_id,
            client_secret,
            scope,
            current: Mutex::new(None),
        }
    }

    /// The shared token, fetched first if there is none or it is about to expire.
    pub async fn token(&self) -> Result<SecretString, String> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let (token, _) = self.fetch().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// The source refused `used` (401): it is dropped, so the next [`ClientCredentials::token`]
    /// fetches another, unless a racing lookup has already replaced it.
    pub async fn refused(&self, used: &SecretString) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == used.expose_secret())
        {
            *current = None;
        }
    }

    /// Fetches a token without keeping it: `check-config --probe`.
    pub async fn probe(&self) -> Result<Fetched, String> {
        self.fetch().await.map(|(_, f)| f)
    }

    async fn fetch(&self) -> Result<(Token, Fetched), String> {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !self.scope.is_empty() {
                form.append_pair("scope", &self.scope);
            }
            form.finish()
        };
        let started = Instant::now();
        let res = self
            .client
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("token endpoint unreachable: {}", crate::outbound::cause(&e)))?;
        let status = res.status();
        // A token answer is a few hundred bytes.
        let body = crate::outbound::read_capped(res, 64 * 1024)
            .await
            .map_err(|e| format!("token endpoint {e}"))?;
        if !status.is_success() {
            // RFC 6749 §5.2: `error` is a code such as invalid_client; it carries no secret.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .map(|e| format!(" ({})", crate::domain::truncate(&e, 64)))
                .unwrap_or_default();
            return Err(format!(
                "token endpoint answered {}{code}: check the client id and secret",
                status.as_u16()
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| "token endpoint answer has no access_token".to_string())?;
        // Capped, so an absurd expires_in neither overflows the clock nor keeps a token for ever.
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME)
            .min(MAX_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::info!(
            expires_in = answer.expires_in,
            took_ms = started.elapsed().as_millis() as u64,
            "directory token fetched"
        );
        Ok((
            Token {
                value: answer.access_token,
                renew_at: started + lifetime - margin,
            },
            Fetched {
                expires_in: answer.expires_in,
            },
        ))
    }
}
