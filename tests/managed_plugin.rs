//! Packaging: the managed plugin (scripts/build-plugin, config.json) on a
//! lab host's own dockerd, and the legacy systemd install (scripts/install).

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SIGKILL, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use support::{Lab, eventually, root, stderr, tabby_bin};

const PLUGIN: &str = "tabby/tabby:latest";

/// Every environment variable `tabby agent` reads, from its help.
fn agent_env_vars() -> BTreeSet<String> {
    let out = Command::new(tabby_bin()).args(["agent", "--help"]).output();
    let help = String::from_utf8(out.expect("tabby runs").stdout).expect("UTF-8");
    let vars = help
        .split("[env: ")
        .skip(1)
        .filter_map(|s| s.split('=').next());
    vars.chain(["RUST_LOG"]).map(str::to_string).collect()
}

/// The processes of h1's managed plugins: children of the containerd shims
/// of h1's dockerd in its plugin namespace. (Their /proc/PID/root reads
/// "/" from outside, so the rootfs path cannot tell.)
fn plugin_pids(lab: &Lab) -> Vec<i32> {
    let shim = format!("-address {}/h1/exec/", lab.dir().display());
    let read = |pid: i32, file: &str| {
        let bytes = std::fs::read(format!("/proc/{pid}/{file}")).ok()?;
        Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
    };
    let ppid = |pid| {
        read(pid, "status")?
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()
    };
    let is_shim = |pid| {
        read(pid, "cmdline")
            .is_some_and(|c| c.contains("-namespace plugins.moby") && c.contains(&shim))
    };
    let pids = std::fs::read_dir("/proc").into_iter().flatten();
    let pids = pids.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok());
    pids.filter(|&pid| ppid(pid).is_some_and(is_shim)).collect()
}

/// Removes what the scenario made, also when it fails, before the lab goes:
/// `scripts/lab down` skips containers when no legacy agent runs, and a
/// plugin's processes do not carry the lab's path it kills by.
struct Cleanup<'a>(&'a Lab);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.0.try_sh(
            "h1",
            &format!(
                "ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids; docker network rm n1; \
                 docker plugin disable -f {PLUGIN}; docker plugin rm -f {PLUGIN}"
            ),
        );
        for pid in plugin_pids(self.0) {
            let _ = kill(Pid::from_raw(pid), SIGKILL);
        }
    }
}

/// Runs a shell command on h1, the plugin's host; its stdout.
fn h1(lab: &Lab, command: impl AsRef<str>) -> String {
    lab.sh("h1", command.as_ref())
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = f();
    eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
    value
}

fn ping_both_ways(lab: &Lab, a: (&str, &str), b: (&str, &str), when: &str) {
    for ((from, _), (to, ip)) in [(a, b), (b, a)] {
        let what = format!("{from} -> {to} {when}");
        eventually(Duration::from_secs(10), &what, || {
            lab.pings("h1", from, ip).then_some(())
        });
    }
}

/// When h1's current agent registered, if h1 is up.
fn node_started(lab: &Lab) -> Option<String> {
    let nodes: Value = serde_json::from_str(&h1(lab, "tabby node show -o json")).ok()?;
    let node = nodes
        .as_array()?
        .iter()
        .find(|n| n["hostname"] == "h1" && n["state"] == "up")?;
    node["started"].as_str().map(str::to_string)
}

fn plugin_field(lab: &Lab, field: &str) -> String {
    let format = format!("'{{{{.{field}}}}}'");
    h1(lab, format!("docker plugin inspect -f {format} {PLUGIN}"))
        .trim()
        .to_string()
}

/// The container names tabby's endpoints record.
fn endpoint_names(lab: &Lab) -> Option<BTreeSet<String>> {
    let endpoints: Value = serde_json::from_str(&h1(lab, "tabby endpoint show -o json")).ok()?;
    let names = endpoints
        .as_array()?
        .iter()
        .filter_map(|e| e["container"].as_str());
    Some(names.map(str::to_string).collect())
}

fn run_container(lab: &Lab, name: &str) -> String {
    run_container_on(lab, "h1", name)
}

fn run_container_on(lab: &Lab, host: &str, name: &str) -> String {
    let run = format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d");
    lab.sh(host, &run);
    lab.container_ip(host, name)
}

/// h1's plugin and h2's legacy agent route to each other only through
/// BGP: both run BIRD, neither installs cross-host routes itself.
fn ping_across_hosts(lab: &Lab, on_h1: (&str, &str), on_h2: (&str, &str), when: &str) {
    for (host, (from, _), (to, ip)) in [("h1", on_h1, on_h2), ("h2", on_h2, on_h1)] {
        let what = format!("{from} -> {to} {when}");
        eventually(Duration::from_secs(30), &what, || {
            lab.pings(host, from, ip).then_some(())
        });
    }
}

