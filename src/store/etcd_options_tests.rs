use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn opts(endpoints: &[&str]) -> EtcdOptions {
    EtcdOptions::plain(&endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>())
}

fn file(mode: u32, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

#[test]
fn plain_http_needs_nothing() {
    assert!(opts(&["http://198.18.0.11:2379"]).check().is_ok());
}

#[test]
fn no_endpoint_or_no_scheme_is_refused() {
    assert!(matches!(opts(&[]).check(), Err(ConfigError::NoEndpoints)));
    let err = opts(&["198.18.0.11:2379"]).check().unwrap_err();
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}

#[test]
fn https_needs_a_ca() {
    let err = opts(&["https://198.18.0.11:2379"]).check().unwrap_err();
    assert!(err.to_string().contains("--etcd-ca-cert-file"), "{err}");
    assert!(
        err.to_string().contains("https://198.18.0.11:2379"),
        "{err}"
    );
}

#[test]
fn tls_files_on_http_are_refused() {
    let mut o = opts(&["https://198.18.0.11:2379", "http://198.18.0.12:2379"]);
    o.ca_cert_file = Some("/x/ca.pem".into());
    let err = o.check().unwrap_err();
    assert!(err.to_string().contains("http://198.18.0.12:2379"), "{err}");
}

#[test]
fn cert_without_key_and_user_without_password_are_refused() {
    let mut o = opts(&["https://198.18.0.11:2379"]);
    o.ca_cert_file = Some("/x/ca.pem".into());
    o.cert_file = Some("/x/client.pem".into());
    assert!(matches!(o.check(), Err(ConfigError::HalfIdentity)));
    let mut o = opts(&["http://198.18.0.11:2379"]);
    o.username = Some("root".into());
    assert!(matches!(o.check(), Err(ConfigError::HalfUser)));
}

#[test]
fn missing_ca_file_is_named() {
    let mut o = opts(&["https://198.18.0.11:2379"]);
    o.ca_cert_file = Some("/nonexistent/ca.pem".into());
    let err = o.load().unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read CA certificate /nonexistent/ca.pem"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_pem_is_named() {
    let ca = file(0o644, "hello\n");
    let mut o = opts(&["https://198.18.0.11:2379"]);
    o.ca_cert_file = Some(ca.path().into());
    let err = o.load().unwrap_err().to_string();
    assert!(err.contains(&ca.path().display().to_string()), "{err}");
    assert!(err.contains("no PEM CERTIFICATE"), "{err}");
}

#[test]
fn a_key_others_can_read_is_refused() {
    let (ca, cert, key) = (file(0o644, CERT), file(0o644, CERT), file(0o644, KEY));
    let mut o = opts(&["https://198.18.0.11:2379"]);
    o.ca_cert_file = Some(ca.path().into());
    o.cert_file = Some(cert.path().into());
    o.key_file = Some(key.path().into());
    let err = o.load().unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = o.load().unwrap();
    assert!(loaded.tls.is_some());
}

#[test]
fn password_is_the_first_line_of_a_private_file() {
    let pw = file(0o600, "s3cret\n");
    let mut o = opts(&["http://198.18.0.11:2379"]);
    o.username = Some("tabby".into());
    o.password_file = Some(pw.path().into());
    let loaded = o.load().unwrap();
    assert_eq!(loaded.user, Some(("tabby".into(), "s3cret".into())));
    std::fs::set_permissions(pw.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(o.load().unwrap_err().to_string().contains("chmod 600"));
}

#[test]
fn refused_credentials_are_a_configuration_error() {
    let mut o = opts(&["http://198.18.0.11:2379"]);
    o.username = Some("tabby".into());
    o.password_file = Some("/x/pw".into());
    let status = tonic::Status::invalid_argument(
        "etcdserver: authentication failed, invalid user ID or password",
    );
    let err = o
        .config_error(
            "http://198.18.0.11:2379",
            &etcd_client::Error::GRpcStatus(status),
        )
        .expect("an auth error");
    let text = err.to_string();
    assert!(text.contains("refused user \"tabby\""), "{text}");
    assert!(text.contains("/x/pw"), "{text}");
    let down = tonic::Status::unavailable("tcp connect error: Connection refused");
    assert!(
        o.config_error(
            "http://198.18.0.11:2379",
            &etcd_client::Error::GRpcStatus(down)
        )
        .is_none()
    );
}

#[test]
fn an_etcd_failure_prints_its_message_and_root_cause_once() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let mut status = tonic::Status::unavailable("tcp connect error");
    status.set_source(std::sync::Arc::new(refused));
    let err = anyhow::Error::from(crate::store::Error::from(etcd_client::Error::GRpcStatus(
        status,
    )))
    .context("cannot list pools");
    let text = crate::error_chain::text(&err);
    assert_eq!(
        text,
        "cannot list pools: etcd: tcp connect error: connection refused"
    );
}
