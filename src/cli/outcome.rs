//! How a run ends: its exit code, the one error line on stderr, and the `--summary-json`
//! file that CI steps and monitoring read, written on failure too.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::Instant;

use tracing::error;

use crate::error::{Error, Exit};
use crate::place::Place;
use crate::report::redact::{Secret, scrub};
use crate::report::stats::Stats;

pub struct Outcome {
    exit: Exit,
    /// Why the run failed, scrubbed of secrets.
    error: Option<String>,
    output: Option<PathBuf>,
}

impl Outcome {
    /// A run's result, with its error reported on stderr: as a JSON log line when logs
    /// are JSON, else as one `apifetch: error: …` line. A broken pipe on stdout
    /// (`apifetch … | head`) is success: the reader had all it wanted.
    pub fn of(
        result: Result<(), Error>,
        output: Option<PathBuf>,
        secrets: &[Secret],
        json_logs: bool,
    ) -> Self {
        let error = match result {
            Ok(()) => None,
            Err(Error::Output(e)) if is_broken_pipe(&e) => None,
            Err(e) => Some(e),
        };
        let Some(error) = error else {
            return Outcome {
                exit: Exit::Ok,
                error: None,
                output,
            };
        };
        let message = scrub(&error.to_string(), secrets);
        if json_logs {
            error!(exit_code = error.exit() as u8, "{message}");
        } else {
            eprintln!(
                "apifetch: error: {}",
                crate::report::logging::inert(&message)
            );
        }
        Outcome {
            exit: error.exit(),
            error: Some(message),
            output,
        }
    }

    /// Writes the summary if one was asked for, and gives the exit code. A summary that
    /// cannot be written fails a run that otherwise succeeded, since whatever reads it
    /// would be misled.
    pub fn finish(self, summary: Option<&Place>, stats: &Stats, started: Instant) -> Exit {
        let Some(place) = summary else {
            return self.exit;
        };
        let written = stats.write_summary(
            place,
            self.exit,
            self.error.as_deref(),
            started.elapsed(),
            self.output.as_deref(),
        );
        match written {
            Ok(()) => self.exit,
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "apifetch: error: cannot write --summary-json {}: {e}",
                    place.path().display()
                );
                if self.exit == Exit::Ok {
                    Exit::Output
                } else {
                    self.exit
                }
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::BrokenPipe)
}
