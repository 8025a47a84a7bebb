use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

use tabby::cli::{Cli, Command};
use tabby::metrics::recent::RecentLayer;

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
        quiet_on_closed_stdout();
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = if json_logs {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    // The agent keeps its last warnings for `tabby status`, whatever
    // RUST_LOG lets through to the log.
    let recent = matches!(cli.command, Command::Agent(_))
        .then(|| RecentLayer.with_filter(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(recent)
        .init();
    if let Err(err) = tabby::cli::run(cli).await {
        eprintln!("Error: {}", tabby::error_chain::text(&err));
        std::process::exit(1);
    }
}

/// `tabby node show | head` ends quietly, as other Unix tools do, instead
/// of printing println!'s panic about the closed pipe. SIGPIPE stays
/// ignored: restoring its default would also kill the CLI, silently, when
/// a peer closes a socket under a write (etcd refusing a TLS client does).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // println! says "Broken pipe"; clap_complete's writer "BrokenPipe".
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
