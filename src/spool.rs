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
use indexmap::set::Slice;
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
    /// Per column index, the number (plus one) of the last record that filled it, so a
    /// second cell for the same column within one record is seen without a lookup.
    filled: Vec<u64>,
    /// The record being appended, encoded: a single write per record is far cheaper than
    /// one per number and cell.
    encoded: Vec<u8>,
}

/// [`Form`] once its column list has moved into the spool.
enum Kind {
    /// `kept`: with `--columns`, how many of the spool's columns (the first ones, the
    /// selection) are kept; the others are names seen and dropped.
    Cells {
        sep: Option<String>,
        kept: Option<usize>,
    },
    Lines,
}

impl Spool {
    /// Spools into `file`, which must be empty and open for reading and writing.
    pub fn new(file: File, form: Form) -> Self {
        let (kind, columns) = match form {
            Form::Cells { sep, only } => {
                let columns: IndexSet<String> = only.iter().flatten().cloned().collect();
                let kept = only.map(|_| columns.len());
                (Kind::Cells { sep, kept }, columns)
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
            filled: Vec::new(),
            encoded: Vec::new(),
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
        file.rewind()?;
        check(&file, &form, &mark)?;
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
            Kind::Cells { sep, kept } => {
                let kept = kept.unwrap_or(usize::MAX);
                records::flatten(record, sep.as_deref(), &mut self.scratch)?;
                self.append_cells(kept)
            }
            Kind::Lines => self.append_line(&records::compact(record.get())),
        };
        written.map_err(|e| Error::output(e, "cannot spool records to disk"))
    }

    /// Appends the flattened record, only the cells of the first `kept` columns.
    fn append_cells(&mut self, kept: usize) -> io::Result<()> {
        self.guesses.resize(self.scratch.len(), usize::MAX);
        let stamp = self.records + 1;
        for ((column, _), guess) in self.scratch.iter().zip(&mut self.guesses) {
            let mut index = match self.columns.get_index(*guess) {
                Some(known) if known == column => *guess,
                _ => column_index(&mut self.columns, column),
            };
            // Two cells of one record under one name (`{"a.b":1,"a":{"b":2}}`, or a key
            // given twice): the later ones go to `a.b#2`, `a.b#3`, ... so no value is lost.
            let mut n = 1;
            while self.filled.get(index) == Some(&stamp) {
                n += 1;
                index = column_index(&mut self.columns, &format!("{column}#{n}"));
            }
            if self.filled.len() <= index {
                self.filled.resize(index + 1, 0);
            }
            self.filled[index] = stamp;
            *guess = index;
        }
        let cells = self.guesses.iter().filter(|&&i| i < kept).count();
        self.encoded.clear();
        push_u32(&mut self.encoded, cells)?;
        for ((_, text), &index) in self.scratch.iter().zip(&self.guesses) {
            if index >= kept {
                continue;
            }
            push_u32(&mut self.encoded, index)?;
            push_u32(&mut self.encoded, text.len())?;
            self.encoded.extend_from_slice(text.as_bytes());
        }
        self.file.write_all(&self.encoded)?;
        self.len += self.encoded.len() as u64;
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
            columns: self.columns().iter().cloned().collect(),
        }
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Every column seen so far, in first-seen order (or the `--columns` order).
    pub fn columns(&self) -> &Slice<String> {
        let kept = match self.kind {
            Kind::Cells {
                kept: Some(kept), ..
            } => kept,
            _ => self.columns.len(),
        };
        &self.columns.as_slice()[..kept]
    }

    /// Reads the records back in order, handing each to `each` as a row with one cell per
    /// column (missing cells empty).
    pub fn replay_cells(self, mut each: impl FnMut(&[&[u8]]) -> io::Result<()>) -> io::Result<()> {
        let width = self.columns().len();
        let (records, len) = (self.records, self.len);
        let mut file = self.into_file()?;
        file.rewind()?;
        let mut chunks = Chunks::new(file.take(len));
        let mut record = Record::default();
        for _ in 0..records {
            let bytes = record.read(&mut chunks, width)?;
            let mut row: Vec<&[u8]> = vec![b""; width];
            for &(column, start, end) in &record.spans {
                row[column] = &bytes[start..end];
            }
            each(&row)?;
            chunks.consume(record.len);
        }
        Ok(())
    }

    /// Reads the records of a [`Form::Lines`] spool back in order, each as its JSON text.
    pub fn replay_lines(self, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let (records, len) = (self.records, self.len);
        let mut reader = self.into_reader()?.take(len);
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

/// One record of a cells spool as read back: per cell its (column index, start, end) in
/// the bytes [`Record::read`] returns, and how many bytes of the spool it took.
#[derive(Default)]
struct Record {
    spans: Vec<(usize, usize, usize)>,
    len: usize,
}

impl Record {
    /// Reads the next record from `chunks` and returns the bytes its spans point into; the
    /// caller consumes `self.len` of them when done with the record.
    ///
    /// The spool may be a partial file left by an earlier run and damaged since, so nothing
    /// read is trusted: a column index outside `width` or a cell running past the end is
    /// [`io::ErrorKind::InvalidData`], never a panic or a huge allocation.
    fn read<'c>(
        &mut self,
        chunks: &'c mut Chunks<impl Read>,
        width: usize,
    ) -> io::Result<&'c [u8]> {
        self.spans.clear();
        let mut at = 0;
        let cells = chunks.u32_at(&mut at)?;
        for _ in 0..cells {
            let column = chunks.u32_at(&mut at)?;
            let len = chunks.u32_at(&mut at)?;
            if column >= width || len as u64 > chunks.left_after(at) {
                return Err(damaged());
            }
            chunks.fill(at + len)?;
            self.spans.push((column, at, at + len));
            at += len;
        }
        self.len = at;
        Ok(chunks.available())
    }
}

/// A spool read front to back through a large buffer, so that a record is parsed from a
/// slice instead of through a `read_exact` per number and cell: reading the spool back
/// would otherwise cost about as much as writing the table.
struct Chunks<R> {
    reader: io::Take<R>,
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: Read> Chunks<R> {
    fn new(reader: io::Take<R>) -> Self {
        Chunks {
            reader,
            buf: vec![0; 1 << 16],
            start: 0,
            end: 0,
        }
    }

    /// The unconsumed bytes read so far.
    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes of the spool past the first `at` unconsumed ones, read or not.
    fn left_after(&self, at: usize) -> u64 {
        (self.end - self.start) as u64 + self.reader.limit() - at as u64
    }

    /// Makes at least `n` unconsumed bytes available: [`io::ErrorKind::UnexpectedEof`] if
    /// the spool ends first. Callers bound `n` by [`Chunks::left_after`].
    #[inline]
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.end - self.start >= n {
            Ok(())
        } else {
            self.refill(n)
        }
    }

