//! Incremental syncs (`--incremental FIELD`): each run writes only the records whose field
//! is above the mark that completed runs reached, and moves the mark on when it succeeds.
//!
//! The run loop hands each page's records to a [`Tracker`], which drops those at or below
//! the mark (counting them), says when an API that sorts newest-first has reached it, and
//! at the end saves the new mark in the state file, after the output is in place.

mod state;
mod tail;
mod value;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::sink::checkpoint::digest;
pub use state::Job;
use state::{Remembered, State};
pub use value::{Comparable, Kind, Lookback, SinceFormat};

/// The version of [`Tracker::identity`]'s layout: raised when a field that decides what
/// an incremental run writes joins or changes meaning, and only then.
const IDENTITY_VERSION: u32 = 3;

/// The incremental flags, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--incremental`, as a JSON Pointer into each record.
    pub field: String,
    /// `--state`, or the output's name with `.state` added.
    pub state: PathBuf,
    /// `--since-param` and `--since-format`.
    pub since: Option<(String, SinceFormat)>,
    /// `--newest-first`: stop paginating at the first record at or below the mark.
    pub newest_first: bool,
    pub lookback: Option<Lookback>,
    /// `--key`, as a JSON Pointer: what tells a record read again in the lookback window,
    /// or at the mark itself; without it, a record's whole text does.
    pub key: Option<String>,
    /// `--append`: the new records go after those of the existing output (which needs
    /// the state to say how much of it the last completed run left).
    pub append: bool,
}

/// A value of the field, as the API sent it and as it compares.
#[derive(Debug, Clone)]
struct Mark {
    raw: Value,
    value: Comparable,
}

impl Mark {
    fn of(raw: Value, kind: Option<Kind>) -> Option<Self> {
        let value = Comparable::of(&raw, kind)?;
        Some(Mark { raw, value })
    }
}

/// What tells a record apart from others with its value: its `--key` (`null` for a record
/// without one, or with a `null` one: those are told apart by their text alone, never
/// sharing a key with another) and a digest of its text.
#[derive(Debug, Clone)]
struct Id {
    key: Value,
    sha256: String,
}

/// A record written at the mark or within the lookback of it, as the window holds it.
#[derive(Debug, Clone)]
struct Written {
    key: Value,
    mark: Mark,
    /// `None` for one a version 1 state remembered, without a digest.
    sha256: Option<String>,
}

/// Where a remembered record is filed: by its `--key`, or by its digest for one told apart
/// by its text (`#` keeps the two apart: no JSON text starts with it).
fn slot(key: &Value, sha256: Option<&str>) -> String {
    match (key, sha256) {
        (Value::Null, Some(sha256)) => format!("#{sha256}"),
        (key, _) => key.to_string(),
    }
}

/// What this run has seen so far; saved with each checkpoint, so a resumed run ends with
/// the mark an uninterrupted one would have reached.
#[derive(Debug, Default)]
struct Run {
    kind: Option<Kind>,
    highest: Option<Mark>,
    skipped: u64,
    incomparable: u64,
    /// Records written that may still fall in the next run's window (or, without
    /// `--lookback`, sit at the mark), by [`slot`].
    window: HashMap<String, Written>,
    /// The window's size when it was last cut back to the lookback.
    pruned_at: usize,
}

/// [`Run`] as a checkpoint holds it, but for the window, which it keeps apart: the
/// window can grow with the run, and the rest is noted after every page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    kind: Option<Kind>,
    highest: Option<Value>,
    skipped: u64,
    incomparable: u64,
}

/// Where a record stands against the mark.
enum Verdict {
    Keep,
    /// Below the mark (less the lookback): written by an earlier run.
    Old,
    /// At the mark or in the lookback window, and its key was written with a later value,
    /// or with this value and this text.
    Seen,
    /// Without a comparable value (missing, null or of another kind): kept and counted,
    /// but for `--append`.
    Unplaced,
}

