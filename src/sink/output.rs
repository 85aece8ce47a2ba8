//! Writing the records out: to standard output, or to a file that is replaced only when
//! the whole run succeeded.
//!
//! A run to a file spools every page durably into a partial file beside it and checkpoints
//! as pages come in (see [`crate::sink::checkpoint`]), so a run that fails or is interrupted can
//! be resumed. At the end, the partial file is renamed over the output when it already is
//! the output byte for byte (JSON Lines; a table whose columns all showed on the first
//! page), or else the output is written under a temporary name and renamed into place.
//! A run to standard output streams JSON Lines page by page, and so a table whose columns
//! are fixed (`--columns`); it writes the other formats at the end from an anonymous spool,
//! as a table's header is known only once every record has shown its keys. Either way
//! the output may be compressed as it is written (see [`crate::sink::compress`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fs4::FileExt;
use fs4::TryLockError;
use tracing::{info, warn};

use crate::error::Error;
use crate::paginate::Position;
use crate::place;
use crate::sink::checkpoint::{self, Checkpoint, Files, Identity, Notes, Progress, State};
use crate::sink::compress::{Compressed, Compression, Written};
use crate::sink::rows::Form;
use crate::sink::rows::{Encoded, Layout};
use crate::sink::spool::Spool;
use crate::sink::stop::{Stop, Stoppable};

/// What the output looks like, and whether a run continues an interrupted one.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: Format,
    /// How the output itself is compressed; the partial file beside it never is.
    pub compression: Compression,
    /// How records are spooled; decided by the format and the column options.
    pub form: Form,
    /// Continue from the checkpoint beside `--out`, if there is one.
    pub resume: bool,
    /// The least time between two syncs of the partial file and its checkpoint.
    pub checkpoint_every: Duration,
    /// `--max-columns`: the most columns a table may have.
    pub max_columns: usize,
    /// `--test-final-write-pause`: zero but in the tests.
    pub final_write_pause: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row, quoted like CSV where needed.
    Tsv,
    /// One JSON record per line, exactly as the API sent it (whitespace removed).
    #[value(alias = "ndjson")]
    Jsonl,
    /// One JSON array of every record, exactly as the API sent them.
    Json,
}

impl Format {
    /// The format an output file's extension asks for; csv when it names none. An
    /// extension apifetch does not write (`.parquet`, `.xlsx`, `.bz2`) is refused: writing
    /// CSV under that name would be silently wrong. A compression's extension (`.gz`) is
    /// taken off first (see [`Compression::from_path`]).
    pub fn from_path(path: &Path) -> Result<Self, String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            None | Some("csv") => Ok(Format::Csv),
            Some("tsv") => Ok(Format::Tsv),
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            Some("json") => Ok(Format::Json),
            Some(ext @ ("bz2" | "xz" | "lz4" | "br")) => Err(format!(
                "{}: apifetch compresses with gzip (.gz) or zstd (.zst), not .{ext}; name the \
                 output .gz or .zst, or pipe standard output through another compressor",
                path.display()
            )),
            Some(ext) => Err(format!(
                "{}: apifetch does not write .{ext} files; pass --format csv, tsv, jsonl or \
                 json to write one of those under this name",
                path.display()
            )),
        }
    }

    /// Rows and columns (flattened records) rather than JSON records.
    pub fn is_tabular(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::Json => "json",
        }
    }
}

/// Where records go as pages arrive, and how they become the output at the end.
pub struct Sink {
    route: Route,
    format: Format,
    compression: Compression,
    /// `--test-final-write-pause`: a pause before each block of the final write.
    pause: Duration,
}

enum Route {
    /// JSON Lines to standard output (or a device or pipe): each page is written as it
    /// arrives.
    Stream { out: Pipe, records: u64 },
    /// Standard output (or a device or pipe) in the other formats: spooled to an anonymous
    /// file. A table whose columns are fixed is passed on page by page, as no later record
    /// can change its header; `passed` counts the spool's bytes passed on so far. Any
    /// other waits for the end.
    Spooled {
        spool: Box<Spool>,
        out: Pipe,
        passed: Option<u64>,
    },
    /// A file: spooled durably into the partial file beside it, checkpointed per page.
    File(Box<Partial>),
}

