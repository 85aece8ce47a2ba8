//! The run: paginate → request with retry → extract records → spool and checkpoint →
//! write, page after page, until the API has no more or something stops it.

pub mod ahead;
mod config;
pub mod inspect;
pub mod interrupt;

pub use config::{Action, Config, Target};

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::engine::interrupt::Interrupt;
use crate::error::Error;
use crate::fetch::http::{self, Fetcher};
use crate::incremental::{self, Tracker};
use crate::paginate::{self, Paginator, Step};
use crate::place;
use crate::report::{logging, redact, units};
use crate::shape::{json, records};
use crate::sim;
use crate::sink::checkpoint::{self, Identity, Progress};
use crate::sink::compress::Written;
use crate::sink::output::Sink;
use crate::sink::stop::Stop;
use crate::sink::writer::Writer;

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub pages: u64,
    pub retries: u64,
    pub elapsed: Duration,
    pub destination: String,
    pub written: Written,
}

/// Fetches every page the configuration describes and writes the records out.
pub async fn run(config: Config) -> Result<Summary, Error> {
    let started = Instant::now();
    // Kept alive for the whole run: dropping it stops the demo API.
    let (url, _demo) = target(&config.target)?;
    let fetcher = Fetcher::new(
        &config.request,
        config.retry.clone(),
        &config.polite,
        started.into(),
    )?
    .with_headers(
        config.request.headers.clone(),
        http::Trust::new(&url, config.request.trust_next_origin),
    );
    let mut tracker = match &config.incremental {
        Some(settings) => Some(Tracker::open(settings, incremental_job(&config))?),
        None => None,
    };
    let mut pages = paginator(&config, &url, tracker.as_ref());
    match config.action {
        Action::DryRun => return inspect::dry_run(&config, &pages).map(|()| nothing(started)),
        Action::Probe => {
            inspect::probe(&fetcher, &mut pages, &config, &url).await?;
            return Ok(nothing(started));
        }
        Action::Fetch => {}
    }
    check_after_files(&config)?;
    // From here to the end, Ctrl-C and SIGTERM stop the run and keep what it fetched.
    let interrupt = Interrupt::listen();
    let sink = sync(
        &fetcher,
        &mut pages,
        &config,
        &url,
        &interrupt,
        tracker.as_mut(),
    )
    .await?;
    let records = sink.records();
    if records == 0 {
        nothing_new(tracker.as_ref());
    }
    let destination = sink.describe();
    let written = finish(sink, interrupt.stop()).await?;
    // Only now that the output is in place does the mark move on (see `Tracker::finish`).
    if let Some(tracker) = tracker {
        tracker.finish(config.out.as_deref())?;
    }
    let summary = Summary {
        records,
        pages: pages.fetched(),
        retries: fetcher.retries(),
        elapsed: started.elapsed(),
        destination,
        written,
    };
    log_synced(&summary);
    Ok(summary)
}

/// Says that a run brought no records. An incremental run's are only those above the
/// mark, and with `--append` the output keeps its records: that is no cause for alarm.
fn nothing_new(tracker: Option<&Tracker>) {
    match tracker {
        Some(tracker) if tracker.appends() => info!("no new records above the mark"),
        Some(_) => warn!("no new records above the mark; writing an empty output"),
        None => warn!("the API returned no records; writing an empty output"),
    }
}

/// The files written after the output is in place (the incremental state, the summary)
/// must be writable before anything is fetched: failing on them afterwards would leave a
/// replaced output that nothing records.
fn check_after_files(config: &Config) -> Result<(), Error> {
    let state = config
        .incremental
        .as_ref()
        .map(|s| (&s.state, "the state file"));
    let summary = config
        .logging
        .summary
        .as_ref()
        .map(|s| (s, "--summary-json"));
    for (path, what) in state.into_iter().chain(summary) {
        place::check_writable(path)
            .map_err(|e| Error::output(e, format!("cannot write {what} {}", path.display())))?;
    }
    Ok(())
}

/// The paginator for the URL and parameters; an incremental run's mark goes to the API
/// with the rest of the query, in every request.
fn paginator(config: &Config, url: &url::Url, tracker: Option<&Tracker>) -> Paginator {
    let since = tracker.and_then(Tracker::since_param);
    let params: Vec<_> = config.request.params.iter().cloned().chain(since).collect();
    Paginator::new(url, &params, &config.pages)
}

