//! Fault injection for crash tests: with `TABBY_FAILPOINT=<call>:<when>`
//! (e.g. `NetworkDriver.Join:after`) the agent SIGKILLs itself at the
//! first such call, `before` its handler runs or `after` it ran but before
//! Docker gets the answer. Unset, nothing is layered in.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::warn;

pub const ENV: &str = "TABBY_FAILPOINT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failpoint {
    pub call: String,
    pub after: bool,
}

static FAILPOINT: OnceLock<Failpoint> = OnceLock::new();

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

/// The failpoint configured in the environment, if any (and remembered).
pub fn from_env() -> Option<&'static Failpoint> {
    let value = std::env::var(ENV).ok()?;
    match parse(&value) {
        Some(fp) => Some(FAILPOINT.get_or_init(|| fp)),
        None => {
            warn!("ignoring {ENV}={value:?}: expected <call>:before|after");
            None
        }
    }
}

fn die(fp: &Failpoint) -> ! {
    warn!(call = %fp.call, after = fp.after, "failpoint: killing the agent");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    unreachable!("SIGKILL cannot be caught")
}

pub async fn inject(request: Request, next: Next) -> Response {
    let Some(fp) = FAILPOINT.get() else {
        return next.run(request).await;
    };
    let hit = request.uri().path() == fp.call;
    if hit && !fp.after {
        die(fp);
    }
    let response = next.run(request).await;
    if hit {
        die(fp);
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
