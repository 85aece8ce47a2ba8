//! Records held on disk between fetching and writing.
//!
//! CSV needs every column before it can write its header, but holding every record in
//! memory does not scale, so each page is flattened as it arrives and appended to a spool
//! file in a compact binary form: per record, a count, then (column index, length, bytes)
//! per cell. Writing the output later is a sequential read with no JSON parsing.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use indexmap::IndexSet;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::records;

pub struct Spool {
    file: BufWriter<File>,
    columns: IndexSet<String>,
    records: u64,
    cells: Vec<(String, String)>,
    sep: String,
}

impl Spool {
    /// Spools into `file`, which must be empty and open for reading and writing.
    pub fn new(file: File, sep: &str) -> Self {
        Spool {
            file: BufWriter::new(file),
            columns: IndexSet::new(),
            records: 0,
            cells: Vec::new(),
            sep: sep.to_string(),
        }
    }

    pub fn add(&mut self, record: &RawValue) -> Result<(), Error> {
        self.cells.clear();
        records::flatten(record, &self.sep, &mut self.cells)?;
        self.append()
            .map_err(|e| Error::output(e, "cannot spool records to disk"))
    }

    fn append(&mut self) -> io::Result<()> {
        write_u32(&mut self.file, self.cells.len())?;
        for (column, text) in self.cells.drain(..) {
            let (index, _) = self.columns.insert_full(column);
            write_u32(&mut self.file, index)?;
            write_u32(&mut self.file, text.len())?;
            self.file.write_all(text.as_bytes())?;
        }
        self.records += 1;
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Every column seen so far, in first-seen order.
    pub fn columns(&self) -> &IndexSet<String> {
        &self.columns
    }

    /// Reads the records back in order, handing each to `each` as a row with one cell per
    /// column (missing cells empty).
    pub fn replay(self, mut each: impl FnMut(&[&[u8]]) -> io::Result<()>) -> io::Result<()> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let width = self.columns.len();
        let mut buf = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for _ in 0..self.records {
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
}

fn write_u32(w: &mut impl Write, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("value too large for the spool"))?;
    w.write_all(&n.to_le_bytes())
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

    #[test]
    fn replays_rows_under_the_union_of_columns() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), ".");
        spool.add(&raw(r#"{"a": 1, "b": {"c": "x"}}"#)).unwrap();
        spool.add(&raw(r#"{"d": "late", "a": 2}"#)).unwrap();
        assert_eq!(
            spool.columns().iter().collect::<Vec<_>>(),
            ["a", "b.c", "d"]
        );
        let mut rows = Vec::new();
        spool
            .replay(|row| {
                rows.push(
                    row.iter()
                        .map(|c| String::from_utf8(c.to_vec()).unwrap())
                        .collect::<Vec<_>>(),
                );
                Ok(())
            })
            .unwrap();
        assert_eq!(rows, [vec!["1", "x", ""], vec!["2", "", "late"]]);
    }
}
