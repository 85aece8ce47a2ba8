//! The errors the caller branches on, and the exit code each one maps to.
//!
//! Scripts read the exit code to learn *why* a run failed, so every way a run can end has
//! exactly one code here and nowhere else.

use std::process::ExitCode;

/// How a run ended, as a process exit code. Documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    Usage = 2,
    Permanent = 3,
    GaveUp = 4,
    BadResponse = 5,
    Output = 6,
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that cannot work together, or values that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The server answered with a status that retrying will not change.
    #[error("{url}: HTTP {status} (not retried){}", snippet_suffix(.body))]
    Permanent {
        url: String,
        status: u16,
        body: String,
    },
    /// The server's TLS certificate does not verify: retrying cannot change that, and
    /// the run must not go on as if the network were at fault.
    #[error("{url}: {why} (not retried)")]
    Untrusted { url: String, why: String },
    /// No answer can come from where the request points (a host that does not exist, a
    /// redirect loop, a scheme that is not http or https): asking again, or resuming,
    /// would only meet it again.
    #[error("{url}: {why} (not retried)")]
    Unreachable { url: String, why: String },
    /// The body arrived but does not decode from its `Content-Encoding`: the server sends
    /// it broken, and would again.
    #[error("{url}: {why} (not retried)")]
    Undecodable { url: String, why: String },
    /// Retries ran out, or the server asked us to wait longer than we are allowed to.
    #[error("{0}")]
    GaveUp(String),
    /// The response could not be used: not JSON, no records, a pagination loop.
    #[error("{0}")]
    BadResponse(String),
    /// The output could not be written.
    #[error("{0:#}")]
    Output(anyhow::Error),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// Any of the above, after pages were saved: the partial output is kept for `--resume`.
    #[error(
        "{error}; {} kept in {partial}{}",
        match records { 1 => "1 record is".to_string(), n => format!("{n} records are") },
        if error.resumable() {
            ": run the same command with --resume to continue"
        } else {
            " (--resume would meet the same failure)"
        }
    )]
    Kept {
        error: Box<Error>,
        records: u64,
        partial: String,
    },
}

fn snippet_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Permanent { .. } | Error::Untrusted { .. } | Error::Unreachable { .. } => {
                Exit::Permanent
            }
            Error::GaveUp(_) => Exit::GaveUp,
            Error::BadResponse(_) | Error::Undecodable { .. } => Exit::BadResponse,
            Error::Output(_) => Exit::Output,
            Error::Interrupted => Exit::Interrupted,
            Error::Kept { error, .. } => error.exit(),
        }
    }

    /// Whether `--resume` might get past this failure; not when it would ask the same
    /// question and meet the same wall, or when the flags must change (a usage error found
    /// mid-run, such as a column `--append` cannot add).
    pub fn resumable(&self) -> bool {
        !matches!(
            self,
            Error::Unreachable { .. } | Error::Undecodable { .. } | Error::Usage(_)
        )
    }

    /// Wraps an I/O or encoding failure on the output side.
    pub fn output(err: impl Into<anyhow::Error>, context: impl std::fmt::Display) -> Self {
        Error::Output(err.into().context(context.to_string()))
    }
}