/// The last line of a successful run, whose byte counts also go into `--summary-json`.
fn log_synced(summary: &Summary) {
    let written = summary.written;
    let compressed = match written.compressed {
        Some(bytes) => format!(", {bytes} compressed"),
        None => String::new(),
    };
    info!(
        records = summary.records,
        pages = summary.pages,
        output_bytes = written.bytes,
        output_bytes_compressed = written.compressed,
        "synced {} from {} in {:.1}s ({}) → {} ({}{compressed})",
        units::counted(summary.records, "record", "records"),
        units::counted(summary.pages, "page", "pages"),
        summary.elapsed.as_secs_f64(),
        units::counted(summary.retries, "retry", "retries"),
        summary.destination,
        units::counted(written.bytes, "byte", "bytes"),
    );
}

/// The URL to fetch, and for the demo the simulated API serving it, which must be kept
/// until the run ends.
fn target(target: &Target) -> Result<(url::Url, Option<sim::Server>), Error> {
    match target {
        Target::Url(url) => Ok((url.clone(), None)),
        Target::Demo => {
            let demo =
                sim::demo().map_err(|e| Error::Usage(format!("cannot start the demo API: {e}")))?;
            info!(
                "demo: a simulated orders API is listening on {}",
                demo.addr()
            );
            let url = url::Url::parse(&demo.url("/v1/orders")).expect("a loopback URL parses");
            Ok((url, Some(demo)))
        }
    }
}

/// Opens the output (resuming a checkpoint that matches this run) and fetches every page
/// into it, unless the resumed run had already fetched them all. A failed run's sink is
/// abandoned here, keeping what was fetched for `--resume`.
async fn sync(
    fetcher: &Fetcher,
    pages: &mut Paginator,
    config: &Config,
    url: &url::Url,
    interrupt: &Interrupt,
    mut tracker: Option<&mut Tracker>,
) -> Result<Sink, Error> {
    let mut identity = Identity::of(&config.job(), url, &config.output.form);
    let mut kept_bytes = None;
    if let Some(tracker) = tracker.as_deref() {
        identity = identity.with_incremental(&tracker.identity());
        if let (true, Some(out)) = (tracker.appends(), &config.out) {
            kept_bytes = Some(tracker.appending(out)?);
        }
    }
    let sink = Sink::open(
        &config.output,
        config.out.as_deref(),
        config.stream.as_deref(),
        &identity,
        pages.position(),
        kept_bytes,
    )?;
    if let Some(resumed) = sink.resumed() {
        pages.resume(
            resumed.position.clone(),
            resumed.pages,
            resumed.received,
            resumed.guard.clone(),
        );
        if let Some(tracker) = tracker.as_deref_mut() {
            tracker.restore(resumed.incremental.as_ref(), resumed.window.as_ref())?;
        }
        if resumed.done {
            return Ok(sink);
        }
    }
    let mut writer = Writer::start(sink, &config.output.form);
    let failed = writer.failed();
    // Stopping at a signal drops `fetch` at one of its waits, between pages; the pages
    // already handed to the writer are still written. A writer that failed has its own
    // error, reported below.
    let fetched = tokio::select! {
        result = fetch(fetcher, pages, config, &mut writer, tracker) => result,
        () = interrupt.requested() => Err(Error::Interrupted),
        () = failed => Ok(()),
    };
    // A failure to write is the one to report: the fetch may have stopped because of it.
    let written = writer.stop().await;
    let sink = writer.into_sink();
    match written.and(fetched) {
        Ok(()) => Ok(sink),
        Err(error) => Err(sink.abandon(error)),
    }
}

