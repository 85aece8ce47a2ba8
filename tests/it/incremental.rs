//! `--incremental`: runs against an API whose records change between runs, each fetching
//! only what changed since the last run that succeeded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::common::*;
use serde_json::{Value, json};

/// An API of records with `id` and `updated_at` (UTC, so that their text sorts as their
/// instants do), two to a page, that returns only records updated at or after
/// `updated_since` when it is sent: inclusive, as many APIs are, so the record at the
/// mark comes again.
#[derive(Clone, Default)]
struct Api(Arc<Mutex<Data>>);

#[derive(Default)]
struct Data {
    records: Vec<Value>,
    newest_first: bool,
    /// A page number answered with a 500.
    failing: Option<usize>,
    /// A page number answered only after a long while, for a test to kill the run at.
    held: Option<usize>,
    /// Say how many records there are in all (`"total"`), as many APIs do.
    total: bool,
}

impl Api {
    fn new(records: Vec<Value>) -> Self {
        let api = Api::default();
        api.0.lock().unwrap().records = records;
        api
    }

    fn start(&self) -> Server {
        let api = self.clone();
        Server::start(move |req| api.serve(req)).unwrap()
    }

    fn serve(&self, req: &Recorded) -> Reply {
        let data = self.0.lock().unwrap();
        if data.failing == Some(page_number(req)) {
            return Reply::status(500);
        }
        let since = req.param("updated_since");
        let mut records: Vec<Value> = (data.records.iter())
            .filter(|r| since.is_none_or(|s| r["updated_at"].as_str().unwrap() >= s))
            .cloned()
            .collect();
        records.sort_by_key(|r| r["updated_at"].as_str().unwrap().to_string());
        if data.newest_first {
            records.reverse();
        }
        let (page, more) = page_of(&records, req);
        let mut body = json!({"data": page, "page": page_number(req), "has_more": more});
        if data.total {
            body["total"] = records.len().into();
        }
        let reply = Reply::json(&body);
        match data.held == Some(page_number(req)) {
            true => reply.delay(std::time::Duration::from_secs(20)),
            false => reply,
        }
    }

    /// Sets record `id` (adding it if new) to have been updated on `day` of January.
    fn update(&self, id: u64, day: u32) {
        let record = order(id, day);
        let mut data = self.0.lock().unwrap();
        match data.records.iter_mut().find(|r| r["id"] == id) {
            Some(old) => *old = record,
            None => data.records.push(record),
        }
    }

    fn fail_page(&self, page: Option<usize>) {
        self.0.lock().unwrap().failing = page;
    }
}

fn order(id: u64, day: u32) -> Value {
    json!({"id": id, "name": format!("order {id}"), "updated_at": format!("2026-01-{day:02}T00:00:00Z")})
}

/// Orders 1 to `n`, order `i` updated on day `i`.
fn orders(n: u64) -> Vec<Value> {
    (1..=n).map(|i| order(i, i as u32)).collect()
}

/// The records of a JSON Lines file or output.
fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn read_lines(path: &Path) -> Vec<Value> {
    lines(&std::fs::read(path).unwrap())
}

/// The `updated_since` each request since the `from`th sent.
fn sent_since(server: &Server, from: usize) -> Vec<Option<String>> {
    (server.requests()[from..].iter())
        .map(|req| req.param("updated_since").map(str::to_string))
        .collect()
}

fn summary(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `apifetch URL --incremental /updated_at --page-size 2 --out OUT` plus `args`.
fn sync(server: &Server, out: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    apifetch()
        .arg(server.url("/orders"))
        .args(["--incremental", "/updated_at", "--page-size", "2", "--out"])
        .arg(out)
        .args(args)
        .assert()
}

/// [`sync`] killed outright (SIGKILL) once `page` has been asked for and is held.
fn sync_killed_at(api: &Api, server: &Server, out: &Path, page: usize, args: &[&str]) {
    api.0.lock().unwrap().held = Some(page);
    let before = server.requests().len();
    let mut child = apifetch_std()
        .arg(server.url("/orders"))
        .args(["--incremental", "/updated_at", "--page-size", "2", "--out"])
        .arg(out)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_requests(server, before + page);
    child.kill().unwrap();
    child.wait().unwrap();
    api.0.lock().unwrap().held = None;
}

fn state_of(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.state", out.display()))
}

const SINCE: [&str; 2] = ["--since-param", "updated_since"];

#[test]
fn a_first_run_fetches_everything_and_the_next_only_what_changed() {
    let api = Api::new(orders(5));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("orders.jsonl"), dir.path().join("s.json"));
    let report_args = ["--summary-json", report.to_str().unwrap()];
    sync(&server, &out, &[&SINCE[..], &report_args].concat()).success();
    assert_eq!(read_lines(&out), orders(5));
    assert_eq!(sent_since(&server, 0), [None, None, None]);
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(state["mark"], "2026-01-05T00:00:00Z");
    assert_eq!(state["field"], "/updated_at");

    api.update(2, 6);
    api.update(6, 7);
    let before = server.requests().len();
    sync(&server, &out, &[&SINCE[..], &report_args].concat()).success();
    assert_eq!(read_lines(&out), [order(2, 6), order(6, 7)]);
    // Orders 5 (at the mark, sent again by the inclusive API), 2 and 6: two pages.
    let mark = Some("2026-01-05T00:00:00Z".to_string());
    assert_eq!(sent_since(&server, before), [mark.clone(), mark]);
    let summary = summary(&report);
    assert_eq!(summary["records"], 2);
    assert_eq!(
        summary["incremental"],
        json!({
            "field": "/updated_at",
            "mark_before": "2026-01-05T00:00:00Z",
            "mark_after": "2026-01-07T00:00:00Z",
            "skipped": 1,
            "incomparable": 0
        })
    );
}

