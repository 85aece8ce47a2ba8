//! The live progress display on a terminal: pages, records, records/s, retries, the wait in
//! progress, and a bar with an ETA once the API has said how many records there are.
//!
//! It is fed by the run's own log events (see [`crate::logging`] for the fields), so the
//! fetch code does not know it exists, and it is only created when stderr is a terminal:
//! cron logs stay plain.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::logging::Fields;
use crate::retry::human;

pub struct Progress {
    bar: ProgressBar,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pages: u64,
    retries: u64,
    /// What the run is waiting for, until the next page arrives.
    waiting: Option<String>,
}

impl Progress {
    /// Starts drawing on stderr (indicatif draws nothing if it is not a terminal).
    pub fn start() -> Self {
        let bar = ProgressBar::new_spinner().with_style(style(false));
        let state = State::default();
        bar.set_prefix(state.prefix());
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress {
            bar,
            state: Mutex::new(state),
        }
    }

    /// A handle on the display, for drawing log lines around it.
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }
}

fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{spinner} [{bar:30}] {human_pos}/{human_len} records · {rate} · ETA {eta} · {prefix}{wide_msg}"
    } else {
        "{spinner} {human_pos} records · {rate} · {prefix}{wide_msg}"
    };
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
        .with_key("rate", |state: &ProgressState, w: &mut dyn Write| {
            let _ = write!(w, "{:.0} records/s", state.per_sec());
        })
}

impl State {
    /// Takes in one event; says what the display should show after it.
    fn observe(&mut self, fields: &Fields) {
        if let Some(page) = fields.page.filter(|_| fields.records.is_some()) {
            self.pages = self.pages.max(page);
            self.waiting = None;
        }
        if let Some(wait) = fields.wait_ms.map(Duration::from_millis) {
            let after = match (&fields.cause, fields.attempt) {
                (Some(cause), Some(_)) => format!("retrying in {} after {cause}", human(wait)),
                (Some(why), None) => format!("waiting {} {why}", human(wait)),
                (None, _) => format!("waiting {}", human(wait)),
            };
            self.retries += u64::from(fields.attempt.is_some());
            self.waiting = Some(after);
        }
    }

    fn prefix(&self) -> String {
        let retries = crate::counted(self.retries, "retry", "retries");
        format!("page {} · {retries}", self.pages)
    }

    fn message(&self) -> String {
        self.waiting
            .as_ref()
            .map_or_else(String::new, |w| format!(" · {w}"))
    }
}

impl<S: Subscriber> Layer<S> for Progress {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let fields = Fields::of(event);
        if let Some(total) = fields.expected_records {
            if self.bar.length().is_none() {
                self.bar.set_style(style(true));
            }
            self.bar.set_length(total);
        }
        if let Some(records) = fields.records {
            self.bar.set_position(records);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.observe(&fields);
        self.bar.set_prefix(state.prefix());
        self.bar.set_message(state.message());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_and_waits_show_until_the_next_page() {
        let mut state = State::default();
        state.observe(&Fields {
            page: Some(1),
            records: Some(100),
            ..Fields::default()
        });
        state.observe(&Fields {
            attempt: Some(1),
            wait_ms: Some(4200),
            status: Some(503),
            cause: Some("503".into()),
            ..Fields::default()
        });
        assert_eq!(state.prefix(), "page 1 · 1 retry");
        assert_eq!(state.message(), " · retrying in 4.2s after 503");
        state.observe(&Fields {
            page: Some(2),
            records: Some(200),
            ..Fields::default()
        });
        assert_eq!(state.prefix(), "page 2 · 1 retry");
        assert_eq!(state.message(), "");
        state.observe(&Fields {
            wait_ms: Some(30_000),
            cause: Some("for the circuit breaker's cool-down".into()),
            ..Fields::default()
        });
        assert_eq!(
            state.message(),
            " · waiting 30.0s for the circuit breaker's cool-down"
        );
        assert_eq!(state.prefix(), "page 2 · 1 retry");
    }

    #[test]
    fn both_templates_parse() {
        for with_bar in [false, true] {
            let bar = ProgressBar::hidden().with_style(style(with_bar));
            bar.set_length(10);
            bar.set_position(4);
        }
    }
}
