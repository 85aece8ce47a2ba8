//! The checkpoint beside a partial output: what a run has safely on disk, and where it
//! would continue, so an interrupted run can be resumed with `--resume`.
//!
//! A checkpoint is two lines of JSON. The first holds what the partial file belongs to and
//! the state as of the last sync; it is replaced atomically (temporary file, sync, rename)
//! once per `--checkpoint-every`, after the partial file is synced, so it survives a power
//! cut. The second notes the state after every page, written over the previous note in
//! place, without a sync: a process killed outright redoes at most the page it was
//! fetching. Resuming takes the noted state if the note is whole and the partial file holds
//! every record it describes, else the synced one, and cuts the partial file back to the
//! length of the state it takes: it may hold more (a page that was being written when the
//! run died, or one noted but lost with the system). Secrets are never written: the request is
//! identified by a hash, and named by its redacted URL; a next-page URL that carries the
//! user's credentials (APIs often echo an `api_key` into their next links) is saved with
//! them masked, and resuming puts them back from the same command line.

use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use url::{Url, form_urlencoded};

use crate::error::Error;
use crate::paginate;
use crate::paginate::{Guard, Position, Standing};
use crate::place;
use crate::report::redact::{self, MASK, Secret, rewrite_query, split_segment};
use crate::shape::records::Select;
use crate::sink::rows::Form;
use crate::sink::spool::Mark;

/// Changes whenever the meaning of a checkpoint or the spool layout changes, so a partial
/// file written by an incompatible version is never carried on.
const LAYOUT: u32 = 8;

/// How old a checkpoint may be before resuming it earns a warning: a scheduled job that
/// always passes `--resume` would otherwise quietly mix records fetched days apart.
const STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// The partial output and its checkpoint, beside the output file.
#[derive(Debug, Clone)]
pub struct Files {
    pub partial: PathBuf,
    pub checkpoint: PathBuf,
}

impl Files {
    /// `orders.csv` → `orders.csv.partial` and `orders.csv.checkpoint`.
    pub fn beside(out: &Path) -> Self {
        Files {
            partial: place::beside(out, ".partial"),
            checkpoint: place::beside(out, ".checkpoint"),
        }
    }

    /// Removes the checkpoint, so the partial file no longer counts as resumable.
    pub fn remove_checkpoint(&self) -> io::Result<()> {
        remove_if_exists(&self.checkpoint)
    }

    /// Removes the checkpoint, then the partial file.
    pub fn remove(&self) -> io::Result<()> {
        self.remove_checkpoint()?;
        remove_if_exists(&self.partial)
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What each of [`Identity`]'s parts is, for the message that refuses a resume.
const PARTS: [&str; 6] = [
    "the URL",
    "the --param values",
    "the pagination options",
    "the record selection (--records)",
    "the output format or columns",
    "the incremental options (--append among them) or mark",
];

/// Which request and result shape a partial file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// A hash of each thing that decides the partial file's contents, in the order of
    /// [`PARTS`]: the full URL and parameters (secrets included, which is why only hashes
    /// are kept), the pagination settings, where records are found and the record form.
    /// Kept apart so a refused resume can say which of them changed.
    parts: Vec<String>,
    /// The URL with secrets masked, for messages.
    url: String,
    credentials: Credentials,
}

/// What defines a run's request, as the identity reads it: the settings of the modules
/// that make the requests, without the rest of the configuration.
pub struct Job<'a> {
    /// The URL the user gave; `None` for the demo.
    pub target: Option<&'a Url>,
    pub method: &'a reqwest::Method,
    pub params: &'a [(String, String)],
    pub pages: &'a paginate::Settings,
    pub records: &'a Select,
    /// Every credential the run knows, masked wherever it appears in a saved URL.
    pub secrets: &'a [Secret],
}

impl Identity {
    /// `url` is the URL actually fetched (for the demo, wherever it happens to listen).
    pub fn of(job: &Job, url: &Url, form: &Form) -> Self {
        // The demo listens on a new port each run but is always the same API.
        let target = job.target.map_or("demo", Url::as_str);
        let parts = [
            target.to_string(),
            request_part(job).to_string(),
            pages_part(job.pages).to_string(),
            records_part(job.records).to_string(),
            form_part(form).to_string(),
        ];
        Identity {
            parts: parts.iter().map(|part| digest(part.as_bytes())).collect(),
            url: redact::url(url),
            credentials: Credentials::of(job),
        }
    }