struct Partial {
    out: PathBuf,
    files: Files,
    spool: Spool,
    /// Describes the last complete page, and the last one synced.
    checkpoint: Checkpoint,
    /// An incremental run's last state with its window (see [`Checkpoint::complete`]):
    /// what a failed run syncs when its latest state lacks the window.
    complete: Option<State>,
    /// The checkpoint file, to note each page in.
    notes: Notes,
    /// What the checkpoint is saved for, and the credentials to mask in it.
    identity: Identity,
    /// This run carries on one that was interrupted.
    resumed: bool,
    /// `--append`: what of the existing output the new records go after.
    append: Option<Append>,
    /// `--checkpoint-every`: the least time between two syncs.
    every: Duration,
    synced_at: Instant,
    /// Pages and records the checkpoint file holds as its latest state.
    written: (u64, u64),
    /// Bytes of the partial file as of the last sync started ahead, and that sync.
    synced: u64,
    syncing: Option<JoinHandle<()>>,
}

/// The existing output that `--append` adds to.
struct Append {
    /// Its bytes to keep: what the last completed run left.
    keep: u64,
    /// The columns its header names (none for JSON Lines or an empty table), which the
    /// new rows must fit.
    columns: Vec<String>,
}

impl Append {
    fn of(out: &Path, keep: u64, form: &crate::sink::rows::Form) -> Result<Self, Error> {
        let columns = match keep {
            0 => Vec::new(),
            _ => File::open(out)
                .and_then(|file| Spool::header_of(&file, keep, form))
                .map_err(|e| Error::output(e, format!("cannot read {}", out.display())))?,
        };
        Ok(Append { keep, columns })
    }

    /// A table's new rows would not line up under the existing header: say what to do.
    /// An incremental run writes only the records above the mark, so writing the output
    /// with every record takes a run without the state; it writes what the API holds now,
    /// so the old file is moved aside, never overwritten: the API may no longer hold all
    /// of its records.
    fn misfit(out: &Path, why: &str) -> Error {
        let out = out.display();
        Error::Usage(format!(
            "--append: {why}; appending would misalign the rows of {out}: to write a table \
             with every record, move {out} aside and remove its state file ({out}.state \
             unless --state names another), then run again: it writes every record the API \
             holds now, so replacing the old file with it is safe only if the API still \
             holds every record; or sync JSON Lines (--format jsonl) into a new --out, where \
             any column fits"
        ))
    }

    /// Checks that the spool's table has exactly the output's columns, in their order: its
    /// rows go under that header as they are. A spool seeded with the header starts so,
    /// and only a new column can break it; the partial file of a run begun otherwise may
    /// name them in another order, or lack some, and its rows would land in the wrong
    /// columns or fall short.
    fn check(&self, spool: &Spool, out: &Path) -> Result<(), Error> {
        let Some(layout) = spool.layout().filter(|_| !self.columns.is_empty()) else {
            return Ok(());
        };
        let rows = &layout.columns.as_slice()[..layout.width];
        let header = &self.columns;
        let column = |i| (rows.get_index(i), header.get(i));
        let Some(at) = (0..rows.len().max(header.len())).find(|&i| {
            let (row, head) = column(i);
            row != head
        }) else {
            return Ok(());
        };
        let name = out.display();
        let why = match column(at) {
            (Some(new), None) => format!("the records now have a column `{new}` that {name} lacks"),
            (None, Some(lacking)) => {
                format!("the rows to append lack the column `{lacking}` of the header of {name}")
            }
            (row, head) => format!(
                "column {} of the rows to append is `{}` where the header of {name} has `{}`",
                at + 1,
                row.map_or("", String::as_str),
                head.map_or("", String::as_str),
            ),
        };
        Err(Append::misfit(out, &why))
    }

    /// Copies the kept bytes of the old output `out` to the start of the new one, and says
    /// how many there were. `--append` is never compressed, so they go straight from file
    /// to file, where `io::copy` uses `copy_file_range` (no trip through this process; a
    /// shared extent on file systems that can), in chunks between which a stop is heeded.
    fn copy_kept(&self, out: &Path, new: &Stoppable<&File>) -> io::Result<u64> {
        if self.keep == 0 {
            // A first run: there may be no old output at all.
            return Ok(0);
        }
        let old = File::open(out)?;
        let mut file = *new.get_ref();
        let mut left = self.keep;
        while left > 0 {
            new.ready()?;
            match io::copy(&mut (&old).take(left.min(COPY_CHUNK)), &mut file)? {
                0 => return Err(io::Error::other("it shrank while this run appended to it")),
                copied => left -= copied,
            }
        }
        Ok(self.keep)
    }

    /// Whether the old output has a header the new rows go under.
    fn headed(&self) -> bool {
        !self.columns.is_empty()
    }
}

/// The most of the old output copied at once by `--append`: small enough that a stop is
/// heeded within a fraction of a second even on a slow disk.
const COPY_CHUNK: u64 = 8 << 20;

