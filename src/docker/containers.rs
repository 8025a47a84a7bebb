//! What the Galera agent does to a member's container: read and write one
//! small file (through the archive API, which works on stopped containers
//! too), start, stop and restart it, wait for it to exit, read its logs.

use std::io::Read;

use bollard::query_parameters::{
    DownloadFromContainerOptions, LogsOptions, StopContainerOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use bytes::Bytes;
use futures::StreamExt;

use super::{DockerEngine, Error};

/// How long a stopping server gets before SIGKILL: Galera leaves the
/// cluster cleanly on a normal shutdown.
const STOP_GRACE_SECS: i32 = 60;

#[async_trait::async_trait]
pub trait Containers: Send + Sync {
    /// Whether the container runs; None if there is no such container.
    async fn running(&self, container: &str) -> Result<Option<bool>, Error>;
    /// The IDs of the networks the container is attached to (kept while it
    /// is stopped); None if there is no such container.
    async fn network_ids(&self, container: &str) -> Result<Option<Vec<String>>, Error>;
    /// A file's contents; None if it does not exist.
    async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Writes a file into an existing directory. A file that exists keeps
    /// its owner and mode (the server must still write `grastate.dat`); a
    /// new one is root's, mode 0644.
    async fn write_file(
        &self,
        container: &str,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), Error>;
    async fn start(&self, container: &str) -> Result<(), Error>;
    async fn stop(&self, container: &str) -> Result<(), Error>;
    async fn restart(&self, container: &str) -> Result<(), Error>;
    /// Waits for the container to exit; its exit code.
    async fn wait_exit(&self, container: &str) -> Result<i64, Error>;
    /// stdout and stderr since a Unix time.
    async fn logs_since(&self, container: &str, since: i64) -> Result<String, Error>;
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[async_trait::async_trait]
impl Containers for DockerEngine {
    async fn running(&self, container: &str) -> Result<Option<bool>, Error> {
        match self
            .client()
            .await?
            .inspect_container(container, None)
            .await
        {
            Ok(c) => Ok(Some(c.state.and_then(|s| s.running).unwrap_or(false))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn network_ids(&self, container: &str) -> Result<Option<Vec<String>>, Error> {
        match self
            .client()
            .await?
            .inspect_container(container, None)
            .await
        {
            Ok(c) => Ok(Some(
                c.network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_values()
                    .filter_map(|n| n.network_id)
                    .collect(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(archive) = self.download(container, path).await? else {
            return Ok(None);
        };
        first_file(&archive).map_err(|e| self.local_err(format!("reading {path}: {e}")))
    }

    async fn write_file(
        &self,
        container: &str,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), Error> {
        let owner = self.owner(container, &format!("{dir}/{name}")).await?;
        let archive = one_file_tar(name, contents, owner)
            .map_err(|e| self.local_err(format!("{name}: {e}")))?;
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
        };
        self.client()
            .await?
            .upload_to_container(
                container,
                Some(options),
                bollard::body_full(Bytes::from(archive)),
            )
            .await
            .map_err(|e| self.err(e))
    }

    async fn start(&self, container: &str) -> Result<(), Error> {
        let client = self.client().await?;
        client
            .start_container(container, None)
            .await
            .map_err(|e| self.err(e))
    }

    async fn stop(&self, container: &str) -> Result<(), Error> {
        let options = StopContainerOptions {
            t: Some(STOP_GRACE_SECS),
            signal: None,
        };
        let client = self.client().await?;
        match client.stop_container(container, Some(options)).await {
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other.map_err(|e| self.err(e)),
        }
    }

    async fn restart(&self, container: &str) -> Result<(), Error> {
        self.stop(container).await?;
        self.start(container).await
    }

    async fn wait_exit(&self, container: &str) -> Result<i64, Error> {
        let client = self.client().await?;
        let mut stream = client.wait_container(container, None::<WaitContainerOptions>);
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.err(e)),
            None => Ok(0),
        }
    }

    async fn logs_since(&self, container: &str, since: i64) -> Result<String, Error> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            since: since as i32,
            tail: "all".to_string(),
            ..Default::default()
        };
        let client = self.client().await?;
        let mut stream = client.logs(container, Some(options));
        let mut text = String::new();
        while let Some(line) = stream.next().await {
            let line = line.map_err(|e| self.err(e))?;
            text.push_str(&String::from_utf8_lossy(&line.into_bytes()));
        }
        Ok(text)
    }
}

/// uid, gid and mode of an existing file.
type Owner = (u64, u64, u32);

impl DockerEngine {
    /// A path's archive from the container; None if it does not exist.
    async fn download(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let client = self.client().await?;
        let mut stream = client.download_from_container(container, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(Some(archive))
    }

    async fn owner(&self, container: &str, path: &str) -> Result<Option<Owner>, Error> {
        let Some(archive) = self.download(container, path).await? else {
            return Ok(None);
        };
        first_owner(&archive).map_err(|e| self.local_err(format!("reading {path}: {e}")))
    }
}

fn first_owner(archive: &[u8]) -> std::io::Result<Option<Owner>> {
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let header = entry?.header().clone();
        if header.entry_type().is_file() {
            return Ok(Some((header.uid()?, header.gid()?, header.mode()?)));
        }
    }
    Ok(None)
}

fn one_file_tar(name: &str, contents: &[u8], owner: Option<Owner>) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    let (uid, gid, mode) = owner.unwrap_or((0, 0, 0o644));
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mode(mode);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, name, contents)?;
    builder.into_inner()
}

fn first_file(archive: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents)?;
            return Ok(Some(contents));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_survives_the_archive_round_trip() {
        let archive =
            super::one_file_tar("x.cnf", b"[mariadbd]\n", Some((999, 998, 0o660))).unwrap();
        assert_eq!(
            super::first_file(&archive).unwrap(),
            Some(b"[mariadbd]\n".to_vec())
        );
        assert_eq!(
            super::first_owner(&archive).unwrap(),
            Some((999, 998, 0o660))
        );
    }
}
