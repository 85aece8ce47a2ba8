//! Writing the records out: to standard output, or to a file that is replaced only when
//! the whole run succeeded.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::spool::Spool;

#[derive(Debug, Clone)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    pub fn new(out: Option<PathBuf>) -> Self {
        out.map_or(Destination::Stdout, Destination::File)
    }

    /// How the destination is named in the summary line.
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::File(path) => path.display().to_string(),
        }
    }

    /// An anonymous scratch file for the spool, beside the output so a directory that
    /// cannot be written is found before any page is fetched.
    pub fn scratch_file(&self) -> Result<File, Error> {
        match self {
            Destination::Stdout => {
                tempfile::tempfile().map_err(|e| Error::output(e, "cannot create a temporary file"))
            }
            Destination::File(path) => tempfile::tempfile_in(dir_of(path))
                .map_err(|e| Error::output(e, format!("cannot write beside {}", path.display()))),
        }
    }

    /// Writes the spooled records as CSV. A file is written under a temporary name in
    /// the same directory, synced, then renamed over the target, so readers see either
    /// the old file or the complete new one.
    pub fn write_csv(&self, spool: Spool) -> Result<(), Error> {
        match self {
            Destination::Stdout => {
                let stdout = io::stdout().lock();
                write_csv(spool, BufWriter::new(stdout))
                    .map_err(|e| Error::output(e, "cannot write to stdout"))
            }
            Destination::File(path) => {
                let failed =
                    |e: io::Error| Error::output(e, format!("cannot write {}", path.display()));
                let mut tmp = tempfile::Builder::new()
                    .prefix(".apifetch-")
                    .suffix(".tmp")
                    .tempfile_in(dir_of(path))
                    .map_err(failed)?;
                write_csv(spool, BufWriter::new(tmp.as_file_mut())).map_err(failed)?;
                tmp.as_file().sync_all().map_err(failed)?;
                tmp.persist(path).map_err(|e| failed(e.error))?;
                Ok(())
            }
        }
    }
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A header of every column, then one row per record. No records, no header: an empty file.
fn write_csv(spool: Spool, out: impl Write) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    if spool.records() > 0 {
        csv.write_record(spool.columns())?;
    }
    spool.replay(|row| csv.write_record(row).map_err(io::Error::from))?;
    csv.flush()
}