pub struct Tracker {
    settings: Settings,
    job: Job,
    /// The mark completed runs reached.
    before: Option<Mark>,
    /// The mark less the lookback: records below it are old; those at it or above it are
    /// old only if remembered (another record can share the mark's value: a write in the
    /// same second as the last one read).
    floor: Option<Comparable>,
    /// The value sent in `--since-param`.
    since: Option<String>,
    /// Records of the window earlier runs wrote, by [`slot`].
    remembered: HashMap<String, Written>,
    /// The state is of version 1, which took every record at the mark as written: so
    /// does this run, the last to read it.
    legacy: bool,
    output_len: Option<u64>,
    output_tail: Option<String>,
    run: Run,
    /// The counts last logged.
    reported: (u64, u64),
    /// Whether a record at the mark was kept for want of `--key`, which is said once.
    tie_kept: bool,
}

impl Tracker {
    /// Reads the job's state and works out what this run asks for and drops.
    pub fn open(settings: &Settings, job: Job) -> Result<Self, Error> {
        let state = State::load(&settings.state, &job)?.unwrap_or_else(|| State::new(&job));
        let broken = |what: &str| {
            Error::Usage(format!(
                "state file {}: its {what} is not {}; to start afresh, move the output aside \
                 and remove the state: the next run writes every record the API holds now",
                settings.state.display(),
                Kind::describe(state.kind)
            ))
        };
        let before = match state.mark.clone() {
            Some(raw) => Some(Mark::of(raw, state.kind).ok_or_else(|| broken("mark"))?),
            None => None,
        };
        let mut remembered = HashMap::new();
        for entry in state.window.iter().cloned() {
            let mark = Mark::of(entry.value, state.kind).ok_or_else(|| broken("window"))?;
            let slot = slot(&entry.key, entry.sha256.as_deref());
            let (key, sha256) = (entry.key, entry.sha256);
            remembered.insert(slot, Written { key, mark, sha256 });
        }
        let (floor, since) = match &before {
            Some(mark) => Self::floor_and_since(settings, mark)?,
            None => (None, None),
        };
        if let (Some(floor), false) = (&floor, state.legacy) {
            let from = (state.window_from.clone())
                .map(|raw| Mark::of(raw, state.kind).ok_or_else(|| broken("window's start")))
                .transpose()?;
            Self::same_window(settings, &state, floor, from)?;
        }
        let tracker = Tracker {
            settings: settings.clone(),
            job,
            before,
            floor,
            since,
            remembered,
            legacy: state.legacy,
            output_len: state.output_len,
            output_tail: state.output_tail,
            run: Run::default(),
            reported: (0, 0),
            tie_kept: false,
        };
        tracker.announce();
        Ok(tracker)
    }

    /// The mark less `--lookback`, and the value `--since-param` sends.
    fn floor_and_since(
        settings: &Settings,
        mark: &Mark,
    ) -> Result<(Option<Comparable>, Option<String>), Error> {
        let floor = match &settings.lookback {
            Some(lookback) => mark
                .value
                .minus(lookback)
                .map_err(|e| Error::Usage(format!("--lookback: {e}")))?,
            None => mark.value.clone(),
        };
        let raw = settings.lookback.is_none().then_some(&mark.raw);
        let since = match &settings.since {
            Some((_, format)) => Some(floor.since(*format, raw).map_err(Error::Usage)?),
            None => None,
        };
        Ok((Some(floor), since))
    }

    /// Refuses a `--key` other than the one the state's window was kept with (its entries
    /// would not match this run's records, and those written at the mark would be written
    /// again), and a `--lookback` reaching below `from`, where the window starts (records
    /// written there are not remembered, and would be written again).
    fn same_window(
        settings: &Settings,
        state: &State,
        floor: &Comparable,
        from: Option<Mark>,
    ) -> Result<(), Error> {
        let path = settings.state.display();
        let new_output = "or, to keep the old output as it is, sync into a new --out with a \
                          new --state (its first run writes every record the API holds now)";
        if settings.key != state.key {
            let flag = |key: &Option<String>| match key {
                Some(key) => format!("--key {key}"),
                None => "no --key".into(),
            };
            return Err(Error::Usage(format!(
                "{}: {path} was kept with {}, which tells apart the records it remembers at \
                 the mark; with another, those would be written again: run with {}, {new_output}",
                flag(&settings.key),
                flag(&state.key),
                flag(&state.key)
            )));
        }
        match from {
            Some(from) if floor.compare(&from.value) == Some(Ordering::Less) => {
                Err(Error::Usage(format!(
                    "--lookback: it reaches back past {}, the lowest value whose records \
                     {path} remembers; records written below it would be written again: give \
                     a --lookback no longer than the last run's, {new_output}",
                    from.raw
                )))
            }
            _ => Ok(()),
        }
    }

