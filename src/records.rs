//! Finding the records in a response, and turning one record into named cells.

use serde_json::Value;

use crate::error::Error;

/// Where APIs commonly put the records of a page, tried in order after a top-level array.
const COMMON_POINTERS: &[&str] = &["/data", "/items", "/results", "/records"];

/// The records of one page: a top-level array, or the array at a common key.
pub fn find(body: &Value) -> Result<&[Value], Error> {
    if let Value::Array(records) = body {
        return Ok(records);
    }
    for pointer in COMMON_POINTERS {
        if let Some(Value::Array(records)) = body.pointer(pointer) {
            return Ok(records);
        }
    }
    let keys = match body {
        Value::Object(map) if map.is_empty() => "none: the response is an empty object".to_string(),
        Value::Object(map) => map
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => format!("none: the response is a JSON {}", kind(other)),
    };
    Err(Error::BadResponse(format!(
        "no records array in the response (looked for a top-level array and {}); top-level keys: {keys}",
        COMMON_POINTERS.join(", ")
    )))
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

/// Appends the cells of `record` to `out` as (column, text) pairs.
///
/// Nested objects become `parent.child` columns so spreadsheets get one value per cell;
/// arrays stay compact JSON text because their length varies from record to record;
/// numbers keep the exact text the API sent. A record that is not an object is one
/// column named `value`.
pub fn flatten(record: &Value, sep: &str, out: &mut Vec<(String, String)>) {
    match record {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                flatten_into(key.clone(), value, sep, out);
            }
        }
        other => flatten_into("value".to_string(), other, sep, out),
    }
}

fn flatten_into(column: String, value: &Value, sep: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten_into(format!("{column}{sep}{key}"), child, sep, out);
            }
        }
        Value::Null => out.push((column, String::new())),
        Value::String(s) => out.push((column, s.clone())),
        Value::Number(n) => out.push((column, n.to_string())),
        Value::Bool(b) => out.push((column, b.to_string())),
        Value::Array(_) | Value::Object(_) => out.push((column, value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells(v: Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten(&v, ".", &mut out);
        out
    }

    #[test]
    fn finds_top_level_arrays_and_common_keys() {
        assert_eq!(find(&json!([1, 2])).unwrap().len(), 2);
        assert_eq!(find(&json!({"items": [1], "total": 1})).unwrap().len(), 1);
        assert_eq!(find(&json!({"meta": {}, "results": []})).unwrap().len(), 0);
    }

    #[test]
    fn missing_records_names_the_keys_seen() {
        let err = find(&json!({"error": "x", "status": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("top-level keys: error, status"), "{err}");
        let err = find(&json!("hello")).unwrap_err().to_string();
        assert!(err.contains("JSON string"), "{err}");
    }

    #[test]
    fn nested_objects_flatten_and_arrays_stay_json() {
        let v = json!({"id": 1, "a": {"geo": {"lat": "1.5"}}, "tags": ["x", "y"], "n": null, "ok": true, "e": {}});
        assert_eq!(
            cells(v),
            [
                ("id", "1"),
                ("a.geo.lat", "1.5"),
                ("tags", "[\"x\",\"y\"]"),
                ("n", ""),
                ("ok", "true"),
                ("e", "{}")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let v: Value =
            serde_json::from_str(r#"{"a":0.1,"b":1e21,"c":12345678901234567890,"d":1.0}"#).unwrap();
        let got: Vec<String> = cells(v).into_iter().map(|(_, t)| t).collect();
        assert_eq!(got, ["0.1", "1e21", "12345678901234567890", "1.0"]);
    }

    #[test]
    fn scalar_records_become_a_value_column() {
        assert_eq!(cells(json!("x")), [("value".to_string(), "x".to_string())]);
    }
}