    /// [`Chunks::fill`] when the buffer runs short: kept out of line, as it is rare.
    #[cold]
    fn refill(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            match self.reader.read(&mut self.buf[self.end..])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => self.end += read,
            }
        }
        Ok(())
    }

    /// The little-endian number at unconsumed offset `*at`, moving `*at` past it.
    fn u32_at(&mut self, at: &mut usize) -> io::Result<usize> {
        self.fill(*at + 4)?;
        let bytes = &self.buf[self.start + *at..self.start + *at + 4];
        *at += 4;
        Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")) as usize)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Whether every byte of the spool has been consumed.
    fn is_done(&self) -> bool {
        self.start == self.end && self.reader.limit() == 0
    }
}

/// Checks that the first `mark.len` bytes of a spool file hold exactly `mark.records`
/// well-formed records of `form`.
fn check(file: &File, form: &Form, mark: &Mark) -> io::Result<()> {
    let eof_is_damage = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => damaged(),
        _ => e,
    };
    let complete = match form {
        Form::Cells { .. } => {
            let mut chunks = Chunks::new(file.take(mark.len));
            let mut record = Record::default();
            for _ in 0..mark.records {
                record
                    .read(&mut chunks, mark.columns.len())
                    .map_err(eof_is_damage)?;
                chunks.consume(record.len);
            }
            chunks.is_done()
        }
        Form::Lines => {
            let mut reader = BufReader::new(file).take(mark.len);
            let mut line = Vec::new();
            for _ in 0..mark.records {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
                    return Err(damaged());
                }
            }
            reader.limit() == 0
        }
    };
    if complete { Ok(()) } else { Err(damaged()) }
}

fn damaged() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "it does not hold the records its checkpoint describes",
    )
}

/// The index of `column`, added to the columns if it is new.
fn column_index(columns: &mut IndexSet<String>, column: &str) -> usize {
    match columns.get_index_of(column) {
        Some(index) => index,
        None => columns.insert_full(column.to_string()).0,
    }
}

