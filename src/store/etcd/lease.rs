//! Keys that live as long as their writer: a lease refreshed in the
//! background, revoked on stop, and recovered after a loss.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tracing::{debug, warn};

use super::EtcdKv;
use crate::store::Error;
use crate::store::kv::LeaseGuard;

/// How a lost lease's key is written again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// Overwrite: the key is ours alone.
    Put,
    /// Only if absent: someone else may have taken the key meanwhile (an
    /// agent with the same hostname), and it must not be overwritten.
    Create,
}

pub(super) async fn put_leased(
    kv: &EtcdKv,
    key: &str,
    value: Vec<u8>,
    ttl: i64,
) -> Result<LeaseGuard, Error> {
    let lease = grant_and_put(kv, key, &value, ttl).await?;
    Ok(keep(kv, key, value, ttl, lease, Rewrite::Put))
}

/// Writes `key` under a new lease only if the key does not exist; None
/// (the lease revoked, nothing changed) when another lease holds it.
pub(super) async fn create_leased(
    kv: &EtcdKv,
    key: &str,
    value: Vec<u8>,
    ttl: i64,
) -> Result<Option<LeaseGuard>, Error> {
    let lease = grant(kv, ttl).await?;
    let created = create(kv, key, &value, lease).await?;
    // A retried txn that had applied on a member that then timed out
    // fails its comparison: the key under our own lease is ours.
    let ours = created || kv.lease_of(key).await? == Some(lease);
    if !ours {
        revoke(kv, lease).await;
        return Ok(None);
    }
    Ok(Some(keep(kv, key, value, ttl, lease, Rewrite::Create)))
}

fn keep(kv: &EtcdKv, key: &str, value: Vec<u8>, ttl: i64, lease: i64, how: Rewrite) -> LeaseGuard {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(keep_alive(
        kv.clone(),
        key.to_string(),
        value,
        ttl,
        lease,
        how,
        stop_rx,
    ));
    LeaseGuard::new(stop_tx, task)
}

async fn grant(kv: &EtcdKv, ttl: i64) -> Result<i64, Error> {
    Ok(kv
        .call("grant a lease", |c| async move {
            c.lease_client().grant(ttl, None).await
        })
        .await?
        .id())
}

async fn revoke(kv: &EtcdKv, lease: i64) {
    let _ = kv
        .call("revoke a lease", |c| async move {
            c.lease_client().revoke(lease).await
        })
        .await;
}

async fn create(kv: &EtcdKv, key: &str, value: &[u8], lease: i64) -> Result<bool, Error> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            value.to_vec(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    kv.commit(txn).await
}

async fn grant_and_put(kv: &EtcdKv, key: &str, value: &[u8], ttl: i64) -> Result<i64, Error> {
    let lease = grant(kv, ttl).await?;
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

/// A fresh lease and the key written under it after a loss; None while the
/// key cannot be written (logged).
async fn rewrite(kv: &EtcdKv, key: &str, value: &[u8], ttl: i64, how: Rewrite) -> Option<i64> {
    let outcome = match how {
        Rewrite::Put => grant_and_put(kv, key, value, ttl).await.map(Some),
        Rewrite::Create => match grant(kv, ttl).await {
            Ok(lease) => match create(kv, key, value, lease).await {
                Ok(true) => Ok(Some(lease)),
                Ok(false) => {
                    revoke(kv, lease).await;
                    Ok(None)
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        },
    };
    match outcome {
        Ok(Some(lease)) => {
            debug!(key, "lease renewed after loss");
            Some(lease)
        }
        Ok(None) => {
            warn!(
                key,
                "lease lost and the key was taken by another writer meanwhile: left alone"
            );
            None
        }
        Err(err) => {
            warn!(key, error = %err, "cannot refresh lease");
            None
        }
    }
}

/// Refreshes the lease every third of its TTL. If the lease was lost (etcd
/// unreachable for longer than the TTL), writes the key again under a new
/// one, so the node comes back as up by itself. Revokes on stop, so a
/// cleanly stopped agent shows as down at once.
async fn keep_alive(
    kv: EtcdKv,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    mut lease: i64,
    how: Rewrite,
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
        if !alive && let Some(fresh) = rewrite(&kv, &key, &value, ttl, how).await {
            lease = fresh;
        }
    }
    if let Some(client) = kv.any_client() {
        let mut lease_client = client.lease_client();
        let _ = tokio::time::timeout(Duration::from_secs(2), lease_client.revoke(lease)).await;
    }
}
