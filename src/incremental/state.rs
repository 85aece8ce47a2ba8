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

/// Changes when the meaning of a state file changes.
const VERSION: u32 = 1;

/// Which job a state file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The URL with `--param` added, credentials masked.
    pub url: String,
    /// `--incremental`, as a JSON Pointer.
    pub field: String,
}

/// A record written within `--lookback` of the mark: its `--key` and its field's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub key: Value,
    pub value: Value,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window: Vec<Remembered>,
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
            window: Vec::new(),
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
        let state: State = serde_json::from_slice(&text)
            .map_err(|e| refuse(format!("it is not a state apifetch can read ({e})")))?;
        if state.apifetch_state != VERSION {
            return Err(refuse(
                "it was written by an incompatible version of apifetch".into(),
            ));
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
        state.window = vec![Remembered {
            key: json!(7),
            value: json!("2026-01-01T07:59:00Z"),
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
        assert!(text.contains("\"apifetch_state\": 1"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state");
        std::fs::write(&path, "id,name\n").unwrap();
        let err = State::load(&path, &job("/id")).unwrap_err().to_string();
        assert!(err.contains("not a state apifetch can read"), "{err}");
        let mut newer = serde_json::to_value(State::new(&job("/id"))).unwrap();
        newer["apifetch_state"] = json!(2);
        std::fs::write(&path, newer.to_string()).unwrap();
        let err = State::load(&path, &job("/id")).unwrap_err().to_string();
        assert!(err.contains("incompatible version"), "{err}");
    }
}
