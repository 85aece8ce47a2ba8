//! The job a run does: every module's settings, assembled and checked by [`crate::cli`].

use std::path::PathBuf;

use url::Url;

use crate::fetch;
use crate::incremental;
use crate::paginate;
use crate::policy::{Politeness, retry};
use crate::report::logging;
use crate::report::redact::Secret;
use crate::shape::records::Select;
use crate::sink;
use crate::sink::checkpoint::Job;

#[derive(Debug, Clone)]
pub enum Target {
    Url(Url),
    /// The built-in simulated API, started when the run starts.
    Demo,
}

/// What the run does with the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fetch every record.
    Fetch,
    /// `--probe`: fetch the first page, and say what it shows.
    Probe,
    /// `--dry-run`: send nothing; print the first request.
    DryRun,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub action: Action,
    /// `--save-profile NAME`: where to save what `--probe` found, and under which name.
    pub save_profile: Option<(PathBuf, String)>,
    /// The output file, replaced atomically when the run succeeds. `None` writes to
    /// standard output, or to `stream`.
    pub out: Option<PathBuf>,
    /// A device or pipe named by `--out` (`/dev/stdout`, a FIFO): written in place like
    /// standard output, since it cannot be replaced by renaming.
    pub stream: Option<PathBuf>,
    pub output: sink::Settings,
    /// `--incremental`: only records above the mark earlier runs reached.
    pub incremental: Option<incremental::Settings>,
    pub pages: paginate::Settings,
    pub records: Select,
    pub request: fetch::Settings,
    pub retry: retry::Policy,
    pub logging: logging::Settings,
    /// Every credential the run knows, so free text (errors, log lines) can be scrubbed
    /// of them.
    pub secrets: Vec<Secret>,
    pub polite: Politeness,
}

impl Config {
    /// What decides the requests, for the checkpoint's identity.
    pub fn job(&self) -> Job<'_> {
        Job {
            target: match &self.target {
                Target::Url(url) => Some(url),
                Target::Demo => None,
            },
            method: &self.request.method,
            params: &self.request.params,
            pages: &self.pages,
            records: &self.records,
            secrets: &self.secrets,
        }
    }
}
