//! BIRD as tabby's BGP speaker: the configuration rendered by
//! `routing::bgp` is checked, written and applied with `configure`
//! (sessions it does not concern stay up); its sessions are read back for
//! `tabby bgp status`.

pub mod control;
mod daemon;
pub mod fake;
mod status;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;
use tracing::info;

pub use daemon::Files;
pub use status::{SessionState, parse_protocols};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("BIRD control socket: {0}")]
    Control(String),
    #[error("BIRD refused `{command}`: {reply}")]
    Refused { command: String, reply: String },
    #[error("BIRD rejects the rendered configuration: {0}")]
    BadConfig(String),
}

/// What the agent needs of a BGP speaker.
#[async_trait::async_trait]
pub trait Speaker: Send + Sync {
    /// Makes the speaker run `config`; false when it already did.
    async fn converge(&self, config: &str) -> Result<bool, Error>;
    /// Its BGP sessions as it sees them now.
    async fn sessions(&self) -> Result<Vec<SessionState>, Error>;
}

/// The real thing: a supervised `bird` in `dir`.
pub struct Bird {
    binary: PathBuf,
    files: Files,
    /// The configuration BIRD was last given, and whether BIRD runs.
    applied: Mutex<(Option<String>, bool)>,
}

impl Bird {
    /// Makes the private directory (mode 0700); BIRD starts with the first
    /// configuration.
    pub fn new(binary: PathBuf, dir: &Path) -> Result<Self, Error> {
        let io = |what: String| move |source| Error::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("cannot restrict {}", dir.display())))?;
        Ok(Bird {
            binary,
            files: Files {
                dir: dir.to_path_buf(),
            },
            applied: Mutex::new((None, false)),
        })
    }

    /// `bird -p`: parses a configuration without running it.
    async fn check(&self, path: &Path) -> Result<(), Error> {
        let out = tokio::process::Command::new(&self.binary)
            .arg("-p")
            .arg("-c")
            .arg(path)
            .output()
            .await
            .map_err(|source| Error::Io {
                what: format!("cannot run {}", self.binary.display()),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::BadConfig(text))
    }
}

#[async_trait::async_trait]
impl Speaker for Bird {
    async fn converge(&self, config: &str) -> Result<bool, Error> {
        let mut applied = self.applied.lock().await;
        if applied.0.as_deref() == Some(config) {
            return Ok(false);
        }
        let staged = self.files.staged();
        let io = |what: String| move |source| Error::Io { what, source };
        std::fs::write(&staged, config)
            .map_err(io(format!("cannot write {}", staged.display())))?;
        // A configuration BIRD refuses never replaces the one it runs.
        self.check(&staged).await?;
        std::fs::rename(&staged, self.files.config())
            .map_err(io("cannot replace BIRD's configuration".into()))?;
        if !applied.1 {
            daemon::supervise(self.binary.clone(), self.files.clone())
                .map_err(io("cannot start BIRD's supervisor".into()))?;
            applied.1 = true;
        } else {
            match control::command(&self.files.socket(), "configure").await {
                Ok(_) => info!("BIRD reconfigured"),
                // Restarting: it reads the new file as it starts.
                Err(Error::Io { what, source }) => {
                    info!(%what, error = %source, "BIRD not answering: it starts with the new configuration")
                }
                Err(err) => return Err(err),
            }
        }
        applied.0 = Some(config.to_string());
        Ok(true)
    }

    async fn sessions(&self) -> Result<Vec<SessionState>, Error> {
        sessions(&self.files.dir).await
    }
}

/// The sessions of the BIRD running in `dir` (for the CLI as well).
pub async fn sessions(dir: &Path) -> Result<Vec<SessionState>, Error> {
    let socket = Files {
        dir: dir.to_path_buf(),
    }
    .socket();
    let lines = control::command(&socket, "show protocols all").await?;
    Ok(parse_protocols(&lines))
}