fn push_u32(encoded: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("value too large for the spool"))?;
    encoded.extend_from_slice(&n.to_le_bytes());
    Ok(())
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

    /// Records straddle the read-back buffer's ends, and one cell is larger than it.
    #[test]
    fn replays_records_larger_than_the_read_buffer() {
        let big = "x".repeat(200_000);
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        let mut expected = Vec::new();
        for i in 0..5000 {
            let text = if i == 2500 {
                big.clone()
            } else {
                i.to_string()
            };
            spool
                .add(&raw(&format!(r#"{{"n": {i}, "s": "{text}"}}"#)))
                .unwrap();
            expected.push(vec![i.to_string(), text]);
        }
        assert_eq!(rows(spool), expected);
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

    #[test]
    fn a_second_cell_under_one_name_gets_a_column_of_its_own() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        spool
            .add(&raw(r#"{"a.b": 1, "a": {"b": 2}, "c": 3}"#))
            .unwrap();
        spool
            .add(&raw(r#"{"a": {"b": 4}, "c": 5, "c": 6, "c": 7}"#))
            .unwrap();
        spool
            .add(&raw(r#"{"a.b#2": "x", "a.b": 8, "a.b": 9}"#))
            .unwrap();
        assert_eq!(
            spool.columns().iter().collect::<Vec<_>>(),
            ["a.b", "a.b#2", "c", "c#2", "c#3", "a.b#3"]
        );
        assert_eq!(
            rows(spool),
            [
                vec!["1", "2", "3", "", "", ""],
                vec!["4", "", "5", "6", "7", ""],
                vec!["8", "x", "", "", "", "9"],
            ]
        );
    }

    #[test]
    fn second_cells_are_numbered_the_same_with_or_without_selected_columns() {
        let form = cells(".", Some(&["c", "a.b#2"]));
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        spool
            .add(&raw(r#"{"c": 1, "a.b": 2, "a": {"b": 3}, "c": 4}"#))
            .unwrap();
        assert_eq!(rows(spool), [vec!["1", "3"]]);
    }

    /// A spool of two records with a mark, and its bytes.
    fn written(form: Form) -> (Mark, Vec<u8>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), form);
        spool.add(&raw(r#"{"a": 1, "b": "xy"}"#)).unwrap();
        spool.add(&raw(r#"{"b": "z"}"#)).unwrap();
        spool.commit().unwrap();
        let mark = spool.mark();
        drop(spool);
        (mark, std::fs::read(file.path()).unwrap())
    }

    fn reopen(form: Form, mark: Mark, bytes: &[u8]) -> io::Result<Spool> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Spool::reopen(file, form, mark)
    }

    type Damage = Box<dyn Fn(&mut Mark, &mut Vec<u8>)>;

    #[test]
    fn reopening_a_damaged_spool_fails_as_invalid_data() {
        let (mark, bytes) = written(cells(".", None));
        assert!(reopen(cells(".", None), mark.clone(), &bytes).is_ok());
        let damages: [(&str, Damage); 6] = [
            ("a column past the last", Box::new(|_, b| b[4] = 2)),
            (
                "a huge cell",
                Box::new(|_, b| b[8..12].copy_from_slice(&[0xff; 4])),
            ),
            ("a cell past the end", Box::new(|_, b| b[8] = 50)),
            (
                "a huge cell count",
                Box::new(|_, b| b[0..4].copy_from_slice(&[0xff; 4])),
            ),
            ("fewer records", Box::new(|m, _| m.records = 1)),
            ("more records", Box::new(|m, _| m.records = 3)),
        ];
        for (what, damage) in damages {
            let (mut mark, mut bytes) = (mark.clone(), bytes.clone());
            damage(&mut mark, &mut bytes);
            let err = reopen(cells(".", None), mark, &bytes).err().expect(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        }
        let mut fewer = mark.clone();
        fewer.columns.pop();
        let err = reopen(cells(".", None), fewer, &bytes).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "fewer columns");

        let (mark, mut bytes) = written(Form::Lines);
        assert!(reopen(Form::Lines, mark.clone(), &bytes).is_ok());
        let last = bytes.len() - 1;
        bytes[last] = b' ';
        let err = reopen(Form::Lines, mark, &bytes).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "no final newline");
    }

    #[test]
    fn replaying_a_damaged_spool_fails_instead_of_panicking() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), cells(".", None));
        spool.add(&raw(r#"{"a": 1}"#)).unwrap();
        spool.commit().unwrap();
        let mut damaged = file.reopen().unwrap();
        damaged.write_all(&1u32.to_le_bytes()).unwrap();
        damaged.write_all(&7u32.to_le_bytes()).unwrap();
        let err = spool.replay_cells(|_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
