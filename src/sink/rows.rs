//! Turning records into delimited rows (CSV, TSV).
//!
//! A record's cells go under named columns; a row has a cell for every column, in the
//! columns' order, whatever order the record's keys came in. Each value is read from the
//! page's text and encoded once, straight from it.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;

use indexmap::IndexSet;

use crate::error::Error;
use crate::shape::records::{Cell, Flattener};
use crate::shape::scan;

/// How records are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// Flattened into rows of named cells, for CSV and TSV.
    Cells {
        /// Joins nested keys into column names; `None` keeps nested objects as JSON text.
        sep: Option<String>,
        /// Only these columns, in this order (`--columns`); `None` keeps every column.
        only: Option<Vec<String>>,
        /// Between cells: `,` for CSV, a tab for TSV.
        delimiter: u8,
        /// `--csv-safe`: a cell a spreadsheet would run as a formula gets a leading `'`.
        csv_safe: bool,
    },
    /// One compact JSON record per line, for JSON Lines and JSON.
    Lines,
}

/// Reads records into rows. The thread that writes has one, and so does the fetching side,
/// to encode a page ahead when the writer is behind.
#[derive(Debug)]
pub struct Encoder {
    delimiter: u8,
    /// `--csv-safe`: a cell a spreadsheet would run as a formula gets a leading `'`.
    csv_safe: bool,
    flattener: Flattener,
    /// Records read so far; each record's number stamps the columns it fills.
    stamp: u64,
    /// Per cell position, the column index it had in the previous record: records of one
    /// API mostly share their key order, so a string comparison usually replaces a hash.
    guesses: Vec<usize>,
    /// Per column index, the stamp of the last record that filled it: whether the record
    /// being read has a cell there, and a second cell for one column is seen at once.
    filled: Vec<u64>,
    /// The cells of the record being read, encoded, in the order they came, each followed
    /// by the delimiter: cells that are next to each other in the row and here too are
    /// copied into the row at once.
    cells: Vec<u8>,
    /// Per column index, where its cell lies in `cells` (if `filled` says there is one):
    /// cells come in the record's order, and go out in the columns'.
    spans: Vec<Range<usize>>,
    /// A cell's text, when it is not the page's text as it stands (escapes, indented JSON).
    text: String,
}

