//! JSON lexing, all of it: checking that text is valid, fast, and splitting an array into
//! its elements; then, in text already checked, reading strings, scalars and nested
//! values, unescaping strings, and compacting.
//!
//! serde_json checks a page too, but splitting the records array into borrowed raw values
//! with it took a third of a run's time. This checker only says yes or no: a no is handed
//! back to serde_json, which finds what is wrong and says so (or, should this checker be
//! stricter than JSON somewhere, accepts the text after all). A yes must never be wrong,
//! which the tests check against serde_json.

use std::borrow::Cow;
use std::string::FromUtf8Error;

use crate::shape::scan;

/// Arrays and objects the checker keeps track of, one inside the other. Deeper text is left
/// to serde_json, which skips raw values without a limit (flattening then keeps objects that
/// deep whole: see `records`).
const DEPTH: usize = 128;

/// `body` as text: JSON is UTF-8. simdutf8 checks it several times faster than the
/// standard library, which is asked again only to describe what is wrong.
pub fn text(body: Vec<u8>) -> Result<String, FromUtf8Error> {
    if simdutf8::basic::from_utf8(&body).is_err() {
        return String::from_utf8(body);
    }
    // SAFETY: simdutf8 has just found `body` to be valid UTF-8.
    Ok(unsafe { String::from_utf8_unchecked(body) })
}

/// `text` without the space JSON allows before a value: only space, tab and line breaks,
/// not the rest of what Unicode or ASCII calls white space.
pub fn trim_start(text: &str) -> &str {
    &text[space(text.as_bytes(), 0)..]
}

/// The elements of the JSON array at the start of `text`, each as its text, and the
/// array's length in bytes; `None` unless the array is valid JSON.
pub fn split_array(text: &str) -> Option<(Vec<&str>, usize)> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let mut at = space(bytes, 1);
    if *bytes.get(at)? == b']' {
        return Some((items, at + 1));
    }
    loop {
        let end = value_end(bytes, at)?;
        items.push(&text[at..end]);
        at = space(bytes, end);
        match *bytes.get(at)? {
            b',' => at = space(bytes, at + 1),
            b']' => return Some((items, at + 1)),
            _ => return None,
        }
    }
}

/// Where the valid JSON value that starts at `at` ends. One loop with a stack of the
/// arrays and objects it is in, rather than a call per value: pages are mostly small
/// values, for which calls would cost more than the checking.
fn value_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    // Per open array or object, whether it is an object.
    let mut objects = [false; DEPTH];
    let mut depth = 0;
    loop {
        // A value starts at `at`.
        match *bytes.get(at)? {
            b'"' => at = string_end(bytes, at + 1)?,
            open @ (b'[' | b'{') => {
                at = space(bytes, at + 1);
                let object = open == b'{';
                if *bytes.get(at)? == if object { b'}' } else { b']' } {
                    at += 1;
                } else {
                    *objects.get_mut(depth)? = object;
                    depth += 1;
                    if object {
                        at = key(bytes, at)?;
                    }
                    continue;
                }
            }
            b't' => at = literal(bytes, at, b"true")?,
            b'f' => at = literal(bytes, at, b"false")?,
            b'n' => at = literal(bytes, at, b"null")?,
            b'-' | b'0'..=b'9' => at = number_end(bytes, at)?,
            _ => return None,
        }
        // A value ended: the next one in the array or object it is in, or the end of that.
        loop {
            if depth == 0 {
                return Some(at);
            }
            at = space(bytes, at);
            let object = objects[depth - 1];
            match *bytes.get(at)? {
                b',' => {
                    at = space(bytes, at + 1);
                    if object {
                        at = key(bytes, at)?;
                    }
                    break;
                }
                b']' if !object => {}
                b'}' if object => {}
                _ => return None,
            }
            at += 1;
            depth -= 1;
        }
    }
}

/// Past an object's key, its colon and the space after, from the key's opening quote.
fn key(bytes: &[u8], at: usize) -> Option<usize> {
    if *bytes.get(at)? != b'"' {
        return None;
    }
    let at = space(bytes, string_end(bytes, at + 1)?);
    (*bytes.get(at)? == b':').then(|| space(bytes, at + 1))
}

