use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use tabby::cli::{Cli, Command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let json_logs =
        matches!(&cli.command, Command::Agent(a) if a.log_format == tabby::cli::LogFormat::Json);
    // The CLI prints skipped records itself, once, as plain lines.
    let default_level = if matches!(cli.command, Command::Agent(_)) {
        "info"
    } else {
        "warn,tabby::skipped=off"
    };
    if !matches!(cli.command, Command::Agent(_)) {
        // `tabby node show | head` ends quietly, as other Unix tools do,
        // instead of panicking in println! on the closed pipe. The agent
        // keeps Rust's default: a closed socket must not kill it.
        // SAFETY: SIG_DFL installs no handler, so no handler code can run
        // on another thread while it changes.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json_logs {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    if let Err(err) = tabby::cli::run(cli).await {
        eprintln!("Error: {}", tabby::error_chain::text(&err));
        std::process::exit(1);
    }
}