/// Writes the output once every page is in, on a blocking thread: the runtime's one
/// thread must stay free to notice a signal, which the write heeds at its next block.
async fn finish(sink: Sink, stop: Stop) -> Result<Written, Error> {
    match tokio::task::spawn_blocking(move || sink.finish(&stop)).await {
        Ok(finished) => finished,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The summary of a run that wrote no data (`--probe`, `--dry-run`).
fn nothing(started: Instant) -> Summary {
    Summary {
        records: 0,
        pages: 0,
        retries: 0,
        elapsed: started.elapsed(),
        destination: "standard output".into(),
        written: Written::default(),
    }
}

/// Requests page after page (several at once where `--concurrency` allows), handing each
/// page's records to the sink in page order, until the paginator says there are no more.
async fn fetch(
    fetcher: &Fetcher,
    pages: &mut Paginator,
    config: &Config,
    writer: &mut Writer,
    mut tracker: Option<&mut Tracker>,
) -> Result<(), Error> {
    let mut window = ahead::Window::new(fetcher, config.polite.concurrency);
    let mut windows = WindowClock::new(config.output.checkpoint_every);
    loop {
        let (page_url, response) = window.next(pages).await;
        let http::Response {
            status,
            headers,
            body,
        } = response.map_err(|error| blamed(pages, &page_url, error))?;
        let body = text(status, body, &page_url, pages.fetched() == 0)?;
        let body = Arc::new(body);
        let (page, records) = read(&body, &page_url, &headers, config, pages)?;
        let zipped = records::zipped(&page, &records, &body).map(Arc::new);
        let (body, page, mut records) = match &zipped {
            Some(zipped) => {
                let (page, records) = read(zipped, &page_url, &headers, config, pages)?;
                (zipped, page, records)
            }
            None => (&body, page, records),
        };
        let step = pages.advance(&headers, &page, &mut records)?;
        whole_characters(&records, pages.fetched(), &page_url)?;
        let arrived = !records.is_empty();
        let (step, cut) = sift(tracker.as_deref_mut(), &mut records, step, pages.fetched())?;
        let shortfall = match step {
            Step::Continue => None,
            _ if cut => None,
            _ => pages.shortfall(&step),
        };
        // A run short of what the API announced is not done: resuming asks again.
        let done = step != Step::Continue && shortfall.is_none();
        let progress = Progress {
            standing: pages.standing(done),
            incremental: tracker.as_deref().map(|tracker| checkpoint::Incremental {
                progress: tracker.progress(),
                window: windows.window(tracker, step != Step::Continue),
            }),
        };
        writer.page(body, &records, progress).await?;
        // A page that only taught the paginator something is not news.
        if arrived || step != Step::Continue {
            log_page(pages, records.len() as u64, writer.records());
        }
        if let Some(error) = shortfall {
            return Err(error);
        }
        if ended(step, pages) {
            return Ok(());
        }
    }
}

/// When an incremental run's window goes to the sink. Building it copies every record
/// remembered near the mark, which a page of records all at one value (a bulk import
/// stamped in one second) makes large: built every page, it made a run quadratic. A small
/// one goes every page, noted as it is; a large one only as often as the sink syncs
/// (`--checkpoint-every`), and with the last page, the states the sink can sync.
struct WindowClock {
    every: Duration,
    built: Option<Instant>,
}

/// Records near the mark below which the window is built every page: about what a note
/// holds (see `checkpoint::NOTED_WINDOW`).
const SMALL_WINDOW: usize = 16;

impl WindowClock {
    fn new(every: Duration) -> Self {
        WindowClock { every, built: None }
    }

    fn window(&mut self, tracker: &Tracker, last: bool) -> Option<serde_json::Value> {
        let due = last
            || tracker.window_len() <= SMALL_WINDOW
            || self.built.is_none_or(|at| at.elapsed() >= self.every);
        due.then(|| {
            self.built = Some(Instant::now());
            tracker.window()
        })
    }
}

/// Whether `step` ends the run, saying why where the user should know.
fn ended(step: Step, pages: &Paginator) -> bool {
    match step {
        Step::Continue => false,
        Step::Done(reason) => {
            tracing::debug!("last page: {reason}");
            true
        }
        Step::Capped => {
            warn!(
                "stopped at --max-pages {} before the API said it had no more pages",
                pages.fetched()
            );
            true
        }
    }
}

/// Drops the records that earlier runs of an incremental job wrote. With `--newest-first`,
/// a page that reached the mark is the last; then the run stops short of what the API
/// has on purpose (the second value), and is not held to its totals.
fn sift(
    tracker: Option<&mut Tracker>,
    records: &mut Vec<&str>,
    step: Step,
    page: u64,
) -> Result<(Step, bool), Error> {
    let reached = match tracker {
        Some(tracker) => tracker.page(records, page)?,
        None => false,
    };
    Ok(match step {
        Step::Continue if reached => (Step::Done("reached the incremental mark"), true),
        step => (step, false),
    })
}

/// The job an incremental state belongs to: the URL with its `--param` values, as logs
/// show it (credentials masked), and the field.
fn incremental_job(config: &Config) -> incremental::Job {
    let mut named = match &config.target {
        Target::Url(url) => url.clone(),
        // The demo listens on a new port each run but is always the same API.
        Target::Demo => url::Url::parse("http://demo/v1/orders").expect("a URL"),
    };
    if !config.request.params.is_empty() {
        named.query_pairs_mut().extend_pairs(&config.request.params);
    }
    let field = config.incremental.as_ref().map(|s| s.field.clone());
    incremental::Job {
        url: redact::url(&named),
        field: field.unwrap_or_default(),
    }
}

/// The page line: what the page brought, and the count so far against any total.
fn log_page(pages: &Paginator, added: u64, total: u64) {
    let number = pages.fetched();
    let of = match pages.total_records() {
        Some(expected) => format!(" of {}", indicatif::HumanCount(expected)),
        None => String::new(),
    };
    info!(
        target: logging::PAGE_TARGET,
        page = number,
        records = total,
        expected_records = pages.total_records(),
        "page {number}: +{} ({} so far{of})",
        units::counted(added, "record", "records"),
        indicatif::HumanCount(total)
    );
}

/// A refusal (400, 422) that names a parameter of `url`, with whose it was.
fn blamed(pages: &Paginator, url: &url::Url, mut error: Error) -> Error {
    if let Error::Permanent {
        status: 400 | 422,
        body,
        ..
    } = &mut error
    {
        if let Some(note) = pages.blame(url, body) {
            body.push_str(&format!(" ({note})"));
        }
    }
    error
}

/// The body as text. JSON is UTF-8: checked once here, the body is then read, and handed
/// to the writer, as text without checking it again. No content (a 204, or an empty body
/// after the first page) is a page with no records: the end, unless the API had said more
/// would follow.
pub(crate) fn text(
    status: reqwest::StatusCode,
    body: bytes::Bytes,
    url: &url::Url,
    first: bool,
) -> Result<String, Error> {
    let no_content = status == reqwest::StatusCode::NO_CONTENT || (body.is_empty() && !first);
    let body = match no_content {
        true => b"[]".to_vec(),
        false => Vec::from(body),
    };
    json::text(body).map_err(|e| not_json(url, e.utf8_error().to_string(), e.as_bytes()))
}

/// Reads a page's body and finds its records. A `--records` pointer that names nothing in
/// the first response is the user's to fix (a usage error), not a bad response.
pub(crate) fn read<'a>(
    body: &'a str,
    url: &url::Url,
    headers: &reqwest::header::HeaderMap,
    config: &Config,
    pages: &mut Paginator,
) -> Result<(records::Page<'a>, Vec<&'a str>), Error> {
    let page =
        records::Page::parse(body).map_err(|e| not_json(url, e.to_string(), body.as_bytes()))?;
    let first = pages.fetched() == 0;
    let records = page
        .records(&pages.select(&page, &config.records)?)
        .map_err(|e| match (&config.records.pointer, first) {
            (Some(pointer), true) => paginate::absent("--records", pointer, &page, headers),
            _ => e,
        })?;
    Ok((page, records))
}

/// Refuses a page with a record holding half of a UTF-16 surrogate pair (`"\ud800"`), before
/// any of it is written, whatever the format: it is no character, so a CSV or TSV cell
/// could only hold a replacement for it, and JSON text holding it is refused or mangled by
/// the parsers downstream (serde_json refuses it too). Every format must treat it alike.
fn whole_characters(records: &[&str], page: u64, url: &url::Url) -> Result<(), Error> {
    for (n, record) in (1..).zip(records) {
        let Some(at) = json::lone_surrogate(record) else {
            continue;
        };
        let place = match records::pointer_to(record, at) {
            Some((pointer, true)) if pointer.is_empty() => "a key of the record".to_string(),
            Some((pointer, true)) => format!("a key in {pointer}"),
            Some((pointer, false)) if !pointer.is_empty() => format!("field {pointer}"),
            _ => "the record".to_string(),
        };
        return Err(Error::BadResponse(format!(
            "{}: page {page}, record {n}: {place} holds `{}`, half of a UTF-16 surrogate \
             pair, which is no character; no output format can hold it as text",
            redact::url(url),
            &record[at..at + 6]
        )));
    }
    Ok(())
}

fn not_json(url: &url::Url, why: String, body: &[u8]) -> Error {
    Error::BadResponse(format!(
        "{}: the response is not JSON ({why}); it starts with: {}",
        redact::url(url),
        http::snippet(body)
    ))
}
