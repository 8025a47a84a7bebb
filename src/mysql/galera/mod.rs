//! Galera clusters on tabby's routed network. tabby finds every member's
//! /32 and host in its own endpoint records and builds
//! `wsrep_cluster_address` from them. `wsrep_provider` is not dynamic, so a
//! member's Galera settings live in a config file tabby writes into its
//! container for the next start (`config`); the agent on the member's host
//! writes it and restarts the container when the cluster record asks
//! (`converge`). The CLI checks the members over SQL (`check`), drives the
//! record through bootstrap, join, leave and recovery (`cluster`,
//! `recover`), and verifies the result (`state`).

pub mod canary;
pub mod check;
pub mod cluster;
pub mod config;
pub mod converge;
pub mod membership;
pub mod recover;
pub mod state;
pub mod status;
pub mod wait;
