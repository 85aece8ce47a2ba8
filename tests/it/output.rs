//! Output formats and columns, and runs that stop part-way: partial files, checkpoints,
//! `--resume`, signals and a full disk.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use predicates::prelude::*;
use serde_json::{Value, json};

/// Three records over two pages, sent with the API's own whitespace: quotes, commas,
/// newlines, tabs, CRLF, non-ASCII and emoji, nulls, nested objects and arrays, numbers no
/// float can hold, a formula, and keys that first appear on the second page.
const PAGE_1: &str = r#"{"data": [
  {"id": 1, "name": "a, \"b\"\nc", "n": 0.1, "big": 123456789012345678901234567890,
   "nested": {"x": {"y": null}, "arr": [1, {"k": "v"}]}, "e": "é 😀 李"},
  {"id": 2, "f": "=1+1", "n": 1E21, "nested": {"x": {"y": -3.50}}}
], "has_more": true}"#;
const PAGE_2: &str = r#"{"data": [
  {"id": 3, "late": {"deep": true}, "tab": "a\tb", "cr": "line\r\nnext", "empty": {}, "list": [ ]}
], "has_more": false}"#;

/// The same records as JSON Lines: the API's text without insignificant whitespace.
const JSON_LINES: &str = concat!(
    r#"{"id":1,"name":"a, \"b\"\nc","n":0.1,"big":123456789012345678901234567890,"nested":{"x":{"y":null},"arr":[1,{"k":"v"}]},"e":"é 😀 李"}"#,
    "\n",
    r#"{"id":2,"f":"=1+1","n":1E21,"nested":{"x":{"y":-3.50}}}"#,
    "\n",
    r#"{"id":3,"late":{"deep":true},"tab":"a\tb","cr":"line\r\nnext","empty":{},"list":[]}"#,
    "\n",
);

fn awkward_rows() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "id",
            "name",
            "n",
            "big",
            "nested.x.y",
            "nested.arr",
            "e",
            "f",
            "late.deep",
            "tab",
            "cr",
            "empty",
            "list",
        ],
        vec![
            "1",
            "a, \"b\"\nc",
            "0.1",
            "123456789012345678901234567890",
            "",
            r#"[1,{"k":"v"}]"#,
            "é 😀 李",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        vec![
            "2", "", "1E21", "", "-3.50", "", "", "=1+1", "", "", "", "", "",
        ],
        vec![
            "3",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "true",
            "a\tb",
            "line\r\nnext",
            "{}",
            "[]",
        ],
    ]
}