#[test]
fn a_failed_run_changes_nothing_and_the_next_catches_up_exactly() {
    let api = Api::new(orders(5));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [SINCE[0], SINCE[1], "--append", "--retries", "0"];
    sync(&server, &out, &args).success();
    let (output, state) = (
        std::fs::read(&out).unwrap(),
        std::fs::read(state_of(&out)).unwrap(),
    );

    for (id, day) in [(6, 6), (7, 7), (8, 8)] {
        api.update(id, day);
    }
    api.fail_page(Some(2));
    sync(&server, &out, &args).code(4);
    assert_eq!(std::fs::read(&out).unwrap(), output);
    assert_eq!(std::fs::read(state_of(&out)).unwrap(), state);

    api.fail_page(None);
    api.update(9, 9);
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), orders(9));
    let mark = Some("2026-01-05T00:00:00Z".to_string());
    assert_eq!(sent_since(&server, before), vec![mark; 3]);
}

#[test]
fn a_failed_run_resumed_ends_where_an_uninterrupted_one_would() {
    let api = Api::new(orders(5));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [SINCE[0], SINCE[1], "--append", "--resume", "--retries", "0"];
    sync(&server, &out, &args).success();
    for (id, day) in [(6, 6), (7, 7), (8, 8)] {
        api.update(id, day);
    }
    api.fail_page(Some(2));
    sync(&server, &out, &args).code(4);
    api.fail_page(None);
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), orders(8));
    assert_eq!(
        server.requests()[before..]
            .iter()
            .map(page_number)
            .collect::<Vec<_>>(),
        [2],
        "only the page that failed"
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(state["mark"], "2026-01-08T00:00:00Z");
}

#[test]
fn a_run_killed_before_its_first_page_resumes() {
    let api = Api::new(orders(3));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [SINCE[0], SINCE[1], "--resume"];
    sync_killed_at(&api, &server, &out, 1, &args);
    assert!(PathBuf::from(format!("{}.checkpoint", out.display())).exists());
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), orders(3));
    assert_eq!(server.requests().len() - before, 2);
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(state["mark"], "2026-01-03T00:00:00Z");
}

/// The totals an API states count every record it sends, including those an incremental
/// run drops: a resumed run must carry on counting them, not the records it wrote.
#[test]
fn a_resumed_run_is_held_to_the_apis_total_of_records_sent() {
    let api = Api::new(orders(4));
    api.0.lock().unwrap().total = true;
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = ["--resume", "--retries", "0"];
    sync(&server, &out, &args).success();
    for id in 5..=11 {
        api.update(id, id as u32);
    }
    // Pages 1 and 2 hold the four orders written already: skipped, not written.
    api.fail_page(Some(3));
    sync(&server, &out, &args).code(4);
    api.fail_page(None);
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), orders(11)[4..]);
    let pages: Vec<usize> = server.requests()[before..]
        .iter()
        .map(page_number)
        .collect();
    assert_eq!(pages, [3, 4, 5, 6]);
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(state["mark"], "2026-01-11T00:00:00Z");
}

