//! Endpoints, one record per host and Docker endpoint ID.

use super::{Error, Expect, Store, Versioned, encode, unversioned};
use crate::model::Endpoint;

impl Store {
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.endpoints()).await?))
    }

    pub async fn host_endpoints(&self, host: &str) -> Result<Vec<Endpoint>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.host_endpoints(host)).await?,
        ))
    }

    /// The endpoints of `host` whose ID starts with `id_start`: one ranged
    /// read of the keys that share it, however many endpoints the host has.
    pub async fn host_endpoints_starting(
        &self,
        host: &str,
        id_start: &str,
    ) -> Result<Vec<Endpoint>, Error> {
        let prefix = format!("{}{id_start}", self.keys.host_endpoints(host));
        Ok(unversioned(self.list_typed(&prefix).await?))
    }

    /// IDs of every endpoint recorded for `host`, also those whose record
    /// fails its checks (listings leave those out); keys that are not a
    /// Docker ID are not endpoints tabby made.
    pub async fn host_endpoint_ids(&self, host: &str) -> Result<Vec<String>, Error> {
        let prefix = self.keys.host_endpoints(host);
        Ok(self
            .kv
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_string))
            .filter(|id| crate::validate::docker_id("endpoint ID", id).is_ok())
            .collect())
    }

    pub async fn endpoint(&self, host: &str, id: &str) -> Result<Option<Endpoint>, Error> {
        Ok(self
            .get_typed(&self.keys.endpoint(host, id))
            .await?
            .map(|v| v.value))
    }

    pub async fn endpoint_versioned(
        &self,
        host: &str,
        id: &str,
    ) -> Result<Option<Versioned<Endpoint>>, Error> {
        self.get_typed(&self.keys.endpoint(host, id)).await
    }

    /// Rewrites an endpoint only if it is unchanged since read: a late
    /// update never resurrects an endpoint Docker deleted meanwhile.
    pub async fn swap_endpoint(&self, endpoint: &Endpoint, expect: Expect) -> Result<bool, Error> {
        let key = self.keys.endpoint(&endpoint.host, &endpoint.id);
        self.swap_typed(&key, expect, Some(endpoint)).await
    }

    pub async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), Error> {
        let key = self.keys.endpoint(&endpoint.host, &endpoint.id);
        self.kv.put(&key, encode(endpoint)).await
    }

    pub async fn delete_endpoint(&self, host: &str, id: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.endpoint(host, id)).await
    }
}
