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
        quiet_on_closed_stdout();
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