    fn announce(&self) {
        let before = self.before.as_ref().map(|m| m.raw.to_string());
        let state = self.settings.state.display();
        match &before {
            Some(mark) => info!(
                incremental = self.job.field.as_str(),
                mark_before = mark.as_str(),
                "incremental: records whose {} is above {mark} (from {state})",
                self.job.field
            ),
            None => info!(
                incremental = self.job.field.as_str(),
                "incremental: no mark yet in {state}; fetching every record"
            ),
        }
    }

    /// The query parameter that asks the API for records from the mark on, if any.
    pub fn since_param(&self) -> Option<(String, String)> {
        let (param, _) = self.settings.since.as_ref()?;
        Some((param.clone(), self.since.clone()?))
    }

    /// What a checkpoint must match for a run to resume it: the flags, and the mark it
    /// started from (the `--since-param` value is part of every request). Named fields,
    /// never Debug text, so refactoring the settings' types leaves checkpoints valid.
    /// `--append` too: a run begun without it spools its table with its own header, which
    /// rows appended under the output's would not fit.
    pub fn identity(&self) -> String {
        let s = &self.settings;
        serde_json::json!({
            "v": IDENTITY_VERSION,
            "field": s.field,
            "key": s.key,
            "lookback": s.lookback.as_ref().map(Lookback::identity),
            "newest_first": s.newest_first,
            "since_param": s.since.as_ref().map(|(param, _)| param),
            "since_format": s.since.as_ref().map(|(_, format)| format.name()),
            "append": s.append,
            "mark": self.before.as_ref().map(|m| &m.raw),
        })
        .to_string()
    }

    /// Drops the records of page `number` that earlier runs wrote, counting them. True
    /// once a record at or below the mark arrived: with `--newest-first`, the last page to
    /// fetch. With `--append`, a record that cannot be placed against the mark is an error
    /// (see [`Tracker::unplaced`]).
    pub fn page(&mut self, records: &mut Vec<&str>, number: u64) -> Result<bool, Error> {
        let mut reached = false;
        let mut kept = Vec::with_capacity(records.len());
        for (n, record) in (1..).zip(records.drain(..)) {
            match self.verdict(record)? {
                Verdict::Keep => kept.push(record),
                Verdict::Unplaced if self.settings.append => {
                    return Err(self.unplaced(record, number, n));
                }
                Verdict::Unplaced => kept.push(record),
                Verdict::Old => {
                    reached = true;
                    self.run.skipped += 1;
                }
                Verdict::Seen => self.run.skipped += 1,
            }
        }
        *records = kept;
        let counts = (self.run.skipped, self.run.incomparable);
        if counts != self.reported {
            self.reported = counts;
            debug!(
                skipped = counts.0,
                incomparable = counts.1,
                "incremental: {} skipped as already written, {} without a comparable {}",
                counts.0,
                counts.1,
                self.job.field
            );
        }
        Ok(reached && self.settings.newest_first)
    }

    /// The error for record `n` of page `page`, without a comparable field, in a run that
    /// appends. It cannot be placed against the mark: appended now, it would come again
    /// next run and be appended again, every run; dropped, it would be lost. `--key` does
    /// not help: the state would have to hold every such key for ever, and a change to
    /// the record could not be told from the copy written.
    fn unplaced(&self, record: &str, page: u64, n: u64) -> Error {
        let key = (self.settings.key.as_ref())
            .and_then(|pointer| crate::shape::records::lookup(record, pointer))
            .map_or(String::new(), |key| format!(" (--key {})", key.get()));
        Error::BadResponse(format!(
            "{}: page {page}, record {n}{key}: no comparable {} (missing, null or of another \
             kind): --append would add it to the output again on every run; pick an \
             --incremental field every record has, or run without --append, each output \
             then holding such records again",
            self.job.url, self.settings.field
        ))
    }

    fn kind(&self) -> Option<Kind> {
        self.before
            .as_ref()
            .map(|m| m.value.kind())
            .or(self.run.kind)
    }