/// A record written in the same second as the last one a run read has the mark's value:
/// it is new, and only the records the last run wrote at the mark are dropped, told apart
/// by `--key`, or without it by their text.
#[test]
fn a_new_record_at_the_mark_is_kept_and_only_those_written_are_dropped() {
    for key in [&["--key", "/id"][..], &[]] {
        let api = Api::new(orders(3));
        let server = api.start();
        let dir = tempfile::tempdir().unwrap();
        let (out, report) = (dir.path().join("orders.jsonl"), dir.path().join("s.json"));
        let report_args = ["--summary-json", report.to_str().unwrap()];
        let args = [&SINCE[..], key, &report_args].concat();
        sync(&server, &out, &args).success();
        let same_second = json!({"id": 4, "name": "order 4", "updated_at": "2026-01-03T00:00:00Z"});
        api.0.lock().unwrap().records.push(same_second.clone());
        let done = sync(&server, &out, &args).success();
        assert_eq!(read_lines(&out), [same_second], "{key:?}");
        assert_eq!(summary(&report)["incremental"]["skipped"], 1, "{key:?}");
        let stderr = String::from_utf8_lossy(&done.get_output().stderr).into_owned();
        let said = stderr.contains("told apart by their whole text");
        assert_eq!(said, key.is_empty(), "{key:?}: {stderr}");
        // Both are remembered at the mark now: a third run writes nothing again.
        sync(&server, &out, &args).success();
        assert_eq!(read_lines(&out), [] as [Value; 0], "{key:?}");
        assert_eq!(summary(&report)["incremental"]["skipped"], 2, "{key:?}");
    }
}

#[test]
fn a_run_that_stopped_before_saving_its_state_writes_nothing_twice() {
    let api = Api::new(orders(3));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    sync(&server, &out, &["--append"]).success();
    let state = std::fs::read(state_of(&out)).unwrap();
    api.update(4, 4);
    sync(&server, &out, &["--append"]).success();
    // As if that run had stopped between putting the output in place and saving the state.
    std::fs::write(state_of(&out), state).unwrap();
    api.update(5, 5);
    sync(&server, &out, &["--append"]).success();
    assert_eq!(read_lines(&out), orders(5));
}

#[test]
fn a_newest_first_api_is_paged_only_down_to_the_mark() {
    let api = Api::new(orders(10));
    api.0.lock().unwrap().newest_first = true;
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("orders.jsonl"), dir.path().join("s.json"));
    let args = ["--newest-first", "--summary-json", report.to_str().unwrap()];
    sync(&server, &out, &args).success();
    assert_eq!(server.requests().len(), 5);
    api.update(11, 11);
    api.update(3, 12);
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    // Page 1: orders 3 and 11, page 2: 10 (the mark) and 9; page 3 is never asked for.
    assert_eq!(server.requests().len() - before, 2);
    assert_eq!(read_lines(&out), [order(3, 12), order(11, 11)]);
    assert_eq!(summary(&report)["incremental"]["skipped"], 2);
}

#[test]
fn csv_is_appended_under_the_same_header_and_a_new_column_is_refused() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    sync(&server, &out, &["--append"]).success();
    api.0
        .lock()
        .unwrap()
        .records
        .push(json!({"updated_at": "2026-01-03T00:00:00Z", "id": 3}));
    sync(&server, &out, &["--append"]).success();
    let table = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        table,
        "id,name,updated_at\n\
         1,order 1,2026-01-01T00:00:00Z\n\
         2,order 2,2026-01-02T00:00:00Z\n\
         3,,2026-01-03T00:00:00Z\n"
    );
    let state = std::fs::read(state_of(&out)).unwrap();

    api.0
        .lock()
        .unwrap()
        .records
        .push(json!({"id": 4, "updated_at": "2026-01-04T00:00:00Z", "extra": true}));
    let refused = sync(&server, &out, &["--append"]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("a column `extra` that"), "{stderr}");
    let advice = format!(
        "to write a table with every record, move {0} aside and remove its state file \
         ({0}.state unless --state names another), then run again: it writes every record \
         the API holds now, so replacing the old file with it is safe only if the API still \
         holds every record; or sync JSON Lines (--format jsonl) into a new --out, where any \
         column fits",
        out.display()
    );
    assert!(stderr.contains(&advice), "{stderr}");
    assert!(!stderr.contains("--resume to continue"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), table);
    assert_eq!(std::fs::read(state_of(&out)).unwrap(), state);

    // Following the advice loses nothing.
    std::fs::remove_file(state_of(&out)).unwrap();
    sync(&server, &out, &[]).success();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,name,updated_at,extra\n\
         1,order 1,2026-01-01T00:00:00Z,\n\
         2,order 2,2026-01-02T00:00:00Z,\n\
         3,,2026-01-03T00:00:00Z,\n\
         4,,2026-01-04T00:00:00Z,true\n"
    );
    sync(&server, &out, &["--append"]).success();
    assert_eq!(read_csv_ids(&out), ["1", "2", "3", "4"]);
}

fn read_csv_ids(path: &Path) -> Vec<String> {
    ids(&std::fs::read(path).unwrap())
}

