//! Listing that survives bad records: a value that does not decode, or
//! decodes but fails its checks, is skipped and reported, so one bad key
//! never stops resync, Join or the CLI. Each skip is logged once per key
//! and revision: a periodic resync does not repeat it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use tracing::warn;

use super::{Error, Store, Versioned};
use crate::model::Profile;
pub use crate::validate::Validate;

/// A record left out of a listing, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub key: String,
    pub revision: i64,
    pub reason: String,
}

/// The records skipped by the latest listing of each prefix, shared by the
/// clones of one `Store`.
#[derive(Debug, Clone, Default)]
pub struct SkipLog(Arc<Mutex<BTreeMap<String, Skipped>>>);

impl SkipLog {
    /// A listing of `prefix` is the truth for it: skips it no longer sees
    /// are forgotten (fixed or deleted), new ones are logged.
    fn record(&self, prefix: &str, skipped: &[Skipped]) {
        let mut map = self.0.lock().expect("not poisoned");
        map.retain(|key, _| !key.starts_with(prefix) || skipped.iter().any(|s| &s.key == key));
        for s in skipped {
            if map.get(&s.key) != Some(s) {
                warn!(target: "tabby::skipped", key = %s.key, revision = s.revision, reason = %s.reason, "skipped record");
                map.insert(s.key.clone(), s.clone());
            }
        }
    }

    pub fn all(&self) -> Vec<Skipped> {
        self.0
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect()
    }
}

/// Decodes and checks one value; the error names the key.
pub(super) fn decode_checked<T: DeserializeOwned + Validate>(
    key: &str,
    bytes: &[u8],
) -> Result<T, Error> {
    let value: T = super::decode(key, bytes)?;
    value.validate().map_err(|err| Error::Invalid {
        key: key.to_string(),
        reason: err.to_string(),
    })?;
    Ok(value)
}

fn reason(err: &Error) -> String {
    match err {
        Error::Decode { source, .. } => source.to_string(),
        Error::Invalid { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

impl Store {
    /// The good records under `prefix`, and the ones skipped.
    pub(super) async fn list_checked<T: DeserializeOwned + Validate>(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, Versioned<T>)>, Vec<Skipped>), Error> {
        let (mut good, mut skipped) = (Vec::new(), Vec::new());
        for (key, v) in self.kv.list(prefix).await? {
            match decode_checked(&key, &v.value) {
                Ok(value) => good.push((
                    key,
                    Versioned {
                        value,
                        revision: v.revision,
                    },
                )),
                Err(err) => skipped.push(Skipped {
                    reason: reason(&err),
                    key,
                    revision: v.revision,
                }),
            }
        }
        self.skips.record(prefix, &skipped);
        Ok((good, skipped))
    }

    /// Records skipped by this store's listings, as last seen.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skips.all()
    }

    /// Profiles, and the names of profile records that cannot be used
    /// (with why): their endpoints must fail closed, not lose the profile.
    pub async fn profiles_checked(
        &self,
    ) -> Result<(Vec<Profile>, BTreeMap<String, String>), Error> {
        let prefix = self.keys.profiles();
        let (good, skipped) = self.list_checked::<Profile>(&prefix).await?;
        let bad = skipped
            .into_iter()
            .map(|s| {
                let name = s.key[prefix.len()..].to_string();
                (name, format!("invalid record: {}", s.reason))
            })
            .collect();
        Ok((good.into_iter().map(|(_, v)| v.value).collect(), bad))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[tokio::test]
    async fn a_bad_record_is_skipped_reported_and_forgotten_once_fixed() {
        let store = Store::in_memory();
        let good = crate::policy::rules::default_profile("a");
        store
            .swap_profile(&good, crate::store::Expect::Absent)
            .await
            .unwrap();
        let bad_key = store.keys().profile("b");
        store.kv.put(&bad_key, b"{not json".to_vec()).await.unwrap();
        let wrong_shape = store.keys().pools() + "x";
        store.kv.put(&wrong_shape, b"[1,2]".to_vec()).await.unwrap();

        let (profiles, invalid) = store.profiles_checked().await.unwrap();
        assert_eq!(profiles, std::slice::from_ref(&good));
        assert!(invalid["b"].starts_with("invalid record: "), "{invalid:?}");
        assert!(store.pools().await.unwrap().is_empty());
        let keys: Vec<String> = store.skipped().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, [wrong_shape.clone(), bad_key.clone()]);
        let err = store.profile("b").await.unwrap_err().to_string();
        assert!(err.contains(&bad_key), "{err}");

        store.kv.delete(&bad_key).await.unwrap();
        assert_eq!(store.profiles().await.unwrap(), [good]);
        let keys: Vec<String> = store.skipped().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, [wrong_shape]);
    }
}
