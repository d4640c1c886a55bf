//! `[server]`, `[log]`, `[store]` and `[gia]`: where the service listens and how, its logs, the
//! store it opens, and the callflow's parameter names; plus `server.environment`.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on; port 0 picks a free one (tests).
    pub bind: String,
    /// `production` refuses the outbox and the memory store.
    pub environment: Environment,
    /// Largest request body accepted; larger ones get 413 with the endpoint's XML.
    pub max_body_bytes: usize,
    /// Largest single parameter value accepted.
    pub max_param_bytes: usize,
    /// HTTP worker threads; 0 means two per core (see [`ServerSettings::http_workers`]).
    pub workers: usize,
    /// Seconds in-flight requests get to finish on SIGTERM.
    pub shutdown_timeout_seconds: u64,
    /// Time to receive a whole request body once its headers are in; slower bodies get 408.
    pub body_timeout_ms: u64,
    /// Open connections each worker accepts; more wait in the listen backlog.
    pub max_connections_per_worker: usize,
    /// PEM certificate chain; with `tls_key_file`, the server speaks HTTPS only.
    pub tls_cert_file: String,
    /// PEM private key.
    pub tls_key_file: String,
}

impl ServerSettings {
    /// The HTTP workers to start. By default two per core: a worker spends part of each request
    /// waiting for Redis, and with one per core that wait leaves the core idle under load
    /// (the benchmark's wrong-code checks ran 18 % faster with two).
    pub fn http_workers(&self) -> usize {
        match self.workers {
            0 => 2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `twofactor=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory://`, `redis://…`, `rediss://…`, `redis+sentinel://…` or `redis+cluster://…`.
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// PEM file of the CA(s) that signed the Redis servers' certificates, for `rediss://` and
    /// `rediss+cluster://`; when set, the only roots trusted. Empty: the public (webpki) roots.
    pub ca_file: String,
}

impl StoreSettings {
    /// The PEM of `ca_file`, checked to hold at least one certificate; `None` when unset.
    pub fn root_ca(&self) -> Result<Option<Vec<u8>>, String> {
        use rustls_pki_types::pem::PemObject;
        if self.ca_file.is_empty() {
            return Ok(None);
        }
        let pem = std::fs::read(&self.ca_file)
            .map_err(|e| format!("store.ca_file: cannot read {}: {e}", self.ca_file))?;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("store.ca_file: {} is not PEM: {e}", self.ca_file))?;
        if certs.is_empty() {
            return Err(format!(
                "store.ca_file: {} holds no PEM certificate",
                self.ca_file
            ));
        }
        Ok(Some(pem))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiaSettings {
    /// Parameter names that carry the customer id; the first present wins.
    pub customer_id_params: Vec<String>,
    /// Parameter names that carry the call id; the first present wins.
    pub call_id_params: Vec<String>,
    /// Parameter names that carry the caller's number (ANI); the first present wins.
    pub caller_number_params: Vec<String>,
}