#[test]
fn timestamps_compare_as_instants_whatever_their_offset() {
    let second = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&second);
    let server = Server::start(move |_| {
        let records = match *flag.lock().unwrap() {
            false => json!([{"id": 1, "updated_at": "2026-01-01T10:00:00+02:00"}]),
            true => json!([
                {"id": 1, "updated_at": "2026-01-01T10:00:00+02:00"},
                {"id": 2, "updated_at": "2026-01-01T08:00:00Z"},
                {"id": 3, "updated_at": "2026-01-01T03:30:00-05:00"},
                {"id": 4, "updated_at": "2026-01-01T09:59:59.999+02:00"},
                {"id": 5},
            ]),
        };
        Reply::json(&json!({ "data": records }))
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, report) = (dir.path().join("o.state"), dir.path().join("s.json"));
    let run = || {
        apifetch()
            .arg(server.url("/orders"))
            .args([
                "--incremental",
                ".updated_at",
                "--format",
                "jsonl",
                "--state",
            ])
            .arg(&state)
            .args(["--since-param", "since", "--since-format", "rfc3339"])
            .args(["--summary-json", report.to_str().unwrap()])
            .assert()
            .success()
    };
    run();
    *second.lock().unwrap() = true;
    let out = run();
    let ids: Vec<Value> = lines(&out.get_output().stdout)
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    // Order 2 is another record at the mark's instant: new, so kept.
    assert_eq!(ids, [json!(2), json!(3), json!(5)]);
    assert_eq!(
        server.requests()[1].param("since"),
        Some("2026-01-01T08:00:00Z")
    );
    let incremental = &summary(&report)["incremental"];
    assert_eq!(
        (
            incremental["skipped"].clone(),
            incremental["incomparable"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(incremental["mark_after"], "2026-01-01T03:30:00-05:00");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("1 record without a comparable /updated_at"),
        "{stderr}"
    );
}

#[test]
fn lookback_reads_a_window_again_and_drops_the_records_already_written() {
    let at =
        |id: u64, time: &str| json!({"id": id, "updated_at": format!("2026-01-01T{time}:00Z")});
    let api = Api::new(vec![at(1, "07:00"), at(2, "07:55"), at(3, "08:00")]);
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [
        SINCE[0],
        SINCE[1],
        "--since-format",
        "rfc3339",
        "--lookback",
        "10m",
        "--key",
        "/id",
        "--append",
    ];
    sync(&server, &out, &args).success();
    // Written late with a time before the mark, and one changed after it.
    api.0
        .lock()
        .unwrap()
        .records
        .extend([at(9, "07:58"), at(4, "08:05")]);
    let before = server.requests().len();
    sync(&server, &out, &args).success();
    assert_eq!(
        server.requests()[before].param("updated_since"),
        Some("2026-01-01T07:50:00Z")
    );
    assert_eq!(
        read_lines(&out),
        [
            at(1, "07:00"),
            at(2, "07:55"),
            at(3, "08:00"),
            at(9, "07:58"),
            at(4, "08:05")
        ]
    );
}

/// A long run's checkpoint holds the lookback window as it stands, not every record the
/// run wrote: it stays a few KB however many pages came before.
#[test]
fn a_long_runs_checkpoint_keeps_only_the_window() {
    let at = |i: u64| {
        let time = format!("2026-01-01T{:02}:{:02}:00Z", i / 60, i % 60);
        json!({"id": i, "updated_at": time})
    };
    let api = Api::new((0..400).map(at).collect());
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [
        "--lookback",
        "10m",
        "--key",
        "/id",
        "--resume",
        "--retries",
        "0",
    ];
    api.fail_page(Some(190));
    sync(&server, &out, &args).code(4);
    let checkpoint = PathBuf::from(format!("{}.checkpoint", out.display()));
    let size = std::fs::metadata(&checkpoint).unwrap().len();
    assert!(size < 4096, "the checkpoint holds {size} bytes");
    api.fail_page(None);
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), (0..400).map(at).collect::<Vec<_>>());
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    let window: Vec<&Value> = state["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["key"])
        .collect();
    assert_eq!(
        window,
        (389..400)
            .map(Value::from)
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
}

/// The state file is replaced at the end of each run: naming the output, a file kept
/// beside it or the summary with it would replace that file's contents, exit 0.
#[test]
fn a_state_file_that_is_another_file_of_the_run_is_refused() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let refusals: [(Vec<String>, &str); 5] = [
        (vec!["--state".into(), path("o.jsonl")], "names --out"),
        (
            vec!["--state".into(), path("o.jsonl.partial")],
            "names the partial file beside --out",
        ),
        (
            vec!["--state".into(), path("./o.jsonl.checkpoint")],
            "names the checkpoint beside --out",
        ),
        (
            vec!["--summary-json".into(), path("o.jsonl.state")],
            "names the --incremental state file",
        ),
        (
            vec![
                "--state".into(),
                path("s"),
                "--summary-json".into(),
                path("s"),
            ],
            "names the --incremental state file",
        ),
    ];
    for (args, message) in refusals {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let refused = sync(&server, &out, &args).code(2);
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(server.requests().len(), 0, "no request was sent");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// The mark goes in the query string: a name that pagination, the URL or `--param` sends
/// already would replace that value or be sent twice, and a JSON Pointer is no query
/// parameter's name.
#[test]
fn a_since_param_that_collides_with_another_parameter_is_refused() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    sync(&server, &out, &SINCE).success();
    let before = server.requests().len();
    let refusals: [(&[&str], &str); 6] = [
        (
            &["--since-param", "/since", "-d", "{}"],
            "--since-param /since: the mark is sent in the query string",
        ),
        (
            &["--since-param", "page"],
            "pagination sends `page` already (--page-param)",
        ),
        (&["--since-param", "per_page"], "(--size-param)"),
        (
            &[
                "--since-param",
                "c",
                "--paginate",
                "cursor",
                "--cursor-path",
                "/n",
                "--cursor-param",
                "c",
            ],
            "(--cursor-param)",
        ),
        (
            &[SINCE[0], SINCE[1], "--param", "updated_since=2020"],
            "--param updated_since=… gives it already",
        ),
        (
            &["--since-param", "status"],
            "the URL's query has `status` already",
        ),
    ];
    for (args, message) in refusals {
        let refused = apifetch()
            .arg(server.url("/orders?status=open"))
            .args(["--incremental", "/updated_at", "--page-size", "2", "--out"])
            .arg(&out)
            .args(args)
            .arg("--dry-run")
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // A name of its own is sent once, beside the pagination's.
    let dry = apifetch()
        .arg(server.url("/orders"))
        .args(["--incremental", "/updated_at", "--page-size", "2", "--out"])
        .arg(&out)
        .args([SINCE[0], SINCE[1], "--dry-run"])
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    assert!(
        printed.contains("/orders?updated_since=2026-01-02T00%3A00%3A00Z&per_page=2'"),
        "{printed}"
    );
    assert_eq!(server.requests().len(), before, "no request was sent");
}

#[test]
fn flags_that_cannot_keep_a_mark_are_refused_before_any_request() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    sync(&server, &out, &[]).success();
    let refusals: [(&[&str], &str); 7] = [
        (
            &["--start-page", "2"],
            "--start-page cannot bound an --incremental run",
        ),
        (
            &["--format", "json", "--append"],
            "cannot add records to a JSON array",
        ),
        (
            &["--compress", "gzip", "--append"],
            "cannot add to a compressed output",
        ),
        (
            &["--max-records", "1"],
            "--max-records cannot bound an --incremental run",
        ),
        (&["--lookback", "1h"], "--lookback needs --key"),
        (
            &["--lookback", "10", "--key", "/id"],
            "a count goes back from a number",
        ),
        (
            &[
                "--since-param",
                "s",
                "--since-format",
                "epoch",
                "--incremental",
                "/id",
            ],
            "belongs to another job",
        ),
    ];
    let before = server.requests().len();
    for (args, message) in refusals {
        let refused = sync(&server, &out, args).code(2);
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let stdout = apifetch()
        .arg(server.url("/orders"))
        .args(["--incremental", "/id"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&stdout.get_output().stderr).into_owned();
    assert!(stderr.contains("needs --state FILE"), "{stderr}");
    assert_eq!(server.requests().len(), before, "no request was sent");
}

/// Order `id` updated on `day` of January, its keys in the order `keys` names them.
fn order_keyed(id: u64, day: u32, keys: [&str; 3]) -> Value {
    let order = order(id, day);
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), order[k].clone()))
            .collect(),
    )
}