    fn verdict(&mut self, record: &str) -> Result<Verdict, Error> {
        let raw = crate::shape::records::lookup(record, &self.settings.field)
            .and_then(|raw| serde_json::from_str(raw.get()).ok());
        let Some(mark) = raw.and_then(|raw| Mark::of(raw, self.kind())) else {
            self.run.incomparable += 1;
            return Ok(Verdict::Unplaced);
        };
        if self.kind().is_none() {
            self.fits_lookback(&mark)?;
        }
        let floor = self.floor.as_ref();
        if floor.is_some_and(|f| mark.value.compare(f) == Some(Ordering::Less)) {
            return Ok(Verdict::Old);
        }
        let id = self.id(record, &mark);
        if self.legacy_tie(&mark) {
            // Written, as that state meant; remembered now, as this version keeps them.
            self.remember(mark, id);
            return Ok(Verdict::Seen);
        }
        if id.as_ref().is_some_and(|id| self.seen(id, &mark)) {
            return Ok(Verdict::Seen);
        }
        if floor.is_some_and(|f| mark.value.at_or_below(f)) && self.settings.key.is_none() {
            self.tie_kept(&mark);
        }
        self.keep(mark, id);
        Ok(Verdict::Keep)
    }

    /// Refuses, at the first record of a job's first run, a `--lookback` that cannot go
    /// back from its value (a duration before a number): the run would save no window,
    /// and the next would refuse it anyway.
    fn fits_lookback(&self, mark: &Mark) -> Result<(), Error> {
        match &self.settings.lookback {
            Some(lookback) => (mark.value.minus(lookback).map(drop))
                .map_err(|e| Error::Usage(format!("--lookback: {e}"))),
            None => Ok(()),
        }
    }

    /// With a version 1 state, whether `mark` is one that state took as written: the
    /// mark, or the mark less the lookback.
    fn legacy_tie(&self, mark: &Mark) -> bool {
        let equal = |other: &Comparable| mark.value.compare(other) == Some(Ordering::Equal);
        self.legacy
            && (self.before.as_ref().is_some_and(|b| equal(&b.value))
                || self.floor.as_ref().is_some_and(equal))
    }

