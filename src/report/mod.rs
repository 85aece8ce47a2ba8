//! What the user sees of a run: logs, the progress display, the summary, and secrets masked
//! in all of them.

pub mod fields;
pub mod logging;
pub mod progress;
pub mod redact;
pub mod stats;
pub mod units;