#[test]
fn a_resumed_append_refuses_rows_that_no_longer_fit_the_header() {
    let night1 = ["id", "updated_at", "name"];
    let api = Api::new((1..=2).map(|i| order_keyed(i, i as u32, night1)).collect());
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    let args = [SINCE[0], SINCE[1], "--append", "--resume", "--retries", "0"];
    sync(&server, &out, &args).success();
    for id in 3..=5 {
        api.update(id, id as u32);
    }
    api.fail_page(Some(2));
    sync(&server, &out, &args).code(4);
    api.fail_page(None);

    // Someone reorders the output's columns, in place and to the same length: the
    // fingerprint of the output the state keeps tells.
    let reordered = "name,updated_at,id\n\
                     order 1,2026-01-01T00:00:00Z,1\n\
                     order 2,2026-01-02T00:00:00Z,2\n";
    assert_eq!(
        reordered.len() as u64,
        std::fs::metadata(&out).unwrap().len()
    );
    std::fs::write(&out, reordered).unwrap();
    let state = std::fs::read(state_of(&out)).unwrap();
    let before = server.requests().len();
    let refused = sync(&server, &out, &args).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("orders.csv changed since the last run (its first 81 bytes are not"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), before, "no request was sent");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), reordered);
    assert_eq!(std::fs::read(state_of(&out)).unwrap(), state);
}
#[test]
fn a_run_started_without_append_is_not_resumed_with_it() {
    let night1 = ["id", "updated_at", "name"];
    let api = Api::new((1..=2).map(|i| order_keyed(i, i as u32, night1)).collect());
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    let append = [SINCE[0], SINCE[1], "--append", "--retries", "0"];
    sync(&server, &out, &append).success();
    let (table, state) = (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read(state_of(&out)).unwrap(),
    );
    assert!(table.starts_with("id,updated_at,name\n"), "{table}");

    // The next night's records name their keys in another order, and the run, without
    // --append, is cut short after its first page: its partial file has their header.
    let night2 = ["name", "updated_at", "id"];
    for id in 3..=5 {
        api.0
            .lock()
            .unwrap()
            .records
            .push(order_keyed(id, id as u32, night2));
    }
    api.fail_page(Some(2));
    sync(&server, &out, &[SINCE[0], SINCE[1], "--retries", "0"]).code(4);
    api.fail_page(None);

    let before = server.requests().len();
    let resumed = sync(&server, &out, &[&append[..], &["--resume"]].concat()).code(2);
    let stderr = String::from_utf8_lossy(&resumed.get_output().stderr).into_owned();
    assert!(stderr.contains("the incremental options"), "{stderr}");
    assert_eq!(server.requests().len(), before, "no request was sent");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), table);
    assert_eq!(std::fs::read(state_of(&out)).unwrap(), state);

    sync(&server, &out, &append).success();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,updated_at,name\n\
         1,2026-01-01T00:00:00Z,order 1\n\
         2,2026-01-02T00:00:00Z,order 2\n\
         3,2026-01-03T00:00:00Z,order 3\n\
         4,2026-01-04T00:00:00Z,order 4\n\
         5,2026-01-05T00:00:00Z,order 5\n"
    );
}

