use std::net::IpAddr;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::output::{or_dash, print};
use super::{EtcdArgs, Format};
use crate::model::{Exposure, Protocol};
use crate::policy::exposures;

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

impl From<Proto> for Protocol {
    fn from(p: Proto) -> Self {
        match p {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ExposeCommand {
    /// Make PORT of a container reachable on its host's addresses (DNAT).
    Add {
        port: u16,
        /// Container name, endpoint ID or address.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value_t = Proto::Tcp)]
        proto: Proto,
        /// Port on the host (default: the same as PORT).
        #[arg(long)]
        host_port: Option<u16>,
        /// Only for traffic arriving on this interface.
        #[arg(long)]
        interface: Option<String>,
        /// Only on this address of the host, as `docker run -p A:…`
        /// (127.0.0.1: the host itself only; `::`: every IPv6 address).
        /// Default: every address of both families.
        #[arg(long)]
        host_ip: Option<IpAddr>,
    },
    /// Exposed ports, with the host and address they lead to now.
    Show,
    /// Stop exposing: HOST_PORT is the port on the host.
    Remove {
        host_port: u16,
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value_t = Proto::Tcp)]
        proto: Proto,
        /// The host address it was added with, if any.
        #[arg(long)]
        host_ip: Option<IpAddr>,
    },
}

/// `0.0.0.0` is every address, as no address is; `::` stays (every IPv6
/// address only).
fn is_host_address(ip: &IpAddr) -> bool {
    !(ip.is_ipv4() && ip.is_unspecified())
}

pub async fn run(cmd: ExposeCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    match cmd {
        ExposeCommand::Add {
            port,
            to,
            proto,
            host_port,
            interface,
            host_ip,
        } => {
            let x = exposures::add(
                &store,
                Exposure {
                    protocol: proto.into(),
                    port,
                    host_port: host_port.unwrap_or(port),
                    target: to,
                    interface,
                    docker_endpoint: None,
                    host_ip: host_ip.filter(is_host_address),
                },
            )
            .await?;
            println!(
                "Exposed {} port {} of {} as host port {}",
                x.protocol.name(),
                x.port,
                x.target,
                x.host_port
            );
        }
        ExposeCommand::Remove {
            host_port,
            to,
            proto,
            host_ip,
        } => {
            let host_ip = host_ip.filter(is_host_address);
            exposures::remove(&store, proto.into(), host_port, host_ip, &to).await?;
            println!("Stopped exposing host port {host_port} to {to}");
        }
        ExposeCommand::Show => {
            let endpoints = store.endpoints().await?;
            let all = store.exposures().await?;
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for x in &all {
                let ep = endpoints.iter().find(|e| x.matches(e));
                let target = if x.docker_endpoint.is_some() {
                    ep.and_then(|e| e.container.clone())
                        .unwrap_or_else(|| x.target[..12.min(x.target.len())].to_string())
                } else {
                    x.target.clone()
                };
                let addresses = ep.map(|e| exposures::addresses_reached(x, e));
                let reached = addresses.as_ref().map(|ips| {
                    let text: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                    text.join(", ")
                });
                rows.push(vec![
                    x.protocol.name().to_string(),
                    x.host_port.to_string(),
                    target,
                    x.port.to_string(),
                    or_dash(ep.map(|e| e.host.as_str())),
                    or_dash(reached.as_deref()),
                    or_dash(x.interface.as_deref()),
                    or_dash(x.host_ip.map(|ip| ip.to_string()).as_deref()),
                    if x.docker_endpoint.is_some() {
                        "docker -p"
                    } else {
                        "tabby"
                    }
                    .to_string(),
                ]);
                out.push(json!({ "exposure": x, "host": ep.map(|e| &e.host), "address": ep.map(|e| e.ip), "addresses": addresses }));
            }
            print(
                format,
                &[
                    "PROTO",
                    "HOST PORT",
                    "TARGET",
                    "PORT",
                    "HOST",
                    "ADDRESS",
                    "INTERFACE",
                    "HOST IP",
                    "BY",
                ],
                rows,
                &out,
            );
        }
    }
    Ok(())
}