/// Bytes written to the partial file since the last sync beyond which another is started
/// in the background (see [`Spool::sync_ahead`]).
const SYNC_AHEAD: u64 = 2 << 20;

/// Standard output, or a device or pipe `--out` named, written front to back.
struct Pipe {
    out: BufWriter<Compressed<Box<dyn Write + Send>>>,
    name: String,
}

impl Pipe {
    fn open(stream: Option<&Path>, compression: Compression) -> Result<Self, Error> {
        let (out, name): (Box<dyn Write + Send>, String) = match stream {
            None => (Box::new(io::stdout()), "stdout".into()),
            Some(path) => {
                // Appending: reopening /dev/stdout when the shell redirected it to a file
                // (`>> all.csv`) gives a new file offset, and writing at 0 would overwrite
                // what the file held.
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::output(e, format!("cannot write {}", path.display())))?;
                (Box::new(file), path.display().to_string())
            }
        };
        let out = Compressed::new(compression, out)
            .map_err(|e| Error::output(e, "cannot start compressing"))?;
        Ok(Pipe {
            out: BufWriter::with_capacity(1 << 16, out),
            name,
        })
    }

    fn failed(&self, e: io::Error) -> Error {
        Error::output(e, format!("cannot write to {}", self.name))
    }

    /// Writes what is left, ending a compressed stream.
    fn finish(self) -> Result<Written, Error> {
        let Pipe { out, name } = self;
        let finished = out.into_inner().map_err(io::IntoInnerError::into_error);
        finished
            .and_then(Compressed::finish)
            .map(|(_, written)| written)
            .map_err(|e| Error::output(e, format!("cannot write to {name}")))
    }
}

impl Sink {
    /// Prepares the output. A run to a file starts a new partial file, discarding any an
    /// earlier run left, or with `--resume` carries on the one its checkpoint describes.
    /// `start` is where a new run's first request goes. With `--append`, `kept_bytes` is
    /// how much of the existing `out` the new records go after (see
    /// [`crate::incremental::Tracker::appending`]).
    pub fn open(
        output: &Settings,
        out: Option<&Path>,
        stream: Option<&Path>,
        identity: &Identity,
        start: &Position,
        kept_bytes: Option<u64>,
    ) -> Result<Self, Error> {
        let route = match out {
            None if output.format == Format::Jsonl => Route::Stream {
                out: Pipe::open(stream, output.compression)?,
                records: 0,
            },
            None => {
                let file = tempfile::tempfile()
                    .map_err(|e| Error::output(e, "cannot create a temporary file"))?;
                let fixed = matches!(&output.form, Form::Cells { only: Some(_), .. });
                Route::Spooled {
                    spool: Box::new(
                        Spool::new(file, output.form.clone()).with_max_columns(output.max_columns),
                    ),
                    out: Pipe::open(stream, output.compression)?,
                    passed: fixed.then_some(0),
                }
            }
            Some(out) => {
                let mut partial = Partial::open(out, output, identity, start)?;
                if let Some(keep) = kept_bytes {
                    partial.append(Append::of(out, keep, &output.form)?)?;
                }
                Route::File(Box::new(partial))
            }
        };
        Ok(Sink {
            route,
            format: output.format,
            compression: output.compression,
            pause: output.final_write_pause,
        })
    }

    /// Where the run this one resumes stopped, if it resumes one.
    pub fn resumed(&self) -> Option<&State> {
        match &self.route {
            Route::File(partial) if partial.resumed => Some(&partial.checkpoint.latest),
            _ => None,
        }
    }

    /// Takes the records of one page, and their rows if they were `encoded` ahead;
    /// `progress` says where the run continues after it.
    pub fn page(
        &mut self,
        records: &[&str],
        encoded: Option<&Encoded>,
        progress: Progress,
    ) -> Result<(), Error> {
        match &mut self.route {
            Route::Stream { out, records: n } => {
                let written: io::Result<()> = (records.iter())
                    .try_for_each(|record| crate::shape::records::write_line(&mut out.out, record));
                *n += records.len() as u64;
                written
                    .and_then(|()| out.out.flush())
                    .map_err(|e| out.failed(e))
            }
            Route::Spooled { spool, out, passed } => {
                spool.add_page(records, encoded)?;
                // Marked like a partial file, so the table settles after the first page.
                let mark =
                    (spool.mark()).map_err(|e| Error::output(e, "cannot spool records to disk"))?;
                let Some(passed) = passed else {
                    return Ok(());
                };
                (spool.copy_from(*passed, &mut out.out))
                    .and_then(|_| out.out.flush())
                    .map_err(|e| out.failed(e))?;
                *passed = mark.len;
                Ok(())
            }
            Route::File(partial) => partial.page(records, encoded, progress),
        }
    }

