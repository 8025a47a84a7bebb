//! MySQL/MariaDB replication over tabby's routed network: find the members
//! (`resolve`), connect and read their settings (`member`), check and
//! configure replication (`bootstrap`), seed a replica that joins late
//! (`seed`), report (`status`) and switch the master over (`promote`). The
//! statements for each server flavor and version live in `sql`.
//!
//! Passwords come from files, never from arguments, labels or the
//! datastore; every statement that carries one is a `sql::Secret` and every
//! server message is scrubbed of it before it can reach a log or an error.

pub mod bootstrap;
pub mod cluster;
pub mod declare;
pub mod galera;
pub mod labels;
pub mod member;
pub mod promote;
pub mod resolve;
pub mod seed;
pub mod sql;
pub mod status;

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use member::Member;
pub use resolve::Target;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{member}: cannot connect: {message}")]
    Connect { member: String, message: String },
    #[error("{member}: {what}: {message}")]
    Query {
        member: String,
        what: String,
        message: String,
    },
    /// A setting that must change before replication can be set up.
    #[error("{member}: {message}")]
    Check { member: String, message: String },
    #[error("{0}")]
    Resolve(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{member}: replication is not healthy: {message}")]
    Unhealthy { member: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Docker(#[from] crate::docker::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A password. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// Reads a password file: its first line, without the line ending.
    /// A file that group or others can read is refused, as ssh refuses
    /// such a private key: the password is as exposed as the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::secret_file::read_first_line(path)
            .map(Password)
            .map_err(|e| Error::Invalid(format!("password file: {e}")))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Who tabby logs in as, and the account replicas use.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub admin_user: String,
    pub admin_password: Password,
    pub repl_user: String,
    pub repl_password: Password,
}

impl Credentials {
    /// Without a replication password of its own, one is derived from the
    /// admin password, so every run (and every agent) agrees on it without
    /// storing it anywhere.
    pub fn new(admin_password: Password, repl_user: &str, repl_password: Option<Password>) -> Self {
        let repl_password = repl_password.unwrap_or_else(|| {
            let digest = Sha256::digest(format!("tabby-repl\0{}", admin_password.expose()));
            Password(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
        });
        Credentials {
            admin_user: "root".to_string(),
            admin_password,
            repl_user: repl_user.to_string(),
            repl_password,
        }
    }

    /// Removes every password from a server message.
    pub fn scrub(&self, message: &str) -> String {
        let mut text = message.to_string();
        for secret in [self.admin_password.expose(), self.repl_password.expose()] {
            if !secret.is_empty() {
                text = text.replace(secret, "***");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_password_files_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Password::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Password::from_file(&path).unwrap().expose(), "s3cret");
    }

    #[test]
    fn derived_replication_password_is_stable_and_not_the_admin_one() {
        let a = Credentials::new(Password::new("pw"), "repl", None);
        let b = Credentials::new(Password::new("pw"), "repl", None);
        assert_eq!(a.repl_password, b.repl_password);
        assert_ne!(a.repl_password.expose(), "pw");
        assert_eq!(a.repl_password.expose().len(), 32);
        let c = Credentials::new(Password::new("other"), "repl", None);
        assert_ne!(a.repl_password, c.repl_password);
    }

    #[test]
    fn passwords_never_show_in_debug_or_scrubbed_messages() {
        let c = Credentials::new(Password::new("s3cr3t"), "repl", Some(Password::new("r3pl")));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{c:?}").contains("r3pl"));
        assert_eq!(
            c.scrub("near 's3cr3t' and 'r3pl' at line 1"),
            "near '***' and '***' at line 1"
        );
    }
}
