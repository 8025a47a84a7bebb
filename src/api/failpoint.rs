//! Fault injection for crash tests: with `TABBY_FAILPOINT=<call>:<when>`
//! (e.g. `NetworkDriver.Join:after`) the agent SIGKILLs itself at the
//! first such call, `before` its handler runs or `after` it ran but before
//! Docker gets the answer. `TABBY_FAILPOINT_FILE=F` reads the same from F
//! at every call instead, so a test arms it without a restart. With
//! neither set, nothing is layered in.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::warn;

pub const ENV: &str = "TABBY_FAILPOINT";
pub const FILE_ENV: &str = "TABBY_FAILPOINT_FILE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failpoint {
    pub call: String,
    pub after: bool,
}

enum Source {
    Fixed(Failpoint),
    File(std::path::PathBuf),
}

static SOURCE: OnceLock<Source> = OnceLock::new();

pub fn parse(value: &str) -> Option<Failpoint> {
    let (call, when) = value.rsplit_once(':')?;
    let after = match when {
        "before" => false,
        "after" => true,
        _ => return None,
    };
    Some(Failpoint {
        call: format!("/{}", call.trim_start_matches('/')),
        after,
    })
}

/// Whether a failpoint is configured in the environment (remembered).
pub fn from_env() -> bool {
    if let Ok(path) = std::env::var(FILE_ENV) {
        SOURCE.get_or_init(|| Source::File(path.into()));
        return true;
    }
    let Ok(value) = std::env::var(ENV) else {
        return false;
    };
    match parse(&value) {
        Some(fp) => {
            SOURCE.get_or_init(|| Source::Fixed(fp));
            true
        }
        None => {
            warn!("ignoring {ENV}={value:?}: expected <call>:before|after");
            false
        }
    }
}

fn current() -> Option<Failpoint> {
    match SOURCE.get()? {
        Source::Fixed(fp) => Some(fp.clone()),
        Source::File(path) => parse(std::fs::read_to_string(path).ok()?.trim()),
    }
}

fn die(fp: &Failpoint) -> ! {
    warn!(call = %fp.call, after = fp.after, "failpoint: killing the agent");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    unreachable!("SIGKILL cannot be caught")
}

pub async fn inject(request: Request, next: Next) -> Response {
    let Some(fp) = current() else {
        return next.run(request).await;
    };
    let hit = request.uri().path() == fp.call;
    if hit && !fp.after {
        die(&fp);
    }
    let response = next.run(request).await;
    if hit {
        die(&fp);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_name_a_call_and_a_moment() {
        assert_eq!(
            parse("NetworkDriver.Join:after"),
            Some(Failpoint {
                call: "/NetworkDriver.Join".into(),
                after: true
            })
        );
        assert_eq!(
            parse("IpamDriver.RequestAddress:before").map(|f| f.after),
            Some(false)
        );
        assert_eq!(parse("Join:sometime"), None);
        assert_eq!(parse("Join"), None);
    }
}
