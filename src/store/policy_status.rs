//! Per host, the profiles its firewall does not apply and why (a record
//! that cannot be used, or rules the kernel refused).

use std::collections::BTreeMap;

use super::{Error, Store, Validate};

pub type Failures = BTreeMap<String, String>;

impl Validate for Failures {
    fn validate(&self) -> Result<(), crate::validate::ValidationError> {
        Ok(())
    }
}

impl Store {
    /// Host -> failed profiles; hosts with none have no key.
    pub async fn policy_statuses(&self) -> Result<BTreeMap<String, Failures>, Error> {
        let prefix = self.keys.policy_statuses();
        let (good, _) = self.list_checked::<Failures>(&prefix).await?;
        Ok(good
            .into_iter()
            .map(|(key, v)| (key[prefix.len()..].to_string(), v.value))
            .collect())
    }

    /// Records a host's failed profiles; none removes the key.
    pub async fn put_policy_status(&self, host: &str, failures: &Failures) -> Result<(), Error> {
        let key = self.keys.policy_status(host);
        if failures.is_empty() {
            self.kv.delete(&key).await?;
        } else {
            self.kv.put(&key, super::encode(failures)).await?;
        }
        Ok(())
    }
}
