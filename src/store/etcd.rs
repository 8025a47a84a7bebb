//! `Kv` over a real etcd cluster (v3 API).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::OnceCell;
use tonic::Code;
use tracing::{debug, warn};

use super::Error;
use super::etcd_options::EtcdOptions;
use super::kv::{Expect, KeyStream, Kv, LeaseGuard, Swap, Versioned};

mod addresses;
mod health;
mod lease;

/// Every request is bounded: with quorum lost a plugin call must fail with
/// a clear error instead of hanging dockerd.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One client per member, tried in turn: etcd-client's own balancing keeps
/// sending requests to a member that is down, so one dead member out of
/// three would fail a third of all calls.
#[derive(Clone)]
pub struct EtcdKv {
    members: Arc<Vec<Member>>,
    /// The member that answered last; tried first.
    preferred: Arc<AtomicUsize>,
}

/// A member's client, made on first use: with RBAC credentials etcd-client
/// authenticates when it connects, and a member that is down at start must
/// not stop the others from serving.
struct Member {
    endpoint: String,
    options: ConnectOptions,
    client: OnceCell<Client>,
}

impl Member {
    async fn client(&self) -> Result<Client, etcd_client::Error> {
        self.client
            .get_or_try_init(|| Client::connect([&self.endpoint], Some(self.options.clone())))
            .await
            .cloned()
    }
}

/// Errors that say "this member cannot serve", as opposed to an answer.
fn member_unavailable(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
        ),
        _ => false,
    }
}

impl EtcdKv {
    /// Reads the TLS files and credentials, then asks the members for their
    /// status: a refused certificate or password is an error here, naming
    /// the member and the files; members that are down are not (the agent
    /// serves without etcd and converges once it answers).
    pub async fn connect(settings: &EtcdOptions) -> Result<Self, Error> {
        let loaded = settings.load()?;
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_require_leader(true);
        if let Some(tls) = loaded.tls {
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = loaded.user {
            options = options.with_user(user, password);
        }
        let members = settings
            .endpoints
            .iter()
            .map(|endpoint| Member {
                endpoint: endpoint.clone(),
                options: options.clone(),
                client: OnceCell::new(),
            })
            .collect();
        let kv = EtcdKv {
            members: Arc::new(members),
            preferred: Arc::new(AtomicUsize::new(0)),
        };
        kv.probe(settings).await?;
        Ok(kv)
    }

    /// Returns at the first member that answers, or the first one whose
    /// answer shows the configuration is wrong.
    async fn probe(&self, settings: &EtcdOptions) -> Result<(), Error> {
        let mut probes: FuturesUnordered<_> = self
            .members
            .iter()
            .enumerate()
            .map(|(index, member)| async move {
                let status = async {
                    let client = member.client().await?;
                    client.maintenance_client().status().await
                };
                let result = tokio::time::timeout(CONNECT_TIMEOUT * 2, status).await;
                (index, member, result)
            })
            .collect();
        let mut down = Vec::new();
        while let Some((index, member, result)) = probes.next().await {
            match result {
                Ok(Ok(_)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Err(err)) => {
                    if let Some(config) = settings.config_error(&member.endpoint, &err) {
                        return Err(config.into());
                    }
                    if !member_unavailable(&err) {
                        return Err(Error::Connect {
                            endpoints: member.endpoint.clone(),
                            cause: err,
                        });
                    }
                    down.push(format!("{}: {err}", member.endpoint));
                }
                Err(_) => down.push(format!("{}: no answer", member.endpoint)),
            }
        }
        warn!(members = %down.join("; "), "no etcd member answers yet");
        Ok(())
    }

    /// Runs `op` against the preferred member, failing over to the others
    /// while members are unavailable. Each attempt is bounded, so the whole
    /// call is too. A write that timed out may still have applied, and its
    /// retry on the next member then fails its comparison: callers of a
    /// compare-and-swap resolve that by reading back (see ipam/allocate.rs,
    /// `create_leased`).
    /// One request, timed and counted by operation.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = std::time::Instant::now();
        let result = self.call_any_member(what, op).await;
        crate::metrics::get().etcd(what, result.is_ok(), started);
        result
    }