    /// The columns of a table's rows now, to encode rows ahead with.
    pub fn layout(&self) -> Option<Layout> {
        self.spool()?.layout()
    }

    /// How many columns a table has now (see [`Spool::columns`]).
    pub fn columns(&self) -> Option<usize> {
        self.spool()?.columns()
    }

    fn spool(&self) -> Option<&Spool> {
        match &self.route {
            Route::Stream { .. } => None,
            Route::Spooled { spool, .. } => Some(spool),
            Route::File(partial) => Some(&partial.spool),
        }
    }

    /// Records taken so far, including those of the run being resumed.
    pub fn records(&self) -> u64 {
        match &self.route {
            Route::Stream { records, .. } => *records,
            Route::Spooled { spool, .. } => spool.records(),
            Route::File(partial) => partial.spool.records(),
        }
    }

    /// How the destination is named in the summary line.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::File(partial) => partial.out.display().to_string(),
            Route::Stream { out, .. } | Route::Spooled { out, .. } => out.name.clone(),
        }
    }

    /// Writes the output once every page is in, and says how many bytes it took. A file
    /// is synced, then renamed over the target (the partial file itself, or the output
    /// written under a temporary name in the same directory), so readers see either the
    /// old file or the complete new one; then the partial file and checkpoint go. A `stop`
    /// requested before the output is in place ends the write at its next block, keeping
    /// the partial file and checkpoint.
    pub fn finish(self, stop: &Stop) -> Result<Written, Error> {
        let (format, pause) = (self.format, self.pause);
        match self.route {
            Route::Stream { out, .. }
            | Route::Spooled {
                out,
                passed: Some(_),
                ..
            } => out.finish(),
            Route::Spooled {
                mut spool, mut out, ..
            } => {
                let stoppable = Stoppable::new(&mut out.out, stop.clone(), pause);
                write(format, &mut spool, stoppable)
                    .map_err(|e| stopped_or(stop, || out.failed(e)))?;
                out.finish()
            }
            Route::File(partial) => partial.finish(format, self.compression, stop, pause),
        }
    }

    /// Turns the error that stopped the run into the one to report. A file run that saved
    /// pages keeps its partial file and checkpoint and says how to carry on.
    pub fn abandon(self, error: Error) -> Error {
        match self.route {
            Route::File(partial) => partial.keep(error),
            _ => error,
        }
    }
}

