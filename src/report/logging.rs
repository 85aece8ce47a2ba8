//! Where log lines go and what they look like: text for people, JSON Lines for collectors,
//! always on stderr, always scrubbed of the run's secrets, and out of the way of the
//! progress display.
//!
//! Call sites log with plain `info!`/`warn!` messages. Events that describe the run's
//! progress also carry structured fields, with these names and meanings, which the JSON
//! format, the progress display ([`crate::report::progress`]) and the summary ([`crate::report::stats`])
//! all read:
//!
//! | field | meaning |
//! | --- | --- |
//! | `page` + `records` | a page was fetched: its ordinal in this run, and the records so far |
//! | `expected_records` | the API told the total number of records |
//! | `attempt` + `wait_ms` | a retry is scheduled after failed attempt `attempt` |
//! | `status` / `cause` | the HTTP status, and a short name of what failed (`503`, `timed out`) |
//! | `wait_ms` (+ `cause`) alone | any other wait: pacing, a rate limit, the circuit breaker (`cause` says what for) |
//! | `bytes` | one HTTP exchange finished, having read this many body bytes |
//! | `url` | the request, already redacted |
//!
//! Only apifetch's own events are shown, at every verbosity: the HTTP libraries log full
//! URLs and headers at debug level, and their lines are not worth the risk.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use indicatif::ProgressBar;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::report::progress::Display;
use crate::report::redact::{self, Secret};
use crate::report::stats::Stats;

/// How the run reports on itself.
#[derive(Debug, Clone)]
pub struct Settings {
    pub level: LevelFilter,
    pub format: LogFormat,
    pub color: bool,
    /// Show a live progress display (stderr is a terminal and not `--quiet`).
    pub progress: bool,
    pub summary: Option<PathBuf>,
}

/// How log lines are written: for people, or for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Fields the text format leaves out because the message already says the same.
const IN_MESSAGE: &[&str] = &[
    "page",
    "pages",
    "records",
    "expected_records",
    "attempt",
    "wait_ms",
    "status",
    "cause",
    "bytes",
    "url",
    "output_bytes",
    "output_bytes_compressed",
    "incremental",
    "mark_before",
    "mark_after",
    "skipped",
    "incomparable",
];

/// What [`init`] installed, for the end of the run.
pub struct Installed {
    pub stats: Stats,
    progress: Option<ProgressBar>,
}

impl Installed {
    /// Removes the progress display, so the last lines (error, summary) stand alone.
    pub fn finish(&self) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }
}

/// The target of the line each page logs (`page 3: +100 records …`).
pub const PAGE_TARGET: &str = "apifetch::page";

/// Installs the global subscriber and a panic hook that scrubs secrets from panic messages.
pub fn init(config: &Settings, secrets: &[Secret]) -> Installed {
    let secrets: Arc<[Secret]> = secrets.into();
    let progress = config.progress.then(Display::start);
    let bar = progress.as_ref().map(Display::bar);
    let stderr = Stderr {
        secrets: Arc::clone(&secrets),
        progress: bar.clone(),
    };
    let own = |level: LevelFilter| Targets::new().with_target("apifetch", level);
    // A person at a terminal watches the progress display: the page-by-page lines (and
    // the timestamps, which the display makes redundant) stay in -v, files and pipes.
    let calm = config.progress && config.format == LogFormat::Text;
    let shown_filter = match calm && config.level == LevelFilter::INFO {
        true => own(config.level).with_target(PAGE_TARGET, LevelFilter::WARN),
        false => own(config.level),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(stderr);
    let shown: Box<dyn Layer<Registry> + Send + Sync> = match config.format {
        LogFormat::Text if calm => fmt
            .with_ansi(config.color)
            .with_target(false)
            .without_time()
            .fmt_fields(format::debug_fn(text_field))
            .with_filter(shown_filter)
            .boxed(),
        LogFormat::Text => fmt
            .with_ansi(config.color)
            .with_target(false)
            .fmt_fields(format::debug_fn(text_field))
            .with_filter(shown_filter)
            .boxed(),
        LogFormat::Json => fmt
            .with_ansi(false)
            .event_format(JsonLines)
            .with_filter(shown_filter)
            .boxed(),
    };
    let stats = Stats::default();
    Registry::default()
        .with(shown)
        .with(progress.map(|p| p.with_filter(own(LevelFilter::DEBUG))))
        .with(stats.clone().with_filter(own(LevelFilter::DEBUG)))
        .init();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!(
            "apifetch: internal error: {}",
            redact::scrub(&info.to_string(), &secrets)
        );
    }));
    Installed {
        stats,
        progress: bar,
    }
}

/// The message, then any field the message does not already say, as `name=value`
/// (their `Debug` form already quotes and escapes text).
fn text_field(w: &mut Writer<'_>, field: &Field, value: &dyn std::fmt::Debug) -> std::fmt::Result {
    match field.name() {
        "message" => w.write_str(&inert(&format!("{value:?}"))),
        name if IN_MESSAGE.contains(&name) => Ok(()),
        name => write!(w, " {name}={value:?}"),
    }
}

/// `text` with every control character escaped (`\u{1b}`, `\r`, `\n`; C0, DEL and C1):
/// messages quote what a server sent (keys, cursors, next links, error bodies), and on a
/// terminal or in a log file such text must not set the window title, clear the screen
/// or start a forged line of its own. JSON logs need none of this: JSON escapes them.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One JSON object per line: `time`, `level`, `msg`, then the event's fields.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = Map::new();
        line.insert(
            "time".into(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        event.record(&mut JsonFields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonFields<'a>(&'a mut Map<String, Value>);

impl JsonFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            name => name,
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// Standard error, scrubbed of the run's secrets, drawn around the progress display.
#[derive(Clone)]
struct Stderr {
    secrets: Arc<[Secret]>,
    progress: Option<ProgressBar>,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        self.clone()
    }
}

impl Write for Stderr {
    /// Takes the whole buffer: the formatter hands over one complete event per call, and a
    /// secret split across two calls could not be scrubbed.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = redact::scrub(&String::from_utf8_lossy(buf), &self.secrets);
        let print = || io::stderr().lock().write_all(text.as_bytes());
        match &self.progress {
            Some(bar) => bar.suspend(print)?,
            None => print()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            inert("a\u{1b}]0;t\u{7}\r\nb\tc\u{7f}\u{9b}é"),
            r"a\u{1b}]0;t\u{7}\r\nb\tc\u{7f}\u{9b}é"
        );
        assert_eq!(inert("plain → text"), "plain → text");
    }
}
