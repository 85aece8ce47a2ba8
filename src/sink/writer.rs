//! The sink on a thread of its own, so that flattening and writing one page overlaps
//! fetching and parsing the next: a run keeps a second core busy instead of leaving the
//! network idle while it writes. Pages are handed over in order through a short queue, so
//! memory stays bounded (a few pages) however far ahead the network gets.
//!
//! Encoding a table's rows costs more than fetching and parsing them, so when a page is
//! already waiting in the queue the fetching side encodes the next one itself, with the
//! columns the writer last reported: the two threads share the work instead of one of
//! them idling. The writer takes those rows as they are unless a column joined meanwhile.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::sink::checkpoint::Progress;
use crate::sink::output::Sink;
use crate::sink::rows::Form;
use crate::sink::rows::{Encoded, Encoder, Layout};

/// Pages queued for the writer at most, besides the one it is writing and the one the
/// fetching side holds: enough to keep both sides busy, with four pages in memory at most,
/// some with their rows too (plus those `--concurrency` fetches ahead).
const QUEUE: usize = 2;

/// The largest buffer of rows kept to be used again: the rows of an unusually large page
/// are let go, not held for the rest of the run.
const SPARE: usize = 8 << 20;

pub struct Writer {
    /// Closed (`None`) to tell the writer that no more pages come.
    pages: Option<mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<(Sink, Result<(), Error>)>>,
    /// The sink back from the writer, once it has stopped.
    stopped: Option<Sink>,
    /// Records handed over so far, including those of the run being resumed.
    records: u64,
    /// For a table, what the fetching side needs to encode rows ahead.
    ahead: Option<Ahead>,
    /// Told when the writer stops at an error (see [`Writer::failed`]).
    failed: Arc<Notify>,
}

struct Ahead {
    encoder: Encoder,
    /// The columns as the writer last reported them; `None` until the header is settled.
    layout: Arc<Mutex<Option<Arc<Layout>>>>,
    /// Buffers of rows the writer is done with, to be used again: a page's worth allocated
    /// afresh for every page lets the heap creep up over a long run.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// One page for the writer: the response body, where each record's text lies in it, its
/// rows if they were encoded ahead, and where the run stands after the page.
struct Batch {
    body: Arc<String>,
    records: Vec<Range<usize>>,
    encoded: Option<Encoded>,
    progress: Progress,
}

impl Writer {
    /// Starts writing to `sink` records of `form`.
    pub fn start(mut sink: Sink, form: &Form) -> Self {
        let records = sink.records();
        let (pages, mut queue) = mpsc::channel::<Batch>(QUEUE);
        let ahead = Encoder::new(form).map(|encoder| Ahead {
            encoder,
            layout: Arc::default(),
            spare: Arc::default(),
        });
        let shared = ahead
            .as_ref()
            .map(|a| (Arc::clone(&a.layout), Arc::clone(&a.spare)));
        let failed = Arc::new(Notify::new());
        let failing = Arc::clone(&failed);
        let thread = tokio::task::spawn_blocking(move || {
            let mut reported = None;
            while let Some(batch) = queue.blocking_recv() {
                let records: Vec<&str> = (batch.records.iter())
                    .map(|span| &batch.body[span.clone()])
                    .collect();
                if let Err(error) = sink.page(&records, batch.encoded.as_ref(), batch.progress) {
                    failing.notify_one();
                    return (sink, Err(error));
                }
                if let Some((layout, spare)) = &shared {
                    let columns = sink.columns();
                    if columns != reported {
                        reported = columns;
                        *lock(layout) = sink.layout().map(Arc::new);
                    }
                    if let Some(encoded) = batch.encoded.filter(|e| e.rows.capacity() <= SPARE) {
                        lock(spare).push(encoded.rows);
                    }
                }
            }
            (sink, Ok(()))
        });
        Writer {
            pages: Some(pages),
            thread: Some(thread),
            stopped: None,
            records,
            ahead,
            failed,
        }
    }

    /// Resolves once the writer has stopped at an error, so the run can stop fetching at
    /// once rather than when it hands over the next page: a reader that closed standard
    /// output (`| head`) is not kept waiting for a page nobody will read, and a full disk
    /// does not wait out the API's retries.
    pub fn failed(&self) -> impl Future<Output = ()> + use<> {
        let failed = Arc::clone(&self.failed);
        async move { failed.notified().await }
    }

    /// Hands over the records of a page, which are slices of `body`. Waits while the writer
    /// is a full queue behind; fails with the writer's error if it stopped at one.
    pub async fn page(
        &mut self,
        body: &Arc<String>,
        records: &[&str],
        progress: Progress,
    ) -> Result<(), Error> {
        let base = body.as_ptr() as usize;
        let spans = records.iter().map(|record| {
            let start = record.as_ptr() as usize - base;
            let span = start..start + record.len();
            debug_assert_eq!(body.get(span.clone()), Some(*record));
            span
        });
        let pages = self
            .pages
            .as_ref()
            .expect("no page after the writer stopped");
        // A page waiting already means the writer is behind: encode this one here.
        let encoded = match (&mut self.ahead, pages.capacity() < QUEUE) {
            (Some(ahead), true) => ahead.encode(records)?,
            _ => None,
        };
        let batch = Batch {
            body: Arc::clone(body),
            records: spans.collect(),
            encoded,
            progress,
        };
        self.records += records.len() as u64;
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

impl Ahead {
    /// The page's rows, if the columns the writer reported fit every record.
    fn encode(&mut self, records: &[&str]) -> Result<Option<Encoded>, Error> {
        let Some(layout) = lock(&self.layout).clone() else {
            return Ok(None);
        };
        let mut rows = lock(&self.spare).pop().unwrap_or_default();
        rows.clear();
        if self.encoder.encode(records, &layout, &mut rows)? {
            let columns = layout.columns.len();
            return Ok(Some(Encoded { rows, columns }));
        }
        lock(&self.spare).push(rows);
        Ok(None)
    }
}

fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().expect("no thread panics holding it")
}
