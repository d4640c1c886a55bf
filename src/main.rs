//! The `twofactor` command: serve, check the configuration, import customers, enrol authenticators,
//! send test messages.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use twofactor::config::Settings;
use twofactor::delivery::{self, test_send};
use twofactor::domain::{Email, PhoneNumber};
use twofactor::live::Snapshot;
use twofactor::startup::Application;
use twofactor::state::AppState;
use twofactor::store::{Keys, StoreError, StoreUrl, connect_trusting};

#[derive(Parser)]
#[command(
    name = "twofactor",
    version,
    about = "Two-factor authentication for IVR callflows"
)]
struct Cli {
    /// TOML configuration file (over the embedded defaults; TFA__SECTION__KEY variables win over it).
    #[arg(long, global = true, env = "TFA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Load and validate the configuration, print a summary, and exit.
    CheckConfig {
        /// Also try what can be tried without a caller: fetch the directory source's OAuth token.
        #[arg(long)]
        probe: bool,
    },
    /// Ask the customer directory.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Manage customers.
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
    /// Send a test email with the current settings and print what the server answered.
    SendTestEmail {
        /// Where to send it.
        address: String,
    },
    /// Send a test SMS with the current settings and print what the gateway answered.
    SendTestSms {
        /// International (+44…), or national in directory.default_region.
        number: String,
    },
    /// Manage authenticator apps (TOTP).
    Totp {
        #[command(subcommand)]
        command: TotpCommand,
    },
    /// Manage the encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Print what the configured source answers for customer ID (masked) and how long it took,
    /// past the cache; exits 1 when the customer is unknown or the source fails.
    Test { id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored authenticator secret and the live settings' secrets under
    /// security.encryption_key, so the keys in security.previous_encryption_keys can be retired;
    /// prints how many it resealed.
    Reseal,
}

#[derive(Subcommand)]
enum TotpCommand {
    /// Give customer ID a new authenticator secret (replacing any) and print it with its otpauth URI.
    #[command(alias = "enrol")]
    Enroll {
        id: String,
        /// Also print the QR code in the terminal, for light-on-dark terminals.
        #[arg(long)]
        qr: bool,
        /// Draw the terminal QR code for dark-on-light terminals instead.
        #[arg(long, requires = "qr")]
        invert: bool,
        /// Also write the QR code as a PNG file here.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// Remove customer ID's authenticator (a lost or stolen phone); its codes stop working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum CustomersCommand {
    /// Import a JSON list of {id, email, phone, totp_secret} into the store (all or nothing).
    Import { file: PathBuf },
    /// Lift customer ID's locks, the one that needs the desk included, and clear the counts that
    /// lead to them (as DELETE /admin/v1/customers/{id}/lock does).
    Unlock { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // The service logs on stdout; every other command keeps stdout for its result.
    let _logs = match command {
        Command::Serve => twofactor::telemetry::init(settings.log.format, &settings.log.filter),
        _ => twofactor::telemetry::init_to(
            settings.log.format,
            &settings.log.filter,
            std::io::stderr(),
        ),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::CheckConfig { probe } => runtime.block_on(check_config(&settings, probe)),
        Command::Directory {
            command: DirectoryCommand::Test { id },
        } => runtime.block_on(directory_test(settings, id)),
        Command::Customers {
            command: CustomersCommand::Import { file },
        } => runtime.block_on(import(settings, file)),
        Command::Customers {
            command: CustomersCommand::Unlock { id },
        } => runtime.block_on(unlock(settings, id)),
        Command::Totp {
            command:
                TotpCommand::Enroll {
                    id,
                    qr,
                    invert,
                    png,
                },
        } => runtime.block_on(totp_enroll(settings, id, qr, invert, png)),
        Command::Totp {
            command: TotpCommand::Revoke { id },
        } => runtime.block_on(totp_revoke(settings, id)),
        Command::Keys {
            command: KeysCommand::Reseal,
        } => runtime.block_on(keys_reseal(settings)),
        Command::SendTestEmail { address } => runtime.block_on(send_test_email(settings, address)),
        Command::SendTestSms { number } => runtime.block_on(send_test_sms(settings, number)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}

async fn check_config(settings: &Settings, probe: bool) -> anyhow::Result<()> {
    // Building the senders checks what only they can: templates, the CA file, the TLS setup.
    delivery::from_settings(settings)?;
    let directory = twofactor::directory::describe(&settings.directory)?;
    println!("configuration is valid");
    println!("  listen:   {}", settings.server.bind);
    println!(
        "  store:    {}",
        twofactor::redact::redact_url(&settings.store.url)
    );
    println!("  email:    {:?}", settings.email_transport());
    println!("  sms:      {:?}", settings.sms_transport());
    let sec = &settings.security;
    println!("  callers:  auth {:?}", sec.auth_scheme.list());
    let clients: Vec<&str> = sec.oauth_clients.iter().map(|c| c.id.as_str()).collect();
    println!(
        "  oauth:    {}",
        if clients.is_empty() {
            "no clients (POST /oauth/token refuses every client)".to_string()
        } else {
            format!(
                "clients {} (tokens live {} s; {} failed authentications per client id and per address in {} s)",
                clients.join(", "),
                sec.oauth_token_ttl_seconds,
                sec.oauth_max_failures,
                sec.oauth_failure_window_seconds
            )
        }
    );
    println!("  directory: {}", directory.summary);
    let admins: Vec<String> = settings
        .admin
        .tokens
        .iter()
        .map(|t| format!("{} ({})", t.name, t.role))
        .collect();
    println!(
        "  admin:    {}",
        if admins.is_empty() {
            "off (no admin.tokens)".to_string()
        } else {
            admins.join(", ")
        }
    );
    for line in check_store_reachable(settings).await {
        println!("{line}");
    }
    // Live settings this configuration cannot open would silently give way to the file's.
    match twofactor::live::check_stored(settings).await {
        Ok(None) => {}
        Ok(Some(line)) => println!("{line}"),
        Err(problem) => anyhow::bail!("{problem}"),
    }
    if probe {
        match directory.probe().await {
            None => {
                println!("  probe:    nothing to probe (the directory source uses no OAuth token)")
            }
            Some(Ok(line)) => println!("  probe:    {line}"),
            Some(Err(e)) => anyhow::bail!("directory token: {e}"),
        }
    }
    Ok(())
}

/// For `twofactor check-config`: a short attempt to reach the store and run its readiness check,
/// as lines to print (warnings, or why it could not be reached). Nothing for the memory store.
/// Never an error: the store may simply not be reachable from where the check runs.
async fn check_store_reachable(settings: &Settings) -> Vec<String> {
    if matches!(StoreUrl::parse(&settings.store.url), Ok(StoreUrl::Memory)) {
        return Vec::new();
    }
    let attempt = async {
        let root_ca = settings.store.root_ca().map_err(StoreError::Unavailable)?;
        let store = connect_trusting(&settings.store.url, root_ca).await?;
        let probe = Keys::new(&settings.store.key_prefix).readiness_probe();
        store.readiness(&probe).await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(warnings)) => std::iter::once("  store reachable and writable".to_string())
            .chain(warnings.into_iter().map(|w| format!("warning: {w}")))
            .collect(),
        Ok(Err(e)) => vec![format!("  store not ready from here: {e}")],
        Err(_) => vec!["  store not reachable from here within 5 s".to_string()],
    }
}

async fn directory_test(settings: Settings, id: String) -> anyhow::Result<()> {
    let id = twofactor::domain::CustomerId::parse(&id).map_err(|e| anyhow::anyhow!(e))?;
    let source = settings.directory.source.as_str();
    let state = AppState::from_settings(settings).await?;
    let started = std::time::Instant::now();
    let answer = state.directory.ask_source(&id).await;
    let took = started.elapsed().as_millis();
    println!("source:   {source}");
    println!("customer: {id}");
    match answer {
        Ok(Some(c)) => {
            let email = c.email.map(|e| e.masked());
            let phone = c.phone.map(|p| p.masked());
            println!("email:    {}", email.as_deref().unwrap_or("(none offered)"));
            println!("phone:    {}", phone.as_deref().unwrap_or("(none offered)"));
            println!("took:     {took} ms");
            Ok(())
        }
        Ok(None) => {
            println!("took:     {took} ms");
            anyhow::bail!("the source does not know customer {id}")
        }
        Err(e) => {
            println!("took:     {took} ms");
            anyhow::bail!("{e}")
        }
    }
}

async fn import(settings: Settings, file: PathBuf) -> anyhow::Result<()> {
    anyhow::ensure!(
        !settings.store.url.starts_with("memory:"),
        "store.url is memory://, so an import would vanish when this command exits: \
         point store.url at the service's Redis, or use directory.seed_file"
    );
    let json = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let state = AppState::from_settings(settings).await?;
    let n = state.directory.import_json(&json).await?;
    println!("imported {n} customers");
    Ok(())
}

async fn totp_enroll(
    settings: Settings,
    id: String,
    qr: bool,
    invert: bool,
    png: Option<PathBuf>,
) -> anyhow::Result<()> {
    use base64::Engine;
    // Same reason as import: a memory store lives only in this process, so the running service
    // would never see the new secret while the customer's app already shows its codes.
    anyhow::ensure!(
        !settings.store.url.starts_with("memory:"),
        "store.url is memory://, so the new secret would vanish when this command exits: \
         point store.url (and security.encryption_key) at the service's, or use \
         POST /admin/v1/customers/{{id}}/totp"
    );
    let id = twofactor::domain::CustomerId::parse(&id).map_err(|e| anyhow::anyhow!(e))?;
    let state = AppState::from_settings(settings).await?;
    let Some(enrolment) = state
        .directory
        .enrol(&state.snapshot().settings.totp, &id)
        .await?
    else {
        match state.directory.source_name() {
            "store" => {
                anyhow::bail!("no customer {id}: import it or PUT it through the admin API first")
            }
            source => {
                anyhow::bail!("no customer {id} in the directory (directory.source = \"{source}\")")
            }
        }
    };
    println!("customer:    {id}");
    println!("secret:      {}", enrolment.secret);
    println!("otpauth_uri: {}", enrolment.otpauth_uri);
    if let Some(path) = png {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&enrolment.qr_png_base64)
            .map_err(|e| anyhow::anyhow!("QR PNG: {e}"))?;
        std::fs::write(&path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("qr_png:      {}", path.display());
    }
    if qr {
        let art = twofactor::totp::terminal_qr(&enrolment.otpauth_uri, invert)
            .map_err(|e| anyhow::anyhow!(e))?;
        println!();
        print!("{art}");
    }
    Ok(())
}

/// The state of the running service's store, for commands that change it; refuses `memory://`,
/// which lives only in this command's own process.
async fn shared_state(settings: Settings, what: &str) -> anyhow::Result<AppState> {
    anyhow::ensure!(
        !settings.store.url.starts_with("memory:"),
        "store.url is memory://, so {what} would reach only this command's own empty store: \
         point store.url (and security.encryption_key) at the service's"
    );
    AppState::from_settings(settings).await
}

async fn totp_revoke(settings: Settings, id: String) -> anyhow::Result<()> {
    let id = twofactor::domain::CustomerId::parse(&id).map_err(|e| anyhow::anyhow!(e))?;
    let state = shared_state(settings, "a revocation").await?;
    anyhow::ensure!(
        state.directory.revoke_totp(&id).await?,
        "customer {id} has no authenticator to revoke (or does not exist)"
    );
    tracing::info!(target: "audit", event = "totp-revoke", customer = %id, via = "cli", outcome = "revoked");
    println!("revoked the authenticator of customer {id}");
    Ok(())
}

async fn unlock(settings: Settings, id: String) -> anyhow::Result<()> {
    let id = twofactor::domain::CustomerId::parse(&id).map_err(|e| anyhow::anyhow!(e))?;
    let state = shared_state(settings, "an unlock").await?;
    let removed = twofactor::desk::unlock(state.store.as_ref(), &state.keys, &id).await?;
    let outcome = if removed { "unlocked" } else { "not locked" };
    tracing::info!(target: "audit", event = "admin-customer-unlock", customer = %id, via = "cli", outcome);
    println!("customer {id}: {outcome}");
    Ok(())
}

async fn keys_reseal(settings: Settings) -> anyhow::Result<()> {
    let state = shared_state(settings, "a reseal").await?;
    let customers = state.directory.reseal_all().await?;
    let settings = twofactor::live::reseal(&state.live).await.map_err(|e| {
        e.context(format!(
            "resealed {customers} authenticator secrets, but not the live settings"
        ))
    })?;
    // One line, the total first, so a script can loop until it reads "resealed 0".
    println!(
        "resealed {} secrets under key {} ({customers} authenticator secrets, {settings} live settings values)",
        customers + settings,
        state.keyring.current_id()
    );
    Ok(())
}

async fn send_test_email(settings: Settings, address: String) -> anyhow::Result<()> {
    let to = Email::parse(&address).map_err(|e| anyhow::anyhow!("ADDRESS: {e}"))?;
    println!(
        "sending a test email (code {}) to {} via {:?}",
        "0".repeat(settings.codes.digits as usize),
        to.as_str(),
        settings.email_transport()
    );
    let snapshot = Snapshot::build(settings)?;
    let report = test_send::email(&snapshot.settings, snapshot.email.as_deref(), &to).await;
    anyhow::ensure!(
        report.sent,
        "the test email was not sent: {}",
        report.answer
    );
    println!(
        "server answered: {} ({} ms)",
        report.answer, report.elapsed_ms
    );
    Ok(())
}

async fn send_test_sms(settings: Settings, number: String) -> anyhow::Result<()> {
    let to = PhoneNumber::parse_in(&number, settings.directory.default_region.0)
        .map_err(|e| anyhow::anyhow!("NUMBER: {e}"))?;
    println!(
        "sending a test SMS (code {}) to {} via {:?}",
        "0".repeat(settings.codes.digits as usize),
        to.for_recipient(settings.sms.plus_symbol_before_recipient_number),
        settings.sms_transport()
    );
    let snapshot = Snapshot::build(settings)?;
    let report = test_send::sms(&snapshot.settings, snapshot.sms.as_deref(), &to).await;
    anyhow::ensure!(report.sent, "the test SMS was not sent: {}", report.answer);
    println!(
        "gateway answered: {} ({} ms)",
        report.answer, report.elapsed_ms
    );
    Ok(())
}