#[cfg(unix)]
#[test]
fn nothing_new_leaves_an_appended_output_as_it_is() {
    use std::os::unix::fs::MetadataExt;
    let api = Api::new(orders(3));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    let args = [SINCE[0], SINCE[1], "--append"];
    sync(&server, &out, &args).success();
    let (table, meta) = (
        std::fs::read(&out).unwrap(),
        std::fs::metadata(&out).unwrap(),
    );

    let quiet = sync(&server, &out, &args).success();
    let stderr = String::from_utf8_lossy(&quiet.get_output().stderr).into_owned();
    assert!(
        stderr.contains("INFO no new records above the mark"),
        "{stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("is left as it was"), "{stderr}");
    let now = std::fs::metadata(&out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), table);
    assert_eq!(
        (now.ino(), now.mtime(), now.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(state["mark"], "2026-01-03T00:00:00Z");
    assert_eq!(names(dir.path()), ["orders.csv", "orders.csv.state"]);

    api.update(4, 4);
    sync(&server, &out, &args).success();
    assert_eq!(read_csv_ids(&out), ["1", "2", "3", "4"]);

    // Without --append the output holds this run's records: none.
    let empty = dir.path().join("empty.jsonl");
    sync(&server, &empty, &SINCE).success();
    let nothing = sync(&server, &empty, &SINCE).success();
    let stderr = String::from_utf8_lossy(&nothing.get_output().stderr).into_owned();
    assert!(
        stderr.contains("WARN no new records above the mark; writing an empty output"),
        "{stderr}"
    );
    assert!(!stderr.contains("the API returned no records"), "{stderr}");
    assert_eq!(std::fs::read(&empty).unwrap(), b"");
}

#[test]
fn with_append_a_record_without_the_field_is_refused_not_appended_every_night() {
    let server = Server::start(|req| {
        let records = json!([
            {"id": 1, "updated_at": "2026-01-01T00:00:00Z"},
            {"id": 2, "updated_at": null},
        ]);
        Reply::json(&json!({ "data": records, "page": page_number(req), "has_more": false }))
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let refused = sync(
        &server,
        &out,
        &["--append", "--key", "/id", "--lookback", "1h"],
    )
    .code(5);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    let why = "page 1, record 2 (--key 2): no comparable /updated_at (missing, null or of \
               another kind): --append would add it to the output again on every run; pick \
               an --incremental field every record has, or run without --append, each output \
               then holding such records again";
    assert!(stderr.contains(why), "{stderr}");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        names(dir.path()),
        Vec::<String>::new(),
        "no output, no state"
    );

    // Without --append such a record is kept, counted and warned about.
    sync(&server, &out, &[]).success();
    assert_eq!(read_lines(&out).len(), 2);
}

#[test]
fn csv_with_picked_columns_is_appended_under_them() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    let args = ["--append", "--columns", "updated_at,id"];
    sync(&server, &out, &args).success();
    // `name`, which --columns drops, is no new column.
    api.update(3, 3);
    sync(&server, &out, &args).success();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "updated_at,id\n\
         2026-01-01T00:00:00Z,1\n\
         2026-01-02T00:00:00Z,2\n\
         2026-01-03T00:00:00Z,3\n"
    );
    let refused = sync(&server, &out, &["--append", "--columns", "id,updated_at"]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("--columns is not the header of"),
        "{stderr}"
    );
}

/// Rewrites the state beside `out` as version 1 wrote it: no fingerprint, no flags, and
/// without `--lookback` no window (every record at the mark was taken as written).
fn as_version_1(out: &Path) {
    let mut state: Value = serde_json::from_slice(&std::fs::read(state_of(out)).unwrap()).unwrap();
    let fields = state.as_object_mut().unwrap();
    for name in ["output_tail", "key", "window_from", "window"] {
        fields.remove(name);
    }
    fields.insert("apifetch_state".into(), 1.into());
    std::fs::write(state_of(out), state.to_string()).unwrap();
}

#[test]
fn a_version_1_state_drops_the_records_at_its_mark_and_is_saved_as_version_2() {
    for key in [&["--key", "/id"][..], &[]] {
        let api = Api::new(orders(3));
        let server = api.start();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("orders.jsonl");
        let args = [&SINCE[..], &["--append"], key].concat();
        sync(&server, &out, &args).success();
        as_version_1(&out);
        // Order 3, at the mark, comes again: that state had written it.
        sync(&server, &out, &args).success();
        assert_eq!(read_lines(&out), orders(3), "{key:?}");
        let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
        assert_eq!(state["apifetch_state"], 2, "{key:?}");
        sync(&server, &out, &args).success();
        api.update(4, 4);
        sync(&server, &out, &args).success();
        assert_eq!(read_lines(&out), orders(4), "{key:?}");
    }
}

/// A record without its `--key`, or with a `null` one, is told apart by its text: never
/// appended again, and never taken for another record without a key.
#[test]
fn records_without_a_key_are_told_apart_by_their_text() {
    let at = "2026-01-02T00:00:00Z";
    let api = Api::new(vec![
        order(1, 1),
        json!({"name": "no id", "updated_at": at}),
        json!({"id": null, "name": "null id", "updated_at": at}),
    ]);
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [SINCE[0], SINCE[1], "--append", "--key", "/id"];
    sync(&server, &out, &args).success();
    let written = read_lines(&out);
    assert_eq!(written.len(), 3);
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), written, "neither is appended again");
    let another = json!({"id": null, "name": "another null id", "updated_at": at});
    api.0.lock().unwrap().records.push(another.clone());
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), [&written[..], &[another]].concat());
}

