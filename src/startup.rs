//! Building and running the server: state, seed customers, listener (HTTP or HTTPS), routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::config::Settings;
use crate::state::AppState;

/// Applies the limits both listeners share (shutdown time, connection cap, TLS) and starts the
/// server. A macro because `HttpServer`'s generic bounds name actix-http types this crate does not
/// depend on.
macro_rules! serve {
    ($server:expr, $settings:expr, $workers:expr, $listener:expr, $tls:expr) => {{
        let mut server = $server
            .shutdown_timeout($settings.server.shutdown_timeout_seconds)
            .max_connections($settings.server.max_connections_per_worker);
        server = server.workers($workers);
        let server = match $tls {
            None => server.listen($listener)?,
            Some(tls) => server.listen_rustls_0_23($listener, tls)?,
        };
        server.run()
    }};
}

pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    server: Server,
    /// The admin listener's server, when `admin.bind` is set.
    admin: Option<Server>,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects everything the settings name and binds `server.bind` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let state = AppState::from_settings(settings).await?;
        Self::build_with_state(state).await
    }

    pub async fn build_with_state(state: AppState) -> anyhow::Result<Application> {
        let snapshot = state.snapshot();
        let settings = &snapshot.settings;
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
        // Bound before anything runs, so a taken admin port fails the start rather than half of it.
        let admin_listener =
            if settings.admin.bind.is_empty() {
                None
            } else {
                Some(TcpListener::bind(&settings.admin.bind).with_context(|| {
                    format!("admin.bind: cannot listen on {}", settings.admin.bind)
                })?)
            };
        let admin_port = match &admin_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        // Before the first re-read, so the settings gauges it sets are recorded from the start.
        crate::telemetry::metrics_handle();
        // Settings changed live before this instance started apply before it serves.
        if let Err(e) = crate::live::refresh(&state.live).await {
            tracing::warn!(cause = %e, "live settings not read at start: serving the file's until the store answers");
        }
        let state = web::Data::new(state);
        crate::live::watch(state.live.clone());
        let tls = if settings.server.tls_cert_file.is_empty() {
            None
        } else {
            Some(tls_config(settings)?)
        };
        let scheme = if tls.is_some() { "https" } else { "http" };

        let data = state.clone();
        let admin_here = admin_listener.is_none();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::http::body_deadline::middleware))
                .wrap(from_fn(crate::telemetry::request_middleware))
                .app_data(data.clone())
                .configure(crate::http::configure_public)
                .configure(|cfg| {
                    if admin_here {
                        crate::http::configure_admin(cfg);
                    }
                })
        });
        let server = serve!(
            server,
            settings,
            settings.server.http_workers(),
            listener,
            tls.clone()
        );
        tracing::info!(address = %settings.server.bind, port, scheme, store = %crate::redact::redact_url(&settings.store.url), "listening");

        let admin = match admin_listener {
            Some(listener) => {
                let data = state.clone();
                let admin = HttpServer::new(move || {
                    App::new()
                        .wrap(from_fn(crate::http::body_deadline::middleware))
                        .wrap(from_fn(crate::telemetry::request_middleware))
                        .app_data(data.clone())
                        .configure(crate::http::configure_health)
                        .configure(crate::http::configure_admin)
                });
                // One worker: the admin surface is a few requests a minute.
                let admin = serve!(admin, settings, 1, listener, tls);
                tracing::info!(address = %settings.admin.bind, port = admin_port, scheme, "admin listening");
                Some(admin)
            }
            None => None,
        };
        if admin_here
            && settings.server.environment == crate::config::Environment::Production
            && settings.admin.allowed_networks.is_empty()
        {
            tracing::warn!(
                "/metrics answers 403 to everyone: in production it is served on the admin listener only \
                 (set admin.bind, e.g. 127.0.0.1:9090) or to the scrapers listed in admin.allowed_networks"
            );
        }
        let sec = &settings.security;
        let secrets_in_clear = !sec.auth_scheme.is_none() || !sec.oauth_clients.is_empty();
        if secrets_in_clear && scheme == "http" {
            tracing::warn!(
                "callers send credentials or tokens over plain HTTP: set server.tls_cert_file and tls_key_file, \
                 or make sure a TLS proxy terminates in front of this service"
            );
        }
        Ok(Application {
            port,
            admin_port,
            server,
            admin,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when `admin.bind` gives the admin surface one of its own.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish. With an admin listener,
    /// both stop together: when either ends (a signal stops both), the other is stopped too.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Some(admin) = self.admin else {
            return self.server.await;
        };
        let (public_handle, admin_handle) = (self.server.handle(), admin.handle());
        match futures_util::future::select(self.server, admin).await {
            futures_util::future::Either::Left((first, admin)) => {
                admin_handle.stop(true).await;
                first.and(admin.await)
            }
            futures_util::future::Either::Right((first, public)) => {
                public_handle.stop(true).await;
                first.and(public.await)
            }
        }
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
