//! The core path end to end: page-number pagination, retries, output and exit codes.

use std::time::{Duration, SystemTime};

use crate::common::*;
use assert_cmd::assert::Assert;
use bytes::Bytes;
use predicates::prelude::*;
use serde_json::json;

#[test]
fn every_page_failing_twice_still_yields_every_record_once() {
    let server = Server::start(flaky(2, || Reply::status(503).body("busy"), records(250))).unwrap();
    let out = apifetch().arg(server.url("/items")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(250));
    let hits = hits_per_page(&server.requests());
    assert_eq!(hits, [("1".into(), 3), ("2".into(), 3), ("3".into(), 3)]);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("HTTP 503 (attempt 1 of 6); retrying in"),
        "{stderr}"
    );
    assert!(stderr.contains("(attempt 2 of 6)"), "{stderr}");
    assert!(
        stderr.contains("synced 250 records from 3 pages"),
        "{stderr}"
    );
    assert!(stderr.contains("(6 retries)"), "{stderr}");
}

#[test]
fn retry_after_seconds_is_waited_out() {
    let server = Server::start(flaky(
        1,
        || Reply::status(429).header("retry-after", "1"),
        records(3),
    ))
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .success()
        .stderr(predicate::str::contains("as the server asked (1.0s)"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[test]
fn retry_after_http_date_is_waited_out() {
    // HTTP-dates have whole seconds, so ask for 2 s ahead and expect at least 1 s.
    let server = Server::start(flaky(
        1,
        || {
            Reply::status(503).header(
                "retry-after",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2)),
            )
        },
        records(3),
    ))
    .unwrap();
    apifetch().arg(server.url("/")).assert().success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_secs(1),
        "retried after {:?}",
        reqs[1].at - reqs[0].at
    );
}

#[test]
fn zero_retry_after_uses_backoff_not_an_instant_retry() {
    let server = Server::start(flaky(
        1,
        || Reply::status(429).header("retry-after", "0"),
        records(3),
    ))
    .unwrap();
    apifetch()
        .args(["--backoff", "0.3", "--backoff-max", "1", "--jitter", "none"])
        .arg(server.url("/"))
        .assert()
        .success();
    let reqs = server.requests();
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(300));
}

#[test]
fn waits_grow_between_retries() {
    let server = Server::start(flaky(4, || Reply::status(500), records(1))).unwrap();
    apifetch()
        .args([
            "--backoff",
            "0.05",
            "--backoff-max",
            "10",
            "--jitter",
            "none",
        ])
        .arg(server.url("/"))
        .assert()
        .success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 5);
    for (k, pair) in reqs.windows(2).enumerate() {
        let floor = Duration::from_millis(50 << k);
        assert!(
            pair[1].at - pair[0].at >= floor,
            "retry {}: {:?} < {floor:?}",
            k + 1,
            pair[1].at - pair[0].at
        );
    }
}

#[test]
fn dropped_connections_are_retried() {
    let server = Server::start(flaky(1, Reply::drop_connection, records(120))).unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(120));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn truncated_bodies_are_retried() {
    let cut = Reply::json(&json!({"data": records(100), "has_more": true})).cut_after(500);
    let server = Server::start(flaky(1, move || cut.clone(), records(120))).unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(120));
    assert_eq!(server.requests().len(), 4);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("body"), "{stderr}");
}

#[test]
fn slow_responses_time_out_and_are_retried() {
    let slow = Reply::json(&json!([])).delay(Duration::from_secs(5));
    let server = Server::start(flaky(1, move || slow.clone(), records(5))).unwrap();
    let out = apifetch()
        .args(["--timeout", "0.3"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(5));
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("timed out"));
}

#[test]
fn permanent_statuses_fail_after_one_request() {
    for status in [404, 401] {
        let server =
            Server::start(move |_| Reply::status(status).body("{\"message\": \"no such thing\"}"))
                .unwrap();
        apifetch()
            .arg(server.url("/missing?api_key=SECRET123"))
            .assert()
            .code(3)
            .stderr(predicate::str::contains(format!("HTTP {status}")))
            .stderr(predicate::str::contains("no such thing"))
            .stderr(predicate::str::contains("api_key=***"))
            .stderr(predicate::str::contains("SECRET123").not());
        assert_eq!(server.requests().len(), 1, "status {status}");
    }
}

