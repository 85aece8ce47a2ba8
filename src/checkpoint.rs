//! The checkpoint beside a partial output: what a run has safely on disk, and where it
//! would continue, so an interrupted run can be resumed with `--resume`.
//!
//! A checkpoint is small JSON, replaced atomically (temporary file, sync, rename) only after
//! the page it describes is synced into the partial file. The partial file may hold more
//! than its checkpoint says (a page that was being written when the run died); resuming
//! cuts it back to the checkpoint's length. Secrets are never written: the request is
//! identified by a hash, and named by its redacted URL.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, Target};
use crate::error::Error;
use crate::paginate::Position;
use crate::spool::{Form, Mark};

/// Changes whenever the meaning of a checkpoint or the spool layout changes, so a partial
/// file written by an incompatible version is never carried on.
const LAYOUT: u32 = 1;

/// The partial output and its checkpoint, beside the output file.
#[derive(Debug, Clone)]
pub struct Files {
    pub partial: PathBuf,
    pub checkpoint: PathBuf,
}

impl Files {
    /// `orders.csv` → `orders.csv.partial` and `orders.csv.checkpoint`.
    pub fn beside(out: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = out.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Files {
            partial: with(".partial"),
            checkpoint: with(".checkpoint"),
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

/// Which request and result shape a partial file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// A hash of everything that decides the partial file's contents: the full URL and
    /// parameters (secrets included, which is why only the hash is kept), the pagination
    /// settings, where records are found and the record form.
    hash: String,
    /// The URL with secrets masked, for messages.
    url: String,
}

impl Identity {
    /// `url` is the URL actually fetched (for the demo, wherever it happens to listen).
    pub fn of(config: &Config, url: &url::Url, form: &Form) -> Self {
        // The demo listens on a new port each run but is always the same API.
        let target = match &config.target {
            Target::Url(url) => url.as_str(),
            Target::Demo => "demo",
        };
        // --max-pages only limits how far a run goes, not what it writes on the way.
        let mut pages = config.pages.clone();
        pages.max_pages = None;
        let mut hasher = Sha256::new();
        for part in [
            target.to_string(),
            format!("{:?}", config.request.params),
            format!("{pages:?}"),
            format!("{:?}", config.records),
            format!("{form:?}"),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Identity {
            hash: hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            url: crate::redact::url(url),
        }
    }
}

/// What a run has safely on disk, and where it continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    layout: u32,
    request: String,
    url: String,
    /// Where the next request starts.
    pub position: Position,
    /// Pages whose records are in the partial file.
    pub pages: u64,
    /// The last page has been fetched: only the output remains to be written.
    pub done: bool,
    pub spool: Mark,
}

impl Checkpoint {
    /// The checkpoint of a run that has fetched nothing yet.
    pub fn start(identity: &Identity, position: Position) -> Self {
        Checkpoint {
            layout: LAYOUT,
            request: identity.hash.clone(),
            url: identity.url.clone(),
            position,
            pages: 0,
            done: false,
            spool: Mark {
                len: 0,
                records: 0,
                columns: Vec::new(),
            },
        }
    }

    /// The checkpoint at `path`, if there is one, provided it belongs to `identity`.
    pub fn load(path: &Path, identity: &Identity) -> Result<Option<Self>, Error> {
        let unusable = |why: String| {
            Error::Usage(format!(
                "cannot resume from {}: {why}; run without --resume to start over",
                path.display()
            ))
        };
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unusable(e.to_string())),
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&text)
            .map_err(|e| unusable(format!("it is not a checkpoint apifetch can read ({e})")))?;
        if checkpoint.layout != LAYOUT {
            return Err(unusable(
                "it was written by an incompatible version of apifetch".into(),
            ));
        }
        if checkpoint.request != identity.hash {
            return Err(unusable(format!(
                "it belongs to a different request or output options (it fetched {})",
                checkpoint.url
            )));
        }
        Ok(Some(checkpoint))
    }

    /// Replaces the checkpoint at `path` atomically: readers and later runs see the old
    /// checkpoint or the new one, never a mix.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        crate::output::replace(path, |file| {
            serde_json::to_writer_pretty(&mut *file, self)?;
            file.write_all(b"\n")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(hash: &str) -> Identity {
        Identity {
            hash: hash.into(),
            url: "http://h/x?api_key=***".into(),
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
        let mut checkpoint = Checkpoint::start(&identity("a"), Position::Page { number: 7 });
        checkpoint.pages = 6;
        checkpoint.spool = Mark {
            len: 12345678901234,
            records: 600,
            columns: vec!["id".into(), "a.b".into()],
        };
        checkpoint.save(&path).unwrap();
        assert_eq!(
            Checkpoint::load(&path, &identity("a")).unwrap(),
            Some(checkpoint)
        );
        let err = Checkpoint::load(&path, &identity("b")).unwrap_err();
        assert!(
            err.to_string().contains(
                "different request or output options (it fetched http://h/x?api_key=***)"
            ),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
