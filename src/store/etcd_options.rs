//! How to reach etcd: endpoints, TLS files and RBAC credentials, checked
//! and loaded before the first request, so a mistake in them is a clear
//! error at start instead of timeouts later.

use std::path::{Path, PathBuf};

use etcd_client::{Certificate, Identity, TlsOptions};

use crate::secret_file::{self, SecretFileError};

/// etcd connection settings, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// CA that signed the members' server certificates (https:// only).
    pub ca_cert_file: Option<PathBuf>,
    /// Client certificate and its key, for members run with
    /// `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// etcd RBAC user; its password is the first line of `password_file`.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no etcd endpoints given")]
    NoEndpoints,
    #[error("etcd endpoint {0:?} must start with http:// or https://")]
    Scheme(String),
    #[error("etcd endpoint {endpoint} is not https:// but {option} is given: use https://")]
    TlsOnPlain {
        endpoint: String,
        option: &'static str,
    },
    #[error("etcd endpoint {0} is https://: give the CA with --etcd-ca-cert-file")]
    NoCa(String),
    #[error("--etcd-cert-file and --etcd-key-file go together: give both or neither")]
    HalfIdentity,
    #[error("--etcd-username and --etcd-password-file go together: give both or neither")]
    HalfUser,
    // `error` rather than `source`: printed here, so not again as a cause.
    #[error("cannot read {what} {path}: {error}")]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error("TLS handshake with {endpoint} failed: {reason} (check {hint})")]
    Handshake {
        endpoint: String,
        reason: String,
        hint: String,
    },
    #[error(
        "etcd at {endpoint} refused user {user:?}: {reason} (check --etcd-password-file {password_file})"
    )]
    Auth {
        endpoint: String,
        user: String,
        reason: String,
        password_file: String,
    },
}

/// What a connection needs, read from the files.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub tls: Option<TlsOptions>,
    pub user: Option<(String, String)>,
}

impl EtcdOptions {
    /// Plain settings for `endpoints` (no TLS, no user), as tests use.
    pub fn plain(endpoints: &[String]) -> Self {
        EtcdOptions {
            endpoints: endpoints.to_vec(),
            ..Default::default()
        }
    }

    /// Checks that the options fit together; reads no file.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(ConfigError::NoEndpoints);
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ConfigError::HalfIdentity);
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Err(ConfigError::HalfUser);
        }
        let tls_option = if self.ca_cert_file.is_some() {
            Some("--etcd-ca-cert-file")
        } else if self.cert_file.is_some() {
            Some("--etcd-cert-file")
        } else {
            None
        };
        for endpoint in &self.endpoints {
            if endpoint.starts_with("https://") {
                if self.ca_cert_file.is_none() {
                    return Err(ConfigError::NoCa(endpoint.clone()));
                }
            } else if endpoint.starts_with("http://") {
                if let Some(option) = tls_option {
                    return Err(ConfigError::TlsOnPlain {
                        endpoint: endpoint.clone(),
                        option,
                    });
                }
            } else {
                return Err(ConfigError::Scheme(endpoint.clone()));
            }
        }
        Ok(())
    }

    /// Checks the options and reads the files they name.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        self.check()?;
        let mut loaded = Loaded::default();
        if let Some(ca) = &self.ca_cert_file {
            let ca_pem = read_pem(ca, "CA certificate", "CERTIFICATE")?;
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca_pem));
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                let cert_pem = read_pem(cert, "client certificate", "CERTIFICATE")?;
                secret_file::check_private(key)?;
                let key_pem = read_pem(key, "client key", "PRIVATE KEY")?;
                tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
            }
            loaded.tls = Some(tls);
        }
        if let (Some(user), Some(file)) = (&self.username, &self.password_file) {
            loaded.user = Some((user.clone(), secret_file::read_first_line(file)?));
        }
        Ok(loaded)
    }

    /// The files to look at when a handshake fails.
    pub fn tls_hint(&self) -> String {
        let path = |p: &Option<PathBuf>| {
            p.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut hint = format!("--etcd-ca-cert-file {}", path(&self.ca_cert_file));
        if self.cert_file.is_some() {
            hint += &format!(
                ", --etcd-cert-file {} and --etcd-key-file {}",
                path(&self.cert_file),
                path(&self.key_file)
            );
        } else {
            hint += "; a member run with --client-cert-auth also needs \
                     --etcd-cert-file and --etcd-key-file";
        }
        hint
    }

    /// `Handshake` or `Auth` when `err` says the configuration is wrong
    /// (a certificate refused, credentials refused), as opposed to a member
    /// that is down.
    pub fn config_error(&self, endpoint: &str, err: &etcd_client::Error) -> Option<ConfigError> {
        let chain = error_chain(err);
        let lower = chain.to_lowercase();
        const TLS_WORDS: [&str; 5] = [
            "certificate",
            "handshake",
            "tls",
            "alert",
            "corrupt message",
        ];
        // A member that wants a client certificate may close the
        // connection before its alert is read (TLS 1.3 ends the handshake
        // first): with none given, a closed connection is read the same way.
        const CLOSED: [&str; 3] = ["broken pipe", "connection closed", "connection reset"];
        let refused_anonymous =
            self.cert_file.is_none() && CLOSED.iter().any(|w| lower.contains(w));
        if self.ca_cert_file.is_some()
            && (refused_anonymous || TLS_WORDS.iter().any(|w| lower.contains(w)))
        {
            return Some(ConfigError::Handshake {
                endpoint: endpoint.to_string(),
                reason: chain,
                hint: self.tls_hint(),
            });
        }
        const AUTH_WORDS: [&str; 4] = [
            "authentication failed",
            "invalid user",
            "user name is empty",
            "permission denied",
        ];
        if AUTH_WORDS.iter().any(|w| lower.contains(w)) {
            return Some(ConfigError::Auth {
                endpoint: endpoint.to_string(),
                user: self.username.clone().unwrap_or_default(),
                reason: chain,
                password_file: self
                    .password_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(none given)".into()),
            });
        }
        None
    }
}

fn read_pem(path: &Path, what: &'static str, label: &'static str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        what,
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.ends_with(&format!("{label}-----")));
    if !has_block {
        return Err(ConfigError::NotPem {
            what,
            path: path.to_path_buf(),
            expected: label,
        });
    }
    Ok(bytes)
}

/// The error and its sources on one line, deduplicated: tonic repeats its
/// message in its source, and a gRPC status's message is its useful part.
pub(super) fn error_chain(err: &etcd_client::Error) -> String {
    let (mut parts, mut source): (Vec<String>, Option<&dyn std::error::Error>) = match err {
        etcd_client::Error::GRpcStatus(status) => (
            vec![status.message().to_string()],
            std::error::Error::source(status),
        ),
        other => (vec![other.to_string()], std::error::Error::source(other)),
    };
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.retain(|p| !p.is_empty() && p != "transport error");
    parts.join(": ")
}

#[cfg(test)]
#[path = "etcd_options_tests.rs"]
mod tests;