impl Partial {
    fn open(
        out: &Path,
        output: &Settings,
        identity: &Identity,
        start: &Position,
    ) -> Result<Self, Error> {
        let files = Files::beside(out);
        let cannot_write =
            |e: io::Error| Error::output(e, format!("cannot write beside {}", out.display()));
        // Locked before anything is read or changed, and held to the end of the run.
        let existing =
            match place::open_own(OpenOptions::new().read(true).write(true), &files.partial) {
                Ok(file) => Some(lock(file, &files.partial, out)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(cannot_write(e)),
            };
        if output.resume {
            if let Some(checkpoint) = Checkpoint::load(&files.checkpoint, identity)? {
                return Partial::resume(out, output, identity, files, checkpoint, existing);
            }
            info!(
                "no checkpoint at {}: starting from the beginning",
                files.checkpoint.display()
            );
        } else if files.checkpoint.exists() {
            info!(
                "discarding the partial output of an earlier run in {} (--resume continues it)",
                files.partial.display()
            );
        }
        // The old checkpoint goes first: it must never describe the new partial file.
        files.remove_checkpoint().map_err(cannot_write)?;
        let file = emptied(existing, &files, out)?;
        let checkpoint = Checkpoint::start(identity, start.clone());
        let notes = (checkpoint.save(&files.checkpoint, identity)).map_err(cannot_write)?;
        let spool = Spool::new(file, output.form.clone()).with_max_columns(output.max_columns);
        Ok(Partial::new(
            out, output, identity, files, spool, checkpoint, notes,
        ))
    }

    /// Carries on the partial file from the latest state its checkpoint saved, or, if the
    /// file does not hold all that state describes (it was not synced before the system
    /// went down), from the last synced one.
    fn resume(
        out: &Path,
        output: &Settings,
        identity: &Identity,
        files: Files,
        mut checkpoint: Checkpoint,
        file: Option<File>,
    ) -> Result<Self, Error> {
        let unusable = |why: String| checkpoint::cannot_resume(&files.partial, why);
        let file = file.ok_or_else(|| unusable("it is missing".into()))?;
        let cannot_write = |e: io::Error| match e.kind() {
            io::ErrorKind::InvalidData => unusable(e.to_string()),
            _ => Error::output(e, format!("cannot write {}", files.partial.display())),
        };
        let marks = [&checkpoint.latest.spool, &checkpoint.synced().spool];
        let (spool, at) = Spool::reopen(file, output.form.clone(), &marks).map_err(cannot_write)?;
        let mut spool = spool.with_max_columns(output.max_columns);
        if at > 0 {
            warn!(
                "{} lacks pages its checkpoint noted after page {}, the last one synced \
                 (the system went down before they reached the disk): fetching them again",
                files.partial.display(),
                checkpoint.synced().pages
            );
            checkpoint.fall_back();
        }
        // What is taken over is synced at once: the run that wrote it may not have.
        spool.commit().map_err(cannot_write)?;
        checkpoint.sync();
        let notes = checkpoint
            .save(&files.checkpoint, identity)
            .map_err(cannot_write)?;
        info!(
            "resuming after page {}: {} already in {}",
            checkpoint.latest.pages,
            crate::report::units::counted(checkpoint.latest.spool.records, "record", "records"),
            files.partial.display()
        );
        if let Some(age) = checkpoint.stale() {
            warn!(
                "the run being resumed began {} hours ago: the output will mix records \
                 fetched then with records fetched now; run without --resume to start afresh",
                age.as_secs() / 3600
            );
        }
        Ok(Partial {
            resumed: true,
            ..Partial::new(out, output, identity, files, spool, checkpoint, notes)
        })
    }

    /// Makes this run's records go after those of the existing output. A table starts
    /// with the output's columns, so its rows line up under that header; one resumed with
    /// rows already must have them. An output without a header (none yet, or empty) gets
    /// the whole table, header included, so any columns do.
    fn append(&mut self, append: Append) -> Result<(), Error> {
        if self.spool.layout().is_some() {
            append.check(&self.spool, &self.out)?;
        } else if append.headed() && !self.spool.seed_columns(&append.columns) {
            let why = format!("--columns is not the header of {}", self.out.display());
            return Err(Append::misfit(&self.out, &why));
        }
        self.append = Some(append);
        Ok(())
    }

    /// A partial file just synced, whose checkpoint was just saved into `notes`.
    fn new(
        out: &Path,
        output: &Settings,
        identity: &Identity,
        files: Files,
        spool: Spool,
        checkpoint: Checkpoint,
        notes: Notes,
    ) -> Self {
        Partial {
            out: out.to_path_buf(),
            files,
            spool,
            written: (checkpoint.latest.pages, checkpoint.latest.spool.records),
            checkpoint,
            complete: None,
            notes,
            identity: identity.clone(),
            resumed: false,
            append: None,
            every: output.checkpoint_every,
            synced_at: Instant::now(),
            synced: 0,
            syncing: None,
        }
    }

    /// Appends a page, and notes it in the checkpoint: a killed process then loses at most
    /// the page after it. Both are synced after the last page, and when
    /// `--checkpoint-every` has passed since the last sync.
    fn page(
        &mut self,
        records: &[&str],
        encoded: Option<&Encoded>,
        progress: Progress,
    ) -> Result<(), Error> {
        self.spool.add_page(records, encoded).map_err(|e| match e {
            Error::Output(e) => self.partial_error(e),
            e => e,
        })?;
        if let Some(append) = &self.append {
            append.check(&self.spool, &self.out)?;
        }
        let mark = self.spool.mark().map_err(|e| self.partial_error(e))?;
        let (last, len) = (progress.standing.done, mark.len);
        let windowed = progress
            .incremental
            .as_ref()
            .is_some_and(|i| i.window.is_some());
        self.checkpoint.advance(progress, mark);
        if windowed {
            self.complete = Some(self.checkpoint.latest.clone());
        }
        if len >= self.synced + SYNC_AHEAD && self.syncing.as_ref().is_none_or(|s| s.is_finished())
        {
            self.syncing = Some(self.spool.sync_ahead().map_err(|e| self.partial_error(e))?);
            self.synced = len;
        }
        let due = last || self.synced_at.elapsed() >= self.every;
        match due && self.checkpoint.complete() {
            true => self.save(),
            false => self.note(),
        }
    }

    /// A failure to write the partial file, named.
    fn partial_error(&self, e: impl Into<anyhow::Error>) -> Error {
        Error::output(e, format!("cannot write {}", self.files.partial.display()))
    }

    /// Syncs the partial file, then replaces the checkpoint, synced too: after a crash at
    /// any point, its synced state describes only pages wholly on disk. Syncing is what
    /// costs, so it happens at most once per `--checkpoint-every` while pages stream in.
    fn save(&mut self) -> Result<(), Error> {
        self.spool.commit().map_err(|e| self.partial_error(e))?;
        self.checkpoint.sync();
        let saved = self.checkpoint.save(&self.files.checkpoint, &self.identity);
        self.notes = saved.map_err(|e| self.checkpoint_error(e))?;
        self.synced_at = Instant::now();
        self.wrote();
        Ok(())
    }

    /// Notes the latest state in the checkpoint, syncing nothing.
    fn note(&mut self) -> Result<(), Error> {
        let noted = self.notes.note(&self.checkpoint, &self.identity);
        noted.map_err(|e| self.checkpoint_error(e))?;
        self.wrote();
        Ok(())
    }

    fn wrote(&mut self) {
        let latest = &self.checkpoint.latest;
        self.written = (latest.pages, latest.spool.records);
    }

    fn checkpoint_error(&self, e: io::Error) -> Error {
        let path = self.files.checkpoint.display();
        Error::output(e, format!("cannot write {path}"))
    }

    /// Puts the output in place, then removes the partial file and the checkpoint. The
    /// partial file stays locked until the end, so another run cannot take it over midway.
    /// A compressed output is always written anew: the partial file holds plain text. An
    /// output `--append` has nothing to add to is left as it is.
    fn finish(
        mut self,
        format: Format,
        compression: Compression,
        stop: &Stop,
        pause: Duration,
    ) -> Result<Written, Error> {
        let records = self.spool.records();
        let (partial, out) = (self.files.partial.clone(), self.out.display().to_string());
        let failed = |e: io::Error| {
            let error = stopped_or(stop, || Error::output(e, format!("cannot write {out}")));
            kept(error, records, &partial)
        };
        if let Some(bytes) = self.nothing_to_append() {
            info!("{out} is left as it was");
            self.files.remove().map_err(|e| removing(e, &partial))?;
            let compressed = None;
            return Ok(Written { bytes, compressed });
        }
        let plain = compression == Compression::None;
        if plain && self.append.is_none() && format != Format::Json && self.spool.is_whole() {
            let bytes = self.rename_into_place(stop).map_err(failed)?;
            let compressed = None;
            return Ok(Written { bytes, compressed });
        }
        // The one step that can take long after the last page: a rewrite of every record
        // (after the old ones, for `--append`, which is never compressed).
        info!(
            "all {} are in; writing {out}",
            crate::report::units::counted(records, "record", "records")
        );
        let written = (self.write_anew(format, compression, stop, pause)).map_err(failed)?;
        self.files.remove().map_err(|e| removing(e, &partial))?;
        Ok(written)
    }

    /// Writes the output under a temporary name renamed over it: for `--append` the kept
    /// bytes of the old one, then the new rows; else every record in `format`, compressed
    /// as asked. Stops at the next block once `stop` is requested.
    fn write_anew(
        &mut self,
        format: Format,
        compression: Compression,
        stop: &Stop,
        pause: Duration,
    ) -> io::Result<Written> {
        let append = self.append.take();
        let (_, written) = place::replace(&self.out, |file| {
            let stoppable = Stoppable::new(&*file, stop.clone(), pause);
            let kept = match &append {
                Some(append) => append.copy_kept(&self.out, &stoppable)?,
                None => 0,
            };
            let compressed = Compressed::new(compression, stoppable)?;
            let mut out = BufWriter::with_capacity(1 << 16, compressed);
            match &append {
                Some(append) => self.spool.write_appended(&mut out, append.headed())?,
                None => write(format, &mut self.spool, &mut out)?,
            }
            let out = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            let (_, written) = out.finish()?;
            let bytes = kept + written.bytes;
            Ok(Written { bytes, ..written })
        })?;
        Ok(written)
    }

    /// With `--append` and no new records, the length of the output if it already is what
    /// this run would write: exactly the bytes the last completed run left. It is then
    /// left alone, not copied into a new file: same inode, same time, no cost. (Bytes past
    /// those, of a run that stopped before saving its state, must still be cut off.)
    fn nothing_to_append(&self) -> Option<u64> {
        let append = self.append.as_ref()?;
        let on_disk = fs::metadata(&self.out).ok()?.len();
        (self.spool.records() == 0 && on_disk == append.keep).then_some(on_disk)
    }

    /// Renames the partial file, the output byte for byte, over the output, and says how
    /// many bytes it holds. The checkpoint goes first: one left behind by a crash right
    /// after the rename would describe a partial file that is no longer there, and every
    /// later `--resume` would fail; a crash right before it merely starts the next run
    /// afresh. A failed rename puts it back.
    fn rename_into_place(&mut self, stop: &Stop) -> io::Result<u64> {
        let file = self.spool.file()?;
        let meta = file.metadata()?;
        let own = meta.permissions();
        // As with `replace`, the output keeps the mode of the file it replaces.
        if let Ok(old) = fs::metadata(&self.out) {
            file.set_permissions(old.permissions())?;
        }
        file.sync_all()?;
        // The last moment a stop keeps the partial file: after the rename, the run is done.
        stop.check()
            .inspect_err(|_| drop(file.set_permissions(own.clone())))?;
        self.files.remove_checkpoint()?;
        fs::rename(&self.files.partial, &self.out).inspect_err(|_| {
            // Left as it was, so that `--resume` can carry on with it.
            let restored = file.set_permissions(own).is_ok()
                && (self.checkpoint)
                    .save(&self.files.checkpoint, &self.identity)
                    .is_ok();
            if !restored {
                tracing::debug!("could not restore the partial file's mode and checkpoint");
            }
        })?;
        Ok(meta.len())
    }

    fn keep(mut self, error: Error) -> Error {
        // Sync the pages since the last sync, so that not even a power cut makes resuming
        // redo them; if that fails too (a full disk), the checkpoint last written stands.
        // A state without its window cannot be synced: the last one with it is, and a
        // resume cuts the partial file back to it.
        let incomplete = !self.checkpoint.complete();
        if incomplete {
            match self.complete.take() {
                Some(state) => self.checkpoint.latest = state,
                None => self.checkpoint.fall_back(),
            }
        }
        let unsynced = *self.checkpoint.synced() != self.checkpoint.latest;
        let saved = unsynced && self.save().is_ok();
        if unsynced && !saved {
            tracing::debug!("could not save the last pages; the previous checkpoint stands");
        }
        // What a resume will find: the note on disk lacks the window, so the last sync.
        if incomplete && !saved {
            let synced = self.checkpoint.synced();
            self.written = (synced.pages, synced.spool.records);
        }
        let (pages, records) = self.written;
        if pages == 0 {
            // Nothing worth resuming: a new run would start in the same place.
            let _ = self.files.remove();
            return error;
        }
        kept(error, records, &self.files.partial)
    }
}

/// Takes an exclusive lock on a partial file, so that two runs writing the same output (a
/// cron job that outlasts its interval) cannot mix their pages. Where the file system
/// cannot lock, the run goes on unprotected.
fn lock(file: File, partial: &Path, out: &Path) -> Result<File, Error> {
    // Through fs4 rather than `File::try_lock`, which needs Rust 1.89.
    match FileExt::try_lock(&file) {
        // Between opening and locking, the run that held the file may have finished and
        // renamed it into place (or removed it): then it is that run's output.
        Ok(()) if !still_at(&file, partial) => Err(Error::output(
            anyhow::anyhow!("its partial file was renamed or removed as this run opened it"),
            format!("another apifetch run was writing {}", out.display()),
        )),
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::output(
            anyhow::anyhow!("its partial file is locked"),
            format!("another apifetch run is writing {}", out.display()),
        )),
        Err(TryLockError::Error(e)) => {
            tracing::debug!("cannot lock the partial file ({e}); going on without a lock");
            Ok(file)
        }
    }
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => (open.dev(), open.ino()) == (named.dev(), named.ino()),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, _path: &Path) -> bool {
    true
}

