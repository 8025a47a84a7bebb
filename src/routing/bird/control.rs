//! BIRD's control socket, as birdc speaks it: a greeting, then one
//! command per line, each answered by lines `CODE-text` (more follow),
//! ` text` (continues the previous code) and a last `CODE text`. Codes
//! from 8000 up are errors.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::Error;

/// BIRD answers `configure` and `show` in milliseconds; more means it hangs.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One reply line: its code (that of the line it continues, for ` text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// Sends one command and returns the reply's lines; an error reply is an
/// error carrying BIRD's text.
pub async fn command(socket: &Path, command: &str) -> Result<Vec<Line>, Error> {
    tokio::time::timeout(TIMEOUT, exchange(socket, command))
        .await
        .map_err(|_| Error::Control(format!("no answer to `{command}` within {TIMEOUT:?}")))?
}

async fn exchange(socket: &Path, command: &str) -> Result<Vec<Line>, Error> {
    let stream = connect(socket).await.map_err(|e| Error::Io {
        what: format!("cannot connect to BIRD at {}", socket.display()),
        source: e,
    })?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    read_reply(&mut lines).await?;
    write
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|e| Error::Io {
            what: "cannot write to BIRD's socket".into(),
            source: e,
        })?;
    let reply = read_reply(&mut lines).await?;
    if let Some(err) = reply.iter().find(|l| l.code >= 8000) {
        return Err(Error::Refused {
            command: command.to_string(),
            reply: err.text.clone(),
        });
    }
    Ok(reply)
}

/// sun_path holds 107 bytes: a socket deeper than that (a managed
/// plugin's, under dockerd's data root) is reached through its directory,
/// held open, as /proc/self/fd/N/NAME.
async fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    const SUN_PATH_MAX: usize = 107;
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return UnixStream::connect(socket).await;
    };
    if socket.as_os_str().len() <= SUN_PATH_MAX {
        return UnixStream::connect(socket).await;
    }
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(name);
    let stream = UnixStream::connect(short).await;
    drop(dir);
    stream
}

async fn read_reply(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<Vec<Line>, Error> {
    let mut out = Vec::new();
    let mut code = 0;
    loop {
        let Some(raw) = lines.next_line().await.map_err(|e| Error::Io {
            what: "cannot read BIRD's reply".into(),
            source: e,
        })?
        else {
            return Err(Error::Control("BIRD closed its socket mid-reply".into()));
        };
        match parse(&raw, code) {
            Some((line, last)) => {
                code = line.code;
                out.push(line);
                if last {
                    return Ok(out);
                }
            }
            None => return Err(Error::Control(format!("unexpected reply line {raw:?}"))),
        }
    }
}

/// A line, and whether it ends the reply.
fn parse(raw: &str, previous: u16) -> Option<(Line, bool)> {
    if let Some(text) = raw.strip_prefix(' ') {
        let line = Line {
            code: previous,
            text: text.to_string(),
        };
        return Some((line, false));
    }
    let code: u16 = raw.get(..4)?.parse().ok()?;
    let last = match raw.as_bytes().get(4) {
        Some(b'-') => false,
        Some(b' ') | None => true,
        Some(_) => return None,
    };
    let text = raw.get(5..).unwrap_or_default().to_string();
    Some((Line { code, text }, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_continue_with_their_code_until_one_ends_with_a_space() {
        assert_eq!(
            parse("2002-Name       Proto", 0),
            Some((
                Line {
                    code: 2002,
                    text: "Name       Proto".into()
                },
                false
            ))
        );
        assert_eq!(parse(" mesh_1_2_3_4 BGP", 1002).unwrap().0.code, 1002);
        assert!(parse("0000 ", 1002).unwrap().1);
        assert!(parse("0003 Reconfigured", 0).unwrap().1);
        assert!(parse("garbage", 0).is_none());
    }

    #[tokio::test]
    async fn a_socket_deeper_than_sun_path_is_still_reached() {
        let top = tempfile::tempdir().unwrap();
        let deep = top.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join("bird.ctl");
        assert!(socket.as_os_str().len() > 107);
        // Bound the same way, since bind has the same limit.
        let dir = std::fs::File::open(&deep).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
        let listener =
            std::os::unix::net::UnixListener::bind(format!("/proc/self/fd/{fd}/bird.ctl")).unwrap();
        let stream = connect(&socket).await.expect("connected");
        let (peer, _) = listener.accept().unwrap();
        assert!(peer.peer_addr().is_ok() && stream.peer_addr().is_ok());
    }
}