    /// The identity of an `--incremental` run, whose records depend on the mark it starts
    /// from and on the flags that drop records (`incremental` describes both): a run
    /// resumed after another moved the mark on would write records twice or lose some.
    pub fn with_incremental(mut self, incremental: &str) -> Self {
        self.parts.push(digest(incremental.as_bytes()));
        self
    }
}

/// The SHA-256 of `bytes`, in hex: how a checkpoint names what it may not hold in clear,
/// and how an incremental state tells records and outputs apart.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The version of the identity's layout below: raised when a field that decides what a run
/// fetches joins or changes meaning, and only then, so that refactoring the settings'
/// types leaves saved checkpoints valid. 2: the output form as named fields (it was its
/// Debug text).
const IDENTITY_VERSION: u32 = 2;

/// The request's method and extra parameters, as explicit, named fields.
fn request_part(job: &Job) -> serde_json::Value {
    serde_json::json!({
        "v": IDENTITY_VERSION,
        "method": job.method.as_str(),
        "params": job.params,
    })
}

/// What decides which pages are fetched. Not `--max-pages`: it only limits how far a run
/// goes, not what it writes on the way.
fn pages_part(pages: &paginate::Settings) -> serde_json::Value {
    serde_json::json!({
        "v": IDENTITY_VERSION,
        "style": pages.style,
        "page_param": pages.page_param,
        "size_param": pages.size_param,
        "page_size": pages.page_size,
        "start_page": pages.start_page,
        "offset_param": pages.offset_param,
        "limit_param": pages.limit_param,
        "cursor": pages.cursor,
        "cursor_param": pages.cursor_param,
        "next_path": pages.next_path,
        "has_more": pages.has_more,
        "total": pages.total,
        "max_records": pages.max_records,
        "body": pages.body,
        "graphql": pages.graphql.as_ref().map(|g| (&g.cursor_var, g.backward)),
    })
}

/// How the records are written: the columns and cells of a table, or lines.
fn form_part(form: &Form) -> serde_json::Value {
    match form {
        Form::Cells {
            sep,
            only,
            delimiter,
            csv_safe,
        } => serde_json::json!({
            "v": IDENTITY_VERSION,
            "cells": {"sep": sep, "only": only, "delimiter": delimiter, "csv_safe": csv_safe},
        }),
        Form::Lines => serde_json::json!({"v": IDENTITY_VERSION, "lines": true}),
    }
}

/// Where the records are found.
fn records_part(records: &Select) -> serde_json::Value {
    serde_json::json!({
        "v": IDENTITY_VERSION,
        "pointer": records.pointer,
        "object_is_record": records.object_is_record,
        "item": records.item,
    })
}

/// The credentials of the user's own request: masked wherever they appear in a saved URL,
/// and the source they are put back from on resume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Credentials {
    /// The URL's user info, percent-encoded as in the URL.
    user: Option<Secret>,
    password: Option<Secret>,
    /// The query parameters of the URL and `--param`, by name, with their values encoded
    /// as in a URL.
    params: Vec<(String, Secret)>,
    /// Every credential's text (tokens, keys, passwords), masked wherever it appears.
    secrets: Vec<Secret>,
}

impl Credentials {
    fn of(job: &Job) -> Self {
        let mut credentials = Credentials {
            secrets: job.secrets.to_vec(),
            ..Credentials::default()
        };
        if let Some(url) = job.target {
            credentials.user = Some(url.username())
                .filter(|u| !u.is_empty())
                .map(Secret::new);
            credentials.password = url.password().map(Secret::new);
            let query = url.query().unwrap_or("");
            for (_, name, value) in query.split('&').filter_map(split_segment) {
                credentials.params.push((name, Secret::new(value)));
            }
        }
        for (name, value) in job.params {
            let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            credentials
                .params
                .push((name.clone(), Secret::new(encoded)));
        }
        credentials
    }

    /// `url` as logs show it (user info and credential parameters masked), with any other
    /// occurrence of the user's own secrets masked too.
    fn mask(&self, url: &Url) -> String {
        redact::scrub(&redact::url(url), &self.secrets)
    }

