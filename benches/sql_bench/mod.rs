//! What the MySQL and Galera benches share: percentiles, a thread in a
//! lab host's network namespace, and a server to connect to by address.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use tabby::mysql::Target;

pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// Runs `f` on a thread inside a lab host's network namespace; the thread
/// ends with it, so no thread is ever left in the wrong namespace.
pub fn in_netns<T: Send + 'static>(netns: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("lab netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

pub fn target(ip: Ipv4Addr) -> Target {
    Target {
        name: ip.to_string(),
        ip,
        port: 3306,
        host: None,
        pool: None,
    }
}
