//! The state file an incremental job keeps between runs: the mark (the highest value of
//! the field among records written by completed runs), what job it belongs to, and what
//! `--append` and `--lookback` need to carry on exactly.
//!
//! It is small JSON, replaced atomically, and holds no secret: the job is named by its URL
//! with credentials masked (so rotating a key does not orphan the state).

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::value::Kind;
use crate::error::Error;

/// Changes when the meaning of a state file changes. Version 1 remembered no record at
/// the mark (every record at it was taken as written, and at the mark less the lookback
/// too), no digests, and not the flags the window was kept with: [`State::load`] reads it
/// as [`State::legacy`].
const VERSION: u32 = 2;

/// Which job a state file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The URL with `--param` added, credentials masked.
    pub url: String,
    /// `--incremental`, as a JSON Pointer.
    pub field: String,
}

/// A record written at the mark or within `--lookback` of it: its `--key` (`null` for one
/// told apart by its text alone), its field's value and a digest of its text, which tells
/// a record sent again from one changed without its field moving on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    #[serde(default)]
    pub key: Value,
    pub value: Value,
    /// `None` only in a version 1 state, which kept no digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    apifetch_state: u32,
    url: String,
    field: String,
    /// The kind of value the field holds; `None` until a run saw one.
    pub kind: Option<Kind>,
    /// The highest value written so far, as the API sent it.
    pub mark: Option<Value>,
    /// The output's length after the run that saved this state: with `--append`, bytes
    /// past it are from a run that stopped before it could save its state.
    pub output_len: Option<u64>,
    /// SHA-256 of the output's last bytes (up to 64 KiB) before `output_len`: an output
    /// edited or replaced since must not be cut to that length and appended to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// The `--key` the window was kept with: remembered entries tell records apart by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The lowest value the window covers (the mark less `--lookback`): records written
    /// below it are not remembered, so a run may not read back past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_from: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window: Vec<Remembered>,
    /// Read from a version 1 state: see [`VERSION`].
    #[serde(skip)]
    pub legacy: bool,
}

impl State {
    /// The state of a job that has not completed a run yet.
    pub fn new(job: &Job) -> Self {
        State {
            apifetch_state: VERSION,
            url: job.url.clone(),
            field: job.field.clone(),
            kind: None,
            mark: None,
            output_len: None,
            output_tail: None,
            key: None,
            window_from: None,
            window: Vec::new(),
            legacy: false,
        }
    }

    /// The state at `path`, if there is one, provided it belongs to `job`: another job's
    /// mark would silently skip records this one never had.
    pub fn load(path: &Path, job: &Job) -> Result<Option<Self>, Error> {
        let refuse = |why: String| Error::Usage(format!("state file {}: {why}", path.display()));
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(refuse(format!("cannot read it: {e}"))),
        };
        let mut state: State = serde_json::from_slice(&text)
            .map_err(|e| refuse(format!("it is not a state apifetch can read ({e})")))?;
        match state.apifetch_state {
            VERSION => {}
            1 => (state.apifetch_state, state.legacy) = (VERSION, true),
            _ => {
                return Err(refuse(
                    "it was written by an incompatible version of apifetch".into(),
                ));
            }
        }
        if state.url != job.url || state.field != job.field {
            return Err(refuse(format!(
                "it belongs to another job: {} of {}, not {} of {}; give each job its own \
                 --state FILE",
                state.field, state.url, job.field, job.url
            )));
        }
        Ok(Some(state))
    }

    /// Replaces the state at `path` atomically: a crash leaves the old state or the new.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        crate::place::replace(path, |file| file.write_all(&text)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(field: &str) -> Job {
        Job {
            url: "https://h/orders?api_key=***".into(),
            field: field.into(),
        }
    }

    #[test]
    fn saves_and_loads_only_for_the_same_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.csv.state");
        assert_eq!(State::load(&path, &job("/updated_at")).unwrap(), None);
        let mut state = State::new(&job("/updated_at"));
        state.kind = Some(Kind::Timestamp);
        state.mark = Some(json!("2026-01-01T08:00:00Z"));
        state.output_len = Some(1234);
        state.output_tail = Some("ab".into());
        state.key = Some("/id".into());
        state.window_from = Some(json!("2026-01-01T07:50:00Z"));
        state.window = vec![Remembered {
            key: json!(7),
            value: json!("2026-01-01T07:59:00Z"),
            sha256: Some("cd".into()),
        }];
        state.save(&path).unwrap();
        assert_eq!(
            State::load(&path, &job("/updated_at")).unwrap(),
            Some(state)
        );
        let err = State::load(&path, &job("/id")).unwrap_err().to_string();
        assert!(
            err.contains(
                "belongs to another job: /updated_at of https://h/orders?api_key=***, not /id"
            ),
            "{err}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"apifetch_state\": 2"), "{text}");
    }

    #[test]
    fn a_version_1_state_is_read_as_legacy_and_saved_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state");
        let v1 = json!({
            "apifetch_state": 1, "url": "https://h/orders?api_key=***", "field": "/at",
            "kind": "timestamp", "mark": "2026-01-01T08:00:00Z", "output_len": 10,
            "window": [{"key": 7, "value": "2026-01-01T07:59:00Z"}]
        });
        std::fs::write(&path, v1.to_string()).unwrap();
        let state = State::load(&path, &job("/at")).unwrap().unwrap();
        assert!(state.legacy);
        assert_eq!(state.window[0].sha256, None);
        state.save(&path).unwrap();
        let again = State::load(&path, &job("/at")).unwrap().unwrap();
        assert!(!again.legacy, "saved as version 2");
    }

    #[test]
    fn a_file_that_is_not_a_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state");
        std::fs::write(&path, "id,name\n").unwrap();
        let err = State::load(&path, &job("/id")).unwrap_err().to_string();
        assert!(err.contains("not a state apifetch can read"), "{err}");
        let mut newer = serde_json::to_value(State::new(&job("/id"))).unwrap();
        newer["apifetch_state"] = json!(3);
        std::fs::write(&path, newer.to_string()).unwrap();
        let err = State::load(&path, &job("/id")).unwrap_err().to_string();
        assert!(err.contains("incompatible version"), "{err}");
    }
}