    /// A URL saved by [`Self::mask`] with the user's credentials put back, or `None` when
    /// it carried one that this command line does not have.
    fn unmask(&self, saved: &str) -> Option<String> {
        if !saved.contains(MASK) {
            return Some(saved.to_string());
        }
        let mut url = Url::parse(saved).ok()?;
        if url.username() == MASK {
            url.set_username(self.user.as_ref()?.expose()).ok()?;
        }
        if url.password() == Some(MASK) {
            url.set_password(Some(self.password.as_ref()?.expose()))
                .ok()?;
        }
        if let Some(query) = url.query() {
            let query = rewrite_query(query, |name, value| match value {
                MASK => self
                    .params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.expose().to_string()),
                _ => Some(value.to_string()),
            })?;
            url.set_query(Some(&query));
        }
        Some(url.to_string()).filter(|url| !url.contains(MASK))
    }
}

/// Applies `f` to every http(s) URL among the strings of `value`; false if `f` failed on
/// one.
fn rewrite_urls(value: &mut Value, f: &impl Fn(&str) -> Option<String>) -> bool {
    match value {
        Value::String(text) if is_web_url(text) => match f(text) {
            Some(new) => {
                *text = new;
                true
            }
            None => false,
        },
        Value::Array(items) => items.iter_mut().all(|v| rewrite_urls(v, f)),
        Value::Object(fields) => fields.values_mut().all(|v| rewrite_urls(v, f)),
        _ => true,
    }
}

fn is_web_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Why `--resume` cannot carry on from `path`, as a usage error: nothing was touched, and
/// running without `--resume` is the way on.
pub fn cannot_resume(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "cannot resume from {}: {why}; run without --resume to start over",
        path.display()
    ))
}

/// What a run has written, what of it is surely on disk, and where it continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    saved: Saved,
    /// After the last page written: what survives a killed process.
    pub latest: State,
}

/// The checkpoint file's first line, replaced (and synced) only at a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    layout: u32,
    request: Vec<String>,
    url: String,
    /// When the run that began the partial file started, in seconds since the Unix epoch
    /// (resuming keeps it).
    started: u64,
    /// After the last sync: what survives a power cut.
    synced: State,
}

/// Where a run stands after a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where the next request starts.
    pub position: Position,
    /// What the pagination loop checks had seen by then.
    pub guard: Guard,
    /// Pages whose records are in the partial file.
    pub pages: u64,
    /// Records the API had sent by then, which its totals are checked against: more than
    /// the partial file holds when an `--incremental` run dropped some.
    pub received: u64,
    /// The last page has been fetched: only the output remains to be written.
    pub done: bool,
    pub spool: Mark,
    /// An `--incremental` run's progress (see [`Incremental`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Value>,
    /// An `--incremental` run's window, absent from a note when it was too large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Value>,
}

/// Where a run stands after a page, as its checkpoint saves it: the paginator's standing
/// and, beside it, an `--incremental` run's progress. The sink keeps both for the engine,
/// which alone knows what they mean.
#[derive(Debug)]
pub struct Progress {
    pub standing: Standing,
    pub incremental: Option<Incremental>,
}

/// An `--incremental` run's progress, as [`crate::incremental::Tracker`] describes it.
#[derive(Debug)]
pub struct Incremental {
    /// The highest value and the counts: small, noted after every page.
    pub progress: Value,
    /// The records remembered near the mark (its lookback window), which can grow with
    /// the run: noted while it is small (see [`NOTED_WINDOW`]), saved whole at a sync.
    /// `None` on a page where building a large one was not worth it: such a state is
    /// noted, never synced (see [`Checkpoint::complete`]).
    pub window: Option<Value>,
}

/// The most bytes of an incremental run's window a note holds: the note is rewritten
/// after every page, and a checkpoint that grew with the run would cost each page more.
/// A larger window is saved only at a sync, and a resume whose note lacks it goes back to
/// the last sync (at most `--checkpoint-every` of pages fetched again).
const NOTED_WINDOW: usize = 2048;

/// The checkpoint file's second line: the latest state and a hash of its text, by which a
/// note cut short (a kill in the middle of writing it) or half lost with the system is
/// told from a whole one, and ignored.
#[derive(Serialize, Deserialize)]
struct Note<'a> {
    #[serde(borrow)]
    latest: &'a RawValue,
    check: String,
}

/// The checkpoint file as last saved, open to note each page's state in place: replacing
/// the file after every page cost a fifth of a millisecond a page on ext4, which starts
/// writing a file out when it is renamed over another.
pub struct Notes {
    file: File,
    /// Where the note goes: just past the first line.
    at: u64,
}

