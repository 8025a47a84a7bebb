//! Containment (issue 9, section 3) and the 16-slot rule, on one shared
//! three-host lab: a rule iptables multiport cannot express is refused at
//! `rule add` and writes nothing; a profile that cannot be applied (an
//! invalid record, or rules the kernel refuses) fails closed while other
//! profiles attach and route on every host; garbage under every key prefix
//! is skipped and reported, and shows, Join and routing carry on.

// The crate root looks for modules beside it: name their files.
#[path = "containment/fail_closed.rs"]
mod fail_closed;
#[path = "containment/garbage.rs"]
mod garbage;
mod support;

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use support::{Lab, eventually, stderr, stdout};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const SUBNET: &str = "198.18.64.0/20";
/// Only profile K's rule carries this source: the lab's iptables-restore
/// refuses any batch with it (see `refusing_restore`).
const REFUSED_CIDR: &str = "198.19.254.0/24";
const WAIT: Duration = Duration::from_secs(60);

/// The lab and the stand-in iptables-restore its agents find on PATH.
struct Shared {
    lab: Lab,
    _bin: tempfile::TempDir,
}

/// One lab for every test here; the lock also keeps the tests apart (one
/// checks that nothing writes to etcd while it runs).
static SHARED: Mutex<Option<Shared>> = Mutex::new(None);
static TEAR_DOWN: Once = Once::new();

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

/// Statics are never dropped: the lab goes down when the test process exits.
extern "C" fn tear_down() {
    let shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner).take();
    drop(shared);
}

struct LabGuard(MutexGuard<'static, Option<Shared>>);

impl Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0.as_ref().expect("lab is up").lab
    }
}

fn lab() -> LabGuard {
    support::skip_unless_root("a lab and a stand-in iptables-restore");
    // A test that failed poisons the lock; its cleanup guards still ran.
    let mut guard = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_none() {
        TEAR_DOWN.call_once(|| {
            // SAFETY: registers a plain function with no arguments.
            unsafe { atexit(tear_down) };
        });
        *guard = Some(start());
    }
    LabGuard(guard)
}

/// This kernel accepts every rule that passes tabby's checks, so a refusal
/// is staged: an iptables-restore that refuses batches carrying
/// `REFUSED_CIDR` with the shape of the real one's error, and hands
/// everything else to the real one.
fn refusing_restore() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v iptables-restore"])
        .output()
        .unwrap();
    let real = stdout(&real).trim().to_string();
    assert!(!real.is_empty(), "iptables-restore is installed");
    let script = format!(
        "#!/bin/sh\ninput=$(cat)\ncase \"$input\" in\n  *{REFUSED_CIDR}*) \
         echo 'iptables-restore v1.8.9 (nf_tables): line 4 failed' >&2; exit 1 ;;\nesac\n\
         printf '%s\\n' \"$input\" | exec {real} \"$@\"\n"
    );
    let path = dir.path().join("iptables-restore");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

fn start() -> Shared {
    let bin = refusing_restore();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // No periodic resync: it writes node status, and one test needs an
    // etcd that nothing writes to unasked.
    let lab = Lab::up_with(
        3,
        &[
            ("PATH", &path),
            // The refusal is staged in iptables-restore (above).
            ("TABBY_FIREWALL", "iptables"),
            ("TABBY_RESYNC_INTERVAL", "3600"),
            // The leak check would rewrite a corrupt endpoint record.
            ("TABBY_IPAM_CHECK_INTERVAL", "0"),
        ],
    );
    lab.sh("h1", &format!("tabby pool add {SUBNET}"));
    for profile in ["A", "B", "K"] {
        let net = format!("n{}", profile.to_lowercase());
        let out = lab.sh(
            "h1",
            &format!("tabby network create {net} --subnet {SUBNET} --profile {profile}"),
        );
        assert!(!out.contains("Not yet"), "{out}");
    }
    Shared { lab, _bin: bin }
}

fn etcdctl(lab: &Lab, args: &str) -> String {
    lab.sh(
        "h1",
        &format!("ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 {args}"),
    )
}

/// Starts a container on `net`; its address.
fn run(lab: &Lab, host: &str, name: &str, net: &str) -> String {
    lab.sh(
        host,
        &format!("docker run -d --name {name} --net {net} tabby/busybox sleep 3600"),
    );
    lab.container_ip(host, name)
}