    async fn call_any_member<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut last_error = String::new();
        for i in 0..n {
            let index = (first + i) % n;
            let endpoint = &self.members[index].endpoint;
            let attempt = async {
                let client = self.members[index].client().await?;
                op(client).await
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                Ok(Ok(value)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(err)) if member_unavailable(&err) => {
                    debug!(endpoint, error = %err, "etcd member unavailable, trying the next");
                    last_error = format!("{endpoint}: {err}");
                }
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => {
                    last_error = format!(
                        "{endpoint}: no answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    );
                }
            }
        }
        Err(Error::Timeout(format!(
            "etcd cannot {what}: no member can serve (is a quorum up?); last: {last_error}"
        )))
    }

    /// Runs a transaction; whether its comparisons held.
    async fn commit(&self, txn: Txn) -> Result<bool, Error> {
        let resp = self
            .call("write", |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    async fn lease_of(&self, key: &str) -> Result<Option<i64>, Error> {
        let resp = self
            .call(
                "read",
                |c| async move { c.kv_client().get(key, None).await },
            )
            .await?;
        Ok(resp.kvs().first().map(|kv| kv.lease()))
    }

    fn any_client(&self) -> Option<Client> {
        let n = self.members.len();
        self.members[self.preferred.load(Ordering::Relaxed) % n]
            .client
            .get()
            .cloned()
    }
}

pub use addresses::ipv4_addresses;

fn swap_parts(key: &str, expect: Expect, value: Option<Vec<u8>>) -> (Compare, TxnOp) {
    let compare = match expect {
        Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
        Expect::Revision(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
    };
    let op = match value {
        Some(value) => TxnOp::put(key, value, None),
        None => TxnOp::delete(key, None),
    };
    (compare, op)
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[async_trait]
impl Kv for EtcdKv {
    async fn members(&self) -> Vec<super::MemberHealth> {
        health::members(&self.members).await
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, Error> {
        let resp = self
            .call(
                "read",
                |c| async move { c.kv_client().get(key, None).await },
            )
            .await?;
        Ok(resp.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, Error> {
        let resp = self
            .call("list", |c| async move {
                c.kv_client()
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
            })
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
        self.call("write", |c| {
            let value = value.clone();
            async move { c.kv_client().put(key, value, None).await }
        })
        .await?;
        Ok(())
    }

    async fn swap(&self, key: &str, expect: Expect, value: Option<Vec<u8>>) -> Result<bool, Error> {
        let (compare, op) = swap_parts(key, expect, value);
        self.commit(Txn::new().when([compare]).and_then([op])).await
    }

    async fn swap_all(&self, swaps: Vec<Swap>) -> Result<bool, Error> {
        let (compares, ops): (Vec<_>, Vec<_>) = swaps
            .into_iter()
            .map(|s| swap_parts(&s.key, s.expect, s.value))
            .unzip();
        self.commit(Txn::new().when(compares).and_then(ops)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let resp = self
            .call("delete", |c| async move {
                c.kv_client().delete(key, None).await
            })
            .await?;
        Ok(resp.deleted() > 0)
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<LeaseGuard, Error> {
        lease::put_leased(self, key, value, ttl).await
    }

    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<Option<LeaseGuard>, Error> {
        lease::create_leased(self, key, value, ttl).await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<KeyStream, Error> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision);
        let stream = self
            .call("watch", |c| {
                let options = options.clone();
                async move { c.watch_client().watch(prefix, Some(options)).await }
            })
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

    async fn revision(&self, within: &str) -> Result<i64, Error> {
        let options = GetOptions::new().with_prefix().with_count_only();
        let resp = self
            .call("read", |c| {
                let options = options.clone();
                async move { c.kv_client().get(within, Some(options)).await }
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }
}
