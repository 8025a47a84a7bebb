//! What benches read of a process from /proc.

/// A process's resident set (VmRSS) in KiB; None when there is no such
/// process, or it holds no memory (a zombie).
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A process's resident set in MiB, for a process that must be running.
pub fn rss_mb(pid: &str) -> f64 {
    let kib = rss_kib(pid).unwrap_or_else(|| panic!("no resident set for pid {pid}"));
    kib as f64 / 1024.0
}
