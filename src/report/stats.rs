//! What a run did, counted from its own log events (see [`crate::report::logging`] for the fields),
//! and written as the `--summary-json` file for CI steps and monitoring, on failure too.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::error::Exit;
use crate::place::Place;
use crate::report::fields::Fields;

/// Counters shared between the logging layer that fills them and the end of the run.
#[derive(Clone, Default)]
pub struct Stats(Arc<Mutex<Counts>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub records: u64,
    pub pages: u64,
    /// HTTP exchanges, retries included.
    pub requests: u64,
    /// Retries, by what caused them (`503`, `timed out`, ...).
    pub retries: BTreeMap<String, u64>,
    pub waits: Waits,
    /// Response body bytes read.
    pub bytes: u64,
    /// Bytes of the output in its format; `null` until the run has written all of it.
    pub output_bytes: Option<u64>,
    /// Bytes of the output as stored, compressed; `null` when it is not compressed.
    pub output_bytes_compressed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
}

/// How an `--incremental` run moved its mark. On failure the mark stays where it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Incremental {
    pub field: String,
    pub mark_before: Option<serde_json::Value>,
    pub mark_after: Option<serde_json::Value>,
    /// Records dropped as written by an earlier run.
    pub skipped: u64,
    /// Records kept without a value of the field to compare.
    pub incomparable: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Waits {
    pub count: u64,
    pub total_ms: u64,
}

/// The `--summary-json` document.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub exit_code: u8,
    /// Why the run failed (scrubbed of secrets); `null` on success.
    pub error: Option<&'a str>,
    #[serde(flatten)]
    pub counts: Counts,
    pub retries_total: u64,
    pub elapsed_ms: u64,
    /// The output file; `null` for standard output.
    pub output: Option<&'a Path>,
}

impl Counts {
    fn observe(&mut self, fields: &Fields) {
        self.observe_incremental(fields);
        if let (Some(page), Some(records)) = (fields.page, fields.records) {
            self.pages = self.pages.max(page);
            self.records = self.records.max(records);
        }
        if let Some(bytes) = fields.bytes {
            self.requests += 1;
            self.bytes += bytes;
        }
        if fields.output_bytes.is_some() {
            self.output_bytes = fields.output_bytes;
            self.output_bytes_compressed = fields.output_bytes_compressed;
        }
        if let Some(wait) = fields.wait_ms {
            self.waits.count += 1;
            self.waits.total_ms += wait;
            if fields.attempt.is_some() {
                let cause = fields.cause.clone().unwrap_or_else(|| "other".into());
                *self.retries.entry(cause).or_default() += 1;
            }
        }
    }
}

impl Counts {
    fn observe_incremental(&mut self, fields: &Fields) {
        let mark = |text: &Option<String>| {
            text.as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
        };
        if let Some(field) = &fields.incremental {
            let before = mark(&fields.mark_before);
            self.incremental = Some(Incremental {
                field: field.clone(),
                mark_after: before.clone(),
                mark_before: before,
                ..Incremental::default()
            });
        }
        let Some(incremental) = &mut self.incremental else {
            return;
        };
        if fields.mark_after.is_some() {
            incremental.mark_after = mark(&fields.mark_after);
        }
        if let Some(skipped) = fields.skipped {
            incremental.skipped = skipped;
        }
        if let Some(incomparable) = fields.incomparable {
            incremental.incomparable = incomparable;
        }
    }
}

impl Stats {
    pub fn counts(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the summary where `place` leads: the way `--out` is written, replacing a file
    /// whole (a reader never sees half) and a device or stream in place.
    pub fn write_summary(
        &self,
        place: &Place,
        exit: Exit,
        error: Option<&str>,
        elapsed: Duration,
        output: Option<&Path>,
    ) -> std::io::Result<()> {
        let counts = self.counts();
        let summary = Document {
            exit_code: exit as u8,
            error,
            retries_total: counts.retries.values().sum(),
            counts,
            elapsed_ms: elapsed.as_millis() as u64,
            output,
        };
        place.write(|file| {
            serde_json::to_writer_pretty(&mut *file, &summary)?;
            file.write_all(b"\n")
        })
    }
}

impl<S: Subscriber> Layer<S> for Stats {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let fields = Fields::of(event);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pages_requests_retries_and_waits() {
        let mut counts = Counts::default();
        let events = [
            Fields {
                bytes: Some(10),
                status: Some(503),
                ..Fields::default()
            },
            Fields {
                attempt: Some(1),
                wait_ms: Some(250),
                cause: Some("503".into()),
                ..Fields::default()
            },
            Fields {
                bytes: Some(0),
                ..Fields::default()
            },
            Fields {
                attempt: Some(2),
                wait_ms: Some(500),
                cause: Some("timed out".into()),
                ..Fields::default()
            },
            Fields {
                bytes: Some(90),
                status: Some(200),
                ..Fields::default()
            },
            Fields {
                page: Some(1),
                records: Some(100),
                ..Fields::default()
            },
            Fields {
                wait_ms: Some(1000),
                ..Fields::default()
            },
            Fields {
                records: Some(100),
                output_bytes: Some(4200),
                output_bytes_compressed: Some(910),
                ..Fields::default()
            },
        ];
        for fields in &events {
            counts.observe(fields);
        }
        assert_eq!(
            counts,
            Counts {
                records: 100,
                pages: 1,
                requests: 3,
                retries: BTreeMap::from([("503".into(), 1), ("timed out".into(), 1)]),
                waits: Waits {
                    count: 3,
                    total_ms: 1750
                },
                bytes: 100,
                output_bytes: Some(4200),
                output_bytes_compressed: Some(910),
                incremental: None,
            }
        );
    }

    #[test]
    fn an_incremental_run_reports_its_marks_and_what_it_dropped() {
        let mut counts = Counts::default();
        let events = [
            Fields {
                incremental: Some("/updated_at".into()),
                mark_before: Some("\"2026-01-01T08:00:00Z\"".into()),
                ..Fields::default()
            },
            Fields {
                skipped: Some(3),
                incomparable: Some(1),
                ..Fields::default()
            },
        ];
        for fields in &events {
            counts.observe(fields);
        }
        let before = serde_json::json!("2026-01-01T08:00:00Z");
        let mut expected = Incremental {
            field: "/updated_at".into(),
            mark_before: Some(before.clone()),
            mark_after: Some(before),
            skipped: 3,
            incomparable: 1,
        };
        assert_eq!(counts.incremental.as_ref(), Some(&expected), "a failed run");
        counts.observe(&Fields {
            mark_after: Some("42".into()),
            skipped: Some(4),
            ..Fields::default()
        });
        expected.mark_after = Some(serde_json::json!(42));
        expected.skipped = 4;
        assert_eq!(counts.incremental, Some(expected));
    }
}
