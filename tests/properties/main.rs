//! Property tests: IPAM under random interleavings of four hosts, the
//! repair's judgement over random states, and every parser and decoder
//! fed arbitrary input. No lab: the in-memory store stands in for etcd.
//! Case counts keep the whole binary to a few seconds on one core.

mod decode;
mod ipam;
mod parse;
mod repair;

use std::future::Future;

/// Runs a future on a single-threaded runtime with paused time, so that
/// the IPAM's retry backoffs cost no wall time and a run is reproducible.
pub fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(future)
}
