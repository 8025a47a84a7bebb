//! The BIRD process: started with the agent's configuration in a private
//! directory, restarted whenever it exits, and killed with the agent
//! (PR_SET_PDEATHSIG), so peers see a restart, not a shutdown, and keep
//! this host's routes under graceful restart.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// The log is started afresh past this size.
const LOG_MAX: u64 = 16 << 20;
/// A BIRD that ran this long before exiting is restarted at once.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Paths of one BIRD instance.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn config(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }
    pub fn staged(&self) -> PathBuf {
        self.dir.join("bird.conf.new")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("bird.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("bird.log")
    }
}

/// Runs BIRD on a thread of its own for the life of the process: the
/// death signal fires when the thread that forked BIRD ends, so that
/// thread must never end before the agent does.
pub fn supervise(binary: PathBuf, files: Files) -> std::io::Result<()> {
    kill_stale(&files);
    std::thread::Builder::new()
        .name("bird".into())
        .spawn(move || {
            loop {
                let started = Instant::now();
                match run_once(&binary, &files) {
                    Ok(status) => warn!(%status, "BIRD exited: starting it again"),
                    Err(err) => {
                        warn!(error = %err, binary = %binary.display(), "cannot start BIRD")
                    }
                }
                if started.elapsed() < HEALTHY_RUN {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })?;
    Ok(())
}

fn run_once(binary: &Path, files: &Files) -> std::io::Result<std::process::ExitStatus> {
    let log_path = files.log();
    let fresh = std::fs::metadata(&log_path).is_ok_and(|m| m.len() > LOG_MAX);
    let log = OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(&log_path)?;
    let mut command = Command::new(binary);
    command
        // -R: graceful restart recovery, so the kernel routes of the BIRD
        // before are kept until the sessions have converged again.
        .arg("-f")
        .arg("-R")
        .arg("-c")
        .arg(files.config())
        .arg("-s")
        .arg(files.socket())
        .arg("-P")
        .arg(files.pidfile())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn()?;
    info!(pid = child.id(), config = %files.config().display(), "BIRD started");
    child.wait()
}

/// A BIRD left by an agent that died before its death signal could work
/// (or from before a crash of this thread): only one whose command line
/// names this directory's configuration counts as ours.
fn kill_stale(files: &Files) {
    let Ok(text) = std::fs::read_to_string(files.pidfile()) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let config = files.config();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config.as_os_str().as_encoded_bytes());
    if !ours {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid);
    info!(%pid, "killing the BIRD of a previous agent");
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