/// A failure to write that a stop request caused is the stop, not a write error.
fn stopped_or(stop: &Stop, error: impl FnOnce() -> Error) -> Error {
    match stop.is_set() {
        true => Error::Interrupted,
        false => error(),
    }
}

/// The partial file for a run that starts from the beginning: the one already locked, or
/// a new one, emptied.
fn emptied(existing: Option<File>, files: &Files, out: &Path) -> Result<File, Error> {
    let cannot_write =
        |e: io::Error| Error::output(e, format!("cannot write beside {}", out.display()));
    let file = match existing {
        Some(file) => file,
        None => {
            let created = place::open_own(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
                &files.partial,
            )
            .map_err(cannot_write)?;
            lock(created, &files.partial, out)?
        }
    };
    // Not truncated on opening: that would have cut a file another run has locked.
    // (A device such as /dev/full has no length to cut.)
    if file.metadata().map_err(cannot_write)?.len() > 0 {
        file.set_len(0).map_err(cannot_write)?;
    }
    Ok(file)
}

/// A failure to remove the partial file (or its checkpoint) once the output is in place.
fn removing(e: io::Error, partial: &Path) -> Error {
    Error::output(e, format!("cannot remove {}", partial.display()))
}

fn kept(error: Error, records: u64, partial: &Path) -> Error {
    Error::Kept {
        error: Box::new(error),
        records,
        partial: partial.display().to_string(),
    }
}

