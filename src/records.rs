//! Reading a page: finding its records, and turning one record into named cells.
//!
//! A page is parsed only as deep as needed: the top level into raw JSON slices, records
//! one at a time straight into cells. Working on the raw text is what keeps every number
//! exactly as the API sent it (`1E21`, `0.10`, 30-digit integers): a parsed
//! `serde_json::Value` would normalise them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;

/// Where APIs commonly put the records of a page, tried in order after a top-level array.
const COMMON_POINTERS: &[&str] = &["/data", "/items", "/results", "/records"];

/// One response body, split into its top-level parts but not further.
pub struct Page<'a> {
    top: Top<'a>,
}

enum Top<'a> {
    Array(Vec<&'a RawValue>),
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Scalar(Value),
}

impl<'a> Page<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_slice(body)?;
        let top = match raw.get().as_bytes()[0] {
            b'[' => Top::Array(serde_json::from_str(raw.get())?),
            b'{' => Top::Object(entries(raw)?),
            _ => Top::Scalar(serde_json::from_str(raw.get())?),
        };
        Ok(Page { top })
    }

    /// The raw value at a JSON Pointer (`/meta/next_cursor`, `/data/0/id`).
    pub fn raw(&self, pointer: &str) -> Option<&'a RawValue> {
        let mut tokens = pointer.strip_prefix('/')?.split('/').map(unescape_token);
        let first = tokens.next()?;
        let mut current = match &self.top {
            Top::Object(fields) => fields
                .iter()
                .rev()
                .find(|(k, _)| *k == first)
                .map(|(_, v)| *v)?,
            Top::Array(items) => *items.get(first.parse::<usize>().ok()?)?,
            Top::Scalar(_) => return None,
        };
        for token in tokens {
            current = child(current, &token)?;
        }
        Some(current)
    }

    /// The value at a JSON Pointer, parsed (for small metadata such as `has_more`).
    pub fn value(&self, pointer: &str) -> Option<Value> {
        serde_json::from_str(self.raw(pointer)?.get()).ok()
    }

    /// The records of the page: a top-level array, or the array at a common key.
    pub fn records(&self) -> Result<Vec<&'a RawValue>, Error> {
        if let Top::Array(items) = &self.top {
            return Ok(items.clone());
        }
        for pointer in COMMON_POINTERS {
            if let Some(raw) = self.raw(pointer).filter(|r| r.get().starts_with('[')) {
                return serde_json::from_str(raw.get())
                    .map_err(|e| Error::BadResponse(e.to_string()));
            }
        }
        let keys = match &self.top {
            Top::Object(fields) if fields.is_empty() => {
                "none: the response is an empty object".to_string()
            }
            Top::Object(fields) => fields
                .iter()
                .map(|(k, _)| k.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            Top::Scalar(value) => format!("none: the response is a JSON {}", kind(value)),
            Top::Array(_) => unreachable!("arrays returned above"),
        };
        Err(Error::BadResponse(format!(
            "no records array in the response (looked for a top-level array and {}); top-level keys: {keys}",
            COMMON_POINTERS.join(", ")
        )))
    }
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
        b'{' => entries(raw)
            .ok()?
            .into_iter()
            .rev()
            .find(|(k, _)| k == token)
            .map(|(_, v)| v),
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            items.get(token.parse::<usize>().ok()?).copied()
        }
        _ => None,
    }
}

/// The fields of a raw object, in document order.
fn entries(raw: &RawValue) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                fields.push((key, map.next_value()?));
            }
            Ok(fields)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(Entries)
}

/// Appends the cells of `record` to `out` as (column, text) pairs.
///
/// Nested objects become `parent.child` columns so spreadsheets get one value per cell;
/// arrays stay compact JSON text because their length varies from record to record;
/// numbers keep the exact text the API sent; `null` is an empty cell. A record that is not
/// an object is one column named `value`.
pub fn flatten(record: &RawValue, sep: &str, out: &mut Vec<(String, String)>) -> Result<(), Error> {
    let done = match record.get().as_bytes()[0] {
        b'{' if record.get() != "{}" => flatten_object(record, "", sep, out),
        _ => flatten_value("value".to_string(), record, sep, out),
    };
    done.map_err(|e| Error::BadResponse(format!("a record is not valid JSON: {e}")))
}

fn flatten_object(
    raw: &RawValue,
    prefix: &str,
    sep: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), serde_json::Error> {
    for (key, value) in entries(raw)? {
        let column = if prefix.is_empty() {
            key.into_owned()
        } else {
            format!("{prefix}{sep}{key}")
        };
        flatten_value(column, value, sep, out)?;
    }
    Ok(())
}

fn flatten_value(
    column: String,
    raw: &RawValue,
    sep: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), serde_json::Error> {
    let text = raw.get();
    let cell = match text.as_bytes()[0] {
        b'{' if !is_empty_object(text) => return flatten_object(raw, &column, sep, out),
        b'{' | b'[' => compact(text),
        b'"' => serde_json::from_str::<Cow<str>>(text)?.into_owned(),
        b'n' => String::new(),
        _ => text.to_string(),
    };
    out.push((column, cell));
    Ok(())
}

fn is_empty_object(text: &str) -> bool {
    text[1..].trim_start().starts_with('}')
}

/// JSON text without the whitespace between tokens (strings untouched), so an array cell
/// reads the same however the API indented it.
pub fn compact(text: &str) -> String {
    if !text
        .bytes()
        .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(json: &str) -> Vec<(String, String)> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        flatten(raw, ".", &mut out).unwrap();
        out
    }

    fn count(json: &str) -> usize {
        Page::parse(json.as_bytes())
            .unwrap()
            .records()
            .unwrap()
            .len()
    }

    #[test]
    fn finds_top_level_arrays_and_common_keys() {
        assert_eq!(count("[1, 2]"), 2);
        assert_eq!(count(r#"{"items": [1], "total": 1}"#), 1);
        assert_eq!(count(r#"{"meta": {}, "results": []}"#), 0);
        assert_eq!(count(r#"{"data": {"x": 1}, "items": [{}]}"#), 1);
    }

    #[test]
    fn missing_records_names_the_keys_seen() {
        let page = Page::parse(br#"{"error": "x", "status": 1}"#).unwrap();
        let err = page.records().unwrap_err().to_string();
        assert!(err.contains("top-level keys: error, status"), "{err}");
        let err = Page::parse(br#""hello""#)
            .unwrap()
            .records()
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON string"), "{err}");
    }

    #[test]
    fn pointers_reach_nested_metadata() {
        let page = Page::parse(br#"{"meta": {"next": "a/b", "x~y": [10, 20]}, "has_more": true}"#)
            .unwrap();
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
    fn scalar_records_become_a_value_column() {
        assert_eq!(cells(r#""x""#), [("value".to_string(), "x".to_string())]);
    }

    #[test]
    fn compact_keeps_whitespace_inside_strings() {
        assert_eq!(
            compact("[ \"a b\" , {\"k\" : \"\\\" x\"} ]"),
            r#"["a b",{"k":"\" x"}]"#
        );
    }
}