impl Checkpoint {
    /// The checkpoint of a run that has fetched nothing yet.
    pub fn start(identity: &Identity, position: Position) -> Self {
        let state = State {
            position,
            guard: Guard::default(),
            pages: 0,
            received: 0,
            done: false,
            spool: Mark {
                len: 0,
                records: 0,
                columns: Vec::new(),
                runs: Vec::new(),
                header: 0,
            },
            incremental: None,
            window: None,
        };
        Checkpoint {
            saved: Saved {
                layout: LAYOUT,
                request: identity.parts.clone(),
                url: identity.url.clone(),
                started: since_epoch(SystemTime::now()).as_secs(),
                synced: state.clone(),
            },
            latest: state,
        }
    }

    /// Moves the latest state past a page, whose records took the spool to `spool`.
    pub fn advance(&mut self, progress: Progress, spool: Mark) {
        let (standing, latest) = (progress.standing, &mut self.latest);
        latest.position = standing.position;
        latest.guard.catch_up(standing.guard);
        latest.pages = standing.pages;
        latest.received = standing.records;
        latest.done = standing.done;
        latest.spool = spool;
        (latest.incremental, latest.window) = match progress.incremental {
            Some(Incremental { progress, window }) => (Some(progress), window),
            None => (None, None),
        };
    }

    /// Whether the latest state stands on its own, and so may be synced: an incremental
    /// run's state lacks its window on the pages where the engine did not build it.
    pub fn complete(&self) -> bool {
        self.latest.incremental.is_none() || self.latest.window.is_some()
    }

    /// The state as of the last sync.
    pub fn synced(&self) -> &State {
        &self.saved.synced
    }

    /// The partial file was just synced: the latest state is on the disk.
    pub fn sync(&mut self) {
        self.saved.synced = self.latest.clone();
    }

    /// Goes back to the state as of the last sync: the partial file lacks what came after.
    pub fn fall_back(&mut self) {
        self.latest = self.saved.synced.clone();
    }

    /// How long ago the run that began the partial file started, if that is long enough to
    /// warn that its records are not all from today.
    pub fn stale(&self) -> Option<Duration> {
        let started = Duration::from_secs(self.saved.started);
        let age = since_epoch(SystemTime::now()).saturating_sub(started);
        (age > STALE).then_some(age)
    }

    /// The checkpoint at `path`, if there is one, provided it belongs to `identity`. Its
    /// latest state is the one noted, if the note is whole, or else the synced one.
    pub fn load(path: &Path, identity: &Identity) -> Result<Option<Self>, Error> {
        let unusable = |why: String| cannot_resume(path, why);
        let read = place::open_own(fs::OpenOptions::new().read(true), path).and_then(|mut file| {
            let mut text = Vec::new();
            file.read_to_end(&mut text).map(|_| text)
        });
        let text = match read {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unusable(e.to_string())),
        };
        let (first, note) = match text.iter().position(|&b| b == b'\n') {
            Some(end) => (&text[..end], &text[end + 1..]),
            None => (&text[..], &[][..]),
        };
        let saved = Saved::load(first, identity).map_err(unusable)?;
        let latest = match Note::load(note) {
            // An incremental run's note without its window (too large to note) goes back
            // to the last sync, which has it (or is from before the first page).
            Some(latest) if latest["window"].is_null() && !latest["incremental"].is_null() => {
                saved.synced.clone()
            }
            Some(latest) => state(latest, identity).map_err(unusable)?,
            None => saved.synced.clone(),
        };
        Ok(Some(Checkpoint { saved, latest }))
    }

    /// Replaces the checkpoint at `path` atomically, synced, with the synced state alone:
    /// readers and later runs see the old checkpoint or the new one, never a mix, even
    /// after a power cut. URLs are saved with credentials masked.
    pub fn save(&self, path: &Path, identity: &Identity) -> io::Result<Notes> {
        let mut doc = serde_json::to_value(&self.saved)?;
        mask(&mut doc["synced"]["position"], identity);
        let mut text = serde_json::to_vec(&doc)?;
        text.push(b'\n');
        let at = text.len() as u64;
        let (file, ()) = place::replace(path, |file| file.write_all(&text))?;
        Ok(Notes { file, at })
    }
}