/// Past the space JSON allows between tokens, from `at`.
pub fn space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Past the closing quote of a string, from just after its opening quote: no control
/// characters on the way, only JSON's escapes.
#[inline(always)]
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += scan::find_or_below(bytes.get(at..)?, [b'"', b'\\'], 0x20)?;
        match bytes[at] {
            b'"' => return Some(at + 1),
            b'\\' => match *bytes.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                b'u' if bytes.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => at += 6,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// Past a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes[at] == b'-' {
        at += 1;
    }
    at = match *bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits(bytes, at + 1),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        at = some_digits(bytes, at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = some_digits(bytes, at)?;
    }
    Some(at)
}

fn digits(bytes: &[u8], at: usize) -> usize {
    let rest = &bytes[at.min(bytes.len())..];
    at + rest.iter().take_while(|b| b.is_ascii_digit()).count()
}

fn some_digits(bytes: &[u8], at: usize) -> Option<usize> {
    let end = digits(bytes, at);
    (end > at).then_some(end)
}

fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    bytes[at..].starts_with(word).then_some(at + word.len())
}

/// Past the closing quote of a string in text already checked, from just after its
/// opening quote; whether the string has escapes, and whether it holds `mark` (the
/// output's delimiter, which decides whether a cell needs quotes). Unlike the checker's
/// scanner it looks for neither control characters nor broken escapes: there are none.
#[inline(always)]
pub fn read_string(bytes: &[u8], mut at: usize, mark: u8) -> Option<(usize, bool, bool)> {
    let (mut escaped, mut marked) = (false, false);
    loop {
        at += scan::find(bytes.get(at..)?, [b'"', b'\\', mark])?;
        match bytes[at] {
            b'"' => return Some((at + 1, escaped, marked)),
            b'\\' => {
                escaped = true;
                at += 2;
            }
            _ => {
                marked = true;
                at += 1;
            }
        }
    }
}

/// The bytes of a number, `true` or `false`, looked up rather than compared one by one:
/// most values of a record are short, and this is most of the work of reading them.
const SCALAR: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"0123456789+-.eEtrufals";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// The length of the number, `true` or `false` at the start of checked text.
pub fn scalar_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| !SCALAR[usize::from(b)])
        .unwrap_or(bytes.len())
}

