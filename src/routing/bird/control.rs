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
    let stream = UnixStream::connect(socket).await.map_err(|e| Error::Io {
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
}
