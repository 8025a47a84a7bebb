//! An in-memory `Kv` with etcd's revision semantics, for unit tests of the
//! logic above the store. Every feature is also tested against real etcd.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Error;
use super::kv::{Expect, Kv, LeaseGuard, Versioned};

#[derive(Default)]
pub struct MemoryKv {
    inner: Mutex<State>,
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

    fn write(state: &mut State, key: &str, value: Option<Vec<u8>>) {
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
        Self::write(&mut self.inner.lock().unwrap(), key, Some(value));
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
            Self::write(&mut state, key, value);
        }
        Ok(matches)
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let mut state = self.inner.lock().unwrap();
        let existed = state.data.contains_key(key);
        if existed {
            Self::write(&mut state, key, None);
        }
        Ok(existed)
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, _ttl: i64) -> Result<LeaseGuard, Error> {
        self.put(key, value).await?;
        Ok(LeaseGuard::detached())
    }

    async fn revision(&self) -> Result<i64, Error> {
        Ok(self.inner.lock().unwrap().revision)
    }
}