/// The columns a record's cells go under.
pub enum Columns<'a> {
    /// A column not seen before joins at the end, while there are fewer than the limit
    /// (`--max-columns`): past it, a record with a new column does not fit.
    Growing(&'a mut IndexSet<String>, usize),
    /// Only these: a record with another column does not fit.
    Fixed(&'a IndexSet<String>),
}

/// A table's columns at some point of a run, to encode rows away from the spool.
#[derive(Debug, Clone)]
pub struct Layout {
    pub columns: IndexSet<String>,
    /// The columns a row has: the first ones (all but those `--columns` drops).
    pub width: usize,
}

/// Rows encoded ahead, against the first `columns` columns.
pub struct Encoded {
    pub rows: Vec<u8>,
    pub columns: usize,
}

/// A guess that no column matches.
const NONE: usize = usize::MAX;

/// Bytes of a record's cells kept allocated from one record to the next: one huge value
/// must not hold its size in memory for the rest of the run.
const KEEP: usize = 1 << 20;

/// Bytes by which rows encoded ahead may outgrow their records' text before the encoding
/// is given up: rows of many columns, few of them filled, are far larger than the JSON
/// they come from, and the writer streams them out through a bounded buffer instead.
const AHEAD_ROOM: usize = 64 << 10;

impl Encoder {
    /// An encoder for rows of `form`; `None` if `form` is not a table.
    pub fn new(form: &Form) -> Option<Self> {
        let Form::Cells {
            sep,
            delimiter,
            csv_safe,
            ..
        } = form
        else {
            return None;
        };
        Some(Encoder {
            delimiter: *delimiter,
            csv_safe: *csv_safe,
            flattener: Flattener::new(sep.clone(), *delimiter),
            stamp: 0,
            guesses: Vec::new(),
            filled: Vec::new(),
            cells: Vec::new(),
            spans: Vec::new(),
            text: String::new(),
        })
    }

    /// Reads `record`'s cells, each under the index of its column. `Ok(false)` if a cell
    /// has no column among [`Columns::Fixed`]. An error if the record is not valid JSON;
    /// columns it named before that may have joined, and the run stops at it.
    pub fn read(&mut self, record: &str, columns: &mut Columns<'_>) -> Result<bool, Error> {
        self.stamp += 1;
        let Encoder {
            delimiter,
            csv_safe,
            flattener,
            stamp,
            guesses,
            filled,
            cells,
            spans,
            text,
        } = self;
        cells.clear();
        cells.shrink_to(KEEP);
        text.shrink_to(KEEP);
        let (mut position, mut fits) = (0, true);
        let read = flattener.record(record, |column, cell| {
            if guesses.len() == position {
                guesses.push(NONE);
            }
            let guess = &mut guesses[position];
            position += 1;
            let mut index = match columns.get(*guess) {
                Some(known) if known == column => Some(*guess),
                _ => columns.index(column),
            };
            // Two cells of one record under one name (`{"a.b":1,"a":{"b":2}}`, or a key
            // given twice): the later ones go to `a.b#2`, `a.b#3`, ... so no value is lost.
            let mut n = 1;
            while index.is_some_and(|i| filled.get(i) == Some(stamp)) {
                n += 1;
                index = columns.index(&format!("{column}#{n}"));
            }
            let Some(index) = index else {
                fits = false;
                return None;
            };
            if filled.len() <= index {
                filled.resize(index + 1, 0);
                spans.resize(index + 1, 0..0);
            }
            filled[index] = *stamp;
            *guess = index;
            let start = cells.len();
            put_cell(cells, text, cell, *csv_safe, *delimiter)?;
            spans[index] = start..cells.len();
            cells.push(*delimiter);
            Some(())
        });
        match read {
            Err(_) if !fits => Ok(false),
            read => read.map(|()| true),
        }
    }

    /// Encodes `records` as rows of `layout`, after what `out` holds. `Ok(false)` as soon
    /// as a record has a column that `layout` has not, or the rows grow well past the
    /// records' own size (see [`AHEAD_ROOM`]).
    pub fn encode(
        &mut self,
        records: &[&str],
        layout: &Layout,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        let most = out.len() + records.iter().map(|r| r.len()).sum::<usize>() + AHEAD_ROOM;
        for record in records {
            if !self.read(record, &mut Columns::Fixed(&layout.columns))? {
                return Ok(false);
            }
            self.row(layout.width, out)
                .expect("writing to memory does not fail");
            if out.len() > most {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the record last read as a row of the first `width` columns. The row goes
    /// out a run of cells at a time, never whole, so a row of many columns or one huge
    /// cell costs no copy of its own.
    pub fn row(&self, width: usize, out: &mut impl Write) -> io::Result<()> {
        // Each column adds its cell and a delimiter, but the last one. Cells that follow
        // each other in `cells` as in the row go out at once.
        let (mut run, mut empty) = (0..0, true);
        for index in 0..width {
            let last = index + 1 == width;
            if self.filled.get(index) != Some(&self.stamp) {
                out.write_all(&self.cells[run])?;
                run = 0..0;
                if !last {
                    out.write_all(&[self.delimiter])?;
                    empty = false;
                }
                continue;
            }
            let cell = &self.spans[index];
            if run.end != cell.start {
                out.write_all(&self.cells[run])?;
                run = cell.start..cell.start;
            }
            // The delimiter after the cell, unless it is the row's last.
            run.end = cell.end + usize::from(!last);
            empty &= cell.is_empty() && last;
        }
        out.write_all(&self.cells[run])?;
        if empty {
            // A row of one empty cell, quoted as csv does, so it is not an empty line.
            out.write_all(b"\"\"")?;
        }
        out.write_all(b"\n")
    }

    /// Whether any record read so far had a cell under column `index`.
    pub fn ever_filled(&self, index: usize) -> bool {
        self.filled.get(index).is_some_and(|&stamp| stamp > 0)
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The header line's cells: `columns`, shaped like any other cell.
    pub fn header<'c>(&self, columns: impl IntoIterator<Item = &'c String>) -> Vec<Vec<u8>> {
        (columns.into_iter())
            .map(|c| safe_cell(c.as_bytes(), self.csv_safe).into_owned())
            .collect()
    }
}

impl Columns<'_> {
    fn get(&self, index: usize) -> Option<&String> {
        match self {
            Columns::Growing(columns, _) => columns.get_index(index),
            Columns::Fixed(columns) => columns.get_index(index),
        }
    }

    /// The index of `column`; a growing set takes it in if it is new.
    fn index(&mut self, column: &str) -> Option<usize> {
        match self {
            Columns::Growing(columns, most) => match columns.get_index_of(column) {
                Some(index) => Some(index),
                None if columns.len() < *most => Some(columns.insert_full(column.to_string()).0),
                None => None,
            },
            Columns::Fixed(columns) => columns.get_index_of(column),
        }
    }
}

/// Appends `text` as a cell of a row, quoted exactly as the csv crate quotes a cell (only
/// when it holds the delimiter, a quote or a line break; quotes doubled), so that rows
/// encoded here and rows csv writes (the header, padded rows) match byte for byte. Rows
/// are encoded here because csv's cell-by-cell writer was a sixth of the cost of writing a
/// table.
fn push_cell(line: &mut Vec<u8>, text: &[u8], delimiter: u8) {
    if scan::find(text, [delimiter, b'"', b'\n', b'\r']).is_none() {
        line.extend_from_slice(text);
        return;
    }
    line.push(b'"');
    for (i, part) in text.split(|&b| b == b'"').enumerate() {
        if i > 0 {
            line.extend_from_slice(b"\"\"");
        }
        line.extend_from_slice(part);
    }
    line.push(b'"');
}

/// With `csv_safe`, a string cell that a spreadsheet would run as a formula gets a leading
/// `'` (the OWASP advice against CSV injection). JSON numbers never come here.
#[inline]
fn safe_cell(text: &[u8], csv_safe: bool) -> Cow<'_, [u8]> {
    if !csv_safe {
        return Cow::Borrowed(text);
    }
    match text.first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned([b"'", text].concat()),
        _ => Cow::Borrowed(text),
    }
}

/// Appends `cell` as it goes in a row: as it is where it cannot need quoting or escaping,
/// else through `text`. `None` if a string's escapes do not decode.
#[inline]
fn put_cell(
    cells: &mut Vec<u8>,
    text: &mut String,
    cell: Cell,
    csv_safe: bool,
    delimiter: u8,
) -> Option<()> {
    match cell {
        Cell::Null => {}
        // Valid JSON has no quote or line break in a string without escapes, and
        // none in a number: only a delimiter (the mark) would need quotes.
        Cell::Str {
            raw,
            escaped: false,
            marked: false,
        } => {
            cells.extend_from_slice(&safe_cell(raw.as_bytes(), csv_safe));
        }
        // A number (or `true`, `false`) is a value to a spreadsheet, never a
        // formula, even when negative: prefixing `-13.11` would turn it into text.
        Cell::Verbatim(raw) => cells.extend_from_slice(raw.as_bytes()),
        cell => {
            text.clear();
            cell.text_into(text)?;
            push_cell(cells, &safe_cell(text.as_bytes(), csv_safe), delimiter);
        }
    }
    Some(())
}

/// The column name a header cell written with `csv_safe` stands for: [`safe_cell`] undone.
pub fn column_name(cell: &[u8], csv_safe: bool) -> String {
    let cell = match cell {
        [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] if csv_safe => &cell[1..],
        _ => cell,
    };
    String::from_utf8_lossy(cell).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_cell_gives_back_its_column_name() {
        for name in ["=f", "id", "-x", "'"] {
            let cell = safe_cell(name.as_bytes(), true);
            assert_eq!(column_name(&cell, true), name);
        }
        assert_eq!(column_name(b"'=f", false), "'=f");
    }

    fn form() -> Form {
        Form::Cells {
            sep: Some(".".into()),
            only: None,
            delimiter: b',',
            csv_safe: false,
        }
    }

    fn layout(columns: &[&str], width: usize) -> Layout {
        let columns = columns.iter().map(|c| c.to_string()).collect();
        Layout { columns, width }
    }

    #[test]
    fn encodes_rows_of_fixed_columns_in_their_order() {
        let mut encoder = Encoder::new(&form()).unwrap();
        let records = [
            r#"{"a": 1, "b": {"c": "x,y"}}"#,
            r#"{"b": {"c": null}, "a": "say \"hi\""}"#,
            r#"{"b": {"c": [1, 2]}}"#,
            r#"{"a": 1, "a": 2}"#,
        ];
        let mut rows = Vec::new();
        let fixed = layout(&["a", "b.c", "a#2"], 3);
        assert!(encoder.encode(&records, &fixed, &mut rows).unwrap());
        let want = "1,\"x,y\",\n\"say \"\"hi\"\"\",,\n,\"[1,2]\",\n1,,2\n";
        assert_eq!(String::from_utf8(rows).unwrap(), want);
        // Only the first `width` columns make the row.
        let mut rows = Vec::new();
        assert!(
            encoder
                .encode(&records[..1], &layout(&["b.c", "a"], 1), &mut rows)
                .unwrap()
        );
        assert_eq!(rows, b"\"x,y\"\n");
    }

    #[test]
    fn a_record_with_a_column_fixed_columns_lack_does_not_fit() {
        let mut encoder = Encoder::new(&form()).unwrap();
        let fixed = layout(&["a"], 1);
        for record in [r#"{"a": 1, "d": 2}"#, r#"{"a": 1, "a": 2}"#] {
            assert!(!encoder.encode(&[record], &fixed, &mut Vec::new()).unwrap());
        }
        let broken = encoder.encode(&[r#"{"a": "\q"}"#], &fixed, &mut Vec::new());
        assert!(broken.is_err());
        assert!(Encoder::new(&Form::Lines).is_none());
    }

    #[test]
    fn cells_are_quoted_exactly_as_csv_quotes_them() {
        let cells: [&[u8]; 12] = [
            b"",
            b"plain",
            b"a,b",
            b"a\tb",
            b"say \"hi\"",
            b"\"",
            b"line\nbreak",
            b"cr\r",
            b" spaced ",
            b"'=1",
            "Zürich 🚀".as_bytes(),
            b"#comment",
        ];
        for delimiter in [b',', b'\t'] {
            for a in cells {
                for b in cells {
                    let mut ours = Vec::new();
                    push_cell(&mut ours, a, delimiter);
                    ours.push(delimiter);
                    push_cell(&mut ours, b, delimiter);
                    ours.push(b'\n');
                    let mut theirs = csv::WriterBuilder::new()
                        .delimiter(delimiter)
                        .from_writer(Vec::new());
                    theirs.write_record([a, b]).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&theirs.into_inner().unwrap()),
                    );
                }
            }
        }
    }
}
