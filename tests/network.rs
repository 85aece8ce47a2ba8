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

#[test]
fn pages_fetched_ahead_and_dropped_are_not_counted_as_retries() {
    // The total promises 10 pages, but page 2 is the last: pages 3.. are still waiting
    // for their --rate slot when the run ends.
    let all = records(10);
    let server = Server::start(move |req| {
        let (page, _) = page_of(&all, req);
        let has_more = req.param("page") == Some("1");
        Reply::json(&json!({"data": page, "has_more": has_more, "total": 10}))
    })
    .unwrap();
    let out = apifetch()
        .args(["--concurrency", "4", "--rate", "2/s", "--page-size", "1"])
        .arg(server.url("/items"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(2));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("from 2 pages in"), "{stderr}");
    assert!(stderr.contains("(0 retries)"), "{stderr}");
}

#[test]
fn a_retry_after_on_a_permanent_error_does_not_hold_the_other_requests() {
    // Page 2 fails once, answering after page 3's 404 has arrived: its retry must not
    // wait out the 404's Retry-After, which nothing will act on.
    let all = records(3);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let server = Server::start(move |req| match req.param("page") {
        Some("2") if !failed.swap(true, std::sync::atomic::Ordering::SeqCst) => {
            Reply::status(503).delay(std::time::Duration::from_millis(300))
        }
        Some("3") => Reply::json(&json!({"error": "gone"}))
            .with_status(404)
            .header("retry-after", "30"),
        _ => {
            let (page, has_more) = page_of(&all, req);
            Reply::json(&json!({"data": page, "has_more": has_more, "total": 3}))
        }
    })
    .unwrap();
    let out = apifetch()
        .args(["--concurrency", "2", "--page-size", "1", "-v"])
        .arg(server.url("/items"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("HTTP 404 (not retried)"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(!stderr.contains("pausing all requests"), "{stderr}");
    let mut hits = hits_per_page(&server.requests());
    hits.sort();
    assert_eq!(
        hits,
        [("1".into(), 1), ("2".into(), 2), ("3".into(), 1)],
        "page 2 was retried"
    );
}
