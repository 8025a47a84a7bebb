//! An in-memory `Kv` with etcd's revision semantics, for unit tests of the
//! logic above the store. Every feature is also tested against real etcd.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Error;
use super::kv::{Expect, KeyStream, Kv, LeaseGuard, Swap, Versioned};

pub struct MemoryKv {
    inner: Mutex<State>,
    changes: tokio::sync::broadcast::Sender<String>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        MemoryKv {
            inner: Mutex::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

#[derive(Default)]
struct State {
    revision: i64,
    data: BTreeMap<String, Versioned<Vec<u8>>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self, state: &mut State, key: &str, value: Option<Vec<u8>>) {
        let _ = self.changes.send(key.to_string());
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
        if matches {
            self.write(&mut state, key, value);
        }
        Ok(matches)
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

    async fn revision(&self) -> Result<i64, Error> {
        Ok(self.inner.lock().unwrap().revision)
    }
}