#[test]
fn endless_503_gives_up_after_every_retry() {
    let server = Server::start(|_| Reply::status(503)).unwrap();
    apifetch()
        .args(["--retries", "3"])
        .arg(server.url("/"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("gave up after 4 attempts"));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn retry_after_beyond_the_cap_gives_up_at_once() {
    let server = Server::start(|_| Reply::status(429).header("retry-after", "7200")).unwrap();
    apifetch()
        .args(["--retry-max-wait", "60"])
        .arg(server.url("/"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("server asked to wait 2h0m"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn connection_refused_is_retried_then_gives_up() {
    let server = Server::start(|_| Reply::status(200)).unwrap();
    let url = server.url("/");
    drop(server);
    apifetch()
        .args(["--retries", "2"])
        .arg(url)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("connection failed"));
}

#[test]
fn a_refused_connection_is_said_plainly_without_announcing_a_wait_that_never_comes() {
    let server = Server::start(|_| Reply::status(200)).unwrap();
    let (addr, url) = (server.addr(), server.url("/"));
    drop(server);
    // Three failures open the circuit; attempts 4, 5 and 6 each wait for it and go out
    // as its probe. After the sixth nothing waits, so nothing is announced.
    let out = apifetch()
        .args(["--retries", "5", "--breaker", "3"])
        .arg(url)
        .assert()
        .code(4);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let last = lines[lines.len() - 1];
    assert!(
        last.starts_with("apifetch: error: ")
            && last.contains(&format!(
                "connection to {addr} refused after 6 attempts over "
            )),
        "{stderr}"
    );
    assert!(!lines[lines.len() - 2].contains("circuit open"), "{stderr}");
    assert_eq!(stderr.matches("circuit open for").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("circuit open again").count(), 2, "{stderr}");
}

#[test]
fn html_instead_of_json_is_a_bad_response() {
    let server = Server::start(|_| {
        Reply::status(200)
            .header("content-type", "text/html")
            .body("<html><body>Login</body></html>")
    })
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(5)
        .stderr(predicate::str::contains("not JSON"))
        .stderr(predicate::str::contains("<html>"));
}

/// Fetches, as one page, a server's answer of `body` labelled as JSON.
fn fetch_one_page(body: impl Into<Bytes>) -> Assert {
    let body = body.into();
    let server = Server::start(move |_| {
        Reply::status(200)
            .header("content-type", "application/json")
            .body(body.clone())
    })
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--paginate", "none"])
        .assert()
}

#[test]
fn a_body_that_is_not_utf8_is_a_bad_response() {
    fetch_one_page(&b"{\"data\": [{\"name\": \"caf\xe9\"}]}"[..])
        .code(5)
        .stdout("")
        .stderr(predicate::str::contains("not JSON (invalid utf-8"))
        .stderr(predicate::str::contains("caf\u{fffd}"));
}

#[test]
fn space_json_does_not_allow_around_a_page_makes_it_not_json() {
    for body in [
        "[{\"id\": 1}]\u{c}",
        "\u{c}[{\"id\": 1}]",
        "[{\"id\": 1}]\u{a0}",
    ] {
        fetch_one_page(body)
            .code(5)
            .stdout("")
            .stderr(predicate::str::contains("the response is not JSON"));
    }
}

#[test]
fn a_byte_order_mark_before_the_json_is_skipped() {
    for body in [
        "\u{feff}[{\"id\": 1}, {\"id\": 2}]",
        "\u{feff}{\"data\": [{\"id\": 1}, {\"id\": 2}]}",
    ] {
        let out = fetch_one_page(body).code(0).get_output().stdout.clone();
        assert_eq!(String::from_utf8(out).unwrap(), "id\n1\n2\n", "{body}");
    }
}

#[test]
fn a_record_nested_a_hundred_thousand_deep_is_written_not_a_crash() {
    let depth = 100_000;
    let record = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let out = fetch_one_page(format!(r#"[{{"id":1}},{record}]"#))
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // Flattened 64 levels down; the rest is one cell of JSON text.
    let column = vec!["a"; 64].join(".");
    assert!(
        text.starts_with(&format!("id,{column}\n1,\n,\"{{\"\"a\"\":")),
        "{}",
        &text[..200]
    );
}

#[test]
fn an_object_without_records_names_its_keys() {
    let server = Server::start(|_| Reply::json(&json!({"error": "x", "count": 0}))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(5)
        .stderr(predicate::str::contains("top-level keys: error, count"));
}

#[test]
fn columns_are_the_union_of_keys_in_first_seen_order() {
    let server = Server::start(|req| {
        let body = match page_number(req) {
            1 => json!({"data": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "has_more": true}),
            2 => json!({"data": [{"id": 3, "late": {"x": "1E21"}}], "has_more": true}),
            _ => json!({"data": [{"name": "d", "id": 4, "n": 12345678901234567890u64}], "has_more": false}),
        };
        Reply::json(&body)
    })
    .unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(
        csv_rows(&out.get_output().stdout),
        [
            vec!["id", "name", "late.x", "n"],
            vec!["1", "a", "", ""],
            vec!["2", "b", "", ""],
            vec!["3", "", "1E21", ""],
            vec!["4", "d", "", "12345678901234567890"],
        ]
    );
}

#[test]
fn awkward_values_survive_exactly() {
    let body = r#"[{"id": 1, "n": 0.1, "big": 1e21, "s": "a, \"quoted\"\nline é 😀", "arr": [1, {"k": null}], "nil": null}]"#;
    let server = Server::start(move |req| match page_number(req) {
        1 => Reply::status(200).body(body),
        _ => Reply::json(&json!([])),
    })
    .unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(
        String::from_utf8(out.get_output().stdout.clone()).unwrap(),
        "id,n,big,s,arr,nil\n1,0.1,1e21,\"a, \"\"quoted\"\"\nline é 😀\",\"[1,{\"\"k\"\":null}]\",\n"
    );
}

#[test]
fn short_pages_do_not_end_the_run() {
    // The server caps pages at 10 records whatever per_page says.
    let all = records(35);
    let server = Server::start(move |req| {
        let start = ((page_number(req) - 1) * 10).min(all.len());
        Reply::json(&json!({"items": all[start..(start + 10).min(all.len())]}))
    })
    .unwrap();
    // The URL shows the page parameter: pages are asked for until one is empty.
    let out = apifetch().arg(server.url("/?page=1")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(35));
    assert_eq!(
        server.requests().len(),
        5,
        "4 pages of records and one empty page"
    );
}

#[test]
fn query_params_and_headers_are_sent() {
    let server = Server::start(paged(records(3))).unwrap();
    apifetch()
        .arg(server.url("/v1/items?status=open&page=2"))
        .args([
            "--param",
            "sort=id",
            "-H",
            "X-Trace: abc",
            "--page-size",
            "2",
        ])
        .assert()
        .success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "the URL's page=2 is where the run starts");
    assert_eq!(reqs[0].path, "/v1/items");
    let q: Vec<(&str, &str)> = reqs[0]
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        q,
        [
            ("status", "open"),
            ("page", "2"),
            ("sort", "id"),
            ("per_page", "2")
        ],
        "the URL as given, then what the flags add"
    );
    assert_eq!(reqs[0].header("x-trace"), Some("abc"));
    assert!(
        reqs[0]
            .header("user-agent")
            .unwrap()
            .starts_with("apifetch/")
    );
}

#[test]
fn page_settings_in_the_url_hold_unless_a_flag_says_otherwise() {
    let server = Server::start(paged(records(3))).unwrap();
    let sizes = |args: &[&str]| {
        let before = server.requests().len();
        let out = apifetch().args(args).assert().success();
        assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
        server.requests()[before..]
            .iter()
            .map(|r| r.param("per_page").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&[&server.url("/?per_page=2")]), ["2", "2"]);
    assert_eq!(
        sizes(&[&server.url("/"), "--param", "per_page=1"]),
        ["1", "1", "1"]
    );
    assert_eq!(
        sizes(&[&server.url("/?per_page=2"), "--page-size", "3"]),
        ["3"]
    );
    let offsets = Server::start(|req| {
        let offset: usize = req.param("offset").map_or(0, |o| o.parse().unwrap());
        let limit: usize = req.param("limit").unwrap().parse().unwrap();
        let all = records(5);
        let page = &all[offset.min(5)..(offset + limit).min(5)];
        Reply::json(&json!({"items": page, "offset": offset, "total": 5}))
    })
    .unwrap();
    apifetch()
        .arg(offsets.url("/?limit=2"))
        .args(["--paginate", "offset"])
        .assert()
        .success();
    let limits: Vec<_> = offsets
        .requests()
        .iter()
        .map(|r| r.param("limit").unwrap().to_string())
        .collect();
    assert_eq!(limits, ["2", "2", "2"], "the URL's limit is the page size");
}

#[test]
fn max_pages_stops_early_with_a_warning() {
    let server = Server::start(paged(records(500))).unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .args(["--max-pages", "2"])
        .assert()
        .success()
        .stderr(predicate::str::contains("--max-pages 2"));
    assert_eq!(ids(&out.get_output().stdout), expected_ids(200));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn start_page_and_page_params_are_configurable() {
    let server = Server::start(|req| {
        let p: u64 = req.param("p").unwrap().parse().unwrap();
        let recs: Vec<_> = if p < 3 {
            vec![json!({"p": p, "size": req.param("n")})]
        } else {
            vec![]
        };
        Reply::json(&json!(recs))
    })
    .unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .args([
            "--page-param",
            "p",
            "--size-param",
            "n",
            "--page-size",
            "7",
            "--start-page",
            "0",
        ])
        .assert()
        .success();
    assert_eq!(
        csv_rows(&out.get_output().stdout),
        [
            vec!["p", "size"],
            vec!["0", "7"],
            vec!["1", "7"],
            vec!["2", "7"]
        ]
    );
}

#[test]
fn out_file_is_written_whole_and_quiet_is_silent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let server = Server::start(paged(records(150))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&path)
        .arg("-q")
        .assert()
        .success()
        .stdout("")
        .stderr("");
    assert_eq!(ids(&std::fs::read(&path).unwrap()), expected_ids(150));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files are left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let ordinary = dir.path().join("ordinary");
        std::fs::write(&ordinary, "").unwrap();
        assert_eq!(
            mode(&path),
            mode(&ordinary),
            "the output gets the user's usual file mode"
        );
        // Exactly, whether the partial file is renamed into place or the output written
        // afresh: the umask does not take bits from a mode the user chose.
        let chosen = std::fs::Permissions::from_mode(0o666);
        for name in ["again.csv", "again.json", "again.jsonl"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "").unwrap();
            std::fs::set_permissions(&path, chosen.clone()).unwrap();
            apifetch()
                .arg(server.url("/"))
                .arg("--out")
                .arg(&path)
                .assert()
                .success();
            assert_eq!(
                mode(&path),
                0o666,
                "{name}: a replaced output keeps its mode"
            );
        }
    }
}

#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    std::fs::write(&path, "previous,contents\n").unwrap();
    let server = Server::start(|req| match page_number(req) {
        1 => Reply::json(&json!({"data": records(100), "page": 1, "has_more": true})),
        _ => Reply::status(403),
    })
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&path)
        .assert()
        .code(3);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "previous,contents\n"
    );
}

#[test]
fn unwritable_output_is_an_output_error_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(paged(records(3))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(dir.path().join("missing-dir/out.csv"))
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "apifetch: error: cannot write beside",
        ));
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn a_directory_as_output_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.csv");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "keep").unwrap();
    let server = Server::start(paged(records(3))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&target)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("is a directory"));
    assert_eq!(server.requests().len(), 0);
    assert_eq!(
        std::fs::read_to_string(target.join("keep.txt")).unwrap(),
        "keep"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written beside it"
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_output_replaces_its_target_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.csv");
    let link = dir.path().join("link.csv");
    std::fs::write(&target, "old\n").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let server = Server::start(paged(records(3))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&link)
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(ids(&std::fs::read(&target).unwrap()), expected_ids(3));

    // A link made ahead of time to a file that does not exist yet.
    std::fs::create_dir(dir.path().join("later")).unwrap();
    let dangling = dir.path().join("dangling.csv");
    std::os::unix::fs::symlink("later/new.csv", &dangling).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&dangling)
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let created = dir.path().join("later/new.csv");
    assert_eq!(ids(&std::fs::read(created).unwrap()), expected_ids(3));
}

