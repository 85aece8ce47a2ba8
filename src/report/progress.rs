//! The live progress display on a terminal: pages, records, records/s, retries, the wait in
//! progress, and a bar with an ETA once the API has said how many records there are.
//!
//! It is fed by the run's own log events (see [`crate::report::logging`] for the fields), so the
//! fetch code does not know it exists, and it is only created when stderr is a terminal:
//! cron logs stay plain.

use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::report::fields::Fields;
use crate::report::units::human;

pub struct Display {
    bar: ProgressBar,
    /// Shared with the display's `{wait}` key, which counts a wait down on every tick.
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    pages: u64,
    retries: u64,
    /// What the run is waiting for, until the next page arrives.
    waiting: Option<Waiting>,
}

/// A wait in progress: `retrying in {left} after 503`, `waiting {left} for …`.
#[derive(Debug)]
struct Waiting {
    before: &'static str,
    after: String,
    until: Instant,
}

impl Display {
    /// Starts drawing on stderr (indicatif draws nothing if it is not a terminal).
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let bar = ProgressBar::new_spinner().with_style(style(false, &state));
        let prefix = lock(&state).prefix();
        bar.set_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(100));
        Display { bar, state }
    }

    /// A handle on the display, for drawing log lines around it.
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }
}

fn style(with_bar: bool, shared: &Arc<Mutex<State>>) -> ProgressStyle {
    let template = if with_bar {
        "{spinner} [{bar:30}] {human_pos}/{human_len} records · {rate} · ETA {eta} · {prefix}{wait}"
    } else {
        "{spinner} {human_pos} records · {rate} · {prefix}{wait}"
    };
    let shared = Arc::clone(shared);
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
        .with_key("rate", |state: &ProgressState, w: &mut dyn Write| {
            let _ = write!(w, "{:.0} records/s", state.per_sec());
        })
        .with_key("wait", move |_: &ProgressState, w: &mut dyn Write| {
            let _ = w.write_str(&lock(&shared).message(Instant::now()));
        })
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// Takes in one event; says what the display should show after it.
    fn observe(&mut self, fields: &Fields) {
        if let Some(page) = fields.page.filter(|_| fields.records.is_some()) {
            self.pages = self.pages.max(page);
            self.waiting = None;
        }
        if let Some(wait) = fields.wait_ms.map(Duration::from_millis) {
            let (before, after) = match (&fields.cause, fields.attempt) {
                (Some(cause), Some(_)) => ("retrying in", format!(" after {cause}")),
                (Some(why), None) => ("waiting", format!(" {why}")),
                (None, _) => ("waiting", String::new()),
            };
            self.retries += u64::from(fields.attempt.is_some());
            self.waiting = Some(Waiting {
                before,
                after,
                until: Instant::now() + wait,
            });
        }
    }

    fn prefix(&self) -> String {
        let retries = crate::report::units::counted(self.retries, "retry", "retries");
        match self.pages {
            0 => format!("first page · {retries}"),
            pages => format!("page {pages} · {retries}"),
        }
    }

    /// The wait in progress, as much of it as is left at `now`.
    fn message(&self, now: Instant) -> String {
        self.waiting.as_ref().map_or_else(String::new, |w| {
            let left = w.until.saturating_duration_since(now);
            format!(" · {} {}{}", w.before, human(left), w.after)
        })
    }
}

impl<S: Subscriber> Layer<S> for Display {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let fields = Fields::of(event);
        if let Some(total) = fields.expected_records {
            if self.bar.length().is_none() {
                self.bar.set_style(style(true, &self.state));
            }
            self.bar.set_length(total);
        }
        if let Some(records) = fields.records {
            self.bar.set_position(records);
        }
        let prefix = {
            let mut state = lock(&self.state);
            state.observe(&fields);
            state.prefix()
        };
        // Not under the lock: drawing reads the state for the wait's countdown.
        self.bar.set_prefix(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_and_waits_show_until_the_next_page_and_count_down() {
        let mut state = State::default();
        assert_eq!(state.prefix(), "first page · 0 retries");
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
        let until = state.waiting.as_ref().unwrap().until;
        let at = |left: u64| until - Duration::from_millis(left);
        assert_eq!(state.message(at(4200)), " · retrying in 4.2s after 503");
        assert_eq!(state.message(at(1500)), " · retrying in 1.5s after 503");
        assert_eq!(
            state.message(until + Duration::from_secs(1)),
            " · retrying in 0ms after 503"
        );
        state.observe(&Fields {
            page: Some(2),
            records: Some(200),
            ..Fields::default()
        });
        assert_eq!(state.prefix(), "page 2 · 1 retry");
        assert_eq!(state.message(Instant::now()), "");
        state.observe(&Fields {
            wait_ms: Some(30_000),
            cause: Some("for the circuit breaker's cool-down".into()),
            ..Fields::default()
        });
        let until = state.waiting.as_ref().unwrap().until;
        assert_eq!(
            state.message(until - Duration::from_secs(30)),
            " · waiting 30.0s for the circuit breaker's cool-down"
        );
        assert_eq!(state.prefix(), "page 2 · 1 retry");
    }

    #[test]
    fn both_templates_parse() {
        let state = Arc::new(Mutex::new(State::default()));
        for with_bar in [false, true] {
            let bar = ProgressBar::hidden().with_style(style(with_bar, &state));
            bar.set_length(10);
            bar.set_position(4);
        }
    }
}
