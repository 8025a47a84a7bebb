//! The periodic drift check's entry point: firewall state read back from
//! the kernel and repaired where it no longer matches what was applied.

use super::{Driver, Error};

impl Driver {
    /// What was repaired, one line each.
    pub async fn repair_drift(&self) -> Result<Vec<String>, Error> {
        let _policy = self.policy.lock().await;
        Ok(self.firewall.repair_drift().await?)
    }
}
