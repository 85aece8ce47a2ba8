//! Records held on disk between fetching and writing.
//!
//! CSV needs every column before it can write its header, but holding every record in
//! memory does not scale, so each page is flattened as it arrives and appended to a spool
//! file in a compact binary form: per record, a count, then (column index, length, bytes)
//! per cell. Writing the output later is a sequential read with no JSON parsing. For the
//! JSON formats the spool holds each record's compact JSON text on a line of its own.
//!
//! The spool is append-only and its state at a page boundary is a small [`Mark`], so a
//! spool on a file that survives the process can be reopened at its last mark and carried
//! on as if the run had never stopped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use indexmap::IndexSet;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;
use crate::records;

/// How records are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// Flattened into named cells, for CSV and TSV.
    Cells {
        /// Joins nested keys into column names; `None` keeps nested objects as JSON text.
        sep: Option<String>,
        /// Only these columns, in this order (`--columns`); `None` keeps every column.
        only: Option<Vec<String>>,
    },
    /// One compact JSON record per line, for JSON Lines and JSON.
    Lines,
}

/// The spool's state after a complete page: enough to reopen it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Bytes of the spool file that hold complete pages.
    pub len: u64,
    pub records: u64,
    /// Columns seen so far, in first-seen order (empty for [`Form::Lines`]).
    pub columns: Vec<String>,
}

pub struct Spool {
    file: BufWriter<File>,
    len: u64,
    records: u64,
    columns: IndexSet<String>,
    kind: Kind,
    scratch: records::Cells,
    /// Per cell position, the column index it had in the previous record: records of one
    /// API mostly share their key order, so a string comparison usually replaces a hash.
    guesses: Vec<usize>,
}

/// [`Form`] once its column list has moved into the spool.
enum Kind {
    /// `fixed`: the columns were given by `--columns`, and no others are kept.
    Cells {
        sep: Option<String>,
        fixed: bool,
    },
    Lines,
}

impl Spool {
    /// Spools into `file`, which must be empty and open for reading and writing.
    pub fn new(file: File, form: Form) -> Self {
        let (kind, columns) = match form {
            Form::Cells { sep, only } => {
                let fixed = only.is_some();
                let columns = only.unwrap_or_default().into_iter().collect();
                (Kind::Cells { sep, fixed }, columns)
            }
            Form::Lines => (Kind::Lines, IndexSet::new()),
        };
        Spool {
            file: BufWriter::with_capacity(1 << 16, file),
            len: 0,
            records: 0,
            columns,
            kind,
            scratch: records::Cells::default(),
            guesses: Vec::new(),
        }
    }

    /// Carries on a spool left in `file` by an earlier run, dropping whatever that run
    /// wrote after `mark` (a page it did not finish).
    pub fn reopen(mut file: File, form: Form, mark: Mark) -> io::Result<Self> {
        let on_disk = file.metadata()?.len();
        if on_disk < mark.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "it holds {on_disk} bytes, fewer than the {} the checkpoint recorded",
                    mark.len
                ),
            ));
        }
        file.set_len(mark.len)?;
        file.seek(SeekFrom::End(0))?;
        let mut spool = Spool::new(file, form);
        spool.len = mark.len;
        spool.records = mark.records;
        spool.columns.extend(mark.columns);
        Ok(spool)
    }

    pub fn add(&mut self, record: &RawValue) -> Result<(), Error> {
        let written = match &self.kind {
            Kind::Cells { sep, fixed } => {
                let fixed = *fixed;
                records::flatten(record, sep.as_deref(), &mut self.scratch)?;
                self.append_cells(fixed)
            }
            Kind::Lines => self.append_line(&records::compact(record.get())),
        };
        written.map_err(|e| Error::output(e, "cannot spool records to disk"))
    }

    /// Appends the flattened record; with `fixed` columns, only the cells they name.
    fn append_cells(&mut self, fixed: bool) -> io::Result<()> {
        let kept = if fixed {
            let columns = &self.columns;
            self.scratch
                .iter()
                .filter(|(c, _)| columns.contains(*c))
                .count()
        } else {
            self.scratch.len()
        };
        let mut len = write_u32(&mut self.file, kept)?;
        self.guesses.resize(self.scratch.len(), usize::MAX);
        for ((column, text), guess) in self.scratch.iter().zip(&mut self.guesses) {
            let index = match self.columns.get_index(*guess) {
                Some(known) if known == column => *guess,
                _ => match self.columns.get_index_of(column) {
                    Some(index) => index,
                    None if fixed => continue,
                    None => self.columns.insert_full(column.to_string()).0,
                },
            };
            *guess = index;
            len += write_u32(&mut self.file, index)?;
            len += write_u32(&mut self.file, text.len())?;
            self.file.write_all(text.as_bytes())?;
            len += text.len() as u64;
        }
        self.len += len;
        self.records += 1;
        Ok(())
    }

    fn append_line(&mut self, json: &str) -> io::Result<()> {
        self.file.write_all(json.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.len += json.len() as u64 + 1;
        self.records += 1;
        Ok(())
    }

    /// Makes everything added so far durable: written, and synced to the disk.
    pub fn commit(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// The state to reopen the spool at, as of the last record added.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.len,
            records: self.records,
            columns: self.columns.iter().cloned().collect(),
        }
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Every column seen so far, in first-seen order (or the `--columns` order).
    pub fn columns(&self) -> &IndexSet<String> {
        &self.columns
    }

    /// Reads the records back in order, handing each to `each` as a row with one cell per
    /// column (missing cells empty).
    pub fn replay_cells(self, mut each: impl FnMut(&[&[u8]]) -> io::Result<()>) -> io::Result<()> {
        let width = self.columns.len();
        let records = self.records;
        let mut reader = self.into_reader()?;
        let mut buf = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for _ in 0..records {
            buf.clear();
            spans.clear();
            let cells = read_u32(&mut reader)?;
            for _ in 0..cells {
                let column = read_u32(&mut reader)?;
                let len = read_u32(&mut reader)?;
                let start = buf.len();
                buf.resize(start + len, 0);
                reader.read_exact(&mut buf[start..])?;
                spans.push((column, start, start + len));
            }
            let mut row: Vec<&[u8]> = vec![b""; width];
            for &(column, start, end) in &spans {
                row[column] = &buf[start..end];
            }
            each(&row)?;
        }
        Ok(())
    }

    /// Reads the records of a [`Form::Lines`] spool back in order, each as its JSON text.
    pub fn replay_lines(self, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let records = self.records;
        let mut reader = self.into_reader()?;
        let mut line = Vec::new();
        for _ in 0..records {
            line.clear();
            reader.read_until(b'\n', &mut line)?;
            match line.strip_suffix(b"\n") {
                Some(json) => each(json)?,
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(())
    }

    /// The spool file, with everything added written to it.
    pub fn into_file(self) -> io::Result<File> {
        self.file.into_inner().map_err(|e| e.into_error())
    }

    fn into_reader(self) -> io::Result<BufReader<File>> {
        let mut file = self.into_file()?;
        file.rewind()?;
        Ok(BufReader::with_capacity(1 << 16, file))
    }
}

fn write_u32(w: &mut impl Write, n: usize) -> io::Result<u64> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("value too large for the spool"))?;
    w.write_all(&n.to_le_bytes())?;
    Ok(4)
}

