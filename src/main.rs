//! The `twofactor` command: serve, check the configuration, import customers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use twofactor::config::Settings;
use twofactor::startup::Application;
use twofactor::state::AppState;

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
    CheckConfig,
    /// Manage customers.
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
}

#[derive(Subcommand)]
enum CustomersCommand {
    /// Import a JSON list of {id, email, phone, totp_secret} into the store (all or nothing).
    Import { file: PathBuf },
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
    twofactor::telemetry::init(settings.log.format, &settings.log.filter);
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
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::CheckConfig => check_config(&settings),
        Command::Customers {
            command: CustomersCommand::Import { file },
        } => runtime.block_on(import(settings, file)),
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

fn check_config(settings: &Settings) -> anyhow::Result<()> {
    println!("configuration is valid");
    println!("  listen:   {}", settings.server.bind);
    println!(
        "  store:    {}",
        twofactor::state::redact_url(&settings.store.url)
    );
    println!("  email:    {:?}", settings.email_transport());
    println!("  sms:      {:?}", settings.sms_transport());
    println!("  callers:  auth {:?}", settings.security.auth_scheme);
    Ok(())
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