    /// Whether an earlier run wrote this record: its key with a later value, or with this
    /// value and this text (one changed without its field moving on is kept).
    fn seen(&self, id: &Id, mark: &Mark) -> bool {
        let Some(written) = self.remembered.get(&slot(&id.key, Some(&id.sha256))) else {
            return false;
        };
        match mark.value.compare(&written.mark.value) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => written.sha256.as_ref().is_none_or(|s| *s == id.sha256),
            _ => false,
        }
    }

    /// What tells `record` apart from others with its value (see [`Id`]). Without `--key`
    /// taken only where it may be remembered (at the mark, or at or above the highest
    /// value so far), as a digest costs more than a lookup; with one, a record's key may
    /// be remembered anywhere in the lookback window.
    fn id(&self, record: &str, mark: &Mark) -> Option<Id> {
        let sha256 = || digest(record.as_bytes());
        if let Some(pointer) = &self.settings.key {
            let key = crate::shape::records::lookup(record, pointer)
                .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
            let key = key.unwrap_or(Value::Null);
            let sha256 = sha256();
            return Some(Id { key, sha256 });
        }
        let at_floor = (self.floor.as_ref()).is_some_and(|f| mark.value.at_or_below(f));
        let highest = (self.run.highest.as_ref()).is_none_or(|h| h.value.at_or_below(&mark.value));
        (at_floor || highest).then(|| Id {
            key: Value::Null,
            sha256: sha256(),
        })
    }

    /// Says once that a record at the mark was kept without `--key`: it may be one the
    /// last run wrote, changed without its field moving on.
    fn tie_kept(&mut self, mark: &Mark) {
        if !std::mem::replace(&mut self.tie_kept, true) {
            info!(
                "incremental: a record whose {} is the mark ({}) differs from those the last \
                 run wrote there, and is kept; without --key, records at the mark are told \
                 apart by their whole text, so a record changed without its {} moving on is \
                 written again",
                self.job.field, mark.raw, self.job.field
            );
        }
    }

    fn keep(&mut self, mark: Mark, id: Option<Id>) {
        self.run.kind.get_or_insert(mark.value.kind());
        let higher = (self.run.highest.as_ref())
            .is_none_or(|highest| highest.value.at_or_below(&mark.value));
        self.remember(mark.clone(), id);
        if higher {
            self.run.highest = Some(mark);
        }
    }

    /// Adds a record written at `mark` to the window, if it may be remembered there.
    fn remember(&mut self, mark: Mark, id: Option<Id>) {
        if let Some(Id { key, sha256 }) = id {
            let slot = slot(&key, Some(&sha256));
            let sha256 = Some(sha256);
            self.run.window.insert(slot, Written { key, mark, sha256 });
        }
        // Cut back now and then, so memory follows the window, not the run.
        if self.run.window.len() >= 2 * self.run.pruned_at + 1024 {
            let window = std::mem::take(&mut self.run.window);
            self.run.window = self.within_window(window);
            self.run.pruned_at = self.run.window.len();
        }
    }

    /// The mark this run reaches: the highest value written by it or before it.
    fn after(&self) -> Option<&Mark> {
        match (&self.before, &self.run.highest) {
            (Some(before), Some(highest)) if before.value.at_or_below(&highest.value) => {
                Some(highest)
            }
            (Some(before), _) => Some(before),
            (None, highest) => highest.as_ref(),
        }
    }

    /// Where the window of the mark reached so far starts: the mark less the lookback.
    fn cut(&self) -> Option<Comparable> {
        match (self.after(), &self.settings.lookback) {
            (Some(after), Some(lookback)) => after.value.minus(lookback).ok(),
            (Some(after), None) => Some(after.value.clone()),
            (None, _) => None,
        }
    }

    /// Of `entries`, those at the mark reached so far or within the lookback of it.
    fn within_window(&self, entries: HashMap<String, Written>) -> HashMap<String, Written> {
        let cut = self.cut();
        entries
            .into_iter()
            .filter(|(_, written)| in_window(cut.as_ref(), written))
            .collect()
    }

    /// Whether the new records go after those of the existing output (`--append`).
    pub fn appends(&self) -> bool {
        self.settings.append
    }

    /// With `--append`, how many bytes of the existing `out` to keep before the new
    /// records: all of it as the last completed run left it. Bytes past that are from a
    /// run that wrote the output but stopped before saving the state; their records are
    /// fetched again, so keeping them would write them twice.
    pub fn appending(&self, out: &Path) -> Result<u64, Error> {
        let on_disk = match std::fs::metadata(out) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::output(e, format!("cannot read {}", out.display()))),
        };
        let rewrite = self.rewrite();
        let (shown, state) = (out.display(), self.settings.state.display());
        match (self.output_len, on_disk) {
            (None, 0) => Ok(0),
            (None, _) => Err(Error::Usage(format!(
                "--append: {shown} exists, but {state} holds no run that wrote it; {rewrite}"
            ))),
            (Some(len), n) if n >= len => {
                self.unchanged(out, len)?;
                if n > len {
                    info!(
                        "{shown} holds {} bytes past what {state} recorded, written by a run \
                         that stopped before saving its state: they are fetched again",
                        n - len
                    );
                }
                Ok(len)
            }
            (Some(len), n) => Err(Error::Usage(format!(
                "--append: {shown} holds {n} bytes, fewer than the {len} the last run left: \
                 it changed since the last run; {rewrite}"
            ))),
        }
    }

    /// Refuses an output whose first `len` bytes are not those the last run left (edited or
    /// replaced since): cut to `len` and appended to, it could end mid-record. A state
    /// from before fingerprints has none to check.
    fn unchanged(&self, out: &Path, len: u64) -> Result<(), Error> {
        let Some(expected) = &self.output_tail else {
            return Ok(());
        };
        let found = tail::fingerprint(out, len)
            .map_err(|e| Error::output(e, format!("cannot read {}", out.display())))?;
        match found == *expected {
            true => Ok(()),
            false => Err(Error::Usage(format!(
                "--append: {} changed since the last run (its first {len} bytes are not \
                 those the last run left), so it cannot be carried on; {}",
                out.display(),
                self.rewrite()
            ))),
        }
    }

    /// How to carry on with a new output, never overwriting the records of the old: the
    /// API may no longer hold them all. A run without `--append` writes only the records
    /// above the mark: once there is one, the state must go too.
    fn rewrite(&self) -> String {
        let state = self.settings.state.display();
        let fresh = "it writes every record the API holds now, so replacing the old output \
                     with it is safe only if the API still holds every record";
        match &self.before {
            Some(_) => format!(
                "move it aside and remove {state} (or pass a new --out and a new --state), \
                 then run again: {fresh}"
            ),
            None => format!("move it aside (or pass a new --out), then run again: {fresh}"),
        }
    }

    /// This run's progress, for the checkpoint: the highest value and the counts.
    pub fn progress(&self) -> Value {
        let saved = Saved {
            kind: self.run.kind,
            highest: self.run.highest.as_ref().map(|m| m.raw.clone()),
            skipped: self.run.skipped,
            incomparable: self.run.incomparable,
        };
        serde_json::to_value(saved).expect("plain JSON values serialize")
    }

    /// How many records are remembered near the mark, at most (before the cut to the
    /// window): what building [`Tracker::window`] costs.
    pub fn window_len(&self) -> usize {
        self.run.window.len()
    }

    /// The records this run wrote within the lookback of the mark reached so far, for the
    /// checkpoint: cut back to the window now, so it stays the window's size however long
    /// the run.
    pub fn window(&self) -> Value {
        let cut = self.cut();
        let window =
            (self.run.window.iter()).filter(|(_, written)| in_window(cut.as_ref(), written));
        serde_json::to_value(remembered(window)).expect("plain JSON values serialize")
    }

    /// Carries on from the progress and window a checkpoint saved. A checkpoint with none
    /// was saved before the first page (a run killed while it waited for it): its
    /// identity already says it is this job's, with this mark, so the run starts as a new
    /// one would.
    pub fn restore(&mut self, saved: Option<&Value>, window: Option<&Value>) -> Result<(), Error> {
        let Some(saved) = saved else {
            return Ok(());
        };
        let unusable = || {
            Error::Usage(
                "the checkpoint's incremental progress is not one apifetch can read; run \
                 without --resume to start over"
                    .into(),
            )
        };
        let saved: Saved = serde_json::from_value(saved.clone()).map_err(|_| unusable())?;
        let window: Vec<Remembered> = match window {
            Some(window) => serde_json::from_value(window.clone()).map_err(|_| unusable())?,
            None => Vec::new(),
        };
        let kind = self.kind().or(saved.kind);
        let mark = |raw: Value| Mark::of(raw, kind).ok_or_else(unusable);
        self.run = Run {
            kind: saved.kind,
            highest: saved.highest.map(mark).transpose()?,
            skipped: saved.skipped,
            incomparable: saved.incomparable,
            window: HashMap::new(),
            pruned_at: window.len(),
        };
        for Remembered { key, value, sha256 } in window {
            let mark = mark(value)?;
            let slot = slot(&key, sha256.as_deref());
            self.run.window.insert(slot, Written { key, mark, sha256 });
        }
        Ok(())
    }

    /// Saves the mark this run reached, once the output is in place (at `out`, for a
    /// file: its length and fingerprint go into the state). Before it, a crash leaves the
    /// old mark: the next run fetches the same records again and writes them once (see
    /// [`Self::appending`]).
    pub fn finish(mut self, out: Option<&Path>) -> Result<(), Error> {
        if self.run.incomparable > 0 {
            warn!(
                "{} without a comparable {} (missing, null or of another kind) {} kept",
                crate::report::units::counted(self.run.incomparable, "record", "records"),
                self.job.field,
                if self.run.incomparable == 1 {
                    "was"
                } else {
                    "were"
                }
            );
        }
        let mut entries = std::mem::take(&mut self.remembered);
        for (key, entry) in std::mem::take(&mut self.run.window) {
            entries.insert(key, entry);
        }
        let mut state = State::new(&self.job);
        if let Some(out) = out {
            let (len, tail) = tail::of(out)
                .map_err(|e| Error::output(e, format!("cannot read {}", out.display())))?;
            (state.output_len, state.output_tail) = (Some(len), Some(tail));
        }
        state.kind = self.kind();
        state.mark = self.after().map(|m| m.raw.clone());
        state.key = self.settings.key.clone();
        state.window_from = self.cut().map(|cut| cut.raw());
        let cut = self.cut();
        state.window = remembered(entries.iter().filter(|(_, w)| in_window(cut.as_ref(), w)));
        state.save(&self.settings.state).map_err(|e| {
            let path = self.settings.state.display();
            Error::output(e, format!("cannot write the state file {path}"))
        })?;
        let after = state.mark.as_ref().map_or("null".into(), Value::to_string);
        info!(
            mark_after = after.as_str(),
            skipped = self.run.skipped,
            "incremental: the mark is now {after} ({} skipped as already written)",
            self.run.skipped
        );
        Ok(())
    }
}

