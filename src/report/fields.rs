//! The structured fields of the run's log events: the one record the progress display and
//! the summary both read, so they count from the same events as the logs.

use tracing::Event;
use tracing::field::{Field, Visit};

/// The structured fields of one event that the progress display and the summary use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub page: Option<u64>,
    pub records: Option<u64>,
    pub expected_records: Option<u64>,
    pub attempt: Option<u64>,
    pub wait_ms: Option<u64>,
    pub status: Option<u64>,
    pub cause: Option<String>,
    pub bytes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub output_bytes_compressed: Option<u64>,
    /// An incremental run's field, when it starts.
    pub incremental: Option<String>,
    /// The marks as JSON text.
    pub mark_before: Option<String>,
    pub mark_after: Option<String>,
    pub skipped: Option<u64>,
    pub incomparable: Option<u64>,
}

impl Fields {
    pub fn of(event: &Event<'_>) -> Self {
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        let slot = match field.name() {
            "page" => &mut self.page,
            "records" => &mut self.records,
            "expected_records" => &mut self.expected_records,
            "attempt" => &mut self.attempt,
            "wait_ms" => &mut self.wait_ms,
            "status" => &mut self.status,
            "bytes" => &mut self.bytes,
            "output_bytes" => &mut self.output_bytes,
            "output_bytes_compressed" => &mut self.output_bytes_compressed,
            "skipped" => &mut self.skipped,
            "incomparable" => &mut self.incomparable,
            _ => return,
        };
        *slot = Some(value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "cause" => &mut self.cause,
            "incremental" => &mut self.incremental,
            "mark_before" => &mut self.mark_before,
            "mark_after" => &mut self.mark_after,
            _ => return,
        };
        *slot = Some(value.to_string());
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}
