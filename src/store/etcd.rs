//! `Kv` over a real etcd cluster (v3 API).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::OnceCell;
use tonic::Code;
use tracing::{debug, warn};

use super::Error;
use super::etcd_options::EtcdOptions;
use super::kv::{Expect, KeyStream, Kv, LeaseGuard, Swap, Versioned};

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
                            source: err,
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
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
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

/// The IPv4 addresses of `http(s)://HOST:PORT` endpoints; a name is
/// resolved, and one that does not resolve adds nothing (connecting to it
/// fails on its own).
pub async fn ipv4_addresses(endpoints: &[String]) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    for endpoint in endpoints {
        let rest = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        let host_port = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(2379)),
            _ => (authority.to_string(), 2379),
        };
        if let Ok(ip) = host_port.0.parse::<std::net::Ipv4Addr>() {
            out.push(ip);
        } else if let Ok(addrs) = tokio::net::lookup_host(host_port).await {
            out.extend(addrs.filter_map(|a| match a.ip() {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            }));
        }
    }
    out
}

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
        let txn = Txn::new().when([compare]).and_then([op]);
        let resp = self
            .call("write", |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    async fn swap_all(&self, swaps: Vec<Swap>) -> Result<bool, Error> {
        let (compares, ops): (Vec<_>, Vec<_>) = swaps
            .into_iter()
            .map(|s| swap_parts(&s.key, s.expect, s.value))
            .unzip();
        let txn = Txn::new().when(compares).and_then(ops);
        let resp = self
            .call("write", |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
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
        let lease = grant_and_put(self, key, &value, ttl).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(keep_alive(
            self.clone(),
            key.to_string(),
            value,
            ttl,
            lease,
            stop_rx,
        ));
        Ok(LeaseGuard::new(stop_tx, task))
    }

    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<Option<LeaseGuard>, Error> {
        let lease = self
            .call("grant a lease", |c| async move {
                c.lease_client().grant(ttl, None).await
            })
            .await?
            .id();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let created = self
            .call("write", |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?
            .succeeded();
        // A retried txn that had applied on a member that then timed out
        // fails its comparison: the key under our own lease is ours.
        let ours = created || self.lease_of(key).await? == Some(lease);
        if !ours {
            let _ = self
                .call("revoke a lease", |c| async move {
                    c.lease_client().revoke(lease).await
                })
                .await;
            return Ok(None);
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(keep_alive(
            self.clone(),
            key.to_string(),
            value,
            ttl,
            lease,
            stop_rx,
        ));
        Ok(Some(LeaseGuard::new(stop_tx, task)))
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

    async fn revision(&self) -> Result<i64, Error> {
        let resp = self
            .call(
                "read",
                |c| async move { c.kv_client().get("\0", None).await },
            )
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }
}

async fn grant_and_put(kv: &EtcdKv, key: &str, value: &[u8], ttl: i64) -> Result<i64, Error> {
    let lease = kv
        .call("grant a lease", |c| async move {
            c.lease_client().grant(ttl, None).await
        })
        .await?
        .id();
    kv.call("write", |c| {
        let value = value.to_vec();
        async move {
            c.kv_client()
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        }
    })
    .await?;
    Ok(lease)
}

/// Refreshes the lease every third of its TTL. If the lease was lost (etcd
/// unreachable for longer than the TTL), grants a new one and rewrites the
/// key, so the node comes back as up by itself. Revokes on stop, so a
/// cleanly stopped agent shows as down at once.
async fn keep_alive(
    kv: EtcdKv,
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
        let alive = kv
            .call("refresh a lease", |c| async move {
                let (mut keeper, mut responses) = c.lease_client().keep_alive(lease).await?;
                keeper.keep_alive().await?;
                Ok(matches!(responses.message().await?, Some(r) if r.ttl() > 0))
            })
            .await
            .unwrap_or(false);
        if !alive {
            match grant_and_put(&kv, &key, &value, ttl).await {
                Ok(new_lease) => {
                    debug!(key, "lease renewed after loss");
                    lease = new_lease;
                }
                Err(err) => warn!(key, error = %err, "cannot refresh liveness lease"),
            }
        }
    }
    if let Some(client) = kv.any_client() {
        let mut lease_client = client.lease_client();
        let _ = tokio::time::timeout(Duration::from_secs(2), lease_client.revoke(lease)).await;
    }
}
