//! JSON values for property tests: the shapes APIs send, with the strings and numbers that
//! are hard to read right (escapes, controls, astral characters, long and odd numbers).

use proptest::prelude::*;
use serde_json::Value;

/// A number's text, as JSON allows it, kept exactly (serde_json's `arbitrary_precision`).
fn number() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,3})?",
    ];
    text.prop_map(|t| serde_json::from_str(&t).expect("the pattern is JSON"))
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
        "[a\"\\\\/ é\u{1F680}\n\t\u{0}]{0,8}".prop_map(Value::String),
    ]
}

/// Any value up to a few levels deep, with keys that collide once joined (`a.b`).
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[ab.\"é\\\\]{0,3}", inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// `s` as the contents of a JSON string, each character written as it is, as a short
/// escape or as `\uXXXX` (surrogate pairs beyond the BMP), as `how` picks.
pub fn escaped(s: &str, how: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let pick = how.get(i).copied().unwrap_or(0) % 3;
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '/' if pick == 1 => Some("\\/"),
            _ => None,
        };
        match (short, pick) {
            (Some(short), 0 | 1) => out.push_str(short),
            (_, 2) | (None, _) if c < ' ' || pick == 2 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}
