//! Reading a page: finding its records, and turning a record into named cells.
//!
//! A page is parsed only as deep as needed: the top level into raw JSON slices, the
//! records array into each record's text, and a record, when it is written, straight into
//! cells. Working on the raw text is what keeps every number
//! exactly as the API sent it (`1E21`, `0.10`, 30-digit integers): a parsed
//! `serde_json::Value` would normalise them.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::shape::json;

/// Where APIs commonly put the records of a page, tried in order after a top-level array,
/// at the top level and then one level down (`/data/items`).
const COMMON_KEYS: &[&str] = &[
    "data", "items", "results", "records", "entries", "value", "rows",
];

/// Objects that wrap the records one level down without a common key inside: HAL's
/// `_embedded.<name>`, `{"data": {"users": [...]}}`.
const WRAPPER_KEYS: &[&str] = &["_embedded", "data", "response", "result"];

/// How to find the records of a page (`--records`, `--paginate none`).
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// `--records POINTER`: the records are the array there. `None` searches.
    pub pointer: Option<String>,
    /// An object response with no records array is itself the one record (`--paginate
    /// none`: a single resource rather than a list).
    pub object_is_record: bool,
    /// Each element of the array holds its record at this pointer (a GraphQL edge's
    /// `/node`).
    pub item: Option<String>,
}

/// One response body, split into its top-level parts but not further.
pub struct Page<'a> {
    /// The whole body: parsed as one raw value only when it is itself the one record.
    body: &'a str,
    top: Top<'a>,
}

enum Top<'a> {
    Array(Vec<&'a str>),
    Object(Vec<Field<'a>>),
    Scalar(Value),
}

/// A field of an object, validated.
#[derive(Clone)]
struct Field<'a> {
    key: Cow<'a, str>,
    value: Part<'a>,
}

#[derive(Clone)]
enum Part<'a> {
    /// A top-level array, kept as its text and its elements: the records array is most of
    /// a page, and holding it as one raw value would mean validating it again to split it.
    Array(&'a str, Vec<&'a str>),
    Raw(&'a RawValue),
}

impl<'a> Part<'a> {
    /// The value as one raw value; an array is parsed again for this, which only pointers
    /// into it need.
    fn raw(&self) -> Option<&'a RawValue> {
        match self {
            Part::Array(text, _) => serde_json::from_str(text).ok(),
            Part::Raw(raw) => Some(raw),
        }
    }

    fn is_array(&self) -> bool {
        match self {
            Part::Array(..) => true,
            Part::Raw(raw) => raw.get().starts_with('['),
        }
    }
}

impl<'a> Page<'a> {
    /// Validates the whole body and splits its top level (and a top-level object's
    /// arrays) in one pass: a page is megabytes at a time, and each pass over it costs as
    /// much as flattening it.
    pub fn parse(body: &'a str) -> Result<Self, serde_json::Error> {
        let text = json::trim_start(body);
        let top = match text.bytes().next() {
            Some(b'[') => Top::Array(match json::split_array(text) {
                Some((items, len)) if json::trim_start(&text[len..]).is_empty() => items,
                _ => raw_items(body)?,
            }),
            Some(b'{') => match top_fields(body) {
                Some(fields) => Top::Object(fields),
                // Not valid JSON: let serde_json say where and why.
                None => Top::Scalar(serde_json::from_str(body)?),
            },
            _ => Top::Scalar(serde_json::from_str(body)?),
        };
        Ok(Page { body, top })
    }

