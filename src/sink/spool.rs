//! Records held on disk between fetching and writing.
//!
//! CSV needs every column before it can write its header, and holding every record in
//! memory does not scale. So each record goes to a spool file as it arrives, already in
//! the form it will have in the output: for CSV and TSV a delimited row of the columns
//! known so far, for the JSON formats its compact JSON text on a line.
//!
//! A table's spool starts with the header of the columns its first page has (the page is
//! read once for them before its rows are written); an API's first page nearly always
//! shows every column it has, so the spool usually already is the output, and finishing is
//! a rename.
//! A column that appears later only ever joins at the end: the output is then a new header,
//! the rows written before that column appeared (read back, and given the empty cells they
//! lack), and a plain copy of the rest.
//!
//! The spool is append-only and its state at a page boundary is a small [`Mark`], so a
//! spool on a file that survives the process can be reopened at its last mark and carried
//! on as if the run had never stopped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;

use indexmap::IndexSet;
use indexmap::set::Slice;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::Error;
use crate::shape::records;
use crate::sink::rows::{Columns, Encoded, Encoder, Form, Layout};

/// The spool's state after a complete page: enough to reopen it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Bytes of the spool file that hold complete pages.
    pub len: u64,
    pub records: u64,
    /// Columns seen so far, in first-seen order (empty for [`Form::Lines`]).
    pub columns: Vec<String>,
    /// Where the rows of each width begin (empty for [`Form::Lines`]).
    pub runs: Vec<Run>,
    /// The columns named by the header line at the start of the spool; 0 before it has one.
    pub header: usize,
}

/// Rows of one width: from byte `start` of the spool up to the next run, every row has
/// `width` cells. Rows only ever widen, so there are at most as many runs as columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub start: u64,
    pub width: usize,
}

pub struct Spool {
    records: u64,
    file: BufWriter<Counted>,
    kind: Kind,
}

enum Kind {
    Rows(Box<Rows>),
    Lines,
}

/// A table's columns and the rows written so far.
struct Rows {
    encoder: Encoder,
    /// `--max-columns`: the most columns the table takes, dropped ones included.
    most: usize,
    /// With `--columns`, how many of the columns (the first ones, the selection) are
    /// kept; the others are names seen and dropped.
    kept: Option<usize>,
    columns: IndexSet<String>,
    runs: Vec<Run>,
    /// The columns in the spool's header line; 0 until the first page is in.
    header: usize,
}