impl Saved {
    fn load(text: &[u8], identity: &Identity) -> Result<Self, String> {
        let not_ours =
            |e: serde_json::Error| format!("it is not a checkpoint apifetch can read ({e})");
        let mut doc: Value = serde_json::from_slice(text).map_err(not_ours)?;
        // Before anything else is read: an older layout may lack fields, or mean others.
        if doc["layout"] != LAYOUT {
            return Err("it was written by an incompatible version of apifetch".into());
        }
        unmask(&mut doc["synced"]["position"], identity)?;
        let saved: Saved = serde_json::from_value(doc).map_err(not_ours)?;
        if saved.request != identity.parts {
            // An incremental run's identity has one part more than another run's.
            let changed: Vec<&str> = PARTS
                .iter()
                .enumerate()
                .filter(|(i, _)| saved.request.get(*i) != identity.parts.get(*i))
                .map(|(_, name)| *name)
                .collect();
            return Err(format!(
                "it belongs to a different request: {} changed (it fetched {})",
                changed.join(", "),
                saved.url
            ));
        }
        Ok(saved)
    }
}

impl Note<'_> {
    /// The state a whole note holds, from the text after the first line; `None` if there
    /// is no note, or only part of one.
    fn load(text: &[u8]) -> Option<Value> {
        let end = text.iter().position(|&b| b == b'\n')?;
        let note: Note = serde_json::from_slice(&text[..end]).ok()?;
        let text = note.latest.get();
        (note.check == check(text)).then(|| serde_json::from_str(text).ok())?
    }
}

impl Notes {
    /// Writes the latest state over the previous note, in place and without a sync. A
    /// shorter note leaves the end of the longer one after its line, where it is not read.
    pub fn note(&mut self, checkpoint: &Checkpoint, identity: &Identity) -> io::Result<()> {
        let mut doc = serde_json::to_value(&checkpoint.latest)?;
        mask(&mut doc["position"], identity);
        let window = checkpoint.latest.window.as_ref();
        if let (Some(state), true) = (
            doc.as_object_mut(),
            window.is_some_and(|w| w.to_string().len() > NOTED_WINDOW),
        ) {
            state.remove("window");
        }
        let latest = serde_json::value::to_raw_value(&doc)?;
        let check = check(latest.get());
        let mut text = serde_json::to_vec(&Note {
            latest: &latest,
            check,
        })?;
        text.push(b'\n');
        self.file.seek(SeekFrom::Start(self.at))?;
        self.file.write_all(&text)
    }
}

/// The hash a note's state is checked by. Not a safeguard against tampering: whoever can
/// write the checkpoint can write the partial file.
fn check(text: &str) -> String {
    format!("{:016x}", FixedState::with_seed(0).hash_one(text))
}

/// A state read from the checkpoint, with the user's credentials put back in its URLs.
fn state(mut doc: Value, identity: &Identity) -> Result<State, String> {
    unmask(&mut doc["position"], identity)?;
    serde_json::from_value(doc)
        .map_err(|e| format!("its latest state is not one apifetch can read ({e})"))
}

/// Masks the user's credentials in the URLs of a position about to be saved.
fn mask(position: &mut Value, identity: &Identity) {
    rewrite_urls(position, &|url| {
        Url::parse(url)
            .ok()
            .map(|url| identity.credentials.mask(&url))
    });
}