#[test]
fn managed_plugin_serves_containers_across_disable_and_enable() {
    let started = Instant::now();
    // h2 keeps its legacy agent: the BGP peer of the plugin's BIRD.
    let routing = [("TABBY_LAB_ROUTING", "bgp"), ("TABBY_BGP_HOLD_TIME", "10")];
    let lab = timed("lab up", || Lab::up_with(2, &routing));
    let _cleanup = Cleanup(&lab);
    lab.stop("h1", "agent");
    assert!(!lab.socket("h1").exists(), "the legacy agent is gone");
    let legacy_started = node_started(&lab);

    // On h1, so DOCKER_HOST is h1's dockerd; the rootfs comes from this
    // machine's packages and the test's own build (TABBY_BIN).
    let script = root().join("scripts/build-plugin");
    let build = format!(
        "{} --build-dir {}/plugin-build",
        script.display(),
        lab.dir().display()
    );
    timed("scripts/build-plugin", || h1(&lab, &build));
    assert_eq!(plugin_field(&lab, "Enabled"), "false");
    let settings = format!(
        "TABBY_ETCD_ENDPOINTS=$TABBY_ETCD_ENDPOINTS TABBY_ETCD_PREFIX=$TABBY_ETCD_PREFIX \
         TABBY_IP=198.18.0.11 TABBY_HOSTNAME=h1 TABBY_NODE_TTL=3 \
         TABBY_ROUTING=bgp TABBY_BGP_HOLD_TIME=10 \
         TABBY_DOCKER_HOST=unix:///var/run/docker.sock docker-socket.source={}/h1/docker.sock",
        lab.dir().display()
    );
    h1(&lab, format!("docker plugin set {PLUGIN} {settings}"));
    let enable = format!("docker plugin enable {PLUGIN}");
    timed("docker plugin enable", || h1(&lab, &enable));

    // dockerd reaches a managed plugin at /run/docker/plugins/<id>/<socket>,
    // in the lab host's mount namespace <lab>/h1/plugins/<id>/.
    let id = plugin_field(&lab, "Id");
    let socket = lab.dir().join("h1/plugins").join(&id).join("tabby.sock");
    assert!(socket.exists(), "{} exists", socket.display());
    assert!(!lab.socket("h1").exists(), "no legacy agent came back");

    // network.type host: the agent shares the network namespace of the
    // dockerd that started it, the lab host's.
    let pids = plugin_pids(&lab);
    assert!(!pids.is_empty(), "the plugin's processes are found");
    let host_netns = std::fs::metadata(lab.netns_path("h1")).unwrap().ino();
    for pid in &pids {
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .unwrap()
            .ino();
        assert_eq!(netns, host_netns, "plugin process {pid} is in h1's netns");
    }
    let plugin_started = node_started(&lab).expect("the plugin's agent registered h1");
    assert_ne!(Some(&plugin_started), legacy_started.as_ref());

    // One profile on both hosts' networks (each `docker network create`
    // otherwise makes its own): their containers may talk.
    let net =
        format!("-d {PLUGIN} --ipam-driver {PLUGIN} --subnet 198.18.64.0/20 -o tabby.profile=n1");
    h1(&lab, format!("docker network create {net} n1"));
    let (ip1, ip2) = (run_container(&lab, "c1"), run_container(&lab, "c2"));
    ping_both_ways(&lab, ("c1", &ip1), ("c2", &ip2), "on the plugin's network");
    let net_h2 = "-d tabby --ipam-driver tabby --subnet 198.18.64.0/20 -o tabby.profile=n1";
    lab.sh("h2", &format!("docker network create {net_h2} n1"));
    let ip5 = run_container_on(&lab, "h2", "c5");
    ping_across_hosts(
        &lab,
        ("c1", &ip1),
        ("c5", &ip5),
        "through the plugin's BIRD",
    );
    // The plugin's BIRD, seen from the host through its socket in the
    // plugin's rootfs under dockerd's data root, as plugin/README.md says.
    let bird_dir = lab
        .dir()
        .join(format!("h1/data/plugins/{id}/rootfs/run/tabby/bird"));
    let status = ["tabby", "bgp", "status", "-o", "json", "--bird-dir"];
    let status = lab.run("h1", &[&status[..], &[bird_dir.to_str().unwrap()]].concat());
    let sessions: Value = serde_json::from_str(&support::stdout(&status))
        .unwrap_or_else(|e| panic!("{e}: tabby bgp status: {}", stderr(&status)));
    let to_h2 = sessions
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["peer"] == "198.18.0.12");
    let to_h2 = to_h2.unwrap_or_else(|| panic!("a session to h2 in {sessions}"));
    assert_eq!(to_h2["type"], "mesh", "{to_h2}");
    assert!(
        to_h2["info"]
            .as_str()
            .unwrap_or("")
            .starts_with("Established"),
        "{to_h2}"
    );

    // The agent learns container names from the Engine API: the
    // docker-socket mount and TABBY_DOCKER_HOST reach h1's dockerd.
    let both = BTreeSet::from(["c1".to_string(), "c2".to_string()]);
    eventually(Duration::from_secs(10), "container names", || {
        endpoint_names(&lab).filter(|names| names.is_superset(&both))
    });

    // Traffic never depends on the agent: containers keep talking while the
    // plugin is away, and after it comes back.
    let disable = format!("docker plugin disable -f {PLUGIN}");
    timed("docker plugin disable -f", || h1(&lab, &disable));
    eventually(Duration::from_secs(15), "the plugin to exit", || {
        plugin_pids(&lab).is_empty().then_some(())
    });
    ping_both_ways(&lab, ("c1", &ip1), ("c2", &ip2), "with the plugin disabled");

    timed("docker plugin enable (again)", || h1(&lab, &enable));
    ping_both_ways(&lab, ("c1", &ip1), ("c2", &ip2), "after re-enabling");
    let again = node_started(&lab).expect("the re-enabled agent registered h1");
    assert_ne!(again, plugin_started);

    let ip3 = run_container(&lab, "c3");
    assert!(ip3 != ip1 && ip3 != ip2, "c3 got its own address: {ip3}");
    ping_both_ways(&lab, ("c3", &ip3), ("c1", &ip1), "attached later");
    // An upgrade in place: build-plugin replaces the disabled plugin with
    // its settings (else no TABBY_IP, no start), the network carries on.
    h1(&lab, &disable);
    timed("scripts/build-plugin (upgrade)", || h1(&lab, &build));
    timed("docker plugin enable (upgraded)", || h1(&lab, &enable));
    assert_ne!(node_started(&lab).expect("h1 registered"), again);
    let ip4 = run_container(&lab, "c4");
    ping_both_ways(&lab, ("c4", &ip4), ("c2", &ip2), "after the upgrade");
    ping_across_hosts(&lab, ("c4", &ip4), ("c5", &ip5), "after the upgrade");
    eprintln!("whole scenario: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn config_json_exposes_every_agent_setting() {
    let text = std::fs::read_to_string(root().join("config.json")).expect("config.json");
    let config: Value = serde_json::from_str(&text).expect("config.json is JSON");
    let types = json!(["docker.networkdriver/1.0", "docker.ipamdriver/1.0"]);
    assert_eq!(config["interface"]["types"], types);
    assert_eq!(config["interface"]["socket"], "tabby.sock");
    assert_eq!(config["network"]["type"], "host");
    let caps = config["linux"]["capabilities"].as_array().expect("caps");
    for cap in ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} in linux.capabilities");
    }
    let env = config["env"].as_array().expect("env");
    let names: BTreeSet<String> = env
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect();
    // The socket must stay where interface.socket says; label-driven MySQL
    // needs a password file, which has no way into the plugin's rootfs.
    let wanted: BTreeSet<String> = agent_env_vars()
        .into_iter()
        .filter(|v| v != "TABBY_SOCKET" && !v.starts_with("TABBY_MYSQL_"))
        .collect();
    assert_eq!(names, wanted, "config.json env against agent --help");
    for e in env {
        assert_eq!(e["settable"], json!(["value"]), "{e}");
    }
    let driver = env
        .iter()
        .find(|e| e["name"] == "TABBY_DRIVER_NAME")
        .expect("TABBY_DRIVER_NAME");
    assert_eq!(driver["value"], PLUGIN, "its networks' driver");
}