/// The whole output from a spool, in `format`.
fn write(format: Format, spool: &mut Spool, out: impl Write) -> io::Result<()> {
    match format {
        Format::Csv | Format::Tsv => spool.write_table(out),
        Format::Json => write_array(spool, out),
        // The spool of JSON lines is the output, copied when it cannot be renamed.
        Format::Jsonl => spool.copy_from(0, out).map(drop),
    }
}

/// One JSON array, a record per line: `[` … `]`, or `[]` without records.
fn write_array(spool: &mut Spool, mut out: impl Write) -> io::Result<()> {
    if spool.records() == 0 {
        out.write_all(b"[]\n")?;
        return out.flush();
    }
    let mut first = true;
    out.write_all(b"[\n")?;
    spool.replay_lines(|line| {
        if !std::mem::take(&mut first) {
            out.write_all(b",\n")?;
        }
        out.write_all(line)
    })?;
    out.write_all(b"\n]\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        for (path, format) in [
            ("a.csv", Format::Csv),
            ("a.TSV", Format::Tsv),
            ("x/a.jsonl", Format::Jsonl),
            ("a.ndjson", Format::Jsonl),
            ("a.json", Format::Json),
            ("a", Format::Csv),
            ("/dev/stdout", Format::Csv),
        ] {
            assert_eq!(Format::from_path(Path::new(path)), Ok(format), "{path}");
        }
        for path in ["a.parquet", "a.xlsx", "a.txt", "orders.csv.bz2", "a.gz"] {
            assert!(Format::from_path(Path::new(path)).is_err(), "{path}");
        }
    }

    #[test]
    fn appended_rows_must_have_the_header_s_columns_in_its_order() {
        let form = Form::Cells {
            sep: Some(".".into()),
            only: None,
            delimiter: b',',
            csv_safe: false,
        };
        let columns = ["id", "at", "name"].map(String::from).to_vec();
        let append = Append { keep: 12, columns };
        let out = Path::new("orders.csv");
        // Spools not seeded with the header, as a run without --append leaves them.
        let refusal = |record: &str| {
            let mut spool = Spool::new(tempfile::tempfile().unwrap(), form.clone());
            spool.add_page(&[record], None).unwrap();
            append.check(&spool, out).err().map(|e| e.to_string())
        };
        assert_eq!(refusal(r#"{"id": 1, "at": 2, "name": 3}"#), None);
        let why = [
            (
                r#"{"name": 1, "at": 2, "id": 3}"#,
                "column 1 of the rows to append is `name` where the header of orders.csv has `id`",
            ),
            (
                r#"{"id": 1, "at": 2}"#,
                "the rows to append lack the column `name` of the header of orders.csv",
            ),
            (
                r#"{"id": 1, "at": 2, "name": 3, "x": 4}"#,
                "the records now have a column `x` that orders.csv lacks",
            ),
        ];
        for (record, why) in why {
            let refusal = refusal(record).expect(record);
            assert!(refusal.contains(why), "{refusal}");
        }
    }

    #[test]
    fn the_kept_bytes_are_copied_whole_unless_a_stop_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let (out, new) = (dir.path().join("old.jsonl"), dir.path().join("new.jsonl"));
        let old: Vec<u8> = (0..COPY_CHUNK + 10).map(|i| (i % 251) as u8).collect();
        std::fs::write(&out, &old).unwrap();
        let copy = |keep: u64, stop: &Stop| {
            let file = File::create(&new).unwrap();
            let append = Append {
                keep,
                columns: Vec::new(),
            };
            let into = Stoppable::new(&file, stop.clone(), Duration::ZERO);
            (append.copy_kept(&out, &into), std::fs::read(&new).unwrap())
        };
        let keep = COPY_CHUNK + 3;
        let (copied, bytes) = copy(keep, &Stop::default());
        assert_eq!(copied.unwrap(), keep);
        assert!(bytes == old[..keep as usize], "two chunks, copied whole");
        let (copied, bytes) = copy(old.len() as u64 + 1, &Stop::default());
        let err = copied.unwrap_err().to_string();
        assert!(err.contains("it shrank"), "{err}");
        assert_eq!(bytes.len(), old.len());
        let stop = Stop::default();
        stop.request();
        let (copied, bytes) = copy(keep, &stop);
        assert_eq!(copied.unwrap_err().to_string(), "interrupted");
        assert!(bytes.is_empty(), "nothing is copied after a stop");
    }
}
