//! BGP mode's parts of the agent: BIRD checked and set up at start, and
//! its session counts reported for `tabby node show`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::BgpOptions;
use crate::driver::Driver;
use crate::routing::bird::{Bird, Speaker};

/// How often the session counts are read from BIRD.
const REPORT_EVERY: Duration = Duration::from_secs(3);

/// A BIRD that can run: an agent asked for BGP without BIRD installed
/// stops at once with the reason, instead of routing nothing.
pub async fn speaker(options: &BgpOptions) -> Result<Arc<dyn Speaker>> {
    let out = tokio::process::Command::new(&options.binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| {
            format!(
                "--routing bgp needs BIRD 2 (Debian package bird2): cannot run {}",
                options.binary.display()
            )
        })?;
    // BIRD prints its version on stderr.
    let version = String::from_utf8_lossy(&out.stderr).trim().to_string();
    anyhow::ensure!(
        version.contains("BIRD version 2"),
        "--routing bgp needs BIRD 2; {} says {version:?}",
        options.binary.display()
    );
    info!(%version, dir = %options.dir.display(), "BGP routing through BIRD");
    Ok(Arc::new(Bird::new(options.binary.clone(), &options.dir)?))
}

pub async fn report(driver: Arc<Driver>) -> Result<()> {
    let mut last = None;
    let mut logged = false;
    let mut ticks = tokio::time::interval(REPORT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match driver.record_bgp_status(&mut last).await {
            Ok(()) => logged = false,
            // BIRD starts with the first pass's configuration: until then
            // (and while it restarts) there is nothing to read; said once.
            Err(err) if !logged => {
                warn!(error = %err, "cannot read BGP sessions");
                logged = true;
            }
            Err(_) => {}
        }
    }
}
