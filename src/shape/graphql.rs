//! GraphQL over HTTP: a query's errors, classified like HTTP errors, and the connection
//! its response pages through.
//!
//! A GraphQL server answers 200 whatever happened, so the failure is in the body: an
//! `errors` array. A rate limit there (GitHub's `RATE_LIMITED`, Shopify's `THROTTLED`) is
//! retried after the wait it names, like a 429; any other error ends the run, and so does
//! partial data beside errors (records would be missing). The records are a connection's
//! `nodes` (or `edges[].node`), and its `pageInfo` says whether more follow and from which
//! cursor.

use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::shape::records::{self, Page};

/// What the `errors` of a response say.
#[derive(Debug, Clone, PartialEq)]
pub struct Errors {
    /// The messages, joined for the log and the error line.
    pub message: String,
    /// A rate limit: retried after `wait` (or the usual backoff).
    pub throttled: bool,
    pub wait: Option<Duration>,
}

/// The `errors` of a GraphQL response body, if it has any.
pub fn errors(body: &[u8]) -> Option<Errors> {
    // Most pages have none: a byte search spares them a parse.
    if !body.windows(8).any(|w| w == b"\"errors\"") {
        return None;
    }
    let response: Value = serde_json::from_slice(body).ok()?;
    let errors = response
        .get("errors")?
        .as_array()
        .filter(|e| !e.is_empty())?;
    let code = |e: &Value| {
        let code = e.pointer("/extensions/code").or_else(|| e.get("type"));
        code.and_then(Value::as_str).unwrap_or_default().to_string()
    };
    let throttled = errors
        .iter()
        .any(|e| matches!(code(e).as_str(), "RATE_LIMITED" | "THROTTLED"));
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let text = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            match code(e) {
                code if code.is_empty() => text.to_string(),
                code => format!("{text} ({code})"),
            }
        })
        .collect();
    let partial = response.get("data").is_some_and(|d| !d.is_null());
    let message = format!(
        "GraphQL error{}: {}",
        if partial { "s beside partial data" } else { "" },
        messages.join("; ")
    );
    Some(Errors {
        message,
        throttled,
        wait: throttled.then(|| shopify_wait(&response)).flatten(),
    })
}

/// Shopify's cost extension says how long until the query's cost is restored:
/// (requested − available) ÷ restore rate, in seconds.
fn shopify_wait(response: &Value) -> Option<Duration> {
    let cost = response.pointer("/extensions/cost")?;
    let requested = cost.get("requestedQueryCost")?.as_f64()?;
    let status = cost.get("throttleStatus")?;
    let available = status.get("currentlyAvailable")?.as_f64()?;
    let rate = status.get("restoreRate")?.as_f64().filter(|r| *r > 0.0)?;
    Some(Duration::from_secs_f64(
        ((requested - available) / rate).clamp(0.0, 3600.0).ceil(),
    ))
}

/// A paginated connection in a response: where its records and its `pageInfo` are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// JSON Pointer to the connection object (`/data/repository/issues`).
    pub path: String,
    /// The records: `nodes`, or `edges` with each record at `/node`.
    pub records: String,
    pub item: Option<String>,
}

impl Connection {
    pub fn has_more(&self, backward: bool) -> String {
        let field = if backward {
            "hasPreviousPage"
        } else {
            "hasNextPage"
        };
        format!("{}/pageInfo/{field}", self.path)
    }

    pub fn cursor(&self, backward: bool) -> String {
        let field = if backward { "startCursor" } else { "endCursor" };
        format!("{}/pageInfo/{field}", self.path)
    }

    pub fn total(&self) -> String {
        format!("{}/totalCount", self.path)
    }
}

/// Finds the one connection with a `pageInfo` under `/data`. None is a query that does
/// not page (its records are searched as usual); more than one is refused, naming them,
/// since only one cursor variable can move.
pub fn connection(page: &Page) -> Result<Option<Connection>, Error> {
    let Some(data) = page.value("/data") else {
        return Ok(None);
    };
    let mut found = Vec::new();
    find(&data, "/data".to_string(), &mut found);
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Usage(format!(
            "the query pages more than one connection ({}): apifetch follows one cursor; \
             query one connection at a time",
            found
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn find(value: &Value, path: String, found: &mut Vec<Connection>) {
    let Value::Object(map) = value else {
        return;
    };
    if map.get("pageInfo").is_some_and(Value::is_object) {
        let (records, item) = match (map.get("nodes"), map.get("edges")) {
            (Some(Value::Array(_)), _) => (format!("{path}/nodes"), None),
            (_, Some(Value::Array(_))) => (format!("{path}/edges"), Some("/node".to_string())),
            _ => return,
        };
        found.push(Connection {
            path,
            records,
            item,
        });
        return;
    }
    for (key, child) in map {
        find(child, format!("{path}/{}", records::token(key)), found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_and_rate_limits_carry_their_wait() {
        assert_eq!(errors(br#"{"data": {"x": 1}}"#), None);
        let stop = errors(br#"{"data": null, "errors": [{"message": "Bad field", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}"#).unwrap();
        assert!(!stop.throttled);
        assert_eq!(
            stop.message,
            "GraphQL error: Bad field (GRAPHQL_VALIDATION_FAILED)"
        );
        let partial =
            errors(br#"{"data": {"x": 1}, "errors": [{"message": "no access"}]}"#).unwrap();
        assert_eq!(
            partial.message,
            "GraphQL errors beside partial data: no access"
        );
        let github = errors(
            br#"{"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}"#,
        )
        .unwrap();
        assert!(github.throttled);
        let shopify = errors(br#"{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}], "extensions": {"cost": {"requestedQueryCost": 101, "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": 51, "restoreRate": 50}}}}"#).unwrap();
        assert_eq!(
            (shopify.throttled, shopify.wait),
            (true, Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn the_one_connection_with_page_info_is_found() {
        let page = Page::parse(r#"{"data": {"repository": {"name": "r", "issues": {"totalCount": 3, "pageInfo": {"hasNextPage": true, "endCursor": "c1"}, "edges": [{"node": {"id": 1}}]}}}}"#).unwrap();
        let found = connection(&page).unwrap().unwrap();
        assert_eq!(found.path, "/data/repository/issues");
        assert_eq!(
            (found.records.as_str(), found.item.as_deref()),
            ("/data/repository/issues/edges", Some("/node"))
        );
        assert_eq!(
            found.cursor(false),
            "/data/repository/issues/pageInfo/endCursor"
        );
        let two = Page::parse(
            r#"{"data": {"a": {"pageInfo": {}, "nodes": []}, "b": {"pageInfo": {}, "nodes": []}}}"#,
        )
        .unwrap();
        let err = connection(&two).unwrap_err().to_string();
        assert!(err.contains("/data/a, /data/b"), "{err}");
        let none = Page::parse(r#"{"data": {"viewer": {"login": "me"}}}"#).unwrap();
        assert_eq!(connection(&none).unwrap(), None);
    }
}
