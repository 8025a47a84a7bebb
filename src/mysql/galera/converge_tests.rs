use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::model::galera::SstMethod;

/// A container that records what was done to it.
#[derive(Default)]
struct FakeContainer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    files: HashMap<String, Vec<u8>>,
    calls: Vec<String>,
    /// What a start with wsrep_recover logs.
    recover_log: String,
}

impl FakeContainer {
    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
    fn file(&self, path: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .files
            .get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

#[async_trait::async_trait]
impl Containers for FakeContainer {
    async fn running(&self, _: &str) -> Result<Option<bool>, DockerError> {
        Ok(Some(self.state.lock().unwrap().running))
    }
    async fn network_ids(&self, _: &str) -> Result<Option<Vec<String>>, DockerError> {
        Ok(Some(vec!["n".into()]))
    }
    async fn read_file(&self, _: &str, path: &str) -> Result<Option<Vec<u8>>, DockerError> {
        Ok(self.state.lock().unwrap().files.get(path).cloned())
    }
    async fn write_file(
        &self,
        _: &str,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), DockerError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("write {name}"));
        state
            .files
            .insert(format!("{dir}/{name}"), contents.to_vec());
        Ok(())
    }
    async fn start(&self, _: &str) -> Result<(), DockerError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push("start".into());
        state.running = true;
        Ok(())
    }
    async fn stop(&self, _: &str) -> Result<(), DockerError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push("stop".into());
        state.running = false;
        Ok(())
    }
    async fn restart(&self, _: &str) -> Result<(), DockerError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push("restart".into());
        state.running = true;
        Ok(())
    }
    async fn wait_exit(&self, _: &str) -> Result<i64, DockerError> {
        self.state.lock().unwrap().running = false;
        Ok(0)
    }
    async fn logs_since(&self, _: &str, _: i64) -> Result<String, DockerError> {
        Ok(self.state.lock().unwrap().recover_log.clone())
    }
}

fn cluster(start: GaleraStart, restarts: u64, probes: u64) -> GaleraCluster {
    GaleraCluster {
        name: "shop".into(),
        sst: SstMethod::Rsync,
        members: vec![GaleraMember {
            container: "g1".into(),
            host: "h1".into(),
            ip: [198, 19, 32, 1].into(),
            start,
            restarts,
            probes,
            safe_to_bootstrap: false,
        }],
        updated: Utc::now(),
    }
}

const CONF: &str = "/etc/mysql/conf.d/zz-tabby-galera.cnf";

#[tokio::test]
async fn a_restart_is_done_once_and_the_file_is_written_only_when_it_differs() {
    let fake = FakeContainer::default();
    fake.state.lock().unwrap().running = true;
    let c = cluster(GaleraStart::NewCluster, 1, 0);
    let (status, result) = converge(&fake, &c, &c.members[0], new_status(&c.members[0])).await;
    assert!(result.unwrap());
    assert_eq!(fake.calls(), ["write zz-tabby-galera.cnf", "restart"]);
    assert!(
        fake.file(CONF)
            .unwrap()
            .contains("wsrep_cluster_address=gcomm://\n")
    );
    assert_eq!(status.applied_restarts, 1);
    // Again: nothing to do.
    let (status, result) = converge(&fake, &c, &c.members[0], status).await;
    assert!(!result.unwrap());
    assert_eq!(fake.calls().len(), 2);
    // The record now says join: the file changes, the server is not
    // restarted (the next start reads it).
    let c = cluster(GaleraStart::Join, 1, 0);
    let (_, result) = converge(&fake, &c, &c.members[0], status).await;
    assert!(result.unwrap());
    assert_eq!(fake.calls().last().unwrap(), "write zz-tabby-galera.cnf");
    assert!(fake.file(CONF).unwrap().contains("gcomm://198.19.32.1\n"));
}

#[tokio::test]
async fn a_probe_after_a_crash_runs_wsrep_recover_and_marks_safe_before_bootstrap() {
    let fake = FakeContainer::default();
    {
        let mut state = fake.state.lock().unwrap();
        state.files.insert(
            GRASTATE.into(),
            b"version: 2.1\nuuid: 8b2e-1\nseqno: -1\nsafe_to_bootstrap: 0\n".to_vec(),
        );
        state.recover_log = "[Note] WSREP: Recovered position: 8b2e-1:1042\n".into();
    }
    let c = cluster(GaleraStart::Join, 0, 1);
    let (status, result) = converge(&fake, &c, &c.members[0], new_status(&c.members[0])).await;
    assert!(result.unwrap());
    let position = status.position.clone().unwrap();
    assert_eq!((position.uuid.as_str(), position.seqno), ("8b2e-1", 1042));
    // Recovery config for the probe run, then the normal one back.
    assert_eq!(
        fake.calls(),
        [
            "write zz-tabby-galera.cnf",
            "start",
            "write zz-tabby-galera.cnf"
        ]
    );
    assert!(!fake.file(CONF).unwrap().contains("wsrep_recover"));
    // Chosen as the source: marked safe, then started.
    let mut c = cluster(GaleraStart::NewCluster, 1, 1);
    c.members[0].safe_to_bootstrap = true;
    let (status, result) = converge(&fake, &c, &c.members[0], status).await;
    assert!(result.unwrap());
    assert!(
        fake.file(GRASTATE)
            .unwrap()
            .contains("safe_to_bootstrap: 1")
    );
    assert_eq!(fake.calls().last().unwrap(), "start");
    assert_eq!((status.applied_restarts, status.applied_probes), (1, 1));
}

#[tokio::test]
async fn a_member_that_leaves_is_stopped() {
    let fake = FakeContainer::default();
    fake.state.lock().unwrap().running = true;
    let c = cluster(GaleraStart::Stopped, 2, 0);
    let (status, result) = converge(&fake, &c, &c.members[0], new_status(&c.members[0])).await;
    assert!(result.unwrap());
    assert_eq!(fake.calls(), ["stop"]);
    assert_eq!(status.applied_restarts, 2);
}