    /// The raw value at a JSON Pointer (`/meta/next_cursor`, `/data/0/id`).
    pub fn raw(&self, pointer: &str) -> Option<&'a RawValue> {
        self.part(pointer)?.raw()
    }

    /// The value at a JSON Pointer; a top-level array stays split.
    fn part(&self, pointer: &str) -> Option<Part<'a>> {
        let mut tokens = pointer.strip_prefix('/')?.split('/').map(unescape_token);
        let first = tokens.next()?;
        let current = match &self.top {
            Top::Object(fields) => field(fields, &first)?,
            Top::Array(items) => Part::Raw(raw(items.get(first.parse::<usize>().ok()?)?)?),
            Top::Scalar(_) => return None,
        };
        let mut tokens = tokens.peekable();
        if tokens.peek().is_none() {
            return Some(current);
        }
        walk(current.raw()?, tokens).map(Part::Raw)
    }

    /// The value at a JSON Pointer, parsed (for small metadata such as `has_more`).
    pub fn value(&self, pointer: &str) -> Option<Value> {
        serde_json::from_str(self.raw(pointer)?.get()).ok()
    }

    /// The records of the page: the array at `--records`, or else a top-level array, the
    /// array at a common key (at the top or one level down), or the only array-valued
    /// top-level field.
    pub fn records(&self, select: &Select) -> Result<Vec<&'a str>, Error> {
        let items = self.items(select)?;
        let Some(pointer) = &select.item else {
            return Ok(items);
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                lookup(item, pointer).map(RawValue::get).ok_or_else(|| {
                    Error::BadResponse(format!("record {} has nothing at {pointer}", i + 1))
                })
            })
            .collect()
    }

    fn items(&self, select: &Select) -> Result<Vec<&'a str>, Error> {
        if let (None, Top::Array(items)) = (&select.pointer, &self.top) {
            return Ok(items.clone());
        }
        let found = match &select.pointer {
            Some(pointer) => Some(self.part(pointer).ok_or_else(|| {
                Error::BadResponse(format!(
                    "--records {pointer}: the response has nothing there; top-level keys: {}",
                    self.keys()
                ))
            })?),
            None => self.search(),
        };
        match found {
            Some(Part::Array(_, items)) => Ok(items),
            Some(Part::Raw(raw)) if raw.get().starts_with('[') => {
                raw_items(raw.get()).map_err(|e| Error::BadResponse(e.to_string()))
            }
            Some(Part::Raw(raw)) => Err(Error::BadResponse(format!(
                "--records {}: that is a JSON {}, not an array",
                select.pointer.as_deref().unwrap_or_default(),
                kind(&serde_json::from_str(raw.get()).unwrap_or(Value::Null))
            ))),
            None if select.object_is_record && matches!(self.top, Top::Object(_)) => {
                let whole = serde_json::from_str::<&RawValue>(self.body);
                Ok(vec![
                    whole.map_err(|e| Error::BadResponse(e.to_string()))?.get(),
                ])
            }
            None => Err(Error::BadResponse(format!(
                "no records array in the response (looked for a top-level array, {} one level \
                 down, and a single array-valued field); top-level keys: {}; pass --records \
                 POINTER to name it, or --paginate none if the response is one record",
                COMMON_KEYS
                    .iter()
                    .map(|k| format!("/{k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.keys()
            ))),
        }
    }

    fn search(&self) -> Option<Part<'a>> {
        self.find().map(|(_, part)| part)
    }

    /// Where [`Self::records`] finds the records without `--records`, as a JSON Pointer
    /// (`""` for a top-level array), for `--probe` to print.
    pub fn records_pointer(&self) -> Option<String> {
        match &self.top {
            Top::Array(_) => Some(String::new()),
            _ => self.find().map(|(pointer, _)| pointer),
        }
    }

    /// The records array of an object response: at a common key, the same one level
    /// down, or the only array-valued field; with its pointer.
    fn find(&self) -> Option<(String, Part<'a>)> {
        let Top::Object(fields) = &self.top else {
            return None;
        };
        let named = |f: &Field<'a>| (format!("/{}", token(&f.key)), f.value.clone());
        let common = |fields: &[Field<'a>]| {
            COMMON_KEYS.iter().find_map(|key| {
                let found = field(fields, key).filter(Part::is_array)?;
                Some((format!("/{key}"), found))
            })
        };
        let only_array = |fields: &[Field<'a>]| {
            let mut arrays = fields.iter().filter(|f| f.value.is_array());
            arrays.next().filter(|_| arrays.next().is_none()).map(named)
        };
        common(fields)
            .or_else(|| {
                COMMON_KEYS.iter().chain(WRAPPER_KEYS).find_map(|key| {
                    let inner = field(fields, key).filter(|v| !v.is_array())?.raw()?;
                    let inner = entries(inner.get().as_bytes()).ok()?;
                    let (pointer, part) = common(&inner).or_else(|| {
                        WRAPPER_KEYS
                            .contains(key)
                            .then(|| only_array(&inner))
                            .flatten()
                    })?;
                    Some((format!("/{key}{pointer}"), part))
                })
            })
            .or_else(|| only_array(fields))
    }

    /// The scalar fields of an object response, down to two levels below the top, as
    /// (pointer, value): what a message about pagination fields can point at. Arrays are
    /// left out; they are records, not pagination.
    pub fn outline(&self) -> Vec<(String, Value)> {
        fn walk(prefix: &str, value: Value, depth: u8, out: &mut Vec<(String, Value)>) {
            match value {
                Value::Object(map) if depth < 3 => {
                    for (key, value) in map {
                        walk(&format!("{prefix}/{}", token(&key)), value, depth + 1, out);
                    }
                }
                Value::Array(_) | Value::Object(_) => {}
                scalar => out.push((prefix.to_string(), scalar)),
            }
        }
        let mut out = Vec::new();
        if let Top::Object(fields) = &self.top {
            for field in fields.iter().filter(|f| !f.value.is_array()) {
                if let Some(value) = field
                    .value
                    .raw()
                    .and_then(|r| serde_json::from_str(r.get()).ok())
                {
                    let pointer = format!("/{}", token(&field.key));
                    walk(&pointer, value, 1, &mut out);
                }
            }
        }
        out
    }

    /// The top-level keys, for messages about a response that is not what was expected.
    fn keys(&self) -> String {
        match &self.top {
            Top::Object(fields) if fields.is_empty() => {
                "none: the response is an empty object".to_string()
            }
            Top::Object(fields) => fields
                .iter()
                .map(|f| f.key.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            Top::Scalar(value) => format!("none: the response is a JSON {}", kind(value)),
            Top::Array(_) => "none: the response is an array".to_string(),
        }
    }
}