fn read_u32(r: &mut impl Read) -> io::Result<usize> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn cells(sep: &str, only: Option<&[&str]>) -> Form {
        Form::Cells {
            sep: Some(sep.to_string()),
            only: only.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn rows(spool: Spool) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        spool
            .replay_cells(|row| {
                rows.push(
                    row.iter()
                        .map(|c| String::from_utf8(c.to_vec()).unwrap())
                        .collect(),
                );
                Ok(())
            })
            .unwrap();
        rows
    }

    #[test]
    fn replays_rows_under_the_union_of_columns() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        spool.add(&raw(r#"{"a": 1, "b": {"c": "x"}}"#)).unwrap();
        spool.add(&raw(r#"{"d": "late", "a": 2}"#)).unwrap();
        assert_eq!(
            spool.columns().iter().collect::<Vec<_>>(),
            ["a", "b.c", "d"]
        );
        assert_eq!(rows(spool), [vec!["1", "x", ""], vec!["2", "", "late"]]);
    }

    #[test]
    fn selected_columns_keep_their_order_and_drop_the_rest() {
        let form = cells(".", Some(&["d", "b.c", "zz"]));
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        spool.add(&raw(r#"{"a": 1, "b": {"c": "x"}}"#)).unwrap();
        spool.add(&raw(r#"{"d": "late", "a": 2}"#)).unwrap();
        assert_eq!(
            rows(spool),
            [vec!["", "x", ""], vec!["late", "", ""]],
            "columns d, b.c, zz"
        );
    }

    #[test]
    fn reopening_at_a_mark_drops_the_unfinished_page() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), cells(".", None));
        spool.add(&raw(r#"{"a": 1}"#)).unwrap();
        spool.commit().unwrap();
        let mark = spool.mark();
        spool.add(&raw(r#"{"lost": 2}"#)).unwrap();
        spool.commit().unwrap();
        drop(spool);

        let mut spool = Spool::reopen(file.reopen().unwrap(), cells(".", None), mark).unwrap();
        spool.add(&raw(r#"{"b": 3, "a": 4}"#)).unwrap();
        assert_eq!(spool.columns().iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rows(spool), [vec!["1", ""], vec!["4", "3"]]);
    }

    #[test]
    fn reopening_a_file_shorter_than_its_mark_fails() {
        let mark = Mark {
            len: 10,
            records: 1,
            columns: vec![],
        };
        let err = Spool::reopen(tempfile::tempfile().unwrap(), Form::Lines, mark)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn lines_hold_compact_json() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), Form::Lines);
        spool
            .add(&raw("{ \"a\" : [1, 2.50],\n \"s\": \"x y\" }"))
            .unwrap();
        spool.add(&raw("7")).unwrap();
        assert_eq!(spool.mark().len, 25 + 2);
        let mut lines = Vec::new();
        spool
            .replay_lines(|l| {
                lines.push(String::from_utf8(l.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        assert_eq!(lines, [r#"{"a":[1,2.50],"s":"x y"}"#, "7"]);
    }
}
