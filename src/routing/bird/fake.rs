//! A speaker that records what it was given, for unit tests of the agent.

use std::sync::Mutex;

use super::{Error, SessionState, Speaker};

#[derive(Default)]
pub struct FakeSpeaker {
    /// Every configuration applied, in order.
    pub applied: Mutex<Vec<String>>,
    pub sessions: Mutex<Vec<SessionState>>,
}

#[async_trait::async_trait]
impl Speaker for FakeSpeaker {
    async fn converge(&self, config: &str) -> Result<bool, Error> {
        let mut applied = self.applied.lock().expect("not poisoned");
        if applied.last().map(String::as_str) == Some(config) {
            return Ok(false);
        }
        applied.push(config.to_string());
        Ok(true)
    }

    async fn sessions(&self) -> Result<Vec<SessionState>, Error> {
        Ok(self.sessions.lock().expect("not poisoned").clone())
    }
}