/// A key as a JSON Pointer token: `~` and `/` escaped.
pub fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Where APIs that send each record as an array of values put the column names.
const COLUMN_KEYS: &[&str] = &["/columns", "/fields", "/column_names", "/headers"];

/// `body` rewritten with each record as an object, when the records are arrays of values
/// beside a list of column names (Datasette, pandas' `split` orient, SQL-over-HTTP APIs):
/// every record is zipped with the names, and the rest of the body stays as it was, byte
/// for byte. `None` when the records are not arrays or no list of names fits every one.
pub fn zipped(page: &Page, records: &[&str], body: &str) -> Option<String> {
    let (first, last) = (records.first()?, records.last()?);
    if !records.iter().all(|r| r.starts_with('[')) {
        return None;
    }
    let names: Vec<String> = COLUMN_KEYS.iter().find_map(|key| {
        let Value::Array(columns) = page.value(key)? else {
            return None;
        };
        columns
            .into_iter()
            .map(|c| match c {
                Value::String(name) => Some(name),
                Value::Object(mut o) => match o.remove("name") {
                    Some(Value::String(name)) => Some(name),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    })?;
    let keys: Vec<String> = names
        .iter()
        .map(|n| Value::from(n.as_str()).to_string())
        .collect();
    let mut objects = Vec::with_capacity(records.len());
    for record in records {
        let values: Vec<&RawValue> = serde_json::from_str(record).ok()?;
        if values.len() != keys.len() {
            return None;
        }
        let fields: Vec<String> = keys
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}:{}", v.get()))
            .collect();
        objects.push(format!("{{{}}}", fields.join(",")));
    }
    let start = first.as_ptr() as usize - body.as_ptr() as usize;
    let end = last.as_ptr() as usize - body.as_ptr() as usize + last.len();
    Some(format!(
        "{}{}{}",
        &body[..start],
        objects.join(","),
        &body[end..]
    ))
}

/// The raw value at a JSON Pointer inside a record.
pub fn lookup<'a>(record: &'a str, pointer: &str) -> Option<&'a RawValue> {
    let record = raw(record)?;
    if pointer.is_empty() {
        return Some(record);
    }
    walk(
        record,
        pointer.strip_prefix('/')?.split('/').map(unescape_token),
    )
}

/// Valid JSON text as a raw value (checked again: serde_json makes raw values only so).
fn raw(text: &str) -> Option<&RawValue> {
    serde_json::from_str(text).ok()
}

/// The elements of an array, each as its text, by serde_json.
fn raw_items(text: &str) -> Result<Vec<&str>, serde_json::Error> {
    let items: Vec<&RawValue> = serde_json::from_str(text)?;
    Ok(items.into_iter().map(RawValue::get).collect())
}

fn walk<'a, 't>(
    mut current: &'a RawValue,
    tokens: impl Iterator<Item = Cow<'t, str>>,
) -> Option<&'a RawValue> {
    for token in tokens {
        current = child(current, &token)?;
    }
    Some(current)
}

/// The last field named `name` (the one a JSON parser would keep).
fn field<'a>(fields: &[Field<'a>], name: &str) -> Option<Part<'a>> {
    fields
        .iter()
        .rev()
        .find(|f| f.key == name)
        .map(|f| f.value.clone())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON Pointer escapes: `~1` is `/`, `~0` is `~`.
fn unescape_token(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

fn child<'a>(raw: &'a RawValue, token: &str) -> Option<&'a RawValue> {
    match raw.get().as_bytes()[0] {
        b'{' => field(&entries(raw.get().as_bytes()).ok()?, token)?.raw(),
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            items.get(token.parse::<usize>().ok()?).copied()
        }
        _ => None,
    }
}

