//! etcd with TLS and client-certificate auth (`TABBY_LAB_ETCD_TLS=1`):
//! three hosts converge and every container reaches every other; a wrong
//! CA or a missing client certificate fails at start, naming the file and
//! the member, in the CLI and in the agent.

mod support;

use std::path::Path;

use support::{Lab, stderr, stdout};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// A second CA, unrelated to the lab's.
fn other_ca(dir: &Path) -> String {
    let ca = dir.join("other-ca.pem");
    let key = dir.join("other-ca-key.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not the lab CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    ca.display().to_string()
}

fn cross_host_pings(lab: &Lab) {
    lab.sh(
        "h1",
        "tabby network create tls-net --subnet 198.19.64.0/24 --profile tls",
    );
    let mut containers = Vec::new();
    for host in HOSTS {
        for i in 0..2 {
            let name = format!("c{i}");
            lab.sh(
                host,
                &format!("docker run -d --name {name} --net tls-net tabby/busybox sleep 3600"),
            );
            containers.push((host, name.clone(), lab.container_ip(host, &name)));
        }
    }
    for (host, name, ip) in &containers {
        let others = containers
            .iter()
            .filter(|(_, _, other)| other != ip)
            .map(|(_, _, other)| other);
        let failed = lab.unreachable(host, name, others);
        assert!(
            failed.is_empty(),
            "{name} on {host} cannot reach {failed:?}"
        );
    }
}

#[test]
fn tls_lab_pings_and_bad_certificates_fail_clearly() {
    let lab = Lab::up_with(3, &[("TABBY_LAB_ETCD_TLS", "1")]);
    let tls = lab.dir().join("tls");
    // The lab really is on TLS: its endpoints are https.
    let env = lab.sh("h1", "echo $TABBY_ETCD_ENDPOINTS");
    assert!(env.starts_with("https://198.18.0.11:2379"), "{env}");
    let nodes = lab.sh("h2", "tabby node show");
    for host in HOSTS {
        assert!(nodes.contains(&format!("| {host} ")), "{nodes}");
    }
    cross_host_pings(&lab);

    // The CLI with a CA that did not sign the members' certificates.
    let wrong = other_ca(lab.dir());
    let ca_env = format!("TABBY_ETCD_CA_CERT_FILE={wrong}");
    let out = lab.run("h1", &["env", &ca_env, "tabby", "node", "show"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("TLS handshake with https://198.18.0.1"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--etcd-ca-cert-file {wrong}")),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // The CLI without a client certificate: the members refuse it.
    let out = lab.run(
        "h1",
        &[
            "env",
            "-u",
            "TABBY_ETCD_CERT_FILE",
            "-u",
            "TABBY_ETCD_KEY_FILE",
            "tabby",
            "pool",
            "show",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("TLS handshake with https://198.18.0.1"),
        "{err}"
    );
    assert!(err.contains("--etcd-cert-file"), "{err}");

    // A CA file that is not there.
    let out = lab.run(
        "h1",
        &[
            "env",
            "TABBY_ETCD_CA_CERT_FILE=/nonexistent/ca.pem",
            "tabby",
            "node",
            "show",
        ],
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot read CA certificate /nonexistent/ca.pem"),
        "{err}"
    );

    // An agent with the wrong CA exits at start with the same message
    // (bounded by `timeout`: a hang would show as status 124).
    let socket = lab.dir().join("h1/wrong-ca.sock").display().to_string();
    let out = lab.run(
        "h1",
        &[
            "env",
            &ca_env,
            "timeout",
            "60",
            "tabby",
            "agent",
            "--hostname",
            "wrongca",
            "--ip",
            "198.18.0.11",
            "--socket",
            &socket,
        ],
    );
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(124), "the agent hung");
    let err = stderr(&out);
    assert!(
        err.contains("TLS handshake with https://198.18.0.1"),
        "{err}"
    );
    assert!(err.contains(&wrong), "{err}");
    assert!(!Path::new(&socket).exists(), "the agent served anyway");
    // The lab's own client files still work, and nothing was registered.
    let nodes = lab.sh("h3", "tabby node show");
    assert!(!nodes.contains("wrongca"), "{nodes}");
    assert!(tls.join("ca.pem").exists());
}

fn etcdctl(endpoint: &str, args: &[&str]) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .expect("etcdctl runs");
    assert!(out.status.success(), "etcdctl {args:?}: {}", stderr(&out));
}

fn password_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

/// etcd RBAC: the right password works, a wrong one or an open password
/// file is refused at start, naming the file.
#[test]
fn rbac_password_is_checked_at_start() {
    let etcd = support::Etcd::start();
    etcdctl(&etcd.endpoint, &["user", "add", "root:s3cret"]);
    // The user production should run as: read-write on tabby's prefix only.
    etcdctl(&etcd.endpoint, &["role", "add", "tabby"]);
    etcdctl(
        &etcd.endpoint,
        &[
            "role",
            "grant-permission",
            "tabby",
            "--prefix",
            "readwrite",
            "/tabby/",
        ],
    );
    etcdctl(&etcd.endpoint, &["user", "add", "tabby:t4bby"]);
    etcdctl(&etcd.endpoint, &["user", "grant-role", "tabby", "tabby"]);
    etcdctl(&etcd.endpoint, &["auth", "enable"]);
    let dir = tempfile::tempdir().unwrap();
    let tabby_as = |user: &str, password_file: &str, args: &[&str]| {
        std::process::Command::new(support::tabby_bin())
            .args(["--etcd-endpoints", &etcd.endpoint, "--etcd-username", user])
            .args(["--etcd-password-file", password_file])
            .args(args)
            .output()
            .expect("tabby runs")
    };
    let tabby = |password_file: &str| tabby_as("root", password_file, &["pool", "show"]);
    let good = password_file(dir.path(), "good", "s3cret\n", 0o600);
    let out = tabby(&good);
    assert!(out.status.success(), "{}", stderr(&out));

    let wrong = password_file(dir.path(), "wrong", "guess\n", 0o600);
    let out = tabby(&wrong);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("refused user \"root\""), "{err}");
    assert!(err.contains(&wrong), "{err}");

    let open = password_file(dir.path(), "open", "s3cret\n", 0o644);
    let out = tabby(&open);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(err.contains(&open), "{err}");

    let limited = password_file(dir.path(), "limited", "t4bby\n", 0o600);
    let out = tabby_as("tabby", &limited, &["pool", "add", "198.18.200.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tabby_as("tabby", &limited, &["pool", "show"]);
    assert!(support::stdout(&out).contains("198.18.200.0/24"));
    // Where the agent's watch starts: read within the prefix, so the
    // limited role allows it (a read of a key outside it is refused).
    let options = tabby::store::EtcdOptions {
        endpoints: vec![etcd.endpoint.clone()],
        username: Some("tabby".into()),
        password_file: Some(limited.into()),
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let revision = runtime.block_on(async {
        let store = tabby::store::Store::connect(&options, "/tabby").await?;
        store.revision().await
    });
    assert!(revision.expect("revision as the limited user") > 0);

    // Without credentials, auth-enabled etcd refuses; the error says so.
    let out = std::process::Command::new(support::tabby_bin())
        .args(["--etcd-endpoints", &etcd.endpoint, "pool", "show"])
        .output()
        .expect("tabby runs");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("user name is empty"),
        "{}",
        stderr(&out)
    );
}
