//! `tabby node H bgp …`, in calicoctl's word order: the host name comes
//! before the command, so `tabby node` hands these words over unparsed
//! (clap cannot put a free-form name ahead of subcommands) and they are
//! parsed here, with their own `--help`.

use anyhow::Result;
use clap::{Parser, Subcommand};

use super::EtcdArgs;
use super::bgp_edit;

/// What `tabby node --help` adds about these commands.
pub const HELP: &str = "\
Per-node BGP settings (calicoctl word order; `tabby node H bgp --help`):
  tabby node H bgp as N                                 H's own AS number
  tabby node H bgp as inherit                           back to the default AS
  tabby node H bgp route-reflector --cluster-id A.B.C.D  make H a route reflector
  tabby node H bgp route-reflector --off                 H is no longer one";

#[derive(Parser, Debug)]
// Subcommands' usage lines start with the bin name: "tabby node H bgp as …".
#[command(
    name = "tabby node",
    bin_name = "tabby node H",
    no_binary_name = true,
    override_usage = "tabby node H bgp <COMMAND>"
)]
struct HostWords {
    /// A registered node (see `tabby node show`).
    #[arg(value_name = "H")]
    hostname: String,
    #[command(subcommand)]
    what: HostCommand,
}

#[derive(Subcommand, Debug)]
enum HostCommand {
    /// The node's BGP settings.
    #[command(subcommand, override_usage = "tabby node H bgp <COMMAND>")]
    Bgp(NodeBgpCommand),
}

#[derive(Subcommand, Debug)]
enum NodeBgpCommand {
    /// Give the node its own AS number, or (`inherit`) the default AS again.
    As {
        #[arg(value_name = "N|inherit", allow_negative_numbers = true)]
        value: Option<String>,
        /// Same as `inherit`.
        #[arg(long, conflicts_with = "value")]
        inherit: bool,
    },
    /// Make the node a route reflector, or (--off) no longer one.
    RouteReflector {
        /// The reflector cluster's ID: reflectors of one cluster share it.
        #[arg(long, value_name = "A.B.C.D")]
        cluster_id: Option<String>,
        /// The node stops reflecting routes.
        #[arg(long)]
        off: bool,
    },
}

pub async fn run(words: Vec<String>, etcd: &EtcdArgs) -> Result<()> {
    // A usage mistake prints clap's usage and exits 2 (0 for --help),
    // exactly as it does for the words clap parsed itself.
    let parsed = HostWords::try_parse_from(&words).unwrap_or_else(|e| e.exit());
    let host = parsed.hostname;
    let HostCommand::Bgp(cmd) = parsed.what;
    let store = etcd.connect().await?;
    match cmd {
        NodeBgpCommand::As { value, inherit } => {
            let word = match (value, inherit) {
                (_, true) => "inherit".to_string(),
                (Some(v), false) => v,
                (None, false) => return Err(bgp_edit::Refused::NoAs.into()),
            };
            let changed = bgp_edit::set_node_as(&store, &host, &word).await?;
            let what = if word == "inherit" {
                "the default AS".to_string()
            } else {
                format!("AS {word}")
            };
            let verb = if changed { "now has" } else { "already has" };
            println!("Node {host} {verb} {what}");
        }
        NodeBgpCommand::RouteReflector { cluster_id, off } => {
            let changed =
                bgp_edit::set_route_reflector(&store, &host, cluster_id.as_deref(), off).await?;
            let what = match &cluster_id {
                Some(id) => format!("a route reflector with cluster ID {id}"),
                None => "not a route reflector".to_string(),
            };
            let verb = if changed { "is now" } else { "is already" };
            println!("Node {host} {verb} {what}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<HostWords, clap::Error> {
        HostWords::try_parse_from(line.split(' '))
    }

    #[test]
    fn the_host_name_comes_first() {
        let words = parse("h1 bgp as 64513").unwrap();
        assert_eq!(words.hostname, "h1");
        assert!(matches!(
            words.what,
            HostCommand::Bgp(NodeBgpCommand::As { value: Some(v), inherit: false }) if v == "64513"
        ));
        let words = parse("h1 bgp route-reflector --cluster-id 1.0.0.1").unwrap();
        assert!(matches!(
            words.what,
            HostCommand::Bgp(NodeBgpCommand::RouteReflector {
                cluster_id: Some(_),
                off: false
            })
        ));
        // Negative numbers reach the AS check, which names them.
        assert!(parse("h1 bgp as -1").is_ok());
        assert!(parse("h1 bgp as 1 --inherit").is_err());
        assert!(parse("h1 bgp frobnicate").is_err());
        assert!(parse("h1").is_err());
    }
}
