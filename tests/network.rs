//! What the network side does with hostile or absurd answers: redirects to other origins,
//! waits too long to compute, `Retry-After` on errors that are not retried, and retry
//! accounting with pages fetched ahead.

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::json;

#[test]
fn an_absurd_retry_after_gives_up_instead_of_panicking() {
    let server = Server::start(|_| {
        Reply::json(&json!({"error": "later"}))
            .with_status(503)
            .header("retry-after", "10000000000000000000")
    })
    .unwrap();
    apifetch()
        .arg(server.url("/items"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("server asked to wait"))
        .stderr(predicate::str::contains("longer than --retry-max-wait"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_absurd_duration_flag_is_a_usage_error() {
    let server = Server::start(paged(records(3))).unwrap();
    for flag in ["--max-time", "--delay", "--retry-max-wait"] {
        apifetch()
            .arg(server.url("/items"))
            .args([flag, "18000000000000000000"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("longer than 100 years"));
    }
    assert_eq!(server.requests().len(), 0);
}
