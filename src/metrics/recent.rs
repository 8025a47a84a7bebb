//! The agent's last warnings and errors, kept for `tabby status`: a
//! tracing layer sees every event at WARN or above, whichever loop logged
//! it, so nothing has to remember to report its failures twice.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many are kept: enough to see a pattern, one screen at most.
pub const KEPT: usize = 5;

/// One logged problem: Unix seconds, level, and the line as logged.
pub type Entry = (i64, String, String);

#[derive(Default)]
pub struct Recent {
    entries: Mutex<VecDeque<Entry>>,
}

impl Recent {
    pub fn push(&self, level: &str, text: String) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() == KEPT {
                entries.pop_front();
            }
            entries.push_back((super::now(), level.to_string(), text));
        }
    }

    /// Oldest first.
    pub fn all(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The layer that fills `metrics::get().health.recent`.
pub struct RecentLayer;

impl<S: Subscriber> Layer<S> for RecentLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        super::get().health.recent.push(level.as_str(), line.text());
    }
}

/// An event as one line: its message, then its fields as `name=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn text(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn warnings_are_kept_with_their_fields_and_infos_are_not() {
        let subscriber = tracing_subscriber::registry().with(RecentLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            for i in 0..KEPT + 2 {
                tracing::warn!(call = "/NetworkDriver.Join", error = %"no pool", "failed {i}");
            }
        });
        let all = super::super::get().health.recent.all();
        assert_eq!(all.len(), KEPT);
        let last = &all[KEPT - 1];
        assert_eq!(last.1, "WARN");
        assert_eq!(
            last.2,
            format!("failed {} call=/NetworkDriver.Join error=no pool", KEPT + 1)
        );
        assert!(!all.iter().any(|e| e.2.contains("not kept")));
    }
}
