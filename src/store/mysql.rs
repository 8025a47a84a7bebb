//! MySQL cluster records.

use super::{Error, Store, unversioned};
use crate::model::MysqlCluster;

impl Store {
    pub async fn mysql_clusters(&self) -> Result<Vec<MysqlCluster>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.mysql_clusters()).await?,
        ))
    }

    pub async fn mysql_cluster(&self, name: &str) -> Result<Option<MysqlCluster>, Error> {
        Ok(self
            .get_typed(&self.keys.mysql_cluster(name))
            .await?
            .map(|v| v.value))
    }

    pub async fn put_mysql_cluster(&self, cluster: &MysqlCluster) -> Result<(), Error> {
        self.kv
            .put(
                &self.keys.mysql_cluster(&cluster.name),
                super::encode(cluster),
            )
            .await
    }

    pub async fn delete_mysql_cluster(&self, name: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.mysql_cluster(name)).await
    }
}