/// Whether a remembered record falls in the window that starts at `cut` (none without a
/// mark): what the next run may read again.
fn in_window(cut: Option<&Comparable>, written: &Written) -> bool {
    cut.is_some_and(|cut| written.mark.value.compare(cut) != Some(Ordering::Less))
}

/// Window entries as the state and checkpoints hold them, in a stable order.
fn remembered<'a>(window: impl Iterator<Item = (&'a String, &'a Written)>) -> Vec<Remembered> {
    let mut entries: Vec<(&String, &Written)> = window.collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
        .into_iter()
        .map(|(_, written)| Remembered {
            key: written.key.clone(),
            value: written.mark.raw.clone(),
            sha256: written.sha256.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, lookback: Option<&str>) -> Settings {
        Settings {
            field: "/at".into(),
            state: dir.join("x.state"),
            since: Some(("since".into(), SinceFormat::Rfc3339)),
            newest_first: true,
            lookback: lookback.map(|l| Lookback::parse(l).unwrap()),
            key: Some("/id".into()),
            append: false,
        }
    }

    fn job() -> Job {
        Job {
            url: "http://h/x".into(),
            field: "/at".into(),
        }
    }

    fn page<'a>(tracker: &mut Tracker, records: &[&'a str]) -> (Vec<&'a str>, bool) {
        let mut records = records.to_vec();
        let reached = tracker.page(&mut records, 1).unwrap();
        (records, reached)
    }

    #[test]
    fn a_second_run_keeps_only_what_is_above_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), None);
        let mut first = Tracker::open(&s, job()).unwrap();
        assert_eq!(first.since_param(), None);
        let records = [
            r#"{"id":1,"at":"2026-01-01T10:00:00+02:00"}"#,
            r#"{"id":2}"#,
            r#"{"id":3,"at":"2026-01-01T07:00:00Z"}"#,
        ];
        assert_eq!(page(&mut first, &records), (records.to_vec(), false));
        let out = dir.path().join("x.jsonl");
        std::fs::write(&out, "0123456789").unwrap();
        first.finish(Some(&out)).unwrap();

        let mut second = Tracker::open(&s, job()).unwrap();
        let since = ("since".to_string(), "2026-01-01T08:00:00Z".to_string());
        assert_eq!(second.since_param(), Some(since));
        let newer = r#"{"id":4,"at":"2026-01-01T08:00:01Z"}"#;
        let (kept, reached) = page(&mut second, &[newer, records[0], records[1]]);
        // Order 1 again, at the mark: remembered by its key and text, so dropped; only a
        // record below the mark says that a newest-first API has reached it.
        assert_eq!((kept, reached), (vec![newer, records[1]], false));
        let below = r#"{"id":5,"at":"2026-01-01T07:59:59Z"}"#;
        let other_at_mark = r#"{"id":6,"at":"2026-01-01T08:00:00Z"}"#;
        let (kept, reached) = page(&mut second, &[other_at_mark, below]);
        assert_eq!((kept, reached), (vec![other_at_mark], true));
        assert_eq!((second.run.skipped, second.run.incomparable), (2, 1));
        assert_eq!(
            second
                .appending(&dir.path().join("none"))
                .unwrap_err()
                .exit(),
            crate::Exit::Usage
        );
        second.finish(None).unwrap();
        let state = State::load(&s.state, &job()).unwrap().unwrap();
        assert_eq!(state.mark, Some(serde_json::json!("2026-01-01T08:00:01Z")));
    }

    #[test]
    fn the_lookback_window_drops_only_keys_written_with_that_value() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), Some("10m"));
        let mut first = Tracker::open(&s, job()).unwrap();
        let records = [
            r#"{"id":1,"at":"2026-01-01T07:00:00Z"}"#,
            r#"{"id":2,"at":"2026-01-01T07:55:00Z"}"#,
            r#"{"id":3,"at":"2026-01-01T08:00:00Z"}"#,
        ];
        page(&mut first, &records);
        first.finish(None).unwrap();
        let state = State::load(&s.state, &job()).unwrap().unwrap();
        let keys: Vec<String> = state.window.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(keys, ["2", "3"], "only the last ten minutes are remembered");

        let mut second = Tracker::open(&s, job()).unwrap();
        assert_eq!(second.since.as_deref(), Some("2026-01-01T07:50:00Z"));
        let late = r#"{"id":9,"at":"2026-01-01T07:58:00Z"}"#;
        let updated = r#"{"id":2,"at":"2026-01-01T07:59:00Z"}"#;
        let (kept, reached) = page(&mut second, &[records[2], late, updated, records[1]]);
        assert_eq!((kept, reached), (vec![late, updated], false));
        let (kept, reached) = page(&mut second, &[records[0]]);
        assert_eq!((kept, reached), (vec![], true));

        // A resumed run carries on with what the checkpoint saved.
        let mut resumed = Tracker::open(&s, job()).unwrap();
        let (progress, window) = (second.progress(), second.window());
        resumed.restore(Some(&progress), Some(&window)).unwrap();
        assert_eq!(resumed.run.skipped, 3);
        resumed.finish(None).unwrap();
        let state = State::load(&s.state, &job()).unwrap().unwrap();
        let keys: Vec<String> = state.window.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(keys, ["2", "3", "9"]);
    }

    #[test]
    fn the_identity_is_named_fields_not_debug_text() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::open(&settings(dir.path(), Some("10m")), job()).unwrap();
        // A saved checkpoint holds a hash of exactly this text: changing it must come
        // with a new IDENTITY_VERSION.
        assert_eq!(
            tracker.identity(),
            r#"{"v":3,"field":"/at","key":"/id","lookback":{"nanoseconds":"600000000000"},"newest_first":true,"since_param":"since","since_format":"rfc3339","append":false,"mark":null}"#
        );
        let mut s = settings(dir.path(), Some("3"));
        s.since = None;
        let tracker = Tracker::open(&s, job()).unwrap();
        assert!(
            tracker.identity().contains(r#""lookback":{"count":"3"}"#),
            "{}",
            tracker.identity()
        );
    }

    #[test]
    fn a_broken_state_is_described_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), None);
        let mut state = State::new(&job());
        state.kind = Some(Kind::Timestamp);
        state.mark = Some(serde_json::json!("yesterday"));
        state.save(&s.state).unwrap();
        let err = Tracker::open(&s, job()).err().unwrap().to_string();
        assert!(
            err.ends_with(
                "x.state: its mark is not an RFC 3339 timestamp; to start afresh, move the \
                 output aside and remove the state: the next run writes every record the API \
                 holds now"
            ),
            "{err}"
        );
    }

    #[test]
    fn appending_keeps_what_the_last_completed_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), None);
        let out = dir.path().join("x.jsonl");
        let tracker = Tracker::open(&s, job()).unwrap();
        assert_eq!(tracker.appending(&out).unwrap(), 0);
        std::fs::write(&out, "old\n").unwrap();
        assert!(
            tracker.appending(&out).is_err(),
            "a file the state never wrote"
        );
        tracker.finish(Some(&out)).unwrap();
        let tracker = Tracker::open(&s, job()).unwrap();
        assert_eq!(tracker.appending(&out).unwrap(), 4);
        std::fs::write(&out, "old\nhalf").unwrap();
        assert_eq!(tracker.appending(&out).unwrap(), 4);
        std::fs::write(&out, "ol").unwrap();
        let err = tracker.appending(&out).unwrap_err().to_string();
        assert!(err.contains("fewer than the 4 the last run left"), "{err}");
        let advice = "move it aside (or pass a new --out), then run again: it writes every \
                      record the API holds now";
        assert!(err.contains(advice), "no mark yet: {err}");

        // With a mark, the state must go too: with it, a run writes only what is above it.
        std::fs::write(&out, "old\n").unwrap();
        let mut marked = Tracker::open(&s, job()).unwrap();
        let record = r#"{"id":1,"at":"2026-01-01T00:00:00Z"}"#;
        page(&mut marked, &[record]);
        marked.finish(Some(&out)).unwrap();
        std::fs::write(&out, "new\n").unwrap();
        let marked = Tracker::open(&s, job()).unwrap();
        let err = marked.appending(&out).unwrap_err().to_string();
        let advice = format!(
            "changed since the last run (its first 4 bytes are not those the last run left), \
             so it cannot be carried on; move it aside and remove {} (or pass a new --out and \
             a new --state), then run again",
            s.state.display()
        );
        assert!(err.contains(&advice), "{err}");
    }
}
