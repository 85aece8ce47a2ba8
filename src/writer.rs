//! The sink on a thread of its own, so that flattening and writing one page overlaps
//! fetching and parsing the next: a run keeps a second core busy instead of leaving the
//! network idle while it writes. Pages are handed over in order through a short queue, so
//! memory stays bounded (a few pages) however far ahead the network gets.

use std::ops::Range;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::output::Sink;
use crate::paginate::Progress;

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
}

/// One page for the writer: the response body, where each record's text lies in it, and
/// where the run stands after the page.
struct Batch {
    body: Arc<String>,
    records: Vec<Range<usize>>,
    progress: Progress,
}

impl Writer {
    /// Starts writing to `sink`.
    pub fn start(mut sink: Sink) -> Self {
        let records = sink.records();
        let (pages, mut queue) = mpsc::channel::<Batch>(QUEUE);
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(batch) = queue.blocking_recv() {
                let records: Vec<&str> = (batch.records.into_iter())
                    .map(|span| &batch.body[span])
                    .collect();
                if let Err(error) = sink.page(&records, batch.progress) {
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
            body: Arc::clone(body),
            records: spans.collect(),
            progress,
        };
        self.records += records.len() as u64;
        let pages = self
            .pages
            .as_ref()
            .expect("no page after the writer stopped");
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
