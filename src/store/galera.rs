//! Galera cluster records and what each member's agent reports.

use super::{Error, Store, unversioned};
use crate::model::galera::{GaleraCluster, GaleraMemberStatus};

impl Store {
    pub async fn galera_clusters(&self) -> Result<Vec<GaleraCluster>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.galera_clusters()).await?,
        ))
    }

    pub async fn galera_cluster(&self, name: &str) -> Result<Option<GaleraCluster>, Error> {
        Ok(self
            .get_typed(&self.keys.galera_cluster(name))
            .await?
            .map(|v| v.value))
    }

    pub async fn put_galera_cluster(&self, cluster: &GaleraCluster) -> Result<(), Error> {
        self.kv
            .put(
                &self.keys.galera_cluster(&cluster.name),
                super::encode(cluster),
            )
            .await
    }

    /// Removes the cluster and every member's report.
    pub async fn delete_galera_cluster(&self, name: &str) -> Result<bool, Error> {
        for status in self.galera_statuses(name).await? {
            self.kv
                .delete(&self.keys.galera_status(name, &status.container))
                .await?;
        }
        self.kv.delete(&self.keys.galera_cluster(name)).await
    }

    pub async fn galera_statuses(&self, cluster: &str) -> Result<Vec<GaleraMemberStatus>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.galera_statuses(cluster)).await?,
        ))
    }

    pub async fn put_galera_status(
        &self,
        cluster: &str,
        status: &GaleraMemberStatus,
    ) -> Result<(), Error> {
        self.kv
            .put(
                &self.keys.galera_status(cluster, &status.container),
                super::encode(status),
            )
            .await
    }

    pub async fn delete_galera_status(
        &self,
        cluster: &str,
        container: &str,
    ) -> Result<bool, Error> {
        self.kv
            .delete(&self.keys.galera_status(cluster, container))
            .await
    }
}
