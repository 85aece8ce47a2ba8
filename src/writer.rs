//! The sink on a thread of its own, so that flattening and writing one page overlaps
//! fetching and parsing the next: a run keeps a second core busy instead of leaving the
//! network idle while it writes. Pages are handed over in order through a short queue, so
//! memory stays bounded (a few pages) however far ahead the network gets.
//!
//! Flattening records for a table costs more than fetching and parsing them, so when the
//! queue is full the fetching side flattens the page itself before waiting: the two
//! threads share the work instead of one of them idling.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::output::Sink;
use crate::paginate::Progress;
use crate::records::{self, Cells};
use crate::spool::{Form, Records};

/// Pages queued for the writer at most, besides the one it is writing and the one the
/// fetching side holds: enough to keep both sides busy, with four pages in memory at most
/// (plus those `--concurrency` fetches ahead).
const QUEUE: usize = 2;

pub struct Writer {
    /// Closed (`None`) to tell the writer that no more pages come.
    pages: Option<mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<(Sink, Result<(), Error>)>>,
    /// The sink back from the writer, once it has stopped.
    stopped: Option<Sink>,
    /// Records handed over so far, including those of the run being resumed.
    records: u64,
    /// How records are flattened for a table (the separator); `None` for the JSON formats.
    flatten: Option<Option<String>>,
    /// Cells of pages flattened ahead, handed back by the writer to be used again: a page's
    /// worth of buffers allocated afresh for every page lets the heap creep up over a long
    /// run.
    spare: Arc<Mutex<Vec<Cells>>>,
}

/// One page for the writer: its records, and where the run stands after the page.
struct Batch {
    records: Load,
    progress: Progress,
}

enum Load {
    /// The response body, and where each record's text lies in it.
    Json {
        body: Arc<String>,
        spans: Vec<Range<usize>>,
    },
    /// The records flattened already, for a table; the body is let go.
    Flat(Cells),
}

impl Writer {
    /// Starts writing to `sink` the records of a spool of `form`.
    pub fn start(mut sink: Sink, form: &Form) -> Self {
        let records = sink.records();
        let (pages, mut queue) = mpsc::channel::<Batch>(QUEUE);
        let spare = Arc::new(Mutex::new(Vec::new()));
        let handed_back = Arc::clone(&spare);
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(batch) = queue.blocking_recv() {
                if let Err(error) = write(&mut sink, batch, &handed_back) {
                    return (sink, Err(error));
                }
            }
            (sink, Ok(()))
        });
        Writer {
            pages: Some(pages),
            thread: Some(thread),
            stopped: None,
            records,
            flatten: match form {
                Form::Cells { sep, .. } => Some(sep.clone()),
                Form::Lines => None,
            },
            spare,
        }
    }

    /// Hands over the records of a page, which are slices of `body`. Waits while the writer
    /// is a full queue behind; fails with the writer's error if it stopped at one.
    pub async fn page(
        &mut self,
        body: &Arc<String>,
        records: &[&RawValue],
        progress: Progress,
    ) -> Result<(), Error> {
        let base = body.as_ptr() as usize;
        let spans = records.iter().map(|record| {
            let start = record.get().as_ptr() as usize - base;
            let span = start..start + record.get().len();
            debug_assert_eq!(body.get(span.clone()), Some(record.get()));
            span
        });
        let batch = Batch {
            records: Load::Json {
                body: Arc::clone(body),
                spans: spans.collect(),
            },
            progress,
        };
        self.records += records.len() as u64;
        let pages = self
            .pages
            .as_ref()
            .expect("no page after the writer stopped");
        let batch = match (pages.try_send(batch), &self.flatten) {
            (Ok(()), _) => return Ok(()),
            (Err(TrySendError::Full(mut batch)), Some(sep)) => {
                let spare = self
                    .spare
                    .lock()
                    .expect("no thread panics holding it")
                    .pop();
                let mut flat = spare.unwrap_or_default();
                for record in records {
                    records::flatten(record.get(), sep.as_deref(), &mut flat)?;
                }
                batch.records = Load::Flat(flat);
                batch
            }
            (Err(TrySendError::Full(batch) | TrySendError::Closed(batch)), _) => batch,
        };
        if pages.send(batch).await.is_ok() {
            return Ok(());
        }
        // The writer gave up at an earlier page; its error is what stopped the run.
        self.stop().await
    }

    /// Records handed over so far, including those of the run being resumed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Waits for the writer to take every page handed over, and says how that went.
    pub async fn stop(&mut self) -> Result<(), Error> {
        self.pages = None;
        let Some(thread) = self.thread.as_mut() else {
            return Ok(());
        };
        // The handle is let go only once the sink is back: a stop dropped midway (Ctrl-C)
        // can be waited for again.
        let stopped = thread.await;
        self.thread = None;
        let (sink, result) = match stopped {
            Ok(stopped) => stopped,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.stopped = Some(sink);
        result
    }

    /// The sink, once [`Writer::stop`] has run.
    pub fn into_sink(self) -> Sink {
        self.stopped.expect("the writer is stopped first")
    }
}

fn write(sink: &mut Sink, batch: Batch, spare: &Mutex<Vec<Cells>>) -> Result<(), Error> {
    match batch.records {
        Load::Json { body, spans } => {
            let records: Vec<&str> = spans.into_iter().map(|span| &body[span]).collect();
            sink.page(Records::Json(&records), batch.progress)
        }
        Load::Flat(mut flat) => {
            sink.page(Records::Flat(&flat), batch.progress)?;
            flat.clear();
            spare
                .lock()
                .expect("no thread panics holding it")
                .push(flat);
            Ok(())
        }
    }
}
