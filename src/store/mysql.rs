//! MySQL cluster records.

use super::{Error, Expect, Store, Versioned, unversioned};
use crate::model::{MysqlCluster, MysqlDeclaration};

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

/// Declarations: which labelled clusters agents may bootstrap.
impl Store {
    pub async fn mysql_declarations(&self) -> Result<Vec<MysqlDeclaration>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.mysql_declarations()).await?,
        ))
    }

    pub async fn mysql_declaration(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<MysqlDeclaration>>, Error> {
        self.get_typed(&self.keys.mysql_declaration(name)).await
    }

    /// Writes a declaration if it is as `expect`s; false if it was not.
    pub async fn swap_mysql_declaration(
        &self,
        declaration: &MysqlDeclaration,
        expect: Expect,
    ) -> Result<bool, Error> {
        self.swap_typed(
            &self.keys.mysql_declaration(&declaration.name),
            expect,
            Some(declaration),
        )
        .await
    }

    pub async fn delete_mysql_declaration(&self, name: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.mysql_declaration(name)).await
    }
}
