//! The real `twofactor` binary run as an operator runs it beside a deployment.

use super::*;

/// Runs the real `twofactor` binary with `args` against the test Redis under `prefix`, with
/// `key` current and `previous` keys listed, as an operator runs it beside a deployment. Nothing
/// from this process's environment reaches it but the settings given here.
pub async fn run_cli(
    prefix: &str,
    key: &str,
    previous: &[&str],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = cli_command(prefix, key, args);
    if !previous.is_empty() {
        let list: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
        cmd.env(
            "TFA__SECURITY__PREVIOUS_ENCRYPTION_KEYS",
            format!("[{}]", list.join(", ")),
        );
    }
    command_output(cmd).await
}

/// Runs the real `twofactor` binary with `args` against the test Redis under `prefix` and the test
/// key, with the settings `env` on top (as an operator configures it through the environment).
pub async fn run_cli_with_env(
    prefix: &str,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = cli_command(prefix, TEST_KEY, args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    command_output(cmd).await
}

/// The `twofactor` binary with no `TFA*` setting or `RUST_LOG` inherited from this process.
pub fn twofactor_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twofactor"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TFA") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The `twofactor` binary set up for a CLI run with `args` against the test Redis under `prefix`,
/// with `key` current and warnings only in its logs.
fn cli_command(prefix: &str, key: &str, args: &[&str]) -> Command {
    let mut cmd = twofactor_command();
    cmd.args(args)
        .env("TFA__STORE__URL", redis().url())
        .env("TFA__STORE__KEY_PREFIX", prefix)
        .env("TFA__SECURITY__ENCRYPTION_KEY", key)
        .env("TFA__LOG__FILTER", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end off the async runtime's threads.
async fn command_output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the twofactor binary runs"))
        .await
        .expect("the CLI task")
}

/// A finished command's stdout and stderr, for assertions and their messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
