//! Building and running the server: state, seed customers, listener (HTTP or HTTPS), routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::config::Settings;
use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects everything the settings name and binds `server.bind` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let state = AppState::from_settings(settings).await?;
        Self::build_with_state(state).await
    }

    pub async fn build_with_state(state: AppState) -> anyhow::Result<Application> {
        let settings = state.settings.clone();
        if !settings.directory.seed_file.is_empty() {
            let json =
                std::fs::read_to_string(&settings.directory.seed_file).with_context(|| {
                    format!(
                        "directory.seed_file: cannot read {}",
                        settings.directory.seed_file
                    )
                })?;
            let n =
                state.directory.seed_json(&json).await.with_context(|| {
                    format!("directory.seed_file {}", settings.directory.seed_file)
                })?;
            tracing::info!(new_customers = n, file = %settings.directory.seed_file, "seed customers loaded (existing ones kept)");
        }
        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("server.bind: cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let data = state.clone();
        crate::telemetry::metrics_handle();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::telemetry::request_middleware))
                .app_data(data.clone())
                .configure(crate::http::configure)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_seconds);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = if settings.server.tls_cert_file.is_empty() {
            server.listen(listener)?
        } else {
            server.listen_rustls_0_23(listener, tls_config(&settings)?)?
        };
        let scheme = if settings.server.tls_cert_file.is_empty() {
            "http"
        } else {
            "https"
        };
        tracing::info!(address = %settings.server.bind, port, scheme, store = %crate::state::redact_url(&settings.store.url), "listening");
        if settings.security.auth_scheme == crate::config::AuthScheme::Basic && scheme == "http" {
            tracing::warn!(
                "callers use Basic credentials over plain HTTP: set server.tls_cert_file and tls_key_file, \
                 or make sure a TLS proxy terminates in front of this service"
            );
        }
        Ok(Application {
            port,
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn tls_config(settings: &Settings) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert_file = &settings.server.tls_cert_file;
    let key_file = &settings.server.tls_key_file;
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!("server.tls_cert_file: cannot read PEM certificates from {cert_file}")
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "server.tls_cert_file: {cert_file} holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
        format!("server.tls_key_file: cannot read a PEM private key from {key_file}")
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert_file and server.tls_key_file do not match")
}
