//! The `tabby` command line: parses arguments, calls into the library and
//! prints tables (or JSON). Shapes follow the old calicoctl.

mod agent;
mod bgp;
mod bgp_edit;
mod expose;
mod galera;
mod ipam_check;
mod mysql;
mod network;
mod node_bgp;
pub use agent::LogFormat;
mod output;
mod pool;
mod profile;
mod show;
mod status;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::store::{EtcdOptions, Store};

#[derive(Parser, Debug)]
#[command(
    name = "tabby",
    version,
    about = "Calico-style routed networking for Docker hosts"
)]
pub struct Cli {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Output format of show commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct EtcdArgs {
    /// Comma-separated etcd client URLs.
    #[arg(
        long,
        global = true,
        env = "TABBY_ETCD_ENDPOINTS",
        default_value = "http://127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix under which tabby keeps everything.
    #[arg(
        long,
        global = true,
        env = "TABBY_ETCD_PREFIX",
        default_value = "/tabby"
    )]
    pub etcd_prefix: String,
    /// CA certificate (PEM) that signed the etcd members' certificates;
    /// needed with https:// endpoints.
    #[arg(long, global = true, env = "TABBY_ETCD_CA_CERT_FILE")]
    pub etcd_ca_cert_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd members run with --client-cert-auth.
    #[arg(long, global = true, env = "TABBY_ETCD_CERT_FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    /// Key of the client certificate (PEM; mode 600 or stricter).
    #[arg(long, global = true, env = "TABBY_ETCD_KEY_FILE")]
    pub etcd_key_file: Option<PathBuf>,
    /// etcd RBAC user.
    #[arg(long, global = true, env = "TABBY_ETCD_USERNAME")]
    pub etcd_username: Option<String>,
    /// File whose first line is the etcd user's password (mode 600 or stricter).
    #[arg(long, global = true, env = "TABBY_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,
}

/// This host's name in tabby when none is given: the system host name.
pub fn default_hostname(given: Option<String>) -> Result<String> {
    Ok(match given {
        Some(name) => name,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    })
}

/// The command's store, so that records its listings skipped can be
/// reported once it is done, whatever the command.
static CONNECTED: std::sync::OnceLock<Store> = std::sync::OnceLock::new();

impl EtcdArgs {
    pub fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: self.etcd_endpoints.clone(),
            ca_cert_file: self.etcd_ca_cert_file.clone(),
            cert_file: self.etcd_cert_file.clone(),
            key_file: self.etcd_key_file.clone(),
            username: self.etcd_username.clone(),
            password_file: self.etcd_password_file.clone(),
        }
    }

    pub async fn connect(&self) -> Result<Store> {
        let store = Store::connect(&self.options(), &self.etcd_prefix).await?;
        let _ = CONNECTED.set(store.clone());
        Ok(store)
    }
}

/// One stderr line per record a listing skipped (stdout stays parseable).
fn warn_skipped() {
    for s in CONNECTED.get().map(Store::skipped).unwrap_or_default() {
        eprintln!("warning: skipped record {}: {}", s.key, s.reason);
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the per-host daemon (Docker network and IPAM plugin).
    Agent(agent::AgentArgs),
    /// Address pools.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Hosts running the agent, and their BGP settings (`node H bgp …`).
    #[command(subcommand, after_help = node_bgp::HELP)]
    Node(show::NodeCommand),
    /// Container endpoints.
    #[command(subcommand)]
    Endpoint(show::EndpointCommand),
    /// Address allocations.
    #[command(subcommand)]
    Ipam(show::IpamCommand),
    /// Profiles: tags and rules (calicoctl word order: `profile P rule add …`).
    Profile {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Change one container's profiles: `container C profile append|remove|set P…`.
    Container {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Ports of containers reachable on their host's addresses.
    #[command(subcommand)]
    Expose(expose::ExposeCommand),
    /// Networks defined once for every host.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// BGP: default AS, node-to-node mesh, peers, this host's sessions.
    #[command(subcommand)]
    Bgp(bgp::BgpCommand),
    /// MySQL/MariaDB replication between containers on tabby networks.
    #[command(subcommand)]
    Mysql(mysql::MysqlCommand),
    /// This host's agent and datastore on one screen; exits non-zero,
    /// with the reason, when something is unhealthy.
    Status(status::StatusArgs),
    /// A shell completion script: `tabby completion bash > /etc/bash_completion.d/tabby`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let result = dispatch(cli).await;
    warn_skipped();
    result
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Agent(args) => agent::run(args, cli.etcd).await,
        Command::Pool(cmd) => pool::run(cmd, &cli.etcd, cli.output).await,
        Command::Node(cmd) => show::node(cmd, &cli.etcd, cli.output).await,
        Command::Endpoint(cmd) => show::endpoint(cmd, &cli.etcd, cli.output).await,
        Command::Ipam(cmd) => show::ipam(cmd, &cli.etcd, cli.output).await,
        Command::Network(cmd) => network::run(cmd, &cli.etcd, cli.output).await,
        Command::Expose(cmd) => expose::run(cmd, &cli.etcd, cli.output).await,
        Command::Profile { args } => profile::run(args, &cli.etcd, cli.output).await,
        Command::Container { args } => profile::container(args, &cli.etcd).await,
        Command::Mysql(cmd) => mysql::run(cmd, &cli.etcd, cli.output).await,
        Command::Bgp(cmd) => bgp::run(cmd, &cli.etcd, cli.output).await,
        Command::Status(args) => status::run(args, &cli.etcd, cli.output).await,
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "tabby", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn completion_scripts_know_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut command = <super::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "tabby", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in ["galera", "status", "completion", "endpoint"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }
}
