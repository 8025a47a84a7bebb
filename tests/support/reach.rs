//! Whether traffic gets through: pings, TCP answers and throughput
//! between containers, hosts and the lab's client.

use std::time::Duration;

use super::{Lab, stderr, stdout};

impl Lab {
    /// Whether a container on `host` gets an answer from `ip`.
    pub fn pings(&self, host: &str, container: &str, ip: &str) -> bool {
        self.try_sh(
            host,
            &format!("docker exec {container} ping -c 1 -W 2 {ip}"),
        )
    }

    /// The addresses among `ips` that a container on `host` gets no answer
    /// from (one `docker exec` for all of them).
    pub fn unreachable<'a>(
        &self,
        host: &str,
        container: &str,
        ips: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        let targets: Vec<&str> = ips.into_iter().map(String::as_str).collect();
        let script = format!(
            "for ip in {}; do ping -c1 -W2 $ip >/dev/null || echo $ip; done",
            targets.join(" ")
        );
        let out = self.run(host, &["docker", "exec", container, "sh", "-c", &script]);
        assert!(
            out.status.success(),
            "docker exec on {host}: {}",
            stderr(&out)
        );
        stdout(&out)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Whether a container reads `hello` (what the tests' listeners
    /// answer) from `ip:port`.
    pub fn connects(&self, host: &str, container: &str, ip: &str, port: u16) -> bool {
        let script = format!("echo | nc -w 2 {ip} {port}");
        let out = self.run(host, &["docker", "exec", container, "sh", "-c", &script]);
        stdout(&out).contains("hello")
    }

    /// What a host itself reads from `ip:port` (OUTPUT DNAT), if it
    /// connects.
    pub fn host_reads(&self, host: &str, ip: &str, port: u16) -> Option<String> {
        let script = format!("echo | busybox nc -w 2 {ip} {port}");
        let out = self.run(host, &["sh", "-c", &script]);
        let text = stdout(&out);
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    }

    /// What a client namespace on the lab bridge (not a tabby host) reads
    /// from `ip:port`, or None if it cannot connect.
    pub fn client_reads(&self, ip: &str, port: u16) -> Option<String> {
        let out = self.script(&[
            "client",
            "sh",
            "-c",
            &format!("echo | busybox nc -w 2 {ip} {port}"),
        ]);
        let text = stdout(&out);
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    }

    /// TCP throughput in Gbit/s of a 4 s iperf3 run from `client` to
    /// `server` (each a host, and a container on it or None for the host
    /// itself), to `target`. The host's iperf3 runs in the container's
    /// network namespace, so no image needs it.
    pub fn iperf_gbps(
        &self,
        client: (&str, Option<&str>),
        server: (&str, Option<&str>),
        target: &str,
    ) -> f64 {
        let prefix = |c: Option<&str>| match c {
            Some(c) => format!("nsenter -t $(docker inspect -f '{{{{.State.Pid}}}}' {c}) -n "),
            None => String::new(),
        };
        self.sh(server.0, &format!("{}iperf3 -s -1 -D", prefix(server.1)));
        std::thread::sleep(Duration::from_millis(300));
        let json = self.sh(
            client.0,
            &format!("{}iperf3 -c {target} -t 4 -J", prefix(client.1)),
        );
        let v: serde_json::Value = serde_json::from_str(&json).expect("iperf3 JSON");
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .expect("bits_per_second")
            / 1e9
    }
}
