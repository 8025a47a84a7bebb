//! Test support: real etcd, real dockerd, real namespaces. Everything a
//! test starts is torn down by Drop, also when the test fails.
#![allow(dead_code)]

mod etcd;
pub mod firewall;
pub mod http;
mod networks;
pub mod procfs;
mod reach;
mod shared;
mod sql;

#[allow(unused_imports)]
pub use etcd::Etcd;
#[allow(unused_imports)]
pub use shared::shared_lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn unique_id() -> String {
    // Short: it ends up in interface names (IFNAMSIZ).
    format!(
        "{}{}",
        std::process::id() % 10000,
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    )
}

/// Writes a password file as tabby wants one: only its owner may read it.
pub fn secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tabby_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tabby")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A plain `cargo test` as a normal user skips what needs root: the test
/// binary ends here, successfully, with one line saying why. scripts/test
/// runs as root and runs everything.
pub fn skip_unless_root(what: &str) {
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let binary = std::env::args().next().unwrap_or_default();
    let name = Path::new(&binary)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(binary);
    // Past libtest's capture of the test's output: the process ends here.
    let line = format!("skipped: {name} needs root for {what}; scripts/test runs it as root\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    std::process::exit(0);
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A lab of Docker hosts made by `scripts/lab`, with its own ID so tests
/// run side by side. `scripts/lab down` runs on drop.
pub struct Lab {
    id: String,
    dir: PathBuf,
    /// Passed to every lab command, and so to agents it starts.
    env: Vec<(String, String)>,
}

impl Lab {
    pub fn up(hosts: usize) -> Lab {
        Lab::up_with(hosts, &[])
    }

    /// A lab whose commands and agents get `env`.
    pub fn up_with(hosts: usize, env: &[(&str, &str)]) -> Lab {
        let mut lab = Lab::unstarted();
        lab.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = lab.script(&["up", &hosts.to_string()]);
        assert!(out.status.success(), "lab up failed: {}", stderr(&out));
        lab
    }

    /// A lab that is not up yet: a script brings it up (`scripts/quickstart
    /// seed` with `command_env`); it is torn down on drop all the same.
    pub fn unstarted() -> Lab {
        skip_unless_root("a lab (network namespaces, dockerd, iptables)");
        let id = unique_id();
        Lab {
            dir: PathBuf::from(format!("/tmp/tabby-lab{id}")),
            id,
            env: Vec::new(),
        }
    }

    /// A command that acts on this lab (its ID and tabby binary).
    pub fn command_env(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("TABBY_LAB_ID", &self.id)
            .env("TABBY_BIN", tabby_bin())
            .env("TABBY_LAB_NODE_TTL", "3")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// `scripts/lab ARGS…` for this lab, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.command_env(&root().join("scripts/lab"));
        command.args(args);
        command
    }

    fn script(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("scripts/lab runs")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network namespace of a lab host, as `scripts/lab` names it.
    pub fn netns_path(&self, host: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/l{}-{host}", self.id))
    }

    pub fn socket(&self, host: &str) -> PathBuf {
        self.dir.join(host).join("plugins/tabby.sock")
    }

    /// Runs a command on a lab host; returns its output whatever the status.
    pub fn run(&self, host: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", host];
        all.extend_from_slice(args);
        self.script(&all)
    }

    /// Runs a shell command on a lab host and returns stdout; panics if it fails.
    pub fn sh(&self, host: &str, command: &str) -> String {
        let out = self.run(host, &["sh", "-c", command]);
        assert!(
            out.status.success(),
            "`{command}` on {host} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Runs a shell command on a lab host and returns whether it succeeded.
    pub fn try_sh(&self, host: &str, command: &str) -> bool {
        self.run(host, &["sh", "-c", command]).status.success()
    }

    /// Imports a local image (`busybox`, `mariadb`) on every listed host.
    /// The cached root filesystem is built first in this process's own
    /// network namespace: lab hosts have no route to the Debian mirror.
    pub fn import_image(&self, image: &str, hosts: &[&str]) {
        let images = root().join("scripts/images");
        let out = Command::new(&images)
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .expect("scripts/images runs");
        assert!(
            out.status.success(),
            "scripts/images {image}: {}",
            stderr(&out)
        );
        for host in hosts {
            self.sh(host, &format!("{} import {image}", images.display()));
        }
    }

    pub fn stop(&self, host: &str, component: &str) {
        let out = self.script(&["stop", host, component]);
        assert!(out.status.success(), "stop {component}: {}", stderr(&out));
    }

    /// Stops `host`'s agent and starts it again with `env` added.
    pub fn restart_agent(&self, host: &str, env: &[(&str, &str)]) {
        self.stop(host, "agent");
        let out = self
            .command(&["start", host, "agent"])
            .envs(env.iter().copied())
            .output()
            .expect("scripts/lab runs");
        assert!(out.status.success(), "agent start: {}", stderr(&out));
    }

    pub fn start(&self, host: &str, component: &str) {
        let out = self.script(&["start", host, component]);
        assert!(out.status.success(), "start {component}: {}", stderr(&out));
    }

    /// etcd keys under the lab's prefix and the store's revision: two
    /// equal snapshots prove that nothing was written in between.
    pub fn etcd_snapshot(&self, host: &str) -> (usize, i64) {
        let json = self.sh(
            host,
            "ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 get /tabby/ --prefix --keys-only -w json",
        );
        let value: serde_json::Value = serde_json::from_str(&json).expect("etcdctl json");
        let count = value["count"].as_u64().unwrap_or(0) as usize;
        let revision = value["header"]["revision"].as_i64().expect("revision");
        (count, revision)
    }

    /// The address of a container on a host.
    pub fn container_ip(&self, host: &str, container: &str) -> String {
        self.sh(
            host,
            &format!("docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {container}"),
        )
        .trim()
        .to_string()
    }

    /// tabby's routes on a host (`proto 77`), one normalised line each.
    pub fn routes(&self, host: &str) -> std::collections::BTreeSet<String> {
        self.sh(host, "ip route show proto 77")
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Addresses IPAM holds for `host` (from `tabby ipam show -o json`:
    /// blocks with their allocations, each described with its host).
    pub fn allocated_ips(&self, host: &str) -> std::collections::BTreeSet<String> {
        let json = self.sh(host, "tabby ipam show -o json");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let suffix = format!("on host {host}");
        value
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(_, block)| {
                block["allocations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|(_, holder)| holder.as_str().is_some_and(|h| h.ends_with(&suffix)))
            .map(|(ip, _)| ip)
            .collect()
    }

    /// Addresses of the endpoints Docker has on a network of `host`.
    pub fn live_ips(&self, host: &str, network: &str) -> std::collections::BTreeSet<String> {
        self.sh(
            host,
            &format!("docker network inspect {network} -f '{{{{range .Containers}}}}{{{{.IPv4Address}}}} {{{{.IPv6Address}}}} {{{{end}}}}'"),
        )
        .split_whitespace()
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect()
    }

    /// Addresses of the endpoint records tabby keeps for `host`.
    pub fn recorded_ips(&self, host: &str) -> std::collections::BTreeSet<String> {
        let json = self.sh(host, "tabby endpoint show -o json");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["host"] == host)
            .flat_map(|e| [e["ip"].as_str(), e["ip6"].as_str()])
            .flatten()
            .map(str::to_string)
            .collect()
    }

    /// Waits until IPAM holds exactly the live endpoints' addresses for
    /// `host` and tabby records exactly those endpoints.
    pub fn wait_consistent(&self, host: &str, network: &str) -> std::collections::BTreeSet<String> {
        self.wait_consistent_on(host, &[network])
    }

    pub fn agent_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(host).join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!("lab down failed: {}", stderr(&out));
        }
    }
}