/// Serves `pages` as page 1, 2, …, and an empty page after them.
fn raw_pages(pages: &[&'static str]) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let pages = pages.to_vec();
    move |req| {
        let n: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let body = pages.get(n - 1).copied().unwrap_or(r#"{"data": []}"#);
        Reply::status(200).body(body)
    }
}

fn table(bytes: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// Runs to `--out dir/name` and returns what was written, checking that standard output
/// in the same format gets exactly the same bytes.
fn fetch_both_ways(server: &Server, name: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    apifetch()
        .arg(server.url("/"))
        .args(args)
        .arg("--out")
        .arg(&path)
        .assert()
        .success();
    let written = std::fs::read(&path).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the output is left"
    );
    let format = Path::new(name).extension().unwrap().to_str().unwrap();
    let printed = apifetch()
        .arg(server.url("/"))
        .args(args)
        .args(["--format", format])
        .assert()
        .success();
    assert_eq!(
        printed.get_output().stdout,
        written,
        "stdout and --out agree"
    );
    written
}

#[test]
fn every_format_round_trips_awkward_records() {
    let server = Server::start(raw_pages(&[PAGE_1, PAGE_2])).unwrap();

    let csv = fetch_both_ways(&server, "out.csv", &[]);
    assert_eq!(table(&csv, b','), awkward_rows());

    let tsv = fetch_both_ways(&server, "out.tsv", &[]);
    assert_eq!(table(&tsv, b'\t'), awkward_rows());

    let jsonl = fetch_both_ways(&server, "out.jsonl", &[]);
    assert_eq!(String::from_utf8(jsonl).unwrap(), JSON_LINES);
    let ndjson = fetch_both_ways(&server, "out.ndjson", &[]);
    assert_eq!(String::from_utf8(ndjson).unwrap(), JSON_LINES);

    let array = fetch_both_ways(&server, "out.json", &[]);
    let lines: Vec<&str> = JSON_LINES.lines().collect();
    assert_eq!(
        String::from_utf8(array.clone()).unwrap(),
        format!("[\n{}\n]\n", lines.join(",\n"))
    );
    let parsed: Vec<Value> = serde_json::from_slice(&array).unwrap();
    let sent: Vec<Value> = [PAGE_1, PAGE_2]
        .iter()
        .flat_map(|p| {
            serde_json::from_str::<Value>(p).unwrap()["data"]
                .clone()
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(parsed, sent, "one valid JSON array of every record");
}

#[test]
fn compressed_outputs_hold_exactly_the_plain_output_of_every_format() {
    let server = Server::start(raw_pages(&[PAGE_1, PAGE_2])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "tsv", "jsonl", "json"] {
        let plain = fetch_both_ways(&server, &format!("out.{format}"), &[]);
        for (ext, codec) in [("gz", "gzip"), ("zst", "zstd")] {
            let name = format!("out.{format}.{ext}");
            let path = dir.path().join(&name);
            apifetch()
                .arg(server.url("/"))
                .arg("--out")
                .arg(&path)
                .assert()
                .success();
            let stored = std::fs::read(&path).unwrap();
            assert!(stored != plain, "{name} is compressed");
            assert!(decompressed(&name, &stored) == plain, "{name}");
            // Standard output, compressed by --compress, holds the same.
            let printed = apifetch()
                .arg(server.url("/"))
                .args(["--format", format, "--compress", codec])
                .assert()
                .success();
            let printed = &printed.get_output().stdout;
            assert!(decompressed(&name, printed) == plain, "{name} on stdout");
        }
    }
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "out.csv.gz",
            "out.csv.zst",
            "out.json.gz",
            "out.json.zst",
            "out.jsonl.gz",
            "out.jsonl.zst",
            "out.tsv.gz",
            "out.tsv.zst"
        ],
        "no partial file, checkpoint or temporary file is left"
    );
    assert_eq!(
        server.requests().len(),
        24 * 3,
        "the same 3 requests for each of 24 runs"
    );
}

#[test]
fn columns_select_and_order_and_leave_missing_cells_empty() {
    let server = Server::start(raw_pages(&[PAGE_1, PAGE_2])).unwrap();
    let csv = fetch_both_ways(
        &server,
        "out.csv",
        &["--columns", "late.deep,id,nested.x.y,missing"],
    );
    assert_eq!(
        table(&csv, b','),
        [
            ["late.deep", "id", "nested.x.y", "missing"],
            ["", "1", "", ""],
            ["", "2", "-3.50", ""],
            ["true", "3", "", ""],
        ]
    );
    // A name given twice is one column.
    let csv = fetch_both_ways(&server, "out.csv", &["--columns", "id,nested.x.y,id"]);
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "id,nested.x.y\n1,\n2,-3.50\n3,\n"
    );
}

#[test]
fn a_column_no_record_of_the_first_page_has_is_named_in_a_warning() {
    let server = Server::start(raw_pages(&[PAGE_1, PAGE_2])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    apifetch()
        .arg(server.url("/"))
        .args(["--columns", "id,nmae,late.deep", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "WARN --columns: none of the first 2 records has `nmae`, `late.deep` (they have name, n,",
        ));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,nmae,late.deep\n1,,\n2,,\n3,,true\n"
    );
    apifetch()
        .arg(server.url("/"))
        .args(["--columns", "id,name", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("WARN").not());
    apifetch()
        .arg(server.url("/"))
        .args(["--columns", "id,nmae"])
        .assert()
        .success()
        .stdout("id,nmae\n1,\n2,\n3,\n")
        .stderr(predicate::str::contains(
            "none of the first 2 records has `nmae`",
        ));
}

#[test]
fn nested_objects_can_stay_whole_or_join_with_another_separator() {
    let server = Server::start(raw_pages(&[PAGE_1, PAGE_2])).unwrap();
    let whole = table(
        &fetch_both_ways(&server, "out.csv", &["--no-flatten"]),
        b',',
    );
    assert_eq!(
        whole[0][..5],
        ["id", "name", "n", "big", "nested"],
        "nested objects are one column"
    );
    assert_eq!(whole[1][4], r#"{"x":{"y":null},"arr":[1,{"k":"v"}]}"#);
    assert_eq!(whole[2][4], r#"{"x":{"y":-3.50}}"#);
    assert_eq!((&*whole[0][7], &*whole[3][7]), ("late", r#"{"deep":true}"#));

    let joined = table(
        &fetch_both_ways(&server, "out.tsv", &["--flatten-sep", "__"]),
        b'\t',
    );
    assert_eq!(joined[0][4..6], ["nested__x__y", "nested__arr"]);
}

#[test]
fn colliding_columns_and_repeated_keys_keep_every_value() {
    let server = Server::start(raw_pages(&[
        r#"{"data": [{"a.b": 1, "a": {"b": 2}, "id": 1}, {"id": 2, "a": {"b": 3}}], "has_more": true}"#,
        r#"{"data": [{"id": 3, "id": 4, "a.b": 5}], "has_more": false}"#,
    ]))
    .unwrap();
    let csv = fetch_both_ways(&server, "out.csv", &[]);
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "a.b,a.b#2,id,id#2\n1,2,1,\n3,,2,\n5,,3,4\n"
    );
    let csv = fetch_both_ways(&server, "out.csv", &["--columns", "id#2,a.b#2"]);
    assert_eq!(String::from_utf8(csv).unwrap(), "id#2,a.b#2\n,2\n,\n4,\n");
}

#[test]
fn csv_safe_defuses_formulas_in_strings_only_when_asked_and_never_touches_numbers() {
    let body = r#"[{"a": "=SUM(A1)", "b": "+1", "c": "-2", "d": "@x", "e": "\tt", "f": "\rr", "g": "ok=", "h": -5, "i": -13.11, "j": "\u002d1"}]"#;
    let server = Server::start(raw_pages(&[body])).unwrap();
    let plain = table(&fetch_both_ways(&server, "out.csv", &[]), b',');
    assert_eq!(
        plain[1],
        [
            "=SUM(A1)", "+1", "-2", "@x", "\tt", "\rr", "ok=", "-5", "-13.11", "-1"
        ]
    );
    let safe = table(&fetch_both_ways(&server, "out.csv", &["--csv-safe"]), b',');
    assert_eq!(
        safe[1],
        [
            "'=SUM(A1)",
            "'+1",
            "'-2",
            "'@x",
            "'\tt",
            "'\rr",
            "ok=",
            "-5",
            "-13.11",
            "'-1"
        ]
    );
}

#[test]
fn zero_records_give_an_empty_file_or_an_empty_array() {
    let server = Server::start(|_| Reply::json(&json!({"data": []}))).unwrap();
    assert_eq!(fetch_both_ways(&server, "out.json", &[]), b"[]\n");
    assert_eq!(fetch_both_ways(&server, "out.jsonl", &[]), b"");
    assert_eq!(fetch_both_ways(&server, "out.tsv", &[]), b"");
}

#[test]
fn records_whose_keys_all_differ_stop_at_max_columns_unless_written_as_json_lines() {
    let records: Vec<Value> = (1..=300)
        .map(|i| json!({"id": i, format!("k{i}"): i}))
        .collect();
    let server = Server::start(move |_| Reply::json(&json!({"data": records}))).unwrap();
    let run = |args: &[&str]| {
        apifetch()
            .arg(server.url("/"))
            .args(["--paginate", "none"])
            .args(args)
            .assert()
    };
    run(&["--max-columns", "100"])
        .code(5)
        .stdout("")
        .stderr(predicate::str::contains(
            "more than 100 different keys, too many columns for a table (--max-columns 100): \
             write them as JSON Lines with --format jsonl, or pick the columns to keep with \
             --columns",
        ));
    let lines = run(&["--max-columns", "100", "--format", "jsonl"]).success();
    assert_eq!(
        lines.get_output().stdout.split(|&b| b == b'\n').count(),
        301
    );
    let picked = run(&["--max-columns", "100", "--columns", "id"]).success();
    assert_eq!(ids(&picked.get_output().stdout), expected_ids(300));
    // Within the default limit, every key is a column.
    let wide = run(&[]).success();
    assert_eq!(csv_rows(&wide.get_output().stdout)[0].len(), 301);
    for bad in ["0", "1000001"] {
        run(&["--max-columns", bad]).code(2);
    }
    run(&["--max-columns", "1", "--columns", "id,k1"])
        .code(2)
        .stderr(predicate::str::contains("more than --max-columns 1"));
}

#[test]
fn options_that_do_not_fit_the_format_are_usage_errors() {
    for args in [
        &["--format", "json", "--columns", "id"][..],
        &["--out", "x.jsonl", "--csv-safe"],
        &["--format", "jsonl", "--no-flatten"],
        &["--resume"],
        &["--out", "-", "--resume"],
        &["--flatten-sep", ""],
    ] {
        apifetch()
            .arg("http://127.0.0.1:9/")
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::starts_with("apifetch: error: "));
    }
}

#[test]
fn json_lines_to_stdout_arrive_page_by_page() {
    let release = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&release);
    let serve = raw_pages(&[PAGE_1, PAGE_2]);
    let server = Server::start(move |req| {
        if req.param("page") == Some("2") {
            while !gate.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        serve(req)
    })
    .unwrap();
    let mut child = apifetch_std()
        .arg(server.url("/"))
        .args(["--format", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = (&mut lines).take(2).map(Result::unwrap).collect();
    // Page 2 is held back by the server, so page 1 was written before the run ended.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run is still going"
    );
    release.store(true, Ordering::SeqCst);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        [first, rest].concat().join("\n") + "\n",
        JSON_LINES,
        "every record once, in order"
    );
}

#[cfg(unix)]
#[test]
fn a_table_of_fixed_columns_streams_to_stdout_and_a_closed_pipe_ends_the_run_quietly() {
    // Page 2 waits for the test's word; page 3, the last, takes a minute.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let serve = paged(records(9));
    let server = Server::start(move |req| match page_number(req) {
        2 => {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(30));
            serve(req)
        }
        3 => serve(req).delay(Duration::from_secs(60)),
        _ => serve(req),
    })
    .unwrap();
    let mut child = apifetch_std()
        .arg(server.url("/"))
        .args(["--page-size", "3", "--columns", "id,name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A real `| head -n 4`, so that nothing but head holds the pipe's reading end: a copy
    // kept here could be inherited by a process another test is starting, and keep the
    // pipe open after head has gone.
    let head = std::process::Command::new("head")
        .args(["-n", "4"])
        .stdin(Stdio::from(child.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = head.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(shown.stdout).unwrap(),
        "id,name\n1,item 1\n2,item 2\n3,item 3\n"
    );
    wait_for_requests(&server, 2);
    let requests = server.requests();
    assert!(
        requests.len() == 2 && requests[1].answered.is_none(),
        "page 1's rows arrived while page 2 was still held: {requests:?}"
    );
    // head has its lines and is gone; then page 2 comes, with nobody left to read it.
    release.send(()).unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "a closed pipe is no failure");
    let stderr = String::from_utf8(done.stderr).unwrap();
    assert!(!stderr.contains("error"), "{stderr}");
    // Writing page 2 found the pipe closed, and the run stopped then: page 3 may have been
    // asked for meanwhile, but not waited for.
    let pages: Vec<(usize, bool)> = (server.requests().iter())
        .map(|r| (page_number(r), r.answered.is_some()))
        .collect();
    assert!(
        pages == [(1, true), (2, true)] || pages == [(1, true), (2, true), (3, false)],
        "{pages:?}"
    );
}

/// A 12-page API (3 records a page, a key that first appears on page 7) that holds the
/// request for page `slow` back for a long time, so a test can stop a run while it waits.
struct SlowApi {
    server: Server,
    slow: Arc<AtomicU64>,
    /// A 403 for this page (0: none).
    broken: Arc<AtomicU64>,
}

impl SlowApi {
    fn start() -> Self {
        let records: Vec<Value> = (1..=36)
            .map(|i| {
                if i > 18 {
                    json!({"id": i, "late": {"k": format!("l{i}")}, "v": i * 10})
                } else {
                    json!({"id": i, "v": format!("r,{i}\n")})
                }
            })
            .collect();
        let slow = Arc::new(AtomicU64::new(0));
        let broken = Arc::new(AtomicU64::new(0));
        let (held, failing) = (Arc::clone(&slow), Arc::clone(&broken));
        let serve = paged(records);
        let server = Server::start(move |req| {
            let page = page_number(req) as u64;
            if page == failing.load(Ordering::SeqCst) {
                return Reply::status(403).body("forbidden");
            }
            let reply = serve(req);
            if page == held.load(Ordering::SeqCst) {
                reply.delay(Duration::from_secs(20))
            } else {
                reply
            }
        })
        .unwrap();
        SlowApi {
            server,
            slow,
            broken,
        }
    }

    fn url(&self) -> String {
        self.server.url("/v1/items?status=open")
    }

    fn spawn(&self, out: &Path, stderr: Stdio, extra: &[&str]) -> Child {
        apifetch_std()
            .arg(self.url())
            .args(extra)
            .args(["--page-size", "3", "--out"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    /// Runs the binary against this API to the end, writing `out`.
    fn run(&self, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
        apifetch()
            .arg(self.url())
            .args(["--page-size", "3"])
            .args(extra)
            .arg("--out")
            .arg(out)
            .assert()
    }

    /// What an uninterrupted run writes in `name`'s format.
    fn reference(&self, name: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        self.slow.store(0, Ordering::SeqCst);
        let mut child = self.spawn(&path, Stdio::null(), &[]);
        assert!(child.wait().unwrap().success());
        std::fs::read(path).unwrap()
    }

    /// Resumes the run writing `out`; returns the page its first request asked for (none
    /// when every page was in and only the output was left to write).
    fn resume(&self, out: &Path) -> Option<String> {
        self.slow.store(0, Ordering::SeqCst);
        let before = self.server.requests().len();
        self.run(out, &["--resume"])
            .success()
            .stderr(predicate::str::contains("resuming after page"));
        let requests = self.server.requests();
        let first = requests.get(before)?;
        Some(page_number(first).to_string())
    }
}

/// Waits until the checkpoint beside `out` has noted `pages` pages: pages are written and
/// checkpointed behind the requests, on a thread of their own.
fn wait_for_checkpoint(out: &Path, pages: u64) {
    let started = std::time::Instant::now();
    let saved = || checkpoint(out).ok()?["latest"]["pages"].as_u64();
    while saved() != Some(pages) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the checkpoint never saved {pages} pages (it has {:?})",
            saved()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The checkpoint beside `out`: what its first line holds as of the last sync, and under
/// "latest" the state its second line notes, if that note is whole.
fn checkpoint(out: &Path) -> std::io::Result<Value> {
    let text = std::fs::read_to_string(&leftovers(out)[1])?;
    let mut lines = text.lines();
    let mut checkpoint: Value = serde_json::from_str(lines.next().unwrap_or_default())?;
    let note = lines
        .next()
        .and_then(|line| serde_json::from_str::<Value>(line).ok());
    checkpoint["latest"] = match note {
        Some(note) => note["latest"].clone(),
        None => checkpoint["synced"].clone(),
    };
    Ok(checkpoint)
}

/// The partial file and checkpoint beside `out`.
fn leftovers(out: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with(".partial"), with(".checkpoint")]
}

/// `out` holds exactly `reference`, and no partial file or checkpoint is left beside it.
fn assert_finished(out: &Path, reference: &[u8], what: &str) {
    assert!(
        std::fs::read(out).unwrap() == reference,
        "{what}: the file differs from an uninterrupted run's"
    );
    for path in leftovers(out) {
        assert!(!path.exists(), "{what}: {path:?} is removed after success");
    }
}

#[test]
fn a_killed_run_resumes_into_the_same_file_an_uninterrupted_run_writes() {
    let api = SlowApi::start();
    for (name, kill_points) in [
        ("out.csv", &[1, 5, 8, 12][..]),
        ("out.json", &[2, 7]),
        ("out.jsonl", &[7, 12]),
        ("out.tsv", &[9]),
    ] {
        let reference = api.reference(name);
        for &page in kill_points {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join(name);
            std::fs::write(&out, "previous run\n").unwrap();
            api.slow.store(page, Ordering::SeqCst);
            let before = api.server.requests().len();
            // Saved after every page, so the resumed run must start at the held page.
            let mut child = api.spawn(&out, Stdio::null(), &["--checkpoint-every", "0"]);
            wait_for_requests(&api.server, before + page as usize);
            wait_for_checkpoint(&out, page - 1);
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            child.wait().unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n");
            for path in leftovers(&out) {
                assert!(path.exists(), "{name} killed at page {page}: {path:?} kept");
            }
            let first = api.resume(&out);
            assert_eq!(
                first,
                Some(page.to_string()),
                "{name}: no page fetched twice"
            );
            assert_finished(&out, &reference, &format!("{name} killed at page {page}"));
        }
    }
}

/// `out` decompresses to exactly `reference`, and no partial file or checkpoint is left.
fn assert_finished_compressed(out: &Path, reference: &[u8], what: &str) {
    let name = out.to_str().unwrap();
    let stored = std::fs::read(out).unwrap();
    assert!(
        decompressed(name, &stored) == reference,
        "{what}: the file differs from an uninterrupted run's"
    );
    assert_eq!(leftovers(out).map(|p| p.exists()), [false, false], "{what}");
}

#[test]
fn a_killed_compressed_run_resumes_from_its_plain_partial_file() {
    let api = SlowApi::start();
    // Killed after a column joined (page 7 has the first `late.k`), and before.
    for (name, page, partial_starts) in [
        ("out.csv.gz", 8, &b"id,v\n1,\"r,1\n\"\n"[..]),
        ("out.jsonl.zst", 5, br#"{"id":1,"v":"r,1\n"}"#),
    ] {
        let plain = api.reference(name.rsplit_once('.').unwrap().0);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(name);
        api.run(&out, &[]).success();
        let previous = std::fs::read(&out).unwrap();
        api.slow.store(page, Ordering::SeqCst);
        let before = api.server.requests().len();
        let mut child = api.spawn(&out, Stdio::null(), &["--checkpoint-every", "0"]);
        wait_for_requests(&api.server, before + page as usize);
        wait_for_checkpoint(&out, page - 1);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            std::fs::read(&out).unwrap() == previous,
            "{name}: untouched"
        );
        let partial = std::fs::read(&leftovers(&out)[0]).unwrap();
        assert!(
            partial.starts_with(partial_starts),
            "{name}: a plain partial file"
        );
        assert_eq!(api.resume(&out), Some(page.to_string()), "{name}");
        assert_finished_compressed(&out, &plain, name);
    }
}

#[test]
fn a_failed_compressed_run_leaves_the_previous_file_untouched() {
    let api = SlowApi::start();
    let plain = api.reference("out.tsv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tsv.gz");
    api.run(&out, &[]).success();
    let previous = std::fs::read(&out).unwrap();
    api.broken.store(3, Ordering::SeqCst);
    api.run(&out, &[])
        .code(3)
        .stderr(predicate::str::contains("6 records are kept in"))
        .stderr(predicate::str::contains("out.tsv.gz.partial"));
    api.broken.store(0, Ordering::SeqCst);
    assert!(
        std::fs::read(&out).unwrap() == previous,
        "the old file stays"
    );
    assert_eq!(api.resume(&out).as_deref(), Some("3"));
    assert_finished_compressed(&out, &plain, "resumed");
}

#[test]
fn a_run_killed_while_it_writes_still_resumes_exactly() {
    // No page is held back here: the kill lands wherever the run happens to be, often
    // in the middle of writing a page, or (saving once a second) long after the last save.
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    let mut resumed = 0;
    for (seen, every) in [(3, "0"), (6, "0"), (10, "0"), (6, "1")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        let before = api.server.requests().len();
        let mut child = api.spawn(&out, Stdio::null(), &["--checkpoint-every", every]);
        wait_for_requests(&api.server, before + seen);
        child.kill().unwrap();
        child.wait().unwrap();
        if leftovers(&out)[1].exists() {
            api.resume(&out);
            resumed += 1;
        } else {
            // The run finished before the kill arrived.
            assert!(out.exists());
        }
        assert_finished(&out, &reference, &format!("killed after {seen} requests"));
    }
    // Killed after 3 of 13 requests, a run cannot have finished: a test where every run
    // did would not be testing resuming at all.
    assert!(resumed > 0, "no killed run was left to resume");
}

#[test]
fn cursor_and_next_url_runs_resume_where_they_stopped_without_saving_the_key() {
    // Twelve records, three a page, by cursor or by a next link that echoes the API key,
    // as many APIs do; the page after record 6 is held back while `hold` is set.
    let hold = Arc::new(AtomicBool::new(true));
    let held = Arc::clone(&hold);
    let server = Server::start(move |req| {
        let start: usize = req
            .param("cursor")
            .or(req.param("after"))
            .map_or(0, |c| c.parse().unwrap());
        let end = (start + 3).min(12);
        let records: Vec<Value> = (start + 1..=end)
            .map(|i| json!({"id": i, "tag": format!("t{i}")}))
            .collect();
        let more = end < 12;
        let body = match req.path.as_str() {
            "/cursor" => json!({"results": records, "next_cursor": more.then(|| end.to_string())}),
            _ => json!({"data": records, "links": {
                "next": more.then(|| format!("/next?api_key=SECRET123&after={end}"))
            }}),
        };
        let reply = Reply::json(&body);
        if start == 6 && held.load(Ordering::SeqCst) {
            reply.delay(Duration::from_secs(20))
        } else {
            reply
        }
    })
    .unwrap();
    let lines: Vec<String> = (1..=12)
        .map(|i| format!("{{\"id\":{i},\"tag\":\"t{i}\"}}\n"))
        .collect();
    for (path, param) in [("/cursor", "cursor"), ("/next", "after")] {
        let url = server.url(&format!("{path}?api_key=SECRET123"));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        hold.store(true, Ordering::SeqCst);
        let before = server.requests().len();
        let mut child = apifetch_std()
            .arg(&url)
            .args(["--checkpoint-every", "0", "--out"])
            .arg(&out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_requests(&server, before + 3);
        wait_for_checkpoint(&out, 2);
        child.kill().unwrap();
        child.wait().unwrap();
        let checkpoint = std::fs::read_to_string(&leftovers(&out)[1]).unwrap();
        assert!(!checkpoint.contains("SECRET123"), "{checkpoint}");
        hold.store(false, Ordering::SeqCst);
        apifetch()
            .arg(&url)
            .args(["--resume", "--out"])
            .arg(&out)
            .assert()
            .success();
        let requests = &server.requests()[before..];
        assert_eq!(
            requests.len(),
            5,
            "{path}: pages 3 and 4 again, nothing else"
        );
        assert_eq!(
            (requests[3].param(param), requests[3].param("api_key")),
            (Some("6"), Some("SECRET123")),
            "{path}: continues where it stopped, with the key"
        );
        assert_finished(&out, lines.concat().as_bytes(), path);
    }
}

/// An API of two pages whose second holds a record with `escape` in a nested string.
fn surrogate_api(escape: &str) -> Server {
    let second = format!(
        r#"{{"data": [{{"id": 3, "meta": {{"name": "a{escape}b"}}}}], "page": 2, "has_more": false}}"#
    );
    Server::start(move |req| match page_number(req) {
        1 => Reply::json(&json!({"data": records(2), "page": 1, "has_more": true})),
        _ => Reply::status(200)
            .header("content-type", "application/json")
            .body(second.clone()),
    })
    .unwrap()
}

#[test]
fn half_a_surrogate_pair_is_refused_alike_in_every_format() {
    for (escape, half) in [
        (r"\ud800", r"\ud800"),
        (r"\ud800\u0041", r"\ud800"),
        (r"\udc00", r"\udc00"),
    ] {
        let server = surrogate_api(escape);
        let expected = format!(
            "apifetch: error: {}: page 2, record 1: field /meta/name holds `{half}`, half of a \
             UTF-16 surrogate pair, which is no character; no output format can hold it as text",
            server.url("/?page=2")
        );
        for format in ["csv", "tsv", "jsonl", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join(format!("out.{format}"));
            let before = server.requests().len();
            let run = apifetch()
                .arg(server.url("/"))
                .arg("--out")
                .arg(&out)
                .assert();
            let stderr = String::from_utf8(run.code(5).get_output().stderr.clone()).unwrap();
            let last = stderr.lines().last().unwrap();
            assert_eq!(
                last.split("; 2 records are kept in ").next(),
                Some(expected.as_str()),
                "{escape} in {format}"
            );
            assert_eq!(server.requests().len() - before, 2, "{escape} in {format}");
            assert!(!out.exists(), "{escape} in {format}: nothing written");
        }
    }
}

/// An endless cursor API of one-record pages, where cursor `cN` asks for page N. Page
/// `refused` is answered with a 403; page `back` sends the cursor of ten pages before it.
fn endless_cursor_api(refused: &Arc<AtomicU64>, back: &Arc<AtomicU64>) -> Server {
    let (refused, back) = (Arc::clone(refused), Arc::clone(back));
    Server::start(move |req| {
        let page: u64 = req
            .param("cursor")
            .map_or(1, |c| c.trim_start_matches('c').parse().unwrap());
        if page == refused.load(Ordering::SeqCst) {
            return Reply::status(403).body("forbidden");
        }
        let next = match page == back.load(Ordering::SeqCst) {
            true => page - 10,
            false => page + 1,
        };
        Reply::json(&json!({"data": [{"id": page}], "next_cursor": format!("c{next}")}))
    })
    .unwrap()
}

#[test]
fn a_long_cursor_runs_checkpoint_stays_the_same_small_size() {
    let (refused, back) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let server = endless_cursor_api(&refused, &back);
    let sizes = [100, 1000].map(|stop| {
        refused.store(stop, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        apifetch()
            .arg(server.url("/"))
            .arg("--out")
            .arg(&out)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(format!(
                "{} records are kept",
                stop - 1
            )));
        std::fs::metadata(&leftovers(&out)[1]).unwrap().len()
    });
    // Ten times the pages: a digit more in the page numbers and cursors it remembers.
    assert!(
        sizes[1] <= sizes[0] + 200 && sizes[1] < 8 << 10,
        "checkpoint sizes after 99 and 999 pages: {sizes:?}"
    );
}

#[test]
fn a_loop_back_to_a_recent_cursor_is_caught_after_a_resume() {
    let (refused, back) = (Arc::new(AtomicU64::new(200)), Arc::new(AtomicU64::new(0)));
    let server = endless_cursor_api(&refused, &back);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let run = || {
        let mut cmd = apifetch();
        cmd.arg(server.url("/")).arg("--out").arg(&out);
        cmd
    };
    run().assert().code(3);
    refused.store(0, Ordering::SeqCst);
    back.store(200, Ordering::SeqCst);
    let before = server.requests().len();
    run()
        .arg("--resume")
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "pagination loop: page 200 sent cursor `c190` again, which already fetched page 190",
        ));
    let resumed: Vec<Option<String>> = server.requests()[before..]
        .iter()
        .map(|req| req.param("cursor").map(str::to_string))
        .collect();
    assert_eq!(resumed, [Some("c200".to_string())], "caught at once");
    let lines = std::fs::read_to_string(&leftovers(&out)[0]).unwrap();
    assert_eq!(lines.lines().count(), 199, "nothing repeated was kept");
}

#[test]
fn an_output_that_failed_at_the_end_is_written_on_resume_without_fetching() {
    // While the last page is served, a directory appears where the output goes, so every
    // page is in but the final rename fails.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let blocker = out.clone();
    let serve = paged(records(30));
    let server = Server::start(move |req| {
        if req.param("page") == Some("3") {
            let _ = std::fs::create_dir(&blocker);
        }
        serve(req)
    })
    .unwrap();
    let run = |extra: &[&str]| {
        apifetch()
            .arg(server.url("/"))
            .args(["--page-size", "10", "--out"])
            .arg(&out)
            .args(extra)
            .assert()
    };
    run(&[])
        .code(6)
        .stderr(predicate::str::contains("30 records are kept in"));
    std::fs::remove_dir(&out).unwrap();
    let before = server.requests().len();
    run(&["--resume"]).success();
    assert_eq!(server.requests().len(), before, "every page was already in");
    assert_eq!(ids(&std::fs::read(&out).unwrap()), expected_ids(30));
    assert_eq!(leftovers(&out).map(|p| p.exists()), [false, false]);
}

#[test]
fn a_second_run_on_the_same_output_is_refused_while_the_first_goes_on() {
    let api = SlowApi::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    api.slow.store(3, Ordering::SeqCst);
    let before = api.server.requests().len();
    let mut first = api.spawn(&out, Stdio::null(), &["--checkpoint-every", "0"]);
    wait_for_requests(&api.server, before + 3);
    wait_for_checkpoint(&out, 2);
    let read = || leftovers(&out).map(|path| std::fs::read(path).unwrap());
    let saved = read();
    let requests = api.server.requests().len();
    for extra in [&[][..], &["--resume"]] {
        api.run(&out, extra)
            .code(6)
            .stderr(predicate::str::contains("another apifetch run is writing"));
    }
    assert_eq!(api.server.requests().len(), requests, "no request");
    assert!(read() == saved, "the first run's files are untouched");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_killed_run_redoes_only_the_page_in_flight() {
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let before = api.server.requests().len();
    // Killed with page 4 in flight, then (resumed) with page 9: 4 requests, then 6 more.
    // Syncing once an hour, a run syncs nothing but what a resume takes over (3 pages);
    // every page is noted all the same.
    for (page, requests, synced, extra) in [(4, 4, 0, &[][..]), (9, 10, 3, &["--resume"])] {
        api.slow.store(page, Ordering::SeqCst);
        let every = ["--checkpoint-every", "1h"];
        let mut child = api.spawn(&out, Stdio::null(), &[&every, extra].concat());
        wait_for_requests(&api.server, before + requests);
        wait_for_checkpoint(&out, page - 1);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let saved = checkpoint(&out).unwrap();
        assert_eq!(saved["synced"]["pages"], synced, "killed at page {page}");
    }
    assert_eq!(api.resume(&out).as_deref(), Some("9"));
    assert_finished(&out, &reference, "killed twice");
    let requests = &api.server.requests()[before..];
    assert_eq!(
        requests.len(),
        12 + 2,
        "12 pages, and each kill's page again"
    );
    let twice: Vec<String> = hits_per_page(requests)
        .into_iter()
        .filter(|(_, hits)| *hits > 1)
        .map(|(page, _)| page)
        .collect();
    assert_eq!(twice, ["4", "9"]);
}

/// What a power cut does to a partial file's bytes past the synced length it is given.
type PowerCut = fn(&mut Vec<u8>, usize);

#[test]
fn after_a_power_cut_a_resume_falls_back_to_the_pages_synced() {
    let api = SlowApi::start();
    let reference = api.reference("out.jsonl");
    // A cut page, and zeros where a page should be (file systems that grew the file but
    // never wrote its data).
    let damages: [(&str, PowerCut); 2] = [
        ("cut", |bytes, synced| bytes.truncate(synced + 5)),
        ("zeroed", |bytes, synced| bytes[synced..].fill(0)),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        // Refused at page 4, the run syncs the three pages it has.
        api.broken.store(4, Ordering::SeqCst);
        api.run(&out, &[]).code(3);
        api.broken.store(0, Ordering::SeqCst);
        api.slow.store(9, Ordering::SeqCst);
        let before = api.server.requests().len();
        let mut child = api.spawn(
            &out,
            Stdio::null(),
            &["--resume", "--checkpoint-every", "1h"],
        );
        wait_for_requests(&api.server, before + 6);
        wait_for_checkpoint(&out, 8);
        child.kill().unwrap();
        child.wait().unwrap();
        // The system goes down: the checkpoint noted page 8, the disk lost pages 4 to 8.
        let saved = checkpoint(&out).unwrap();
        assert_eq!(saved["synced"]["pages"], 3, "{what}");
        let synced = saved["synced"]["spool"]["len"].as_u64().unwrap() as usize;
        let mut bytes = std::fs::read(&leftovers(&out)[0]).unwrap();
        damage(&mut bytes, synced);
        std::fs::write(&leftovers(&out)[0], bytes).unwrap();
        api.slow.store(0, Ordering::SeqCst);
        let before = api.server.requests().len();
        api.run(&out, &["--resume"])
            .success()
            .stderr(predicate::str::contains(
                "lacks pages its checkpoint noted after page 3, the last one synced",
            ))
            .stderr(predicate::str::contains("resuming after page 3"));
        let pages: Vec<usize> = api.server.requests()[before..]
            .iter()
            .map(page_number)
            .collect();
        assert_eq!(pages, (4..=12).collect::<Vec<_>>(), "{what}");
        assert_finished(&out, &reference, what);
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_and_sigterm_keep_the_partial_output_and_exit_130() {
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        std::fs::write(&out, "previous run\n").unwrap();
        api.slow.store(4, Ordering::SeqCst);
        let before = api.server.requests().len();
        // Pages are saved once a second, but a signalled run saves all it finished.
        let child = api.spawn(&out, Stdio::piped(), &[]);
        wait_for_requests(&api.server, before + 4);
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let done = child.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(130), "{signal}");
        let stderr = String::from_utf8(done.stderr).unwrap();
        let last = stderr.lines().last().unwrap();
        assert!(
            last.starts_with("apifetch: error: interrupted; 9 records are kept in ")
                && last
                    .ends_with("out.csv.partial: run the same command with --resume to continue"),
            "{last}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n");
        for path in leftovers(&out) {
            assert!(path.exists(), "{path:?} kept");
        }
        assert_eq!(api.resume(&out).as_deref(), Some("4"));
        assert_finished(&out, &reference, &format!("{signal}"));
    }
}

/// 4,000 records of about 250 bytes over 40 pages, the last of which brings a column the
/// others lack: the final write rewrites every row, in over a hundred blocks.
fn late_column_api() -> Server {
    let mut records = records(4000);
    for record in &mut records {
        record["note"] = json!("n".repeat(200));
    }
    records[3999]["late"] = json!("at last");
    Server::start(paged(records)).unwrap()
}

/// Runs apifetch against `server` into `out` with its final write slowed, sends `signal`
/// once that write has begun, and returns its exit code and last line.
#[cfg(unix)]
fn signalled_while_it_writes(
    server: &Server,
    out: &Path,
    signal: nix::sys::signal::Signal,
) -> (Option<i32>, String) {
    // Slowed to a tenth of a second a block, the final write lasts over ten seconds.
    let mut child = apifetch_std()
        .arg(server.url("/"))
        .args([
            "--page-size",
            "100",
            "--test-final-write-pause",
            "100ms",
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let writing = (stderr.by_ref().map(Result::unwrap))
        .find(|line| line.contains("all 4000 records are in; writing"));
    assert!(writing.is_some(), "the final write never began");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let last = stderr.map(Result::unwrap).last().unwrap_or_default();
    (child.wait().unwrap().code(), last)
}

#[cfg(unix)]
#[test]
fn a_signal_during_the_final_write_stops_it_and_keeps_the_partial_output() {
    use nix::sys::signal::Signal;
    let server = late_column_api();
    let run = |out: &Path| {
        let mut cmd = apifetch();
        cmd.arg(server.url("/"))
            .args(["--page-size", "100", "--out"])
            .arg(out);
        cmd
    };
    for (signal, name) in [(Signal::SIGINT, "out.csv"), (Signal::SIGTERM, "out.json")] {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join(format!("reference.{name}"));
        run(&reference).assert().success();
        let out = dir.path().join(name);
        std::fs::write(&out, "previous run\n").unwrap();
        let (code, last) = signalled_while_it_writes(&server, &out, signal);
        let requests = server.requests().len();
        assert_eq!(code, Some(130), "{name}: {last}");
        assert!(
            last.starts_with("apifetch: error: interrupted; 4000 records are kept in ")
                && last.ends_with(".partial: run the same command with --resume to continue"),
            "{last}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n");
        let kept = [".checkpoint", ".partial"].map(|suffix| format!("{name}{suffix}"));
        assert_eq!(
            names(dir.path()),
            [
                &[name.to_string()],
                &kept[..],
                &[format!("reference.{name}")]
            ]
            .concat(),
            "no temporary file is left behind"
        );
        run(&out)
            .arg("--resume")
            .assert()
            .success()
            .stderr(predicate::str::contains("resuming after page 40"));
        assert_eq!(server.requests().len(), requests, "every page was in");
        assert_finished(&out, &std::fs::read(&reference).unwrap(), name);
    }
}

#[test]
fn resuming_a_run_begun_over_a_day_ago_warns_of_its_age() {
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let stopped = |age_hours: u64| {
        api.broken.store(3, Ordering::SeqCst);
        api.run(&out, &[]).code(3);
        api.broken.store(0, Ordering::SeqCst);
        let path = &leftovers(&out)[1];
        let mut checkpoint: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let started = checkpoint["started"].as_u64().expect("a start time");
        checkpoint["started"] = json!(started - age_hours * 3600 - 60);
        std::fs::write(path, checkpoint.to_string()).unwrap();
    };
    let resumed = predicate::str::contains("resuming after page 2");
    let aged = predicate::str::contains("WARN")
        .and(predicate::str::contains("began 49 hours ago"))
        .and(predicate::str::contains("without --resume"));

    stopped(23);
    api.run(&out, &["--resume"])
        .success()
        .stderr(resumed.clone())
        .stderr(predicate::str::contains("hours ago").not());
    assert_finished(&out, &reference, "resumed within a day");

    stopped(49);
    api.run(&out, &["--resume"])
        .success()
        .stderr(resumed)
        .stderr(aged);
    assert_finished(&out, &reference, "resumed after two days");
}

#[test]
fn resume_refuses_a_different_request_and_touches_nothing() {
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "previous run\n").unwrap();
    api.broken.store(3, Ordering::SeqCst);
    api.run(&out, &[])
        .code(3)
        .stderr(predicate::str::contains("6 records are kept in"))
        .stderr(predicate::str::contains("--resume to continue"));
    api.broken.store(0, Ordering::SeqCst);
    let [partial, checkpoint] = leftovers(&out);
    let saved = (
        std::fs::read(&partial).unwrap(),
        std::fs::read(&checkpoint).unwrap(),
    );
    let requests = api.server.requests().len();
    for (url, extra, changed) in [
        (api.server.url("/v1/other?status=open"), &[][..], "the URL"),
        (api.server.url("/v1/items?status=closed"), &[], "the URL"),
        (api.url(), &["--page-size", "4"], "the pagination options"),
        (api.url(), &["--param", "sort=id"], "the --param values"),
        (api.url(), &["--no-flatten"], "the output format or columns"),
        (
            api.url(),
            &["--columns", "id"],
            "the output format or columns",
        ),
        (api.url(), &["--csv-safe"], "the output format or columns"),
    ] {
        apifetch()
            .arg(&url)
            .args(["--page-size", "3"])
            .args(extra)
            .args(["--resume", "--out"])
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "belongs to a different request: {changed} changed"
            )))
            .stderr(predicate::str::contains("/v1/items?status=open"));
        assert_eq!(
            api.server.requests().len(),
            requests,
            "{url} {extra:?}: no request"
        );
        assert_eq!(
            (
                std::fs::read(&partial).unwrap(),
                std::fs::read(&checkpoint).unwrap()
            ),
            saved,
            "{url} {extra:?}: partial and checkpoint untouched"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n");
    }
    // What does not change the partial file may differ, such as the cap.
    api.run(&out, &["--max-pages", "50", "--resume"]).success();
    assert_eq!(api.server.requests()[requests].param("page"), Some("3"));
    assert_finished(&out, &reference, "resumed");
}

#[test]
fn a_new_run_discards_a_stale_partial_output() {
    let api = SlowApi::start();
    let reference = api.reference("out.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    api.broken.store(5, Ordering::SeqCst);
    api.run(&out, &[]).code(3);
    api.broken.store(0, Ordering::SeqCst);
    let before = api.server.requests().len();
    api.run(&out, &[])
        .success()
        .stderr(predicate::str::contains("discarding the partial output"));
    let first = &api.server.requests()[before];
    assert_eq!(
        first.param("page"),
        None,
        "a new run starts at the URL as given"
    );
    assert_finished(&out, &reference, "a new run");
}

#[test]
fn resume_without_a_checkpoint_starts_from_the_beginning() {
    let api = SlowApi::start();
    let reference = api.reference("out.json");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    api.run(&out, &["--resume"])
        .success()
        .stderr(predicate::str::contains("no checkpoint at"));
    assert_finished(&out, &reference, "--resume without a checkpoint");
}

#[cfg(target_os = "linux")]
#[test]
fn a_partial_file_linked_to_a_device_is_an_output_error_that_keeps_the_old_output() {
    let server = Server::start(paged(records(30))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "previous run\n").unwrap();
    // A link planted where the partial file goes is refused, never followed.
    std::os::unix::fs::symlink("/dev/full", &leftovers(&out)[0]).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("out.csv.partial"))
        .stderr(predicate::str::contains("is a symbolic link"));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n");
}