/// Puts the user's credentials back in the URLs of a position saved by [`mask`].
fn unmask(position: &mut Value, identity: &Identity) -> Result<(), String> {
    match rewrite_urls(position, &|url| identity.credentials.unmask(url)) {
        true => Ok(()),
        false => Err(
            "its next-page URL carried a credential that this command line does not give".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity whose pagination options hash to `pages`.
    fn identity(pages: &str) -> Identity {
        Identity {
            parts: ["u", "p", pages, "r", "f"].map(String::from).to_vec(),
            url: "http://h/x?api_key=***".into(),
            credentials: Credentials {
                user: Some(Secret::new("bob")),
                password: Some(Secret::new("p%40ss")),
                params: vec![
                    ("api_key".into(), Secret::new("k%2By")),
                    ("q".into(), Secret::new("open")),
                ],
                secrets: vec![Secret::new("bearer-t0ken")],
            },
        }
    }

    #[test]
    fn files_sit_beside_the_output() {
        let files = Files::beside(Path::new("out/orders.csv"));
        assert_eq!(files.partial, Path::new("out/orders.csv.partial"));
        assert_eq!(files.checkpoint, Path::new("out/orders.csv.checkpoint"));
    }

    #[test]
    fn saves_and_loads_only_for_the_same_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.checkpoint");
        assert_eq!(Checkpoint::load(&path, &identity("a")).unwrap(), None);
        let mut checkpoint = Checkpoint::start(
            &identity("a"),
            Position::Page {
                number: 7,
                param: "page".into(),
                first: Some(1),
            },
        );
        checkpoint.latest.pages = 6;
        checkpoint.latest.spool = Mark {
            len: 12345678901234,
            records: 600,
            columns: vec!["id".into(), "a.b".into()],
            runs: vec![
                crate::sink::spool::Run { start: 0, width: 1 },
                crate::sink::spool::Run { start: 9, width: 2 },
            ],
            header: 1,
        };
        checkpoint.sync();
        checkpoint.save(&path, &identity("a")).unwrap();
        assert_eq!(
            Checkpoint::load(&path, &identity("a")).unwrap(),
            Some(checkpoint)
        );
        let err = Checkpoint::load(&path, &identity("b")).unwrap_err();
        assert!(
            err.to_string().contains(
                "different request: the pagination options changed (it fetched http://h/x?api_key=***)"
            ),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    /// Each page's state is noted in place, with the credentials of its URL masked; a
    /// note only partly written (a kill, a power cut) is ignored, not misread.
    #[test]
    fn a_whole_note_is_the_latest_state_and_a_broken_one_falls_back_to_the_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.checkpoint");
        let next = |after: u64| Position::Next {
            url: Url::parse(&format!("https://h/x?q=open&api_key=k%2By&after={after}")).unwrap(),
            pointer: "/next".into(),
        };
        let load = || Checkpoint::load(&path, &identity("a")).unwrap().unwrap();
        let mut checkpoint = Checkpoint::start(&identity("a"), next(0));
        let mut notes = checkpoint.save(&path, &identity("a")).unwrap();
        for (pages, after) in [(1, 1000), (2, 2)] {
            checkpoint.latest.pages = pages;
            checkpoint.latest.position = next(after);
            notes.note(&checkpoint, &identity("a")).unwrap();
            assert_eq!(load(), checkpoint, "a shorter note after a longer one too");
        }
        let text = fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("k%2By"));
        let note = text.iter().position(|&b| b == b'\n').unwrap() + 1;
        let pages = note + find(&text[note..], b"\"pages\":2").unwrap() + 8;
        let broken: [(&str, Vec<u8>); 3] = [
            ("cut short", text[..text.len() - 20].to_vec()),
            (
                "half old",
                [&text[..pages], b"1", &text[pages + 1..]].concat(),
            ),
            (
                "zeroed",
                [&text[..note], &vec![0; text.len() - note]].concat(),
            ),
        ];
        for (what, text) in broken {
            fs::write(&path, text).unwrap();
            let loaded = load();
            assert_eq!(&loaded.latest, checkpoint.synced(), "{what}");
            assert_eq!(loaded.latest.pages, 0, "{what}");
        }
    }

    /// A note holds an incremental run's window while it is small; a larger one only the
    /// synced state holds, and resuming goes back to it.
    #[test]
    fn a_window_too_large_to_note_is_taken_from_the_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.checkpoint");
        let load = || Checkpoint::load(&path, &identity("a")).unwrap().unwrap();
        let position = Position::Page {
            number: 1,
            param: "page".into(),
            first: Some(1),
        };
        let mut checkpoint = Checkpoint::start(&identity("a"), position);
        let mut notes = checkpoint.save(&path, &identity("a")).unwrap();
        let window = |n: u64| Value::from((0..n).collect::<Vec<u64>>());
        for (pages, size) in [(1, 10), (2, 1000)] {
            checkpoint.latest.pages = pages;
            checkpoint.latest.incremental = Some(serde_json::json!({"skipped": pages}));
            checkpoint.latest.window = Some(window(size));
            notes.note(&checkpoint, &identity("a")).unwrap();
        }
        let note_size = fs::metadata(&path).unwrap().len();
        assert!(note_size < 1024, "{note_size} bytes");
        assert_eq!(
            load().latest.pages,
            0,
            "back to the sync before the first page"
        );
        checkpoint.sync();
        let mut notes = checkpoint.save(&path, &identity("a")).unwrap();
        assert_eq!(load(), checkpoint, "the sync holds the whole window");
        checkpoint.latest.pages = 3;
        notes.note(&checkpoint, &identity("a")).unwrap();
        assert_eq!(load().latest.pages, 2, "the note after it lacks the window");
        checkpoint.latest.window = Some(window(10));
        notes.note(&checkpoint, &identity("a")).unwrap();
        assert_eq!(load(), checkpoint, "a small window is noted");
    }

    fn find(text: &[u8], what: &[u8]) -> Option<usize> {
        text.windows(what.len()).position(|w| w == what)
    }

    #[test]
    fn a_checkpoint_of_another_layout_is_refused_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.checkpoint");
        let checkpoint = Checkpoint::start(
            &identity("a"),
            Position::Page {
                number: 1,
                param: "page".into(),
                first: Some(1),
            },
        );
        checkpoint.save(&path, &identity("a")).unwrap();
        let mut older: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        older["layout"] = (LAYOUT - 1).into();
        older["synced"]["spool"]
            .as_object_mut()
            .unwrap()
            .remove("runs");
        std::fs::write(&path, older.to_string()).unwrap();
        let err = Checkpoint::load(&path, &identity("a")).unwrap_err();
        assert!(
            err.to_string()
                .contains("written by an incompatible version of apifetch"),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_is_stale_a_day_after_its_run_began() {
        let mut checkpoint = Checkpoint::start(
            &identity("a"),
            Position::Page {
                number: 1,
                param: "page".into(),
                first: Some(1),
            },
        );
        assert_eq!(checkpoint.stale(), None);
        checkpoint.saved.started -= 23 * 3600;
        assert_eq!(checkpoint.stale(), None);
        checkpoint.saved.started -= 2 * 3600;
        let age = checkpoint.stale().expect("25 hours old");
        assert!(age >= Duration::from_secs(25 * 3600), "{age:?}");
    }

    #[test]
    fn next_urls_are_saved_without_credentials_and_restored_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.checkpoint");
        let next = "https://bob:p%40ss@h/x?q=open&api_key=k%2By&after=a%20b&t=bearer-t0ken";
        let position = Position::Next {
            url: Url::parse(next).unwrap(),
            pointer: "/next".into(),
        };
        let checkpoint = Checkpoint::start(&identity("a"), position);
        checkpoint.save(&path, &identity("a")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("https://***:***@h/x?q=open&api_key=***&after=a%20b&t=***"),
            "{text}"
        );
        for secret in ["p%40ss", "k%2By", "bearer-t0ken", "bob"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The bearer token was not part of the URL the user gave: it cannot come back.
        let err = Checkpoint::load(&path, &identity("a")).unwrap_err();
        assert!(err.to_string().contains("carried a credential"), "{err}");

        let next = "https://bob:p%40ss@h/x?q=open&api_key=k%2By&after=a%20b";
        let position = Position::Next {
            url: Url::parse(next).unwrap(),
            pointer: "/next".into(),
        };
        let checkpoint = Checkpoint::start(&identity("a"), position);
        checkpoint.save(&path, &identity("a")).unwrap();
        let loaded = Checkpoint::load(&path, &identity("a")).unwrap().unwrap();
        assert_eq!(loaded, checkpoint, "the credentials are back");
    }

    #[test]
    fn the_identity_is_an_explicit_layout_not_the_settings_debug_text() {
        let pages = paginate::Settings {
            page_size: Some(50),
            max_pages: Some(3),
            ..paginate::Settings::defaults(crate::paginate::Style::Auto)
        };
        // A saved checkpoint holds hashes of exactly this text: changing it (a field added
        // here, renamed or reordered) must come with a new IDENTITY_VERSION.
        assert_eq!(
            pages_part(&pages).to_string(),
            r#"{"v":2,"style":"auto","page_param":"page","size_param":"per_page","page_size":50,"start_page":null,"offset_param":"offset","limit_param":"limit","cursor":null,"cursor_param":null,"next_path":null,"has_more":null,"total":null,"max_records":null,"body":null,"graphql":null}"#
        );
        let form = Form::Cells {
            sep: Some(".".into()),
            only: None,
            delimiter: b',',
            csv_safe: false,
        };
        assert_eq!(
            form_part(&form).to_string(),
            r#"{"v":2,"cells":{"sep":".","only":null,"delimiter":44,"csv_safe":false}}"#
        );
        assert_eq!(
            form_part(&Form::Lines).to_string(),
            r#"{"v":2,"lines":true}"#
        );
    }
}
