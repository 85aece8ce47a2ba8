//! Checking that JSON text is valid, fast, and splitting an array into its elements.
//!
//! serde_json checks a page too, but splitting the records array into borrowed raw values
//! with it took a third of a run's time. This checker only says yes or no: a no is handed
//! back to serde_json, which finds what is wrong and says so (or, should this checker be
//! stricter than JSON somewhere, accepts the text after all). A yes must never be wrong,
//! which the tests check against serde_json.

use crate::scan;

/// Nesting deeper than serde_json's limit is left to serde_json, to refuse alike.
const DEPTH: u32 = 128;

/// The elements of the JSON array at the start of `text`, each as its text, and the
/// array's length in bytes; `None` unless the array is valid JSON.
pub fn split_array(text: &str) -> Option<(Vec<&str>, usize)> {
    let mut json = Checker {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut items = Vec::new();
    json.eat(b'[')?;
    json.space();
    if json.peek()? == b']' {
        return Some((items, json.at + 1));
    }
    loop {
        json.space();
        let start = json.at;
        json.value(1)?;
        items.push(&text[start..json.at]);
        json.space();
        match json.next()? {
            b',' => {}
            b']' => return Some((items, json.at)),
            _ => return None,
        }
    }
}

struct Checker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Checker<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' if depth < DEPTH => self.object(depth + 1),
            b'[' if depth < DEPTH => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        self.at += 1;
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            self.value(depth)?;
            self.space();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        self.at += 1;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            self.string()?;
            self.space();
            self.eat(b':')?;
            self.space();
            self.value(depth)?;
            self.space();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string, from its opening quote: no control characters, only JSON's escapes.
    fn string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            self.at += scan::find_or_below(self.bytes.get(self.at..)?, [b'"', b'\\'], 0x20)?;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.bytes.get(self.at..self.at + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 4;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes.get(self.at..)?.starts_with(word) {
            return None;
        }
        self.at += word.len();
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// What serde_json makes of `text` as an array: its elements, or nothing if invalid.
    fn serde_split(text: &str) -> Option<Vec<&str>> {
        let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
        Some(items.iter().map(|r| r.get()).collect())
    }

    fn ours(text: &str) -> Option<Vec<&str>> {
        let text = text.trim_start();
        let (items, len) = split_array(text)?;
        // What follows the array is the caller's to check; here, only space may.
        text[len..].trim_start().is_empty().then_some(items)
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
    fn nesting_deeper_than_serde_json_allows_is_left_to_it() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for n in 1..200 {
            if ours(&deep(n)).is_some() {
                assert!(serde_split(&deep(n)).is_some(), "{n}");
            }
        }
        assert!(ours(&deep(DEPTH as usize - 1)).is_some());
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
}