#[cfg(unix)]
#[test]
fn dev_stdout_as_output_appends_to_a_redirected_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("all.csv");
    std::fs::write(&log, "old\n").unwrap();
    let appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let server = Server::start(paged(records(2))).unwrap();
    let status = apifetch_std()
        .arg(server.url("/"))
        .args(["--out", "/dev/stdout"])
        .current_dir(dir.path())
        .stdout(appending)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().next(), Some("old"), "{text}");
    assert_eq!(ids(&text.as_bytes()["old\n".len()..]), expected_ids(2));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial files"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_as_output_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.csv");
    let received = fifo_reader(&fifo);
    let server = Server::start(paged(records(150))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&fifo)
        .assert()
        .success();
    let read = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the FIFO's reader got the output");
    assert_eq!(ids(&read), expected_ids(150));
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "still a FIFO"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial files"
    );
}

#[test]
fn zero_records_write_an_empty_file_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.csv");
    let server = Server::start(|_| Reply::json(&json!({"data": []}))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&path)
        .assert()
        .success()
        .stderr(predicate::str::contains("no records"));
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

#[test]
fn usage_errors_exit_2() {
    apifetch().assert().code(2);
    apifetch()
        .arg("ftp://example.test/x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("scheme"));
    apifetch()
        .args(["http://127.0.0.1:9/", "--jitter", "sometimes"])
        .assert()
        .code(2);
    apifetch()
        .args([
            "http://127.0.0.1:9/",
            "--backoff",
            "10",
            "--backoff-max",
            "1",
        ])
        .assert()
        .code(2);
}

#[test]
fn help_documents_flags_defaults_and_exit_codes() {
    apifetch()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--retry-on <CODES>"))
        .stdout(predicate::str::contains(
            "[default: 408,425,429,500,502,503,504]",
        ))
        .stdout(predicate::str::contains("130  interrupted"));
}

#[test]
fn demo_recovers_and_fetches_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.csv");
    let out = apifetch()
        .args(["--demo", "--out"])
        .arg(&path)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("HTTP 429"),
        "{stderr}"
    );
    assert!(
        stderr.contains("synced 237 records from 3 pages"),
        "{stderr}"
    );
    let rows = csv_rows(&std::fs::read(&path).unwrap());
    assert_eq!(rows.len(), 238);
    assert_eq!(rows[0].last().unwrap(), "coupon");
}

