//! Each configured member asked for its status on its own, so one that is
//! down shows as down instead of being hidden by the failover.

use futures::future::join_all;

use super::{CONNECT_TIMEOUT, Member};
use crate::store::MemberHealth;

pub(super) async fn members(members: &[Member]) -> Vec<MemberHealth> {
    join_all(members.iter().map(one)).await
}

async fn one(member: &Member) -> MemberHealth {
    let status = async {
        let client = member.client().await?;
        client.maintenance_client().status().await
    };
    let mut health = MemberHealth {
        endpoint: member.endpoint.clone(),
        id: None,
        leader: false,
        version: None,
        error: None,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, status).await {
        Err(_) => health.error = Some(format!("no answer within {CONNECT_TIMEOUT:?}")),
        Ok(Err(err)) => health.error = Some(crate::store::etcd_options::error_chain(&err)),
        Ok(Ok(status)) => {
            let id = status.header().map(|h| h.member_id());
            health.id = id.map(|id| format!("{id:x}"));
            health.leader = id.is_some_and(|id| id == status.leader());
            health.version = Some(status.version().to_string());
            // A member that answers but has raised alarms (no space, a
            // corrupt database) cannot serve writes.
            if !status.errors().is_empty() {
                health.error = Some(status.errors().join("; "));
            }
        }
    }
    health
}
