//! The key-value contract the datastore needs: reads that report each
//! key's modification revision, and compare-and-swap writes. etcd is the
//! real implementation; an in-memory one serves unit tests.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use super::Error;

/// A value with the revision it was last written at (etcd's mod_revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

/// Keys changed, one item per batch of changes; an error ends the stream
/// and the watcher must re-read everything (changes may have been missed).
pub type KeyStream = Pin<Box<dyn Stream<Item = Result<Vec<String>, Error>> + Send>>;

/// What a compare-and-swap expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist, last written at this revision.
    Revision(i64),
}

/// One write of a multi-key transaction: `value` `None` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub key: String,
    pub expect: Expect,
    pub value: Option<Vec<u8>>,
}

#[async_trait]
pub trait Kv: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, Error>;
    /// Every key under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, Error>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), Error>;
    /// Writes (or, with `None`, deletes) only if the key is as expected.
    /// Returns false, changing nothing, when it is not.
    async fn swap(&self, key: &str, expect: Expect, value: Option<Vec<u8>>) -> Result<bool, Error>;
    /// All of `swaps` in one transaction: every key must be as expected,
    /// else nothing is written and the answer is false.
    async fn swap_all(&self, swaps: Vec<Swap>) -> Result<bool, Error>;
    /// Deletes a key; true if it existed.
    async fn delete(&self, key: &str) -> Result<bool, Error>;
    /// Writes a key that disappears unless this process stays alive; the
    /// implementation keeps it refreshed until the returned guard is dropped.
    async fn put_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: i64,
    ) -> Result<LeaseGuard, Error>;
    /// Like `put_leased`, but in one transaction that writes only if the
    /// key does not exist: None, changing nothing, when another lease
    /// holds it.
    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: i64,
    ) -> Result<Option<LeaseGuard>, Error>;
    /// Changes under `prefix` from `from_revision` on (inclusive).
    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<KeyStream, Error>;
    /// The store's current revision, read through `within`, a key the
    /// caller may read (etcd RBAC can limit a user to tabby's prefix):
    /// where watches start, and how tests prove that nothing changed.
    async fn revision(&self, within: &str) -> Result<i64, Error>;
    /// Each configured member, asked on its own (for `tabby status`); a
    /// store of one process has none.
    async fn members(&self) -> Vec<MemberHealth> {
        Vec::new()
    }
}

/// What one etcd member says of itself, or why it says nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberHealth {
    pub endpoint: String,
    /// etcd's member ID, in hex as `etcdctl member list` prints it.
    pub id: Option<String>,
    pub leader: bool,
    pub version: Option<String>,
    /// None when the member answered.
    pub error: Option<String>,
}

/// Stops refreshing a leased key when dropped; `release` also waits until
/// the lease is revoked, so the key is gone when it returns.
pub struct LeaseGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseGuard {
    pub fn new(stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) -> Self {
        LeaseGuard {
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn detached() -> Self {
        LeaseGuard {
            stop: None,
            task: None,
        }
    }

    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