/// The fields of an object page, validated, each array split into its elements: the
/// scanner reads the keys and punctuation between values, and each value is validated as
/// what it is used as (an array by [`json::split_array`], anything else by serde_json),
/// finding its end on the way, so no value is read twice. `None` if the body is not valid
/// JSON.
fn top_fields(body: &str) -> Option<Vec<Field<'_>>> {
    let mut json = Scanner { text: body, at: 0 };
    let mut fields = Vec::new();
    json.eat(b'{')?;
    if json.peek()? == b'}' {
        json.at += 1;
    } else {
        loop {
            json.peek()?;
            let key = json.span(Scanner::skip_string)?;
            json.eat(b':')?;
            json.peek()?;
            let (value, len) = top_value(&json.text[json.at..])?;
            json.at += len;
            fields.push(Field {
                key: serde_json::from_str(key).ok()?,
                value,
            });
            match json.peek()? {
                b',' => json.at += 1,
                b'}' => {
                    json.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    json.peek().is_none().then_some(fields)
}

/// The value at the start of `text` (a field's value in an object page), validated, an
/// array split into its elements; and its length. serde_json finds where the value ends
/// as it validates it: finding the end first would mean reading the records array, most of
/// the page, twice.
fn top_value(text: &str) -> Option<(Part<'_>, usize)> {
    if let Some((items, len)) = json::split_array(text) {
        return Some((Part::Array(&text[..len], items), len));
    }
    let read = serde_json::Deserializer::from_str(text);
    if text.starts_with('[') {
        let mut values = read.into_iter::<Vec<&RawValue>>();
        let items = values.next()?.ok()?;
        let len = values.byte_offset();
        let items = items.into_iter().map(RawValue::get).collect();
        Some((Part::Array(&text[..len], items), len))
    } else {
        let raw = read.into_iter::<&RawValue>().next()?.ok()?;
        Some((Part::Raw(raw), raw.get().len()))
    }
}

/// The fields of a raw object, in document order.
fn entries(json: &[u8]) -> Result<Vec<Field<'_>>, serde_json::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<Field<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let value = Part::Raw(map.next_value()?);
                fields.push(Field { key, value });
            }
            Ok(fields)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let fields = de.deserialize_map(Entries)?;
    de.end()?;
    Ok(fields)
}

/// One value of a record as flattening meets it, still as the page's text: whoever takes
/// it turns it into a cell's text, so a row encoder copies most values once, straight from
/// the page.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// A string's contents between its quotes; `escaped` if they hold backslash escapes,
    /// `marked` if they hold the flattener's mark byte.
    Str {
        raw: &'a str,
        escaped: bool,
        marked: bool,
    },
    /// A number, `true` or `false`, exactly as sent.
    Verbatim(&'a str),
    /// `null`: an empty cell.
    Null,
    /// An array, or an object kept whole: its JSON text as sent.
    Json(&'a str),
}

impl Cell<'_> {
    /// Appends the cell's text: a string unescaped, JSON compacted. `None` for an escape
    /// JSON does not allow.
    pub fn text_into(self, out: &mut String) -> Option<()> {
        match self {
            Cell::Str {
                raw, escaped: true, ..
            } => return json::unescape(raw, out),
            Cell::Str { raw: text, .. } | Cell::Verbatim(text) => out.push_str(text),
            Cell::Null => {}
            Cell::Json(text) => json::compact_into(text, out),
        }
        Some(())
    }
}

/// Turns records into named cells.
///
/// Nested objects become `parent{sep}child` columns so spreadsheets get one value per cell,
/// or, with no `sep`, one column of compact JSON text; arrays stay compact JSON text
/// because their length varies from record to record; numbers keep the exact text the API
/// sent; `null` is an empty cell. A record that is not an object is one column named
/// `value`.
#[derive(Debug, Default)]
pub struct Flattener {
    sep: Option<String>,
    /// A byte each string value is checked for on the way ([`Cell::Str`]'s `marked`): a
    /// row encoder's delimiter, so it need not look at most cells again.
    mark: u8,
    /// The column name of the value being read: the keys leading to it, joined. Kept
    /// between records so that flattening allocates nothing once warmed up.
    path: String,
}

impl Flattener {
    pub fn new(sep: Option<String>, mark: u8) -> Self {
        Flattener {
            sep,
            mark,
            path: String::new(),
        }
    }

    /// Hands each cell of `record` to `cell` with its column name, in document order.
    ///
    /// The record is read in one pass over its text. It was validated when the page was
    /// parsed, so the reader is a plain scanner rather than a second parser; should the
    /// text be broken anyway (or `cell` refuse a value), the record is an error, and the
    /// cells handed over before are the caller's to drop.
    pub fn record(
        &mut self,
        record: &str,
        mut cell: impl FnMut(&str, Cell<'_>) -> Option<()>,
    ) -> Result<(), Error> {
        self.path.clear();
        let mut json = Scanner {
            text: record,
            at: 0,
        };
        let mut to = Cells {
            sep: self.sep.as_deref(),
            depth: 0,
            mark: self.mark,
            path: &mut self.path,
            cell: &mut cell,
        };
        let done = match json.peek() {
            Some(b'{') if !is_empty_object(&json.text[json.at..]) => json.object(&mut to),
            Some(first) => {
                to.path.push_str("value");
                json.cell(first, None, &mut to)
            }
            None => None,
        };
        done.ok_or_else(|| Error::BadResponse("a record is not valid JSON".into()))
    }
}

/// Objects nested deeper than this in a record are kept whole, as one cell of JSON text,
/// rather than flattened: no real column is named by so many keys, and reading each level
/// takes a stack frame, so thousands of levels would overflow the stack.
const FLATTEN_DEPTH: usize = 64;

/// Where the scanner sends a record's cells.
struct Cells<'f, F> {
    sep: Option<&'f str>,
    /// Objects the value being read is in.
    depth: usize,
    mark: u8,
    path: &'f mut String,
    cell: &'f mut F,
}

/// A cursor over JSON text already known to be valid.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&mut self) -> Option<u8> {
        self.at = json::space(self.bytes(), self.at);
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    /// Reads an object's fields into cells, each named `path{sep}key`.
    fn object<F: FnMut(&str, Cell<'_>) -> Option<()>>(
        &mut self,
        to: &mut Cells<'_, F>,
    ) -> Option<()> {
        self.eat(b'{')?;
        let base = to.path.len();
        to.depth += 1;
        loop {
            self.eat(b'"')?;
            let start = self.at;
            let (escaped, _) = self.string_end(b'"')?;
            let key = &self.text[start..self.at - 1];
            self.eat(b':')?;
            let first = self.peek()?;
            let flattens = first == b'{'
                && to.sep.is_some()
                && to.depth < FLATTEN_DEPTH
                && !is_empty_object(&self.text[self.at..]);
            if base == 0 && !escaped && !flattens {
                // A top-level key is its column's name as it stands.
                self.cell(first, Some(key), to)?;
            } else {
                to.path.truncate(base);
                if let (true, Some(sep)) = (base > 0, to.sep) {
                    to.path.push_str(sep);
                }
                match escaped {
                    true => json::unescape(key, to.path)?,
                    false => to.path.push_str(key),
                }
                match flattens {
                    true => self.object(to)?,
                    false => self.cell(first, None, to)?,
                }
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.at += 1;
        to.path.truncate(base);
        to.depth -= 1;
        Some(())
    }

    /// Reads the value at the cursor, which starts with `first`, into one cell named `key`,
    /// or else by the current path.
    #[inline(always)]
    fn cell<F: FnMut(&str, Cell<'_>) -> Option<()>>(
        &mut self,
        first: u8,
        key: Option<&str>,
        to: &mut Cells<'_, F>,
    ) -> Option<()> {
        let cell = match first {
            b'{' | b'[' => Cell::Json(self.nested()?),
            b'"' => {
                self.at += 1;
                let start = self.at;
                let (escaped, marked) = self.string_end(to.mark)?;
                Cell::Str {
                    raw: &self.text[start..self.at - 1],
                    escaped,
                    marked,
                }
            }
            b'n' => {
                self.at += "null".len();
                Cell::Null
            }
            _ => Cell::Verbatim(self.span(Scanner::skip_scalar)?),
        };
        (to.cell)(key.unwrap_or(to.path), cell)
    }

    /// The text that `skip` moves the cursor over.
    fn span(&mut self, skip: impl FnOnce(&mut Self) -> Option<()>) -> Option<&'a str> {
        let start = self.at;
        skip(self)?;
        Some(&self.text[start..self.at])
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_end(b'"').map(drop)
    }

    /// Moves past a number, `true` or `false`.
    fn skip_scalar(&mut self) -> Option<()> {
        let len = json::scalar_len(&self.bytes()[self.at..]);
        self.at += len;
        (len > 0).then_some(())
    }

    /// Skips an array or object, returning its text.
    fn nested(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.at = json::nested_end(self.bytes(), start)?;
        Some(&self.text[start..self.at])
    }

    /// Moves past the closing quote of the string that starts at the cursor (just after
    /// its opening quote); whether the string has escapes, and whether it holds `mark`.
    #[inline(always)]
    fn string_end(&mut self, mark: u8) -> Option<(bool, bool)> {
        let (end, escaped, marked) = json::read_string(self.bytes(), self.at, mark)?;
        self.at = end;
        Some((escaped, marked))
    }
}

fn is_empty_object(text: &str) -> bool {
    json::trim_start(&text[1..]).starts_with('}')
}

/// Writes a record's JSON text, compact, on a line of its own (JSON Lines).
pub fn write_line(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(json::compact(text).as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(json: &str) -> Vec<(String, String)> {
        cells_with(json, Some("."))
    }

    fn cells_with(json: &str, sep: Option<&str>) -> Vec<(String, String)> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let mut cells = Vec::new();
        let mut flattener = Flattener::new(sep.map(str::to_string), b',');
        flattener.record(raw.get(), collect(&mut cells)).unwrap();
        cells
    }

    fn collect(cells: &mut Vec<(String, String)>) -> impl FnMut(&str, Cell<'_>) -> Option<()> {
        |column, cell| {
            let mut text = String::new();
            cell.text_into(&mut text)?;
            cells.push((column.to_string(), text));
            Some(())
        }
    }

    fn found(json: &str, select: &Select) -> Result<Vec<String>, String> {
        Page::parse(json)
            .unwrap()
            .records(select)
            .map(|r| r.iter().map(|v| v.to_string()).collect())
            .map_err(|e| e.to_string())
    }

    fn auto(json: &str) -> Vec<String> {
        found(json, &Select::default()).unwrap()
    }

    #[test]
    fn finds_records_where_real_apis_put_them() {
        let cases = [
            ("[1, 2]", "1 2"),
            (r#"{"items": [1], "total": 1}"#, "1"),
            (r#"{"meta": {}, "results": []}"#, ""),
            (r#"{"data": {"x": 1}, "items": [2]}"#, "2"),
            (r#"{"value": [3], "@odata.nextLink": "x"}"#, "3"),
            (r#"{"rows": [4], "entries": [5]}"#, "5"),
            (r#"{"data": {"items": [6], "tags": [0]}}"#, "6"),
            (r#"{"_embedded": {"orders": [7]}, "_links": {}}"#, "7"),
            (r#"{"data": {"users": [8]}, "meta": {"page": 1}}"#, "8"),
            (r#"{"issues": [9], "startAt": 0, "total": 1}"#, "9"),
            (r#"{"totalSize": 1, "done": true, "records": [10]}"#, "10"),
        ];
        for (json, want) in cases {
            assert_eq!(auto(json).join(" "), want, "{json}");
        }
    }

    #[test]
    fn records_pointer_picks_the_array() {
        let select = Select {
            pointer: Some("/response/list".into()),
            object_is_record: false,
            item: None,
        };
        let json = r#"{"items": [1], "response": {"list": [2, 3]}}"#;
        assert_eq!(found(json, &select).unwrap(), ["2", "3"]);
        let err = found(r#"{"response": {"list": {}}}"#, &select).unwrap_err();
        assert!(err.contains("JSON object, not an array"), "{err}");
        let err = found(r#"{"other": 1}"#, &select).unwrap_err();
        assert!(
            err.contains("nothing there; top-level keys: other"),
            "{err}"
        );
    }

    #[test]
    fn an_object_is_one_record_only_when_asked() {
        let json = r#"{"id": 1, "name": "x"}"#;
        let one = Select {
            pointer: None,
            object_is_record: true,
            item: None,
        };
        assert_eq!(found(json, &one).unwrap(), [json]);
        assert_eq!(found(r#"{"items": [1, 2]}"#, &one).unwrap(), ["1", "2"]);
        let err = found(json, &Select::default()).unwrap_err();
        assert!(err.contains("--paginate none"), "{err}");
    }

    #[test]
    fn a_page_is_exactly_one_json_value() {
        assert!(Page::parse(" \n{\"data\": [1]}\n").is_ok());
        assert!(Page::parse("\t[1]").is_ok());
        for bad in [
            "{\"data\": [1]} x",
            "[1] [2]",
            "{\"a\": [1,]}",
            "",
            "<html>",
            "{\"data\": [1], \"x\": tru}",
            "{\"a\" 1}",
            "{\"a\": 1,}",
            "{\"a\": \"x\\",
            "{\"a\": [1, 2}",
            "{\"a\": 1} }",
            "{\"a\": 1x}",
            "{\"a\": {}x}",
            "{\"data\": [1]]}",
            "{\"data\": [1]\"b\": 2}",
            "{\"a\":",
            "{\"a\\q\": 1}",
            // Space is only what JSON calls space: not a form feed, a vertical tab, NBSP.
            "\u{c}[1]",
            "[1]\u{c}",
            "\u{b}[1]",
            "[1]\u{a0}",
            "[1]\u{2028}",
            "{\"data\": [1]}\u{a0}",
        ] {
            assert!(Page::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_split_page_still_answers_every_pointer() {
        let json =
            r#" { "data" : [ {"id": 1}, {"id": "two"} ] , "k\u0065y": {"list": [3]}, "n": [] } "#;
        let page = Page::parse(json).unwrap();
        let ids = page.records(&Select::default()).unwrap();
        assert_eq!(ids, [r#"{"id": 1}"#, r#"{"id": "two"}"#]);
        assert_eq!(page.raw("/data/1/id").unwrap().get(), r#""two""#);
        assert_eq!(
            page.raw("/data").unwrap().get(),
            r#"[ {"id": 1}, {"id": "two"} ]"#
        );
        assert_eq!(page.raw("/key/list/0").unwrap().get(), "3");
        assert_eq!(page.raw("/n").unwrap().get(), "[]");
        let list = Select {
            pointer: Some("/key/list".into()),
            object_is_record: false,
            item: None,
        };
        assert_eq!(page.records(&list).unwrap()[0], "3");
    }

    #[test]
    fn missing_records_names_the_keys_seen() {
        let err = found(r#"{"error": "x", "status": 1}"#, &Select::default()).unwrap_err();
        assert!(err.contains("top-level keys: error, status"), "{err}");
        let err = found(r#""hello""#, &Select::default()).unwrap_err();
        assert!(err.contains("JSON string"), "{err}");
        let err = found(r#"{"a": [1], "b": [2]}"#, &Select::default()).unwrap_err();
        assert!(err.contains("--records POINTER"), "{err}");
    }

    #[test]
    fn lookup_reaches_into_a_record() {
        let raw = r#"{"id": "cus_1", "a": {"b": [5]}}"#;
        assert_eq!(lookup(raw, "/id").unwrap().get(), r#""cus_1""#);
        assert_eq!(lookup(raw, "/a/b/0").unwrap().get(), "5");
        assert!(lookup(raw, "/nope").is_none());
    }

    #[test]
    fn pointers_reach_nested_metadata() {
        let page =
            Page::parse(r#"{"meta": {"next": "a/b", "x~y": [10, 20]}, "has_more": true}"#).unwrap();
        assert_eq!(page.value("/has_more"), Some(Value::Bool(true)));
        assert_eq!(page.value("/meta/next"), Some(Value::String("a/b".into())));
        assert_eq!(
            page.value("/meta/x~0y/1").map(|v| v.to_string()),
            Some("20".into())
        );
        assert_eq!(page.value("/meta/missing"), None);
        assert_eq!(page.value("nope"), None);
    }

    #[test]
    fn nested_objects_flatten_and_arrays_stay_json() {
        let got = cells(
            r#"{"id": 1, "a": {"geo": {"lat": "1.5"}}, "tags": [ "x", "y" ], "n": null, "ok": true, "e": { }}"#,
        );
        let want = [
            ("id", "1"),
            ("a.geo.lat", "1.5"),
            ("tags", "[\"x\",\"y\"]"),
            ("n", ""),
            ("ok", "true"),
            ("e", "{}"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn without_a_separator_nested_objects_stay_json() {
        let json = r#"{"a": {"b": { "c": 1E2 }}, "d": {"e": 2}}"#;
        assert_eq!(
            cells_with(json, None),
            [
                ("a".to_string(), r#"{"b":{"c":1E2}}"#.to_string()),
                ("d".to_string(), r#"{"e":2}"#.to_string()),
            ]
        );
        assert_eq!(
            cells_with(json, Some("_"))[0],
            ("a_b_c".to_string(), "1E2".to_string())
        );
    }

    #[test]
    fn objects_nested_past_a_limit_stay_json_and_deep_records_do_not_overflow() {
        let deep = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        let got = cells(&deep(FLATTEN_DEPTH + 1));
        let column = vec!["a"; FLATTEN_DEPTH].join(".");
        assert_eq!(got, [(column, r#"{"a":1}"#.to_string())]);
        assert_eq!(cells(&deep(FLATTEN_DEPTH))[0].1, "1");
        // Read on a thread with a small stack, as a writer's could be.
        let deepest = deep(100_000);
        let flat = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || cells(&deepest).len())
            .unwrap();
        assert_eq!(flat.join().unwrap(), 1);
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let got: Vec<String> =
            cells(r#"{"a":0.1,"b":1E21,"c":12345678901234567890,"d":1.0,"e":[1e-7, 2]}"#)
                .into_iter()
                .map(|(_, t)| t)
                .collect();
        assert_eq!(
            got,
            ["0.1", "1E21", "12345678901234567890", "1.0", "[1e-7,2]"]
        );
    }

    #[test]
    fn strings_are_unescaped() {
        let got = cells(r#"{"s": "a,\"b\"\nc \u00e9 😀"}"#);
        assert_eq!(got[0].1, "a,\"b\"\nc é 😀");
    }

    #[test]
    fn whitespace_escapes_and_brackets_inside_strings_are_read_right() {
        let got = cells(
            "{ \"a\\\"b\" :\n{ \"c\" : [ \"]}\\\"\" , { } ] , \"d\":\t-1.5e+3 } ,\r\n\"\\u00e9\\ud83d\\ude00\" : \"x\\/y\" , \"z\" : { \"y\" : { } } , \"n\" : null , \"t\" : false }",
        );
        let want = [
            ("a\"b.c", r#"["]}\"",{}]"#),
            ("a\"b.d", "-1.5e+3"),
            ("é😀", "x/y"),
            ("z.y", "{}"),
            ("n", ""),
            ("t", "false"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn one_flattener_reads_record_after_record_and_says_when_one_is_broken() {
        let mut flattener = Flattener::new(Some("_".into()), b',');
        let mut cells = Vec::new();
        for json in [r#"{"a": {"b": 1}, "c": "x"}"#, r#"{"d": [2]}"#] {
            flattener.record(json, collect(&mut cells)).unwrap();
        }
        let pairs = |cells: &[(String, String)]| {
            (cells.iter())
                .map(|(c, t)| format!("{c}={t}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&cells), ["a_b=1", "c=x", "d=[2]"]);
        let broken = [r#"{"e": 3, "f": "broken}"#, r#"{"g": "\q"}"#, r#"{"h" 1}"#];
        for json in broken {
            assert!(
                flattener.record(json, collect(&mut cells)).is_err(),
                "{json}"
            );
        }
        assert_eq!(pairs(&cells[3..]), ["e=3"]);
    }

    #[test]
    fn scalar_records_become_a_value_column() {
        for (json, want) in [
            (r#""x""#, "x"),
            ("7", "7"),
            ("null", ""),
            ("[1, 2]", "[1,2]"),
            ("{ }", "{}"),
        ] {
            assert_eq!(
                cells(json),
                [("value".to_string(), want.to_string())],
                "{json}"
            );
        }
    }

    #[test]
    fn rows_of_values_are_zipped_with_their_column_names() {
        let body = r#"{"columns": ["id", "n\"ame", "big"], "rows": [[1, "a", 1E400], [2, null, [3]]], "next": "x"}"#;
        let page = Page::parse(body).unwrap();
        let records = page.records(&Select::default()).unwrap();
        assert_eq!(
            zipped(&page, &records, body).unwrap(),
            r#"{"columns": ["id", "n\"ame", "big"], "rows": [{"id":1,"n\"ame":"a","big":1E400},{"id":2,"n\"ame":null,"big":[3]}], "next": "x"}"#
        );
        let named = r#"{"fields": [{"name": "id"}], "data": [[1]]}"#;
        let page = Page::parse(named).unwrap();
        let records = page.records(&Select::default()).unwrap();
        assert!(
            zipped(&page, &records, named)
                .unwrap()
                .contains(r#"[{"id":1}]"#)
        );
        for unfit in [
            r#"{"columns": ["id"], "rows": [[1, 2]]}"#,
            r#"{"rows": [[1]]}"#,
            r#"{"columns": ["id"], "rows": [{"id": 1}]}"#,
        ] {
            let page = Page::parse(unfit).unwrap();
            let records = page.records(&Select::default()).unwrap();
            assert_eq!(zipped(&page, &records, unfit), None, "{unfit}");
        }
    }

    /// A record's cells as a plain reading of the parsed value gives them: nested objects
    /// joined into column names, arrays and empty objects as compact JSON, strings
    /// unescaped, numbers exactly as sent.
    fn reference(value: &Value) -> Vec<(String, String)> {
        fn text(value: &Value) -> String {
            match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            }
        }
        fn flatten(
            fields: &serde_json::Map<String, Value>,
            prefix: &str,
            out: &mut Vec<(String, String)>,
        ) {
            for (key, value) in fields {
                let name = match prefix {
                    "" => key.clone(),
                    prefix => format!("{prefix}.{key}"),
                };
                match value {
                    Value::Object(inner) if !inner.is_empty() => flatten(inner, &name, out),
                    value => out.push((name, text(value))),
                }
            }
        }
        let mut out = Vec::new();
        match value {
            Value::Object(fields) if !fields.is_empty() => flatten(fields, "", &mut out),
            value => out.push(("value".to_string(), text(value))),
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn flattens_as_a_reference_built_on_serde_json(
            value in crate::shape::arbitrary::value(),
            pretty in proptest::bool::ANY,
        ) {
            let text = match pretty {
                true => serde_json::to_string_pretty(&value),
                false => serde_json::to_string(&value),
            }
            .unwrap();
            proptest::prop_assert_eq!(cells(&text), reference(&value));
        }
    }
}
