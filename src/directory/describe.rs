//! What `check-config` says of the directory settings (`describe`), and what `--probe` tries.

use crate::config::directory::{DirectorySettings, DirectorySource};

use super::{genesys_cloud, http};

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