#[test]
fn usage_errors_say_what_to_do() {
    for (args, said) in [
        (
            &["example.com/api"][..],
            "did you mean https://example.com/api?",
        ),
        (
            &["http://127.0.0.1:9/", "--param", "foo"],
            "--param `foo` is not KEY=VALUE",
        ),
        (
            &["http://127.0.0.1:9/", "-H", "foo"],
            "-H `foo` is not `Name: value`",
        ),
        (
            &["http://127.0.0.1:9/", "-H", "Bearer abc.def"],
            "(not shown: it may hold a credential)",
        ),
        (
            &["http://127.0.0.1:9/", "--page-size", "0"],
            "0 is not in 1..=1000000",
        ),
        (
            &["http://127.0.0.1:9/", "--timeout", "5x"],
            "use seconds (1.5) or a unit (500ms, 2m, 1h)",
        ),
    ] {
        let out = apifetch().args(args).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(!stderr.contains("abc.def"), "{stderr}");
    }
}

#[test]
fn an_output_name_apifetch_cannot_honour_is_refused_before_any_request() {
    let server = Server::start(paged(records(2))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, said) in [
        (
            "out.parquet",
            "does not write .parquet files; pass --format",
        ),
        ("orders.csv.gz", "does not compress its output (.gz)"),
        ("events.jsonl.zst", "does not compress its output (.zst)"),
    ] {
        apifetch()
            .arg(server.url("/"))
            .arg("--out")
            .arg(dir.path().join(name))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(said));
    }
    assert_eq!(server.requests().len(), 0);
    let named = dir.path().join("out.txt");
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&named)
        .args(["--format", "jsonl"])
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&named).unwrap().lines().count(), 2);
}
