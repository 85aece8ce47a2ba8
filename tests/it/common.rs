//! What every end-to-end test needs: the binary with a clean environment, and the
//! simulated API serving pages of records.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use apifetch::sim::{Recorded, Reply, Server};
use assert_cmd::Command;
use serde_json::{Value, json};

/// The binary, with no inherited environment (no proxies, no `APIFETCH_*`), fast retries
/// and circuit-breaker cool-downs, and a time limit so a hanging run fails the test
/// instead of the suite.
pub fn apifetch() -> Command {
    let mut cmd = Command::from_std(apifetch_std());
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// [`apifetch`] as a plain process, for tests that need its stdio or its pid (a terminal,
/// a signal). The caller bounds its run time.
pub fn apifetch_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_apifetch"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--backoff", "0.01", "--backoff-max", "0.05"])
        .args(["--breaker-cooldown", "0.05"]);
    cmd
}

/// Waits until `server` has received at least `n` requests.
pub fn wait_for_requests(server: &Server, n: usize) {
    let started = std::time::Instant::now();
    while server.requests().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server saw only {} of {n} requests",
            server.requests().len()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `n` records with ids 1..=n and a nested field, all keys present on every record.
pub fn records(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| json!({"id": i, "name": format!("item {i}"), "meta": {"even": i % 2 == 0}}))
        .collect()
}

/// The page number a request asks for: `page`, or 1 when it names none.
pub fn page_number(req: &Recorded) -> usize {
    req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1)
}

/// The requested page of `records`, as `(records, has_more)`, from `page`/`per_page`.
pub fn page_of<'a>(records: &'a [Value], req: &Recorded) -> (&'a [Value], bool) {
    let page = page_number(req);
    let per_page: usize = req
        .param("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100);
    let start = ((page.max(1) - 1) * per_page).min(records.len());
    let end = (start + per_page).min(records.len());
    (&records[start..end], end < records.len())
}

/// A well-behaved page-numbered API that echoes the page it served, as Flask-SQLAlchemy
/// and fastapi-pagination do: `{"data": [...], "page": n, "has_more": bool}`.
pub fn paged(records: Vec<Value>) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| {
        let (page, has_more) = page_of(&records, req);
        Reply::json(&json!({"data": page, "page": page_number(req), "has_more": has_more}))
    }
}

/// [`paged`], also saying how many records there are in all (`"total"`), so later pages'
/// positions are known in advance.
pub fn paged_with_total(
    records: Vec<Value>,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let total = records.len();
    move |req| {
        let (page, has_more) = page_of(&records, req);
        Reply::json(
            &json!({"data": page, "page": page_number(req), "has_more": has_more, "total": total}),
        )
    }
}

/// The CSV the binary printed, parsed into rows (header first).
pub fn csv_rows(output: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(output)
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// The ids in the first column of CSV output, header skipped.
pub fn ids(output: &[u8]) -> Vec<String> {
    csv_rows(output)
        .into_iter()
        .skip(1)
        .map(|row| row[0].clone())
        .collect()
}

pub fn expected_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

/// How many requests asked for each page number, in page order.
pub fn hits_per_page(requests: &[Recorded]) -> Vec<(String, usize)> {
    let mut hits: Vec<(String, usize)> = Vec::new();
    for req in requests {
        let page = page_number(req).to_string();
        match hits.iter_mut().find(|(p, _)| *p == page) {
            Some((_, n)) => *n += 1,
            None => hits.push((page, 1)),
        }
    }
    hits
}

/// Fails the first `failures` requests for each page with `reply`, then serves it.
pub fn flaky(
    failures: usize,
    reply: impl Fn() -> Reply + Send + Sync + 'static,
    records: Vec<serde_json::Value>,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let seen = Mutex::new(HashMap::<String, usize>::new());
    let serve = paged(records);
    move |req| {
        let page = page_number(req).to_string();
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(page).or_default();
        *n += 1;
        if *n <= failures { reply() } else { serve(req) }
    }
}

/// Makes a FIFO at `path` and reads it on another thread, handing the bytes back over the
/// channel returned: if the FIFO were replaced by a file, the reader would block forever,
/// and a test waiting on the channel with a time limit fails instead.
#[cfg(unix)]
pub fn fifo_reader(path: &std::path::Path) -> std::sync::mpsc::Receiver<Vec<u8>> {
    mkfifo(path);
    let (sent, received) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || sent.send(std::fs::read(path).unwrap()));
    received
}

/// Makes a FIFO at `path`.
#[cfg(unix)]
pub fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// `bytes` decompressed as the name's last extension says: `.gz` as gzip, `.zst` as
/// zstd, anything else as it is.
pub fn decompressed(name: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    match std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
    {
        Some("gz") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut plain)
                .expect("valid gzip");
            plain
        }
        Some("zst") => zstd::decode_all(bytes).expect("valid zstd"),
        _ => bytes.to_vec(),
    }
}

/// The names of the files in `dir`, sorted.
pub fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
