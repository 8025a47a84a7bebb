//! Pools and the pool index that makes overlap checks atomic.

use ipnet::IpNet;

use super::{Error, Expect, Store, Swap, Versioned, encode};
use crate::model::Pool;

impl Store {
    pub async fn pools(&self) -> Result<Vec<Versioned<Pool>>, Error> {
        self.list_typed(&self.keys.pools()).await
    }

    pub async fn pool(&self, cidr: &IpNet) -> Result<Option<Versioned<Pool>>, Error> {
        self.get_typed(&self.keys.pool(cidr)).await
    }

    /// The pool index's revision (`Absent` before the first pool): a pool
    /// listing read after it is current as long as the index is unchanged.
    pub async fn pool_index(&self) -> Result<Expect, Error> {
        Ok(match self.kv.get(&self.keys.pool_index()).await? {
            Some(v) => Expect::Revision(v.revision),
            None => Expect::Absent,
        })
    }

    /// Creates a pool and rewrites the index in one transaction; false
    /// (nothing written) if the pool exists or any pool was added since
    /// `index` was read, so two overlapping adds can never both succeed.
    pub async fn create_pool(&self, pool: &Pool, index: Expect) -> Result<bool, Error> {
        let swaps = vec![
            Swap {
                key: self.keys.pool(&pool.cidr),
                expect: Expect::Absent,
                value: Some(encode(pool)),
            },
            Swap {
                key: self.keys.pool_index(),
                expect: index,
                value: Some(pool.cidr.to_string().into_bytes()),
            },
        ];
        self.kv.swap_all(swaps).await
    }

    /// Rewrites a pool read at `revision`; false (nothing written) if it
    /// changed or went since.
    pub async fn update_pool(&self, pool: &Pool, revision: i64) -> Result<bool, Error> {
        self.kv
            .swap(
                &self.keys.pool(&pool.cidr),
                Expect::Revision(revision),
                Some(encode(pool)),
            )
            .await
    }

    pub async fn delete_pool(&self, cidr: &IpNet) -> Result<bool, Error> {
        self.kv.delete(&self.keys.pool(cidr)).await
    }
}