/// A record changed without its field moving on is written again, even under a key
/// remembered at that value: a possible duplicate is better than a lost update.
#[test]
fn an_update_that_keeps_the_fields_value_is_written() {
    let at = "2026-01-01T00:00:00Z";
    let api = Api::new(vec![json!({"id": 1, "updated_at": at, "status": "new"})]);
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = [SINCE[0], SINCE[1], "--append", "--key", "/id"];
    sync(&server, &out, &args).success();
    let paid = json!({"id": 1, "updated_at": at, "status": "paid"});
    api.0.lock().unwrap().records = vec![paid.clone()];
    sync(&server, &out, &args).success();
    sync(&server, &out, &args).success();
    let new = json!({"id": 1, "updated_at": at, "status": "new"});
    assert_eq!(read_lines(&out), [new, paid]);
}

/// The state's window tells records apart by the `--key` it was kept with, and covers
/// only its `--lookback`: another key, or a longer lookback, would write records again.
#[test]
fn a_different_key_or_a_longer_lookback_is_refused_before_any_request() {
    let api = Api::new(orders(3));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let keyed = ["--append", "--key", "/id", "--lookback", "1d"];
    sync(&server, &out, &keyed).success();
    let before = server.requests().len();
    let refused = sync(&server, &out, &["--append"]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("no --key: ") && stderr.contains("was kept with --key /id"),
        "{stderr}"
    );
    assert!(stderr.contains("run with --key /id, or"), "{stderr}");
    let longer = ["--append", "--key", "/id", "--lookback", "2d"];
    let refused = sync(&server, &out, &longer).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("--lookback: it reaches back past \"2026-01-02T00:00:00Z\""),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), before, "no request was sent");
    // A shorter one is covered by the window.
    sync(
        &server,
        &out,
        &["--append", "--key", "/id", "--lookback", "1h"],
    )
    .success();
    assert_eq!(read_lines(&out), orders(3));
}

