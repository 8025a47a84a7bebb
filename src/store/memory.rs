//! An in-memory `Kv` with etcd's revision semantics, for unit tests of the
//! logic above the store. Every feature is also tested against real etcd.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::Error;
use super::kv::{Expect, KeyStream, Kv, LeaseGuard, Swap, Versioned};

pub struct MemoryKv {
    inner: Arc<Mutex<State>>,
    changes: tokio::sync::broadcast::Sender<String>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        MemoryKv {
            inner: Arc::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

/// How the next compare-and-swaps misbehave: as a request that timed out
/// on one etcd member after it applied, then went to another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write applies, and the caller gets an error.
    AppliedThenError,
    /// The write applies, and the caller is told the comparison failed
    /// (the retry on the second member found the first one's write).
    AppliedThenMismatch,
}

#[derive(Default)]
struct State {
    revision: i64,
    data: BTreeMap<String, Versioned<Vec<u8>>>,
    faults: Vec<Fault>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `faults.len()` successful swaps misbehave, in order.
    pub fn inject(&self, faults: &[Fault]) {
        let mut state = self.inner.lock().unwrap();
        state.faults = faults.iter().rev().copied().collect();
    }

    fn write(&self, state: &mut State, key: &str, value: Option<Vec<u8>>) {
        write(&self.changes, state, key, value);
    }
}

fn write(
    changes: &tokio::sync::broadcast::Sender<String>,
    state: &mut State,
    key: &str,
    value: Option<Vec<u8>>,
) {
    let _ = changes.send(key.to_string());
    state.revision += 1;
    let revision = state.revision;
    match value {
        Some(value) => {
            state
                .data
                .insert(key.to_string(), Versioned { value, revision });
        }
        None => {
            state.data.remove(key);
        }
    }
}

#[async_trait]
impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, Error> {
        Ok(self.inner.lock().unwrap().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, Error> {
        let state = self.inner.lock().unwrap();
        Ok(state
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.write(&mut self.inner.lock().unwrap(), key, Some(value));
        Ok(())
    }

    async fn swap(&self, key: &str, expect: Expect, value: Option<Vec<u8>>) -> Result<bool, Error> {
        let mut state = self.inner.lock().unwrap();
        let current = state.data.get(key).map(|v| v.revision);
        let matches = match expect {
            Expect::Absent => current.is_none(),
            Expect::Revision(rev) => current == Some(rev),
        };
        if !matches {
            return Ok(false);
        }
        self.write(&mut state, key, value);
        match state.faults.pop() {
            None => Ok(true),
            Some(Fault::AppliedThenMismatch) => Ok(false),
            Some(Fault::AppliedThenError) => {
                Err(Error::Timeout("injected: no answer within 5s".into()))
            }
        }
    }

    async fn swap_all(&self, swaps: Vec<Swap>) -> Result<bool, Error> {
        let mut state = self.inner.lock().unwrap();
        let matches = swaps.iter().all(|s| {
            let current = state.data.get(&s.key).map(|v| v.revision);
            match s.expect {
                Expect::Absent => current.is_none(),
                Expect::Revision(rev) => current == Some(rev),
            }
        });
        if matches {
            for s in swaps {
                self.write(&mut state, &s.key, s.value);
            }
        }
        Ok(matches)
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let mut state = self.inner.lock().unwrap();
        let existed = state.data.contains_key(key);
        if existed {
            self.write(&mut state, key, None);
        }
        Ok(existed)
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, _ttl: i64) -> Result<LeaseGuard, Error> {
        self.put(key, value).await?;
        Ok(LeaseGuard::detached())
    }

    /// No expiry: the key lives until the guard is dropped or released.
    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        _ttl: i64,
    ) -> Result<Option<LeaseGuard>, Error> {
        {
            let mut state = self.inner.lock().unwrap();
            if state.data.contains_key(key) {
                return Ok(None);
            }
            self.write(&mut state, key, Some(value));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (inner, changes, key) = (self.inner.clone(), self.changes.clone(), key.to_string());
        let task = tokio::spawn(async move {
            let _ = stopped.await;
            let mut state = inner.lock().unwrap();
            if state.data.contains_key(&key) {
                write(&changes, &mut state, &key, None);
            }
        });
        Ok(Some(LeaseGuard::new(stop, task)))
    }

    async fn watch(&self, prefix: &str, _from: i64) -> Result<KeyStream, Error> {
        let prefix = prefix.to_string();
        let receiver = self.changes.subscribe();
        Ok(Box::pin(futures::stream::unfold(
            receiver,
            move |mut rx| {
                let prefix = prefix.clone();
                async move {
                    loop {
                        match rx.recv().await {
                            Ok(key) if key.starts_with(&prefix) => {
                                return Some((Ok(vec![key]), rx));
                            }
                            Ok(_) => continue,
                            Err(_) => return None,
                        }
                    }
                }
            },
        )))
    }

    async fn revision(&self, _within: &str) -> Result<i64, Error> {
        Ok(self.inner.lock().unwrap().revision)
    }
}