/// Past the array or object that starts at `at` in checked text.
pub fn nested_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match bytes.get(at)? {
            b'"' => {
                at = read_string(bytes, at + 1, b'"')?.0;
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}

/// Appends the unescaped text of a JSON string's contents (between its quotes) to `out`.
/// `None` for an escape JSON does not allow, such as half a surrogate pair.
pub fn unescape(mut contents: &str, out: &mut String) -> Option<()> {
    while let Some(at) = scan::find(contents.as_bytes(), [b'\\']) {
        out.push_str(&contents[..at]);
        // An escape is one ASCII letter or sign; anything else (broken input reaching
        // this through `Flattener::record`) is refused, not sliced mid-character.
        let escape = contents.as_bytes().get(at + 1).filter(|b| b.is_ascii())?;
        contents = &contents[at + 2..];
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = |text: &str| u16::from_str_radix(text.get(..4)?, 16).ok();
                let high = unit(contents)?;
                contents = &contents[4..];
                // A character outside the BMP is a surrogate pair: two escapes.
                let low = if (0xD800..0xDC00).contains(&high) {
                    let low = unit(contents.strip_prefix("\\u")?)?;
                    contents = &contents[6..];
                    Some(low)
                } else {
                    None
                };
                char::decode_utf16(std::iter::once(high).chain(low))
                    .next()?
                    .ok()?
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(contents);
    Some(())
}

/// JSON text without the whitespace between tokens (strings untouched), so a record or an
/// array cell reads the same however the API indented it. Most APIs send it compact
/// already (spaces inside strings aside): that text is taken as it is.
pub fn compact(text: &str) -> Cow<'_, str> {
    if space_between_tokens(text, 0).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    compact_into(text, &mut out);
    Cow::Owned(out)
}

/// Appends `text` compacted (see [`compact`]) to `out`.
pub fn compact_into(text: &str, out: &mut String) {
    let (mut kept, mut at) = (0, 0);
    while let Some(space) = space_between_tokens(text, at) {
        out.push_str(&text[kept..space]);
        at = text.len() - trim_start(&text[space..]).len();
        kept = at;
    }
    out.push_str(&text[kept..]);
}

/// Where the first space between tokens of valid JSON `text` is, from `at` on, skipping
/// strings: both searched for sixteen bytes at a time.
fn space_between_tokens(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = at;
    loop {
        at += scan::find(&bytes[at..], [b'"', b' ', b'\n', b'\r', b'\t'])?;
        if bytes[at] != b'"' {
            return Some(at);
        }
        at = read_string(bytes, at + 1, b'"')?.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::arbitrary;
    use serde_json::Value;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    /// What serde_json makes of `text` as an array: its elements, or nothing if invalid.
    fn serde_split(text: &str) -> Option<Vec<&str>> {
        let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
        Some(items.iter().map(|r| r.get()).collect())
    }

    fn ours(text: &str) -> Option<Vec<&str>> {
        let text = trim_start(text);
        let (items, len) = split_array(text)?;
        // What follows the array is the caller's to check; here, only space may.
        trim_start(&text[len..]).is_empty().then_some(items)
    }

    #[test]
    fn splits_valid_arrays_as_serde_json_does() {
        for text in [
            "[]",
            " [ ] ",
            "[1]",
            "[ {\"id\": 1} , {\"id\": \"two\"} ]",
            "[-0, 0.5, -1.5e+3, 2E-7, 1e9, 123456789012345678901234567890]",
            "[true, false, null, \"\", \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\ude00\"]",
            "[[[]], {}, {\"a\": {\"b\": [1, {\"c\": null}]}}]",
            "[\"Zürich 🚀 \u{7f}\", \"a,b\"]",
            "[\n\t{\"k\" :\r\n \"v\"}\n]",
        ] {
            assert_eq!(ours(text), serde_split(text), "{text}");
            assert!(ours(text).is_some(), "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            "[",
            "]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[1e+]",
            "[-]",
            "[+1]",
            "[0x10]",
            "[tru]",
            "[nul]",
            "[True]",
            "[NaN]",
            "[\"a]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"\\u12g4\"]",
            "[\"tab\there\"]",
            "[\"nl\nhere\"]",
            "[\"\u{0}\"]",
            "[{]",
            "[{\"a\"}]",
            "[{\"a\":}]",
            "[{\"a\" 1}]",
            "[{1: 2}]",
            "[{\"a\": 1,}]",
            "[{\"a\": 1]",
            "[[1}]",
            "['a']",
            "[1]]",
            "[-01]",
            "[1.5.5]",
        ] {
            assert_eq!(serde_split(text), None, "serde_json takes {text}");
            assert_eq!(ours(text), None, "{text}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_checker_tracks_is_left_to_serde_json() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for n in 1..200 {
            if ours(&deep(n)).is_some() {
                assert!(serde_split(&deep(n)).is_some(), "{n}");
            }
        }
        assert!(ours(&deep(DEPTH - 1)).is_some());
        assert!(ours(&deep(100_000)).is_none());
    }

    /// Every way of breaking valid pages a byte at a time: whatever this checker takes,
    /// serde_json takes too, split the same way.
    #[test]
    fn never_takes_what_serde_json_refuses() {
        let seeds = [
            r#"[{"id":1,"name":"Ann \"A\" O'Neil","tags":["x","y"],"geo":{"lat":-1.5e3,"ok":true},"n":null}]"#,
            "[ 0 , -0.0e-0 , \"\\u00e9\\n\" , [ ] , { } , false ]",
        ];
        let swaps = [
            b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b'0', b'1', b'-', b'+', b'.', b'e',
            b'E', b'x', b' ', b'\n', 0x1f, b'u', b't', b'n',
        ];
        let mut tried = 0;
        for seed in seeds {
            let bytes = seed.as_bytes();
            for at in 0..bytes.len() {
                let mut variants = vec![[&bytes[..at], &bytes[at + 1..]].concat()];
                for &b in &swaps {
                    let mut swapped = bytes.to_vec();
                    swapped[at] = b;
                    variants.push(swapped);
                    variants.push([&bytes[..at], &[b], &bytes[at..]].concat());
                }
                for variant in variants {
                    let Ok(text) = String::from_utf8(variant) else {
                        continue;
                    };
                    tried += 1;
                    if let Some(items) = ours(&text) {
                        assert_eq!(Some(items), serde_split(&text), "{text}");
                    }
                }
            }
        }
        assert!(tried > 5000, "{tried}");
    }

    #[test]
    fn unescapes_every_json_escape_and_rejects_broken_ones() {
        let mut out = String::new();
        let text = r#"q\" b\\ s\/ \b\f\n\r\t \u00e9\u4e2d \ud83d\ude00 end"#;
        assert_eq!(unescape(text, &mut out), Some(()));
        assert_eq!(out, "q\" b\\ s/ \u{8}\u{c}\n\r\t é中 😀 end");
        for broken in [r"\ud83d", r"\ud83d\u0041", r"\ude00", r"\u12", r"\x", "\\"] {
            assert_eq!(unescape(broken, &mut String::new()), None, "{broken}");
        }
    }

    #[test]
    fn compact_drops_only_the_space_between_tokens() {
        for (json, want) in [
            (r#"{"a":"x y","b":[1,2]}"#, r#"{"a":"x y","b":[1,2]}"#),
            (
                "{ \"a\\\\\" : \"\\\" }\" ,\r\n\t\"b\" : [ ] }",
                r#"{"a\\":"\" }","b":[]}"#,
            ),
            ("[ \"é 🚀\" , { } , -1.5e3 ]\n", r#"["é 🚀",{},-1.5e3]"#),
            ("[\"\\\\\", \"\\\\ \\\"\"]", r#"["\\","\\ \""]"#),
        ] {
            assert_eq!(compact(json), want, "{json}");
            let mut out = String::from("kept ");
            compact_into(json, &mut out);
            assert_eq!(out, format!("kept {want}"));
        }
        assert!(matches!(compact(r#"{"a":"x y"}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn compact_keeps_whitespace_inside_strings() {
        assert_eq!(
            compact("[ \"a b\" , {\"k\" : \"\\\" x\"} ]"),
            r#"["a b",{"k":"\" x"}]"#
        );
    }

    #[test]
    fn a_backslash_before_a_wide_character_is_refused_not_a_panic() {
        let mut out = String::new();
        assert_eq!(unescape("a\\é", &mut out), None);
        assert_eq!(unescape("\\", &mut out), None);
    }

    proptest::proptest! {
        #[test]
        fn splits_any_array_as_serde_json_does(
            items in proptest::collection::vec(arbitrary::value(), 0..6),
            pretty in proptest::bool::ANY,
        ) {
            let array = Value::Array(items);
            let text = match pretty {
                true => serde_json::to_string_pretty(&array),
                false => serde_json::to_string(&array),
            }
            .unwrap();
            proptest::prop_assert!(ours(&text).is_some());
            proptest::prop_assert_eq!(ours(&text), serde_split(&text));
        }

        #[test]
        fn unescapes_any_string_as_serde_json_does(
            s in proptest::prelude::any::<String>(),
            how in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let contents = arbitrary::escaped(&s, &how);
            let mut out = String::new();
            proptest::prop_assert_eq!(unescape(&contents, &mut out), Some(()));
            proptest::prop_assert_eq!(&out, &s);
            let theirs: String = serde_json::from_str(&format!("\"{contents}\"")).unwrap();
            proptest::prop_assert_eq!(theirs, s);
        }

        /// Broken escapes, lone surrogates and pairs out of order: refused exactly where
        /// serde_json refuses them.
        #[test]
        fn refuses_the_escapes_serde_json_refuses(contents in "[\\\\ud80Ca\u{e9}/n]{0,14}") {
            let mut out = String::new();
            let ours = unescape(&contents, &mut out).map(|()| out);
            let theirs = serde_json::from_str::<String>(&format!("\"{contents}\"")).ok();
            proptest::prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn compacts_as_serde_json_writes(value in arbitrary::value()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            proptest::prop_assert_eq!(compact(&pretty), serde_json::to_string(&value).unwrap());
        }
    }
}