/// An output edited or replaced since the last run is not cut to the length the state
/// recorded: that could end it mid-record.
#[test]
fn an_output_changed_since_the_last_run_is_not_appended_to() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    sync(&server, &out, &["--append"]).success();
    let mut edited = std::fs::read(&out).unwrap();
    edited[5] = b'9';
    edited.extend_from_slice(b"{\"id\":7}\n");
    std::fs::write(&out, &edited).unwrap();
    let before = server.requests().len();
    let refused = sync(&server, &out, &["--append"]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("orders.jsonl changed since the last run"),
        "{stderr}"
    );
    assert!(
        stderr.contains("move it aside and remove") && stderr.contains("safe only if the API"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), before);
    assert_eq!(std::fs::read(&out).unwrap(), edited);
}

/// A `--lookback` that cannot go back from the field's values is refused at the first
/// record, not after a first run that saved no window.
#[test]
fn a_lookback_of_the_wrong_kind_is_refused_in_the_first_run() {
    let api = Api::new(orders(2));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let refused = apifetch()
        .arg(server.url("/orders"))
        .args(["--incremental", "/id", "--key", "/id", "--lookback", "10m"])
        .args(["--append", "--out"])
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "--lookback: a duration goes back from a timestamp, and the mark is \
                         the number 1"
        ),
        "{stderr}"
    );
    assert_eq!(
        names(dir.path()),
        Vec::<String>::new(),
        "no output, no state"
    );
}

/// The state and the summary are written after the output is replaced: a directory that
/// cannot take them is found before the first request, not after the output changed.
#[test]
fn a_state_or_summary_that_cannot_be_written_stops_the_run_before_it_starts() {
    let api = Api::new(orders(3));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    sync(&server, &out, &[]).success();
    let (before, output) = (server.requests().len(), std::fs::read(&out).unwrap());
    let state = dir.path().join("orders.jsonl.state");
    let saved = std::fs::read(&state).unwrap();
    api.0.lock().unwrap().records = orders(5);
    let missing = dir.path().join("no-such-dir");
    for (flag, what) in [
        ("--state", "the state file"),
        ("--summary-json", "--summary-json"),
    ] {
        let file = missing.join("x.json");
        let refused = sync(&server, &out, &[flag, file.to_str().unwrap()]).code(6);
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains(&format!("cannot write {what}")), "{stderr}");
    }
    assert_eq!(server.requests().len(), before, "no request was sent");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        output,
        "the output is as it was"
    );
    assert_eq!(std::fs::read(&state).unwrap(), saved, "so is the state");
}

/// Records that all carry one value (a bulk import stamped in one second) are all
/// remembered at the mark. Their window is too large to build every page, so most pages'
/// states lack it and are never synced: a run that fails resumes from the last state that
/// has it, and still writes every record once.
#[test]
fn a_large_window_at_the_mark_survives_a_failure() {
    let tied = |n: u64| (1..=n).map(|i| order(i, 1)).collect::<Vec<_>>();
    let api = Api::new(tied(200));
    let server = api.start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.jsonl");
    let args = ["--key", "/id", "--resume", "--retries", "0"];
    api.fail_page(Some(60));
    sync(&server, &out, &args).code(4);
    api.fail_page(None);
    sync(&server, &out, &args).success();
    assert_eq!(read_lines(&out), tied(200));
    let state: Value = serde_json::from_slice(&std::fs::read(state_of(&out)).unwrap()).unwrap();
    assert_eq!(
        state["window"].as_array().map(Vec::len),
        Some(200),
        "{state}"
    );
    // The next night the API has 100 more, stamped the same second: only those are new.
    api.0.lock().unwrap().records = tied(300);
    let before = server.requests().len();
    sync(&server, &out, &["--key", "/id", "--append"]).success();
    assert_eq!(read_lines(&out), tied(300));
    assert_eq!(
        server.requests().len() - before,
        150,
        "every page asked once"
    );
}