/// Shell commands run on h1 when a test ends, also when it fails, so the
/// next test finds the lab as the setup left it.
struct Undo<'a> {
    lab: &'a Lab,
    steps: Vec<(&'static str, String)>,
}

impl<'a> Undo<'a> {
    fn new(lab: &'a Lab) -> Self {
        Undo {
            lab,
            steps: Vec::new(),
        }
    }

    fn push(&mut self, host: &'static str, command: String) {
        self.steps.push((host, command));
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for (host, command) in self.steps.drain(..).rev() {
            if !self.lab.try_sh(host, &command) {
                eprintln!("cleanup `{command}` on {host} failed");
            }
        }
    }
}

/// Each host's containers can reach every other container listed.
fn all_reach(lab: &Lab, containers: &[(&str, &str, String)]) {
    for (host, name, ip) in containers {
        let others: Vec<String> = containers
            .iter()
            .filter(|c| &c.2 != ip)
            .map(|c| c.2.clone())
            .collect();
        let failed = lab.unreachable(host, name, &others);
        assert!(
            failed.is_empty(),
            "{name} on {host} cannot reach {failed:?}"
        );
    }
}

fn port_list(first: u16, singles: u16, with_range: bool) -> String {
    let mut ports = Vec::new();
    let mut next = first;
    if with_range {
        ports.push(format!("{next}:{}", next + 1));
        next += 2;
    }
    ports.extend((next..next + singles).map(|p| p.to_string()));
    ports.join(",")
}

/// The store's key count and revision once the agents have stopped
/// reacting to earlier writes.
fn settled(lab: &Lab) -> (usize, i64) {
    eventually(WAIT, "etcd to settle", || {
        let first = lab.etcd_snapshot("h1");
        std::thread::sleep(Duration::from_secs(1));
        (lab.etcd_snapshot("h1") == first).then_some(first)
    })
}

#[test]
fn a_rule_needing_16_port_slots_is_refused_and_writes_nothing() {
    let lab = lab();
    let before = settled(&lab);
    // 15 entries with one range, and 16 single ports: 16 slots each.
    for ports in [port_list(1000, 14, true), port_list(2000, 16, false)] {
        let out = lab.run(
            "h1",
            &[
                "tabby", "profile", "A", "rule", "add", "inbound", "allow", "tcp", "to", "ports",
                &ports,
            ],
        );
        let err = stderr(&out);
        assert!(!out.status.success(), "{ports} accepted: {}", stdout(&out));
        assert!(
            err.contains("take 16 slots") && err.contains("allows 15"),
            "the error names the slots: {err}"
        );
    }
    // The same through the bulk edit.
    let singles: Vec<String> = (3000..3016)
        .map(|p| format!("{{\"first\": {p}, \"last\": {p}}}"))
        .collect();
    let json = format!(
        "{{\"inbound\": [{{\"action\": \"allow\", \"protocol\": \"tcp\", \"to\": {{\"ports\": [{}]}}}}], \"outbound\": []}}",
        singles.join(", ")
    );
    let out = lab.run(
        "h1",
        &[
            "sh",
            "-c",
            &format!("echo '{json}' | tabby profile A rule update"),
        ],
    );
    assert!(!out.status.success(), "rule update took 16 slots");
    assert!(stderr(&out).contains("take 16 slots"), "{}", stderr(&out));
    assert_eq!(
        lab.etcd_snapshot("h1"),
        before,
        "refused rules must not write to etcd"
    );

    // 15 slots (14 entries, one a range) fit, and the kernel takes them.
    let fits = port_list(4000, 13, true);
    lab.sh(
        "h1",
        &format!("tabby profile A rule add inbound allow tcp to ports {fits}"),
    );
    let mut undo = Undo::new(&lab);
    undo.push("h1", "tabby profile A rule remove inbound 2".into());
    let shown = lab.sh("h2", "tabby profile A rule show");
    assert!(
        shown.contains(&format!("2 allow tcp to ports {fits}")),
        "{shown}"
    );
    for host in HOSTS {
        eventually(
            WAIT,
            &format!("the 15-slot rule in {host}'s kernel"),
            || {
                lab.sh(host, "iptables -S TABBY-PI-A")
                    .contains(&format!("--dports {fits}"))
                    .then_some(())
            },
        );
    }
}
