//! `Kv` over a real etcd cluster (v3 API).

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use tracing::{debug, warn};

use super::Error;
use super::kv::{Expect, KeyStream, Kv, LeaseGuard, Versioned};

/// Every request is bounded: with quorum lost a plugin call must fail with
/// a clear error instead of hanging dockerd.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
}

impl EtcdKv {
    pub async fn connect(endpoints: &[String]) -> Result<Self, Error> {
        let options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|source| Error::Connect {
                endpoints: endpoints.join(","),
                source,
            })?;
        Ok(EtcdKv { client })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Timeout(format!(
                "etcd did not answer {what} within {}s (is a quorum of members up?)",
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[async_trait]
impl Kv for EtcdKv {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, Error> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded("get", kv.get(key, None)).await?;
        Ok(resp.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, Error> {
        let mut kv = self.client.kv_client();
        let resp = self
            .bounded(
                "list",
                kv.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                let versioned = Versioned {
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                };
                (key_string(kv.key()), versioned)
            })
            .collect())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let mut kv = self.client.kv_client();
        self.bounded("put", kv.put(key, value, None)).await?;
        Ok(())
    }

    async fn swap(&self, key: &str, expect: Expect, value: Option<Vec<u8>>) -> Result<bool, Error> {
        let compare = match expect {
            Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Expect::Revision(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
        };
        let op = match value {
            Some(value) => TxnOp::put(key, value, None),
            None => TxnOp::delete(key, None),
        };
        let mut kv = self.client.kv_client();
        let txn = Txn::new().when([compare]).and_then([op]);
        let resp = self.bounded("transaction", kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded("delete", kv.delete(key, None)).await?;
        Ok(resp.deleted() > 0)
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<LeaseGuard, Error> {
        let lease = grant_and_put(&self.client, key, &value, ttl).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(keep_alive(
            self.client.clone(),
            key.to_string(),
            value,
            ttl,
            lease,
            stop_rx,
        ));
        Ok(LeaseGuard::new(stop_tx, task))
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<KeyStream, Error> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision);
        let mut watch_client = self.client.watch_client();
        let stream = self
            .bounded("watch", watch_client.watch(prefix, Some(options)))
            .await?;
        Ok(Box::pin(futures::stream::unfold(
            stream,
            |mut stream| async move {
                loop {
                    match stream.message().await {
                        Ok(Some(resp)) if resp.canceled() => {
                            let reason = format!("watch canceled: {}", resp.cancel_reason());
                            return Some((Err(Error::Watch(reason)), stream));
                        }
                        Ok(Some(resp)) if resp.events().is_empty() => continue,
                        Ok(Some(resp)) => {
                            let keys = resp
                                .events()
                                .iter()
                                .filter_map(|e| e.kv().map(|kv| key_string(kv.key())))
                                .collect();
                            return Some((Ok(keys), stream));
                        }
                        Ok(None) => return None,
                        Err(err) => return Some((Err(Error::from(err)), stream)),
                    }
                }
            },
        )))
    }

    async fn revision(&self) -> Result<i64, Error> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded("get", kv.get("\0", None)).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }
}

async fn grant_and_put(client: &Client, key: &str, value: &[u8], ttl: i64) -> Result<i64, Error> {
    let mut lease_client = client.lease_client();
    let lease = lease_client.grant(ttl, None).await?.id();
    let mut kv = client.kv_client();
    kv.put(
        key,
        value.to_vec(),
        Some(PutOptions::new().with_lease(lease)),
    )
    .await?;
    Ok(lease)
}

/// Refreshes the lease every third of its TTL. If the lease was lost (etcd
/// unreachable for longer than the TTL), grants a new one and rewrites the
/// key, so the node comes back as up by itself. Revokes on stop, so a
/// cleanly stopped agent shows as down at once.
async fn keep_alive(
    client: Client,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    mut lease: i64,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(200));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(period) => {}
        }
        let mut lease_client = client.lease_client();
        let alive = match lease_client.keep_alive(lease).await {
            Ok((mut keeper, mut responses)) => {
                keeper.keep_alive().await.is_ok()
                    && matches!(responses.message().await, Ok(Some(r)) if r.ttl() > 0)
            }
            Err(_) => false,
        };
        if !alive {
            match grant_and_put(&client, &key, &value, ttl).await {
                Ok(new_lease) => {
                    debug!(key, "lease renewed after loss");
                    lease = new_lease;
                }
                Err(err) => warn!(key, error = %err, "cannot refresh liveness lease"),
            }
        }
    }
    let mut lease_client = client.lease_client();
    let _ = tokio::time::timeout(Duration::from_secs(2), lease_client.revoke(lease)).await;
}