/// The spool file, and how many bytes have gone into it. The file is shared only with a
/// sync started ahead and never duplicated: where locks are emulated (NFS), closing any
/// descriptor of a file drops the run's lock on it.
struct Counted {
    file: Arc<File>,
    len: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Spool {
    /// Spools into `file`, which must be empty and open for reading and writing.
    pub fn new(file: File, form: Form) -> Self {
        Spool::at(file, form, 0)
    }

    /// A spool whose file already holds `len` bytes of complete records.
    fn at(file: File, form: Form, len: u64) -> Self {
        let kind = match &form {
            Form::Cells { only, .. } => {
                let columns: IndexSet<String> = only.iter().flatten().cloned().collect();
                Kind::Rows(Box::new(Rows {
                    encoder: Encoder::new(&form).expect("a table has an encoder"),
                    most: usize::MAX,
                    // Counted once repeated names are gone: `--columns id,id` is one column.
                    kept: only.is_some().then_some(columns.len()),
                    columns,
                    runs: Vec::new(),
                    header: 0,
                }))
            }
            Form::Lines => Kind::Lines,
        };
        let file = Counted {
            file: Arc::new(file),
            len,
        };
        Spool {
            records: 0,
            file: BufWriter::with_capacity(1 << 16, file),
            kind,
        }
    }

    /// Carries on a spool left in `file` by an earlier run at the first of `marks` the file
    /// holds (every record up to it, intact), dropping whatever that run wrote after it (a
    /// page it did not finish, or one lost with the system). Says which mark it took; fails
    /// as `InvalidData` if none.
    pub fn reopen(mut file: File, form: Form, marks: &[&Mark]) -> io::Result<(Self, usize)> {
        let mut refused = None;
        for (at, &mark) in marks.iter().enumerate() {
            if marks[..at].contains(&mark) {
                continue;
            }
            match holds(&mut file, &form, mark) {
                Ok(()) => return Ok((Spool::at_mark(file, form, mark.clone())?, at)),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => refused = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(refused.unwrap_or_else(damaged))
    }

    /// The spool in `file`, which holds `mark`, cut back to it.
    fn at_mark(mut file: File, form: Form, mark: Mark) -> io::Result<Self> {
        file.set_len(mark.len)?;
        file.seek(SeekFrom::End(0))?;
        let mut spool = Spool::at(file, form, mark.len);
        spool.records = mark.records;
        if let Kind::Rows(rows) = &mut spool.kind {
            rows.columns.extend(mark.columns);
            rows.runs = mark.runs;
            rows.header = mark.header;
        }
        Ok(spool)
    }

    /// Limits a table to `most` columns (`--max-columns`): records whose keys are all
    /// different would otherwise make a table of as many columns as records, its size the
    /// square of theirs.
    pub fn with_max_columns(mut self, most: usize) -> Self {
        if let Kind::Rows(rows) = &mut self.kind {
            rows.most = most;
        }
        self
    }

    /// Starts a table with the columns of the output it is to be appended to
    /// (`--append`), in their order, so its rows line up under that output's header. With
    /// `--columns`, they must be the columns given: false when they are not.
    pub fn seed_columns(&mut self, columns: &[String]) -> bool {
        match &mut self.kind {
            Kind::Rows(rows) if rows.kept.is_some() => rows.kept_columns().iter().eq(columns),
            Kind::Rows(rows) => {
                rows.columns = columns.iter().cloned().collect();
                true
            }
            Kind::Lines => true,
        }
    }

    /// The column names in the header of the table in the first `len` bytes of `file`;
    /// none when it is empty.
    pub fn header_of(file: &File, len: u64, form: &Form) -> io::Result<Vec<String>> {
        let Form::Cells {
            delimiter,
            csv_safe,
            ..
        } = form
        else {
            return Ok(Vec::new());
        };
        let mut header = csv::ByteRecord::new();
        reader(file, *delimiter, 0..len)?.read_byte_record(&mut header)?;
        Ok(header
            .iter()
            .map(|cell| crate::sink::rows::column_name(cell, *csv_safe))
            .collect())
    }

    /// Writes what `--append` adds to an output: the rows alone when it has a header
    /// already, else the whole table; JSON lines as they are. A table must not have
    /// gained a column (see [`Spool::seed_columns`]).
    pub fn write_appended(&mut self, mut out: impl Write, headed: bool) -> io::Result<()> {
        let start = match &self.kind {
            _ if self.records == 0 => return Ok(()),
            Kind::Rows(_) if !headed => return self.write_table(out),
            Kind::Rows(_) if !self.is_whole() => {
                return Err(io::Error::other("a column joined the table being appended"));
            }
            Kind::Rows(rows) => rows.runs.first().map_or(0, |run| run.start),
            Kind::Lines => 0,
        };
        self.file.flush()?;
        let Counted { file, len } = self.file.get_ref();
        let mut file = &**file;
        file.seek(SeekFrom::Start(start))?;
        io::copy(&mut file.take(len - start), &mut out)?;
        out.flush()
    }

    /// Appends a page of records, each given as its JSON text, valid as [`records::Page`]
    /// found it. Rows `encoded` ahead are taken as they are if no column joined since
    /// their layout was taken.
    pub fn add_page(&mut self, records: &[&str], encoded: Option<&Encoded>) -> Result<(), Error> {
        let spooled = |e| Error::output(e, "cannot spool records to disk");
        let still_holds = encoded.filter(|ahead| self.columns() == Some(ahead.columns));
        match (&mut self.kind, still_holds) {
            (Kind::Lines, _) => (records.iter())
                .try_for_each(|text| records::write_line(&mut self.file, text))
                .map_err(spooled)?,
            (Kind::Rows(_), Some(ahead)) => self.file.write_all(&ahead.rows).map_err(spooled)?,
            (Kind::Rows(rows), None) => rows.append_all(records, &mut self.file)?,
        }
        self.records += records.len() as u64;
        Ok(())
    }

    /// How many columns the table has now, once the header is settled: a layout taken at
    /// a count still holds while the count does, as columns only ever join.
    pub fn columns(&self) -> Option<usize> {
        match &self.kind {
            Kind::Rows(rows) if rows.header > 0 => Some(rows.columns.len()),
            _ => None,
        }
    }

    /// The columns rows are written with now, once the header is settled; `None` for JSON
    /// lines.
    pub fn layout(&self) -> Option<Layout> {
        match &self.kind {
            Kind::Rows(rows) if rows.header > 0 => Some(Layout {
                columns: rows.columns.clone(),
                width: rows.width(),
            }),
            _ => None,
        }
    }

    /// Makes everything added so far durable: written, and synced to the disk.
    pub fn commit(&mut self) -> io::Result<()> {
        self.file()?.sync_data()
    }

    /// Starts syncing everything added so far on a thread of its own, so that the next
    /// [`Spool::commit`] finds most of it on the disk already: syncing tens of megabytes at
    /// the end of a run is otherwise a good part of its time. How that sync ends does not
    /// matter; `commit` syncs again, and reports.
    pub fn sync_ahead(&mut self) -> io::Result<JoinHandle<()>> {
        self.file.flush()?;
        let file = Arc::clone(&self.file.get_ref().file);
        Ok(std::thread::spawn(move || drop(file.sync_data())))
    }

    /// The spool file, with everything added written to it. It stays locked as long as
    /// the spool lives.
    pub fn file(&mut self) -> io::Result<&File> {
        self.file.flush()?;
        Ok(&self.file.get_ref().file)
    }

    /// The state to reopen the spool at, as of the last record added. Called at the end
    /// of each page.
    pub fn mark(&mut self) -> io::Result<Mark> {
        let records = self.records;
        let (columns, runs, header) = match &self.kind {
            Kind::Rows(rows) => {
                let columns = rows.kept_columns().iter().cloned().collect();
                (columns, rows.runs.clone(), rows.header)
            }
            Kind::Lines => (Vec::new(), Vec::new(), 0),
        };
        self.file.flush()?;
        let len = self.file.get_ref().len;
        Ok(Mark {
            len,
            records,
            columns,
            runs,
            header,
        })
    }

    /// Whether the spool file already is the whole output, byte for byte: JSON Lines, or a
    /// table whose header names every column.
    pub fn is_whole(&self) -> bool {
        match &self.kind {
            Kind::Rows(rows) => self.records == 0 || rows.header == rows.width(),
            Kind::Lines => true,
        }
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the table a spool of rows holds: a header of every column, then one row per
    /// record, each with a cell for every column. No records, no header: nothing at all.
    /// Reading the spool back moves its file's position: nothing is added after this.
    pub fn write_table(&mut self, mut out: impl Write) -> io::Result<()> {
        self.file.flush()?;
        let Kind::Rows(rows) = &self.kind else {
            return Err(io::Error::other("a spool of JSON lines holds no table"));
        };
        let Counted { file, len } = self.file.get_ref();
        let (file, len, width) = (&**file, *len, rows.width());
        let mut rest = 0;
        if self.records > 0 && rows.header != width {
            // The rows written before the last column appeared are one cell per missing
            // column short; the rest are copied as they are.
            let runs = &rows.runs;
            let narrow = runs.first().map_or(0, |run| run.start)
                ..runs
                    .iter()
                    .find(|run| run.width >= width)
                    .map_or(len, |run| run.start);
            let mut table = writer(rows.encoder.delimiter(), &mut out);
            table.write_record(rows.header_cells())?;
            pad(
                reader(file, rows.encoder.delimiter(), narrow.clone())?,
                width,
                &mut table,
            )?;
            table.flush()?;
            rest = narrow.end;
        }
        self.copy_from(rest, &mut out)?;
        out.flush()
    }

    /// Copies the spool's bytes from byte `from` on to `out`, and says how many there
    /// were. The file's position, where records are added, stays where it is: a table of
    /// fixed columns is passed on page by page while the spool grows.
    pub fn copy_from(&mut self, from: u64, mut out: impl Write) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        self.file.flush()?;
        let Counted { file, len } = self.file.get_ref();
        let mut buf = vec![0; (len.saturating_sub(from) as usize).min(1 << 16)];
        let mut at = from;
        while at < *len {
            let want = buf.len().min((len - at) as usize);
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        Ok(at - from)
    }

    /// Reads the records of a [`Form::Lines`] spool back in order, each as its JSON text.
    /// Reading moves the file's position: nothing is added after this.
    pub fn replay_lines(
        &mut self,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if !matches!(self.kind, Kind::Lines) {
            return Err(io::Error::other("a spool of rows holds no JSON lines"));
        }
        let records = self.records;
        self.file.flush()?;
        let Counted { file, len } = self.file.get_ref();
        let mut file = &**file;
        file.rewind()?;
        let mut reader = BufReader::with_capacity(1 << 16, file).take(*len);
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
}

impl Rows {
    /// The header line's cells: every column, shaped like any other cell.
    fn header_cells(&self) -> Vec<Vec<u8>> {
        self.encoder.header(self.kept_columns())
    }

    /// Starts the spool with the header of the columns seen so far (the first page's):
    /// every row is written after it.
    fn settle(&mut self, spool: &mut BufWriter<Counted>) -> io::Result<()> {
        let mut header = writer(self.encoder.delimiter(), &mut *spool);
        header.write_record(self.header_cells())?;
        header.flush()?;
        drop(header);
        spool.flush()?;
        let (start, width) = (spool.get_ref().len, self.width());
        self.runs = vec![Run { start, width }];
        self.header = width;
        Ok(())
    }

    /// A `--columns` name that no record of the first page (with records) has is most
    /// likely misspelled: say so, with the names those records do have, rather than write
    /// an empty column without a word.
    fn warn_of_missing_columns(&self, records: u64) {
        let Some(kept) = self.kept else {
            return;
        };
        let missing: Vec<String> = (0..kept)
            .filter(|&i| !self.encoder.ever_filled(i))
            .map(|i| format!("`{}`", self.columns[i]))
            .collect();
        if missing.is_empty() {
            return;
        }
        /// Other names shown at most, so a wide API does not make a huge line.
        const SHOWN: usize = 12;
        let mut others: Vec<&str> = self.columns.iter().skip(kept).map(String::as_str).collect();
        if others.len() > SHOWN {
            others.truncate(SHOWN);
            others.push("…");
        }
        let hint = match others.is_empty() {
            true => String::new(),
            false => format!(" (they have {})", others.join(", ")),
        };
        warn!(
            "--columns: none of the first {} has {}{hint}; the column stays empty unless \
             later records have it",
            crate::report::units::counted(records, "record", "records"),
            missing.join(", ")
        );
    }

    /// Every column seen so far, in first-seen order (or the `--columns` order).
    fn kept_columns(&self) -> &Slice<String> {
        &self.columns.as_slice()[..self.width()]
    }

    /// The cells a row written now has.
    fn width(&self) -> usize {
        self.kept.unwrap_or(self.columns.len())
    }

    /// Appends `records` as rows. Before the first rows, the header: the first page is
    /// read once for its columns, so that it is written only once, at its full width.
    /// Rows go out through the spool's bounded buffer, whatever their width.
    fn append_all(
        &mut self,
        records: &[&str],
        spool: &mut BufWriter<Counted>,
    ) -> Result<(), Error> {
        let spooled = |e| Error::output(e, "cannot spool records to disk");
        if self.header == 0 && !records.is_empty() {
            for record in records {
                self.read(record)?;
            }
            self.settle(spool).map_err(spooled)?;
            self.warn_of_missing_columns(records.len() as u64);
        }
        for record in records {
            self.read(record)?;
            let width = self.width();
            if self.runs.last().map(|run| run.width) != Some(width) {
                spool.flush().map_err(spooled)?;
                let start = spool.get_ref().len;
                self.runs.push(Run { start, width });
            }
            self.encoder.row(width, spool).map_err(spooled)?;
        }
        Ok(())
    }

    /// Reads a record's cells, taking in the columns it adds up to `--max-columns`.
    fn read(&mut self, record: &str) -> Result<(), Error> {
        let mut forgotten = false;
        loop {
            let mut columns = Columns::Growing(&mut self.columns, self.most);
            if self.encoder.read(record, &mut columns)? {
                return Ok(());
            }
            // With `--columns`, the names seen and dropped are kept only to number a
            // record's second cell under one name (`a#2`): past the limit they are
            // forgotten, and the record is read again, once.
            match self.kept {
                Some(kept) if !forgotten => {
                    self.columns.truncate(kept);
                    forgotten = true;
                }
                _ => return Err(too_many_columns(self.most)),
            }
        }
    }
}

/// The error of a table that would have more than `most` columns.
fn too_many_columns(most: usize) -> Error {
    Error::BadResponse(format!(
        "the records have more than {most} different keys, too many columns for a table \
         (--max-columns {most}): write them as JSON Lines with --format jsonl, or pick the \
         columns to keep with --columns"
    ))
}

/// A writer of rows shaped like the spool's.
fn writer<W: Write>(delimiter: u8, out: W) -> csv::Writer<W> {
    // csv buffers on its own, and a buffer bigger than the default 8 KiB means far fewer
    // writes for a table of many megabytes.
    csv::WriterBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_writer(out)
}

/// A reader of the rows in `bytes` of a spool. It moves the file's position.
fn reader(
    mut file: &File,
    delimiter: u8,
    bytes: Range<u64>,
) -> io::Result<csv::Reader<io::Take<&File>>> {
    file.seek(SeekFrom::Start(bytes.start))?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(file.take(bytes.end.saturating_sub(bytes.start))))
}

/// Copies every row `rows` holds to `table`, with empty cells added up to `width`.
fn pad<R: Read, W: Write>(
    mut rows: csv::Reader<R>,
    width: usize,
    table: &mut csv::Writer<W>,
) -> io::Result<()> {
    let mut row = csv::ByteRecord::new();
    while rows.read_byte_record(&mut row)? {
        while row.len() < width {
            row.push_field(b"");
        }
        table.write_byte_record(&row)?;
    }
    Ok(())
}

/// Checks that `file` is at least `mark.len` bytes long, and that its first `mark.len`
/// bytes hold exactly `mark.records` well-formed records of `form`.
fn holds(file: &mut File, form: &Form, mark: &Mark) -> io::Result<()> {
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
    check(file, form, mark)
}

/// Checks that the first `mark.len` bytes of a spool file hold exactly `mark.records`
/// well-formed records of `form`.
fn check(file: &File, form: &Form, mark: &Mark) -> io::Result<()> {
    let complete = match form {
        Form::Cells { delimiter, .. } => {
            let mut rows = reader(file, *delimiter, 0..mark.len)?;
            let mut row = csv::ByteRecord::new();
            let mut records = 0u64;
            let widths_fit = mark.runs.windows(2).all(|w| w[0].start < w[1].start)
                && mark.runs.iter().all(|run| run.width <= mark.columns.len())
                && mark.header <= mark.columns.len();
            if mark.header > 0 && (!rows.read_byte_record(&mut row)? || row.len() != mark.header) {
                return Err(damaged());
            }
            while widths_fit && records <= mark.records && rows.read_byte_record(&mut row)? {
                let start = row.position().map_or(0, |p| p.byte());
                let run = mark.runs.iter().rev().find(|run| run.start <= start);
                if run.map(|run| run.width) != Some(row.len()) {
                    return Err(damaged());
                }
                records += 1;
            }
            let ends_a_row = mark.len == 0 || {
                let mut last = [0];
                let mut file = file;
                file.seek(SeekFrom::Start(mark.len - 1))?;
                file.read_exact(&mut last)?;
                last == *b"\n"
            };
            widths_fit && records == mark.records && ends_a_row
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::rows::Encoded;

    fn cells(sep: &str, only: Option<&[&str]>) -> Form {
        Form::Cells {
            sep: Some(sep.to_string()),
            only: only.map(|c| c.iter().map(|s| s.to_string()).collect()),
            delimiter: b',',
            csv_safe: false,
        }
    }

    fn add(spool: &mut Spool, record: &str) -> Result<(), Error> {
        spool.add_page(&[record], None)
    }

    fn table(mut spool: Spool) -> String {
        let mut out = Vec::new();
        spool.write_table(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_get_a_cell_for_every_column_seen() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        add(&mut spool, r#"{"a": 1, "b": {"c": "x,y"}}"#).unwrap();
        add(&mut spool, r#"{"d": "late", "a": 2}"#).unwrap();
        add(&mut spool, r#"{"b": {"c": null}, "d": "\"q\"", "a": 3}"#).unwrap();
        assert_eq!(
            table(spool),
            "a,b.c,d\n1,\"x,y\",\n2,,late\n3,,\"\"\"q\"\"\"\n"
        );
    }

    #[test]
    fn rows_encoded_ahead_are_taken_only_while_no_column_joined() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        // Stand-ins for rows encoded ahead, to see which ones the spool takes.
        let ahead = |columns| Encoded {
            rows: b"ahead\n".to_vec(),
            columns,
        };
        assert!(
            spool.layout().is_none(),
            "the header is not settled before the first page"
        );
        spool.add_page(&[r#"{"a": 1}"#], Some(&ahead(1))).unwrap();
        let layout = spool.layout().unwrap();
        assert_eq!((layout.columns.len(), layout.width), (1, 1));
        spool.add_page(&[r#"{"a": 2}"#], Some(&ahead(1))).unwrap();
        spool.add_page(&[r#"{"b": 3}"#], None).unwrap();
        // Encoded while there was one column: a column joined since.
        spool.add_page(&[r#"{"a": 4}"#], Some(&ahead(1))).unwrap();
        spool.add_page(&[r#"{"a": 5}"#], Some(&ahead(2))).unwrap();
        assert_eq!(spool.records(), 5);
        assert_eq!(table(spool), "a,b\n1,\nahead,\n,3\n4,\nahead\n");
    }

    #[test]
    fn a_lone_empty_cell_is_quoted_only_while_it_is_alone() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        add(&mut spool, r#"{"a": null}"#).unwrap();
        assert_eq!(table(spool), "a\n\"\"\n");
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        add(&mut spool, r#"{"a": null}"#).unwrap();
        add(&mut spool, r#"{"b": 1}"#).unwrap();
        assert_eq!(table(spool), "a,b\n,\n,1\n");
    }

    #[test]
    fn tsv_and_csv_safe_shape_the_cells_and_the_header() {
        let form = Form::Cells {
            sep: Some(".".into()),
            only: None,
            delimiter: b'\t',
            csv_safe: true,
        };
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        add(&mut spool, r#"{"=f": "=1+1", "t": "a\tb"}"#).unwrap();
        add(&mut spool, r#"{"n": -3, "s": "-3"}"#).unwrap();
        assert_eq!(
            table(spool),
            "'=f\tt\tn\ts\n'=1+1\t\"a\tb\"\t\t\n\t\t-3\t'-3\n"
        );
    }

    #[test]
    fn selected_columns_keep_their_order_and_drop_the_rest() {
        let form = cells(".", Some(&["d", "b.c", "zz"]));
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        add(&mut spool, r#"{"a": 1, "b": {"c": "x"}}"#).unwrap();
        add(&mut spool, r#"{"d": "late", "a": 2}"#).unwrap();
        assert_eq!(table(spool), "d,b.c,zz\n,x,\nlate,,\n");
    }

    #[test]
    fn more_columns_than_the_limit_fail_unless_they_are_dropped() {
        let spool = |only| Spool::new(tempfile::tempfile().unwrap(), cells(".", only));
        let mut wide = spool(None).with_max_columns(2);
        add(&mut wide, r#"{"a": 1, "b": 2}"#).unwrap();
        let err = add(&mut wide, r#"{"c": 3}"#).unwrap_err();
        assert!(err.to_string().contains("--max-columns 2"), "{err}");
        assert!(err.to_string().contains("--format jsonl"), "{err}");

        // Names `--columns` drops are forgotten at the limit, not counted against it.
        let mut picked = spool(Some(&["a"])).with_max_columns(3);
        for record in [
            r#"{"a": 1, "b": 2}"#,
            r#"{"c": 3, "a": 4, "a": 5}"#,
            r#"{"d": 6}"#,
        ] {
            add(&mut picked, record).unwrap();
        }
        assert_eq!(table(picked), "a\n1\n4\n\"\"\n");
        let mut picked = spool(Some(&["a"])).with_max_columns(2);
        let err = add(&mut picked, r#"{"b": 1, "c": 2}"#).unwrap_err();
        assert!(err.to_string().contains("--max-columns 2"), "{err}");
    }

    #[test]
    fn a_table_appended_to_lines_up_under_the_existing_header() {
        let existing = b"a,'=b,c\n1,2,3\n";
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(existing).unwrap();
        let form = Form::Cells {
            sep: Some(".".into()),
            only: None,
            delimiter: b',',
            csv_safe: true,
        };
        let columns = Spool::header_of(&file, existing.len() as u64, &form).unwrap();
        assert_eq!(columns, ["a", "=b", "c"]);
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        assert!(spool.seed_columns(&columns));
        add(&mut spool, r#"{"c": 6, "a": 4}"#).unwrap();
        let mut out = Vec::new();
        spool.write_appended(&mut out, true).unwrap();
        assert_eq!(out, b"4,,6\n");
        let mut out = Vec::new();
        spool.write_appended(&mut out, false).unwrap();
        assert_eq!(out, b"a,'=b,c\n4,,6\n");

        let mut picked = Spool::new(tempfile::tempfile().unwrap(), cells(".", Some(&["a", "c"])));
        assert!(!picked.seed_columns(&columns), "--columns differ");
        let mut empty = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        assert!(empty.seed_columns(&[]));
        assert!(empty.write_appended(Vec::new(), true).is_ok());
    }

    #[test]
    fn no_records_no_header() {
        let spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        assert_eq!(table(spool), "");
    }

    #[test]
    fn reopening_at_a_mark_drops_the_unfinished_page() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), cells(".", None));
        add(&mut spool, r#"{"a": 1}"#).unwrap();
        spool.commit().unwrap();
        let mark = spool.mark().unwrap();
        add(&mut spool, r#"{"lost": 2}"#).unwrap();
        spool.commit().unwrap();
        drop(spool);

        let (mut spool, _) =
            Spool::reopen(file.reopen().unwrap(), cells(".", None), &[&mark]).unwrap();
        add(&mut spool, r#"{"b": 3, "a": 4}"#).unwrap();
        assert_eq!(table(spool), "a,b\n1,\n4,3\n");
    }

    #[test]
    fn reopening_a_file_shorter_than_its_mark_fails() {
        let mark = Mark {
            len: 10,
            records: 1,
            columns: vec![],
            runs: vec![],
            header: 0,
        };
        let err = Spool::reopen(tempfile::tempfile().unwrap(), Form::Lines, &[&mark])
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// Narrow rows straddle the read-back buffer's ends, and one cell is larger than it.
    #[test]
    fn pads_rows_larger_than_the_read_buffer() {
        let big = "x".repeat(200_000);
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), cells(".", None));
        let mut expected = String::from("n,s,late\n");
        for i in 0..5000 {
            let (json, cell) = match i {
                2500 => (big.clone(), big.clone()),
                _ => ("a\\nb".to_string(), "\"a\nb\"".to_string()),
            };
            add(&mut spool, &format!(r#"{{"n": {i}, "s": "{json}"}}"#)).unwrap();
            expected.push_str(&format!("{i},{cell},\n"));
        }
        add(&mut spool, r#"{"late": 1}"#).unwrap();
        expected.push_str(",,1\n");
        assert_eq!(table(spool), expected);
    }

    #[test]
    fn lines_hold_compact_json() {
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), Form::Lines);
        add(&mut spool, "{ \"a\" : [1, 2.50],\n \"s\": \"x y\" }").unwrap();
        add(&mut spool, "7").unwrap();
        assert_eq!(spool.mark().unwrap().len, 25 + 2);
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
        add(&mut spool, r#"{"a.b": 1, "a": {"b": 2}, "c": 3}"#).unwrap();
        add(&mut spool, r#"{"a": {"b": 4}, "c": 5, "c": 6, "c": 7}"#).unwrap();
        add(&mut spool, r#"{"a.b#2": "x", "a.b": 8, "a.b": 9}"#).unwrap();
        assert_eq!(
            table(spool),
            "a.b,a.b#2,c,c#2,c#3,a.b#3\n1,2,3,,,\n4,,5,6,7,\n8,x,,,,9\n"
        );
    }

    #[test]
    fn second_cells_are_numbered_the_same_with_or_without_selected_columns() {
        let form = cells(".", Some(&["c", "a.b#2"]));
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), form);
        add(&mut spool, r#"{"c": 1, "a.b": 2, "a": {"b": 3}, "c": 4}"#).unwrap();
        assert_eq!(table(spool), "c,a.b#2\n1,3\n");
    }

    /// A spool of three records in two widths, marked after the first and the last, and
    /// its bytes.
    fn written(form: Form) -> (Mark, Vec<u8>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), form);
        add(&mut spool, r#"{"a": 1}"#).unwrap();
        spool.mark().unwrap();
        add(&mut spool, r#"{"a": 2, "b": "xy"}"#).unwrap();
        add(&mut spool, r#"{"b": "z"}"#).unwrap();
        spool.commit().unwrap();
        let mark = spool.mark().unwrap();
        drop(spool);
        (mark, std::fs::read(file.path()).unwrap())
    }

    #[test]
    fn after_the_first_page_the_spool_is_the_table_until_a_column_joins() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), cells(".", None));
        let first = [r#"{"a": 1}"#, r#"{"b": "x,y", "a": 2}"#];
        spool.add_page(&first, None).unwrap();
        assert!(
            spool.is_whole(),
            "the first page's columns are all in the header"
        );
        let mark = spool.mark().unwrap();
        assert_eq!(
            (mark.header, mark.runs),
            (2, vec![Run { start: 4, width: 2 }])
        );
        add(&mut spool, r#"{"b": 3}"#).unwrap();
        spool.commit().unwrap();
        assert!(spool.is_whole());
        let table = "a,b\n1,\n2,\"x,y\"\n,3\n";
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), table);
        add(&mut spool, r#"{"c": 4}"#).unwrap();
        assert!(!spool.is_whole());
        let mut out = Vec::new();
        spool.write_table(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,c\n1,,\n2,\"x,y\",\n,3,\n,,4\n"
        );
    }

    fn reopen(form: Form, mark: Mark, bytes: &[u8]) -> io::Result<Spool> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Spool::reopen(file, form, &[&mark]).map(|(spool, _)| spool)
    }

    /// The system went down before the last page reached the disk: the file is short of
    /// the latest mark, or holds zeros where it should have rows.
    #[test]
    fn reopening_falls_back_to_the_first_mark_the_file_holds() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap(), cells(".", None));
        add(&mut spool, r#"{"a": 1}"#).unwrap();
        let synced = spool.mark().unwrap();
        add(&mut spool, r#"{"a": 2, "b": "x"}"#).unwrap();
        let latest = spool.mark().unwrap();
        drop(spool);
        let whole = std::fs::read(file.path()).unwrap();
        let zeroed = [&whole[..synced.len as usize], &[0; 6][..]].concat();
        for (what, bytes) in [
            ("whole", &whole[..]),
            ("cut", &whole[..6]),
            ("zeroed", &zeroed),
        ] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(bytes).unwrap();
            let (spool, at) = Spool::reopen(file, cells(".", None), &[&latest, &synced]).unwrap();
            let (mark, records, rows) = match what {
                "whole" => (0, 2, "a,b\n1,\n2,x\n"),
                _ => (1, 1, "a\n1\n"),
            };
            assert_eq!((at, spool.records()), (mark, records), "{what}");
            assert_eq!(table(spool), rows, "{what}");
        }
    }

    type Damage = Box<dyn Fn(&mut Mark, &mut Vec<u8>)>;

    #[test]
    fn reopening_a_damaged_spool_fails_as_invalid_data() {
        let (mark, bytes) = written(cells(".", None));
        assert_eq!(bytes, b"a\n1\n2,xy\n,z\n");
        assert!(reopen(cells(".", None), mark.clone(), &bytes).is_ok());
        let damages: [(&str, Damage); 9] = [
            ("a cell too many", Box::new(|_, b| b[2] = b',')),
            ("a row too few", Box::new(|_, b| b[5] = b'-')),
            ("an open quote", Box::new(|_, b| b[4] = b'"')),
            ("a header too narrow", Box::new(|m, _| m.header = 2)),
            (
                "no final newline",
                Box::new(|_, b| *b.last_mut().unwrap() = b'.'),
            ),
            ("fewer records", Box::new(|m, _| m.records = 2)),
            ("more records", Box::new(|m, _| m.records = 4)),
            (
                "a run past the columns",
                Box::new(|m, _| m.runs[1].width = 3),
            ),
            ("runs out of order", Box::new(|m, _| m.runs.swap(0, 1))),
        ];
        for (what, damage) in damages {
            let (mut mark, mut bytes) = (mark.clone(), bytes.clone());
            damage(&mut mark, &mut bytes);
            let err = reopen(cells(".", None), mark, &bytes).err().expect(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        }

        let (mark, mut bytes) = written(Form::Lines);
        assert!(reopen(Form::Lines, mark.clone(), &bytes).is_ok());
        let last = bytes.len() - 1;
        bytes[last] = b' ';
        let err = reopen(Form::Lines, mark, &bytes).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "no final newline");
    }
}
