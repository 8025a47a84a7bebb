//! Keeps the agent's background tasks running: a task that returns an
//! error, panics or ends is logged with its reason and started again after
//! a bounded exponential backoff, so one bad pass never ends a loop for
//! good while the plugin socket still answers.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info};

/// Bounded exponential backoff: `initial`, doubled on each failure, never
/// above `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 0.2 s, 0.4 s, … 10 s: quick after a blip, gentle on a long outage.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; the one after doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    pub fn max(&self) -> Duration {
        self.max
    }
}

/// How one run of a supervised task ended.
fn describe(outcome: Result<anyhow::Result<()>, Box<dyn std::any::Any + Send>>) -> String {
    match outcome {
        Ok(Ok(())) => "ended".to_string(),
        Ok(Err(err)) => format!("failed: {}", crate::error_chain::text(&err)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".to_string());
            format!("panicked: {message}")
        }
    }
}

/// Runs the task `make` builds, forever: each time it ends it is logged
/// and built again after a backoff, which resets once a run lasted longer
/// than the backoff's maximum (it was healthy for a while).
/// Waits until the next pass of a loop that acts on datastore changes: a
/// change, or also `retry` later while the last pass left work undone.
pub async fn next_pass(changed: &tokio::sync::Notify, undone: bool, retry: Duration) {
    if undone {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(retry) => {}
        }
    } else {
        changed.notified().await;
    }
}

pub fn supervise<F, Fut>(name: &'static str, mut backoff: Backoff, mut make: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let started = Instant::now();
            let outcome = std::panic::AssertUnwindSafe(make()).catch_unwind().await;
            if started.elapsed() > backoff.max() {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            let reason = describe(outcome);
            error!(
                task = name,
                restart_in_ms = delay.as_millis() as u64,
                "background task {reason}; restarting"
            );
            tokio::time::sleep(delay).await;
            info!(task = name, "background task restarted");
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    /// A task that panics, then fails, then runs: it is restarted after
    /// each, with growing delays (time is paused: sleeps advance it).
    #[tokio::test(start_paused = true)]
    async fn a_panicking_or_failing_task_is_restarted_with_backoff() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let counter = runs.clone();
        let task = supervise("test", Backoff::default(), move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                tx.send(Instant::now()).unwrap();
                match run {
                    0 => panic!("boom"),
                    1 => anyhow::bail!("bad pass"),
                    _ => futures::future::pending().await,
                }
            }
        });
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        let third = rx.recv().await.unwrap();
        assert_eq!(second - first, Duration::from_millis(200));
        assert_eq!(third - second, Duration::from_millis(400));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_was_healthy_for_long_restarts_quickly() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let task = supervise("test", Backoff::default(), move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                tx.send(Instant::now()).unwrap();
                // Fail fast twice, then after a long healthy run.
                if run == 2 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                anyhow::bail!("run {run} failed")
            }
        });
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(rx.recv().await.unwrap());
        }
        assert_eq!(seen[1] - seen[0], Duration::from_millis(200));
        assert_eq!(seen[2] - seen[1], Duration::from_millis(400));
        // 60 s healthy run, then the backoff starts over at 0.2 s.
        assert_eq!(
            seen[3] - seen[2],
            Duration::from_secs(60) + Duration::from_millis(200)
        );
        task.abort();
    }
}