#[test]
fn install_writes_binary_unit_and_defaults_under_a_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let install = |args: &[&str]| {
        let out = Command::new(root().join("scripts/install"))
            .arg("--root")
            .arg(dir.path())
            .args(args)
            .env("TABBY_BIN", tabby_bin())
            .stdin(Stdio::null())
            .output()
            .expect("scripts/install runs");
        assert!(out.status.success(), "install {args:?}: {}", stderr(&out));
    };
    install(&[]);
    let bin = dir.path().join("usr/local/bin/tabby");
    let unit_path = dir.path().join("etc/systemd/system/tabby.service");
    let defaults_path = dir.path().join("etc/default/tabby");
    let mode = std::fs::metadata(&bin)
        .expect("installed")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{} is executable", bin.display());
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(version.status.success(), "the installed binary runs");

    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    for line in [
        "Before=docker.service",
        "WantedBy=multi-user.target",
        "EnvironmentFile=-/etc/default/tabby",
        "Restart=always",
        "ExecStart=/usr/local/bin/tabby agent",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit has {line}:\n{unit}");
    }
    let defaults = std::fs::read_to_string(&defaults_path).expect("defaults");
    for var in agent_env_vars() {
        assert!(defaults.contains(&format!("#{var}=")), "{var} in defaults");
    }

    // The operator's settings survive an upgrade and an uninstall.
    std::fs::write(&defaults_path, "TABBY_IP=198.18.0.11\n").unwrap();
    install(&[]);
    install(&["--uninstall"]);
    assert!(
        !bin.exists() && !unit_path.exists(),
        "binary and unit removed"
    );
    let wants = "etc/systemd/system/multi-user.target.wants/tabby.service";
    assert!(!dir.path().join(wants).exists(), "{wants} removed");
    let kept = std::fs::read_to_string(&defaults_path).unwrap();
    assert_eq!(kept, "TABBY_IP=198.18.0.11\n");
}
