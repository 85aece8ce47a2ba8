//! Running apifetch from cron, CI and a terminal: credentials, secrets in every output,
//! the response-size cap, proxies, logs, progress, the summary, completions and signals.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use apifetch::sim::ServerCert;
use predicates::prelude::*;
use serde_json::{Value, json};

/// A credential that appears nowhere else, so finding its text anywhere is a leak.
const TOKEN: &str = "tok-9f3Kq7ZxW2";

/// Every file under `dir`, read as text (checkpoints, partial files, summaries, output).
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            found.push((path.display().to_string(), text));
        }
    }
    found
}

/// Runs apifetch with `TOKEN` in every place a credential can be: URL userinfo, a query
/// parameter, a credential header and `--bearer`, plus `extra` arguments, at `-vv` with a
/// summary and an output file. Asserts the token text is nowhere in what it printed or
/// wrote, and returns the exit code, stderr and the names of the files it left.
fn run_with_token_everywhere(server: &Server, extra: &[&str]) -> (i32, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = server
        .url(&format!("/items?access_token={TOKEN}"))
        .replace("http://", &format!("http://reader:{TOKEN}@"));
    let out = apifetch()
        .current_dir(dir.path())
        .arg(&url)
        .args(["-vv", "--out", "out.csv", "--summary-json", "summary.json"])
        .args(["--param", &format!("api_key={TOKEN}")])
        .args(["-H", &format!("X-Api-Key: {TOKEN}")])
        .args(["--bearer", TOKEN])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains(TOKEN), "stdout leaks the token:\n{stdout}");
    assert!(!stderr.contains(TOKEN), "stderr leaks the token:\n{stderr}");
    let files = files_under(dir.path());
    assert!(files.iter().any(|(name, _)| name.ends_with("summary.json")));
    for (name, text) in &files {
        assert!(!text.contains(TOKEN), "{name} leaks the token:\n{text}");
    }
    // The token was really sent everywhere it was put.
    let first = &server.requests()[0];
    assert_eq!(first.param("api_key"), Some(TOKEN));
    assert_eq!(first.param("access_token"), Some(TOKEN));
    assert_eq!(first.header("x-api-key"), Some(TOKEN));
    let names = files.into_iter().map(|(name, _)| name).collect();
    (out.status.code().unwrap(), stderr, names)
}

/// An error body that quotes the request back, as some APIs do.
fn echoing(status: u16) -> Reply {
    Reply::status(status).body(format!("denied: bad key {TOKEN}"))
}

#[test]
fn the_token_leaks_nowhere_through_retries_and_success() {
    let server = Server::start(flaky(2, || echoing(503), records(30))).unwrap();
    let (code, stderr, _) = run_with_token_everywhere(&server, &["--page-size", "10"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("retrying in"), "{stderr}");
    assert!(stderr.contains("access_token=***"), "{stderr}");
}

#[test]
fn the_token_leaks_nowhere_through_a_permanent_failure() {
    // Page 1 arrives, so the failed run keeps a partial output and its checkpoint.
    let serve = paged(records(30));
    let server = Server::start(move |req| match req.param("page") {
        Some("2") => echoing(401),
        _ => serve(req),
    })
    .unwrap();
    let (code, stderr, files) =
        run_with_token_everywhere(&server, &["--page-size", "10", "--paginate", "page"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        files.iter().any(|f| f.ends_with("out.csv.checkpoint")),
        "{files:?}"
    );
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("bad key ***"), "{stderr}");
}

#[test]
fn the_token_leaks_nowhere_when_retries_run_out_in_json_logs() {
    let server = Server::start(|_| echoing(503)).unwrap();
    let (code, stderr, _) =
        run_with_token_everywhere(&server, &["--retries", "2", "--log-format", "json"]);
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn credentials_are_sent_as_asked() {
    let server = Server::start(paged(records(1))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--user", "ann:pa:ss", "-A", "nightly-sync/2"])
        .assert()
        .success();
    apifetch()
        .arg(server.url("/"))
        .env("APIFETCH_TOKEN", TOKEN)
        .assert()
        .success();
    let reqs = server.requests();
    // base64("ann:pa:ss")
    assert_eq!(reqs[0].header("authorization"), Some("Basic YW5uOnBhOnNz"));
    assert_eq!(reqs[0].header("user-agent"), Some("nightly-sync/2"));
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(reqs[1].header("authorization"), Some(bearer.as_str()));
    let default_agent = concat!("apifetch/", env!("CARGO_PKG_VERSION"));
    assert_eq!(reqs[1].header("user-agent"), Some(default_agent));
}

#[test]
fn bearer_and_basic_credentials_stay_on_the_origin_they_were_given_for() {
    let other =
        Server::start(|_| Reply::json(&json!({"data": [{"id": 2}], "next": null}))).unwrap();
    let next = other.url("/page2");
    let home =
        Server::start(move |_| Reply::json(&json!({"data": [{"id": 1}], "next": next}))).unwrap();
    for credentials in [["--bearer", TOKEN], ["--user", "ann:pw"]] {
        let out = apifetch()
            .arg(home.url("/"))
            .args(credentials)
            .assert()
            .success();
        assert_eq!(ids(&out.get_output().stdout), ["1", "2"]);
    }
    let sent: Vec<_> = home
        .requests()
        .iter()
        .map(|r| {
            r.header("authorization")
                .map(|a| a.split(' ').next().unwrap().to_string())
        })
        .collect();
    assert_eq!(sent, [Some("Bearer".into()), Some("Basic".into())]);
    let elsewhere = other.requests();
    assert_eq!(elsewhere.len(), 2);
    assert!(
        elsewhere
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn help_names_environment_variables_but_never_their_values() {
    apifetch()
        .arg("--help")
        .env("APIFETCH_TOKEN", TOKEN)
        .env("APIFETCH_PAGE_SIZE", "77")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  APIFETCH_TOKEN                 --bearer",
        ))
        .stdout(predicate::str::contains(
            "  APIFETCH_PAGE_SIZE             --page-size",
        ))
        .stdout(predicate::str::contains(TOKEN).not())
        .stdout(predicate::str::contains("77").not());
}

#[test]
fn environment_variables_set_options() {
    let server = Server::start(paged(records(5))).unwrap();
    let out = apifetch()
        .env("APIFETCH_URL", server.url("/items"))
        .env("APIFETCH_PAGE_SIZE", "2")
        .env("APIFETCH_QUIET", "true")
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(5));
    assert!(out.get_output().stderr.is_empty());
    assert_eq!(server.requests()[0].param("per_page"), Some("2"));
}

#[test]
fn malformed_credentials_are_usage_errors_that_do_not_echo_them() {
    for args in [
        vec!["--user", TOKEN],
        vec!["-H", "Authorization Bearer tok-9f3Kq7ZxW2"],
        vec!["--param", "=tok-9f3Kq7ZxW2"],
    ] {
        apifetch()
            .arg("http://127.0.0.1:9/")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(TOKEN).not());
    }
}

#[test]
fn an_endless_body_is_refused_at_the_size_limit() {
    let server = Server::start(|_| Reply::endless(vec![b' '; 64 * 1024])).unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--max-response-size", "1M"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "larger than --max-response-size (1048576 bytes)",
        ));
    assert_eq!(server.requests().len(), 1, "a refused body is not retried");
}

#[test]
fn a_declared_length_over_the_limit_is_refused_and_one_under_it_is_read() {
    let body = json!({"data": records(100), "has_more": false});
    let size = body.to_string().len();
    let server = Server::start(move |_| Reply::json(&body)).unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--max-response-size", &(size - 1).to_string()])
        .assert()
        .code(5);
    let out = apifetch()
        .arg(server.url("/"))
        .args(["--max-response-size", &size.to_string()])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(100));
}

#[test]
fn an_endless_error_page_still_fails_with_its_status() {
    let server = Server::start(|_| Reply::endless("not found ").with_status(404)).unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "HTTP 404 (not retried): not found not found",
        ));
}

#[test]
fn loopback_never_goes_through_the_proxy() {
    let proxy = Server::start(|_| Reply::status(502)).unwrap();
    let api = Server::start(paged(records(3))).unwrap();
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        let out = apifetch()
            .arg(api.url("/"))
            .env(var, proxy.url(""))
            .assert()
            .success();
        assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    }
    assert_eq!(proxy.requests().len(), 0);
    assert_eq!(api.requests().len(), 3);
}

#[test]
fn other_hosts_go_through_the_proxy() {
    // The proxy answers for a host that does not exist, so only a proxied request succeeds.
    let proxy = Server::start(paged(records(3))).unwrap();
    let out = apifetch()
        .arg("http://api.invalid/items")
        .env("HTTP_PROXY", proxy.url(""))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("host"), Some("api.invalid"));
}

#[test]
fn a_cacert_without_certificates_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for cacert in [junk, dir.path().join("missing.pem")] {
        apifetch()
            .arg("http://127.0.0.1:9/")
            .arg("--cacert")
            .arg(cacert)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--cacert"));
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_stable_fields() {
    let server = Server::start(flaky(1, || Reply::status(503), records(4))).unwrap();
    let out = apifetch()
        .arg(server.url("/items?secret=s3cr3t-value"))
        .args(["--page-size", "2", "--log-format", "json", "-v"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &lines {
        assert!(
            line["level"].is_string() && line["msg"].is_string(),
            "{line}"
        );
        assert!(line["time"].is_string(), "{line}");
    }
    let pages: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["page"].is_u64())
        .map(|l| (l["page"].as_u64().unwrap(), l["records"].as_u64().unwrap()))
        .collect();
    assert_eq!(pages, [(1, 2), (2, 4)]);
    let retry = lines.iter().find(|l| l["level"] == "warn").unwrap();
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["status"], 503);
    assert!(retry["wait_ms"].is_u64(), "{retry}");
    let url = retry["url"].as_str().unwrap();
    assert!(url.ends_with("secret=***&per_page=2"), "{url}");
    assert!(!stderr.contains("s3cr3t-value"));
}

#[test]
fn failures_are_json_lines_too() {
    let server = Server::start(|_| Reply::status(404)).unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .args(["--log-format", "json", "-q"])
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    let line: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["exit_code"], 3);
    assert!(line["msg"].as_str().unwrap().contains("HTTP 404"), "{line}");
}

#[test]
fn text_logs_are_colored_only_when_asked() {
    let server = Server::start(paged(records(1))).unwrap();
    let stderr = |args: &[&str]| {
        let out = apifetch().arg(server.url("/")).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(stderr(&["--color", "always"]).contains("\x1b["));
    assert!(!stderr(&[]).contains("\x1b["), "not a terminal: no color");
    assert!(!stderr(&["--color", "never"]).contains("\x1b["));
}

#[test]
fn verbose_logs_show_requests_but_nothing_from_the_http_libraries() {
    let server = Server::start(paged(records(1))).unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .arg("-vv")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("GET http://127.0.0.1"), "{stderr}");
    for noise in ["connecting to", "pooling", "Connection", "reqwest", "hyper"] {
        assert!(!stderr.contains(noise), "{noise} in:\n{stderr}");
    }
}

fn summary_of(args: &[&str], url: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.json");
    let out = apifetch()
        .arg(url)
        .args(args)
        .arg("--summary-json")
        .arg(&path)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (out.status.code().unwrap(), summary)
}

#[test]
fn the_summary_counts_what_the_run_did() {
    let server = Server::start(flaky(
        1,
        || Reply::status(429).header("retry-after", "0"),
        records(25),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let (code, s) = summary_of(
        &["--page-size", "10", "--out", out.to_str().unwrap()],
        &server.url("/"),
    );
    assert_eq!(code, 0);
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["error"], Value::Null);
    assert_eq!(
        (s["records"].as_u64(), s["pages"].as_u64()),
        (Some(25), Some(3))
    );
    assert_eq!(s["requests"], 6);
    assert_eq!(s["retries"], json!({"429": 3}));
    assert_eq!(s["retries_total"], 3);
    assert_eq!(s["waits"]["count"], 3);
    assert!(s["bytes"].as_u64().unwrap() > 25 * 20, "{s}");
    assert!(s["elapsed_ms"].is_u64());
    assert_eq!(s["output"], out.to_str().unwrap());
}

#[test]
fn the_summary_counts_pacing_waits_but_not_as_retries() {
    let server = Server::start(paged(records(3))).unwrap();
    let (code, s) = summary_of(&["--page-size", "1", "--delay", "0.2"], &server.url("/"));
    assert_eq!(code, 0);
    assert_eq!(
        (s["requests"].as_u64(), s["retries_total"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(s["retries"], json!({}));
    assert!(s["waits"]["count"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["waits"]["total_ms"].as_u64().unwrap() >= 200, "{s}");
}

#[test]
fn the_summary_is_written_when_the_run_fails() {
    let server = Server::start(|_| Reply::status(403)).unwrap();
    let (code, s) = summary_of(&[], &server.url("/"));
    assert_eq!((code, s["exit_code"].as_u64()), (3, Some(3)));
    assert!(s["error"].as_str().unwrap().contains("HTTP 403"), "{s}");
    assert_eq!(
        (s["requests"].as_u64(), s["records"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(s["output"], Value::Null);
    let (code, s) = summary_of(&["--user", "no-password"], "http://127.0.0.1:9/");
    assert_eq!((code, s["exit_code"].as_u64()), (2, Some(2)));
}

#[test]
fn completions_and_man_page_generate_for_every_shell() {
    for (what, header, flag) in [
        ("completions-bash", "complete -F", "--max-response-size"),
        (
            "completions-zsh",
            "#compdef apifetch",
            "--max-response-size",
        ),
        (
            "completions-fish",
            "complete -c apifetch",
            "max-response-size",
        ),
        ("man", ".TH apifetch", r"\-\-max\-response\-size"),
    ] {
        let out = apifetch().args(["--generate", what]).assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout);
        assert!(
            text.contains(header) && text.contains(flag),
            "{what}: {text}"
        );
    }
    let man = apifetch().args(["--generate", "man"]).assert().success();
    let man = String::from_utf8_lossy(&man.get_output().stdout).into_owned();
    assert!(
        man.contains(r"\fBAPIFETCH_TOKEN\fR environment variable"),
        "the man page names the variables: {man}"
    );
    apifetch()
        .arg("--help")
        .assert()
        .stdout(predicate::str::contains("--generate").not());
}

#[cfg(unix)]
#[test]
fn sigint_exits_130_and_still_writes_the_summary() {
    let server = Server::start(|_| Reply::json(&json!([])).delay(Duration::from_secs(30))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let child = apifetch_std()
        .arg(server.url("/"))
        .arg("--summary-json")
        .arg(&summary)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests().is_empty() {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["exit_code"], 130);
}

#[cfg(unix)]
/// Runs apifetch with stderr on a pseudo-terminal and returns what the terminal showed.
fn on_a_terminal(args: &[&str]) -> String {
    on_a_terminal_with(args, &[])
}

#[cfg(unix)]
fn on_a_terminal_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let mut child = apifetch_std()
        .args(args)
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Ends with EIO once the child, the last holder of the terminal, has exited.
        let _ = master.read_to_end(&mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    reader.join().unwrap()
}

/// An API serving 8 records, 2 per page, slowly enough for the display to draw; with
/// `total`, it also says how many records there are.
fn slow_api(total: bool) -> Server {
    let all = records(8);
    Server::start(move |req| {
        let (page, has_more) = page_of(&all, req);
        let mut body = json!({"data": page, "has_more": has_more});
        if total {
            body["total"] = json!(all.len());
        }
        Reply::json(&body).delay(Duration::from_millis(150))
    })
    .unwrap()
}

/// Whether `text` holds a time of day (`21:41:04`), as log timestamps do.
#[cfg(unix)]
fn has_clock_time(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit() && c != ':')
        .any(|t| t.len() >= 8 && t.matches(':').count() == 2)
}

#[cfg(unix)]
#[test]
fn progress_shows_on_a_terminal_only() {
    let server = slow_api(false);
    let url = server.url("/");
    let shown = on_a_terminal(&[&url, "--page-size", "2"]);
    assert!(shown.contains("records/s"), "{shown}");
    assert!(!shown.contains("ETA"), "no total, no bar:\n{shown}");
    assert!(
        !shown.contains("page 4: +2 records"),
        "no page lines under the display:\n{shown}"
    );
    assert!(shown.contains("synced 8 records"), "{shown}");
    assert!(
        !has_clock_time(&shown),
        "no timestamps on a terminal:\n{shown}"
    );
    let verbose = on_a_terminal(&[&url, "--page-size", "2", "-v"]);
    assert!(verbose.contains("page 4: +2 records"), "{verbose}");
    let quiet = on_a_terminal(&[&url, "--page-size", "2", "-q"]);
    assert!(!quiet.contains("records/s"), "{quiet}");
    let out = apifetch()
        .args([&url, "--page-size", "2"])
        .assert()
        .success();
    let piped = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(!piped.contains("records/s"), "{piped}");
    assert!(piped.contains("page 4: +2 records"), "{piped}");
    assert!(
        has_clock_time(&piped),
        "full timestamps in files and pipes:\n{piped}"
    );
}

#[cfg(unix)]
#[test]
fn progress_shows_a_bar_with_an_eta_once_the_total_is_known() {
    let server = slow_api(true);
    let shown = on_a_terminal(&[&server.url("/"), "--page-size", "2"]);
    assert!(shown.contains("ETA"), "{shown}");
    assert!(shown.contains("/8 records"), "{shown}");
}

/// A private CA (PEM), and an identity for 127.0.0.1 that it signed.
fn private_ca() -> (String, ServerCert) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "apifetch test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let identity = ServerCert {
        chain: vec![leaf.der().to_vec()],
        key: key.serialize_der(),
    };
    (ca.pem(), identity)
}

#[test]
fn tls_is_verified_unless_the_ca_is_given_or_insecure_is_asked() {
    let (ca_pem, identity) = private_ca();
    let server = Server::start_tls(identity, paged(records(3))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("certificate"))
        .stderr(predicate::str::contains(
            "UnknownIssuer; --cacert FILE trusts a private CA",
        ))
        .stderr(predicate::str::contains("not retried"))
        .stderr(predicate::str::contains("attempt").not());
    assert_eq!(
        server.requests().len(),
        0,
        "no request after a failed handshake"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .arg("--cacert")
        .arg(&ca)
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));

    let out = apifetch()
        .arg(server.url("/"))
        .arg("--insecure")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "TLS certificates are NOT verified",
        ));
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert_eq!(
        stderr.matches("NOT verified").count(),
        1,
        "warned once: {stderr}"
    );
}

#[test]
fn a_plain_url_goes_through_an_https_proxy_the_system_trusts() {
    let (ca_pem, identity) = private_ca();
    // The proxy answers for a host that does not exist, so only a proxied request succeeds.
    let proxy = Server::start_tls(identity, paged(records(3))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let out = apifetch()
        .arg("http://api.invalid/items")
        .env("HTTP_PROXY", proxy.url(""))
        .env("SSL_CERT_FILE", &ca)
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    assert_eq!(proxy.requests()[0].header("host"), Some("api.invalid"));
}

#[test]
fn an_upgrade_to_https_on_another_port_of_the_same_host_is_another_origin() {
    // Only port 80 to 443 is an upgrade of the same service (the rule is unit-tested in
    // http.rs); the test servers listen on other ports, so this one is another service.
    let (ca_pem, identity) = private_ca();
    let secure = Server::start_tls(identity, paged(records(2))).unwrap();
    let to = secure.url("/");
    let plain = Server::start(move |_| Reply::status(301).header("location", to.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    apifetch()
        .arg(plain.url("/"))
        .args(["--bearer", TOKEN, "--cacert"])
        .arg(&ca)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("redirected to another origin"));
    assert!(secure.requests().is_empty(), "the token stayed home");
}

#[cfg(unix)]
#[test]
fn logs_are_colored_on_a_terminal_unless_no_color_is_set() {
    let server = Server::start(paged(records(1))).unwrap();
    let url = server.url("/");
    let colored = "INFO\x1b[0m";
    let shown = on_a_terminal(&[&url]);
    assert!(shown.contains(colored), "{shown:?}");
    let plain = on_a_terminal_with(&[&url], &[("NO_COLOR", "1")]);
    assert!(!plain.contains(colored), "{plain:?}");
    assert!(plain.contains("INFO"), "{plain:?}");
}

#[test]
fn a_bearer_token_a_header_cannot_carry_is_a_usage_error_before_any_request() {
    let server = Server::start(paged(records(1))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--bearer", "tok-with-crlf\r"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--bearer token"))
        .stderr(predicate::str::contains("tok-with-crlf").not());
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn boolean_environment_variables_accept_the_usual_spellings() {
    let server = Server::start(paged(records(2))).unwrap();
    for value in ["1", "yes", "true", "on"] {
        apifetch()
            .env("APIFETCH_QUIET", value)
            .arg(server.url("/"))
            .assert()
            .success()
            .stderr("");
    }
    apifetch()
        .env("APIFETCH_QUIET", "0")
        .arg(server.url("/"))
        .assert()
        .success()
        .stderr(predicate::str::contains("synced 2 records"));
    for quiet in ["0", "1"] {
        apifetch()
            .env("APIFETCH_QUIET", quiet)
            .arg(server.url("/"))
            .arg("-v")
            .assert()
            .success()
            .stderr(predicate::str::contains("DEBUG"));
    }
}

#[test]
fn very_verbose_shows_response_headers_with_cookies_masked() {
    let server = Server::start(|req| {
        paged(records(1))(req)
            .header("x-request-id", "r-42")
            .header("set-cookie", "session=c00kie-v4lue")
            .header("link", "</docs?access_token=l1nk-t0ken>; rel=\"help\"")
    })
    .unwrap();
    let run = |flag: &str| {
        let out = apifetch().arg(server.url("/")).arg(flag).assert().success();
        String::from_utf8_lossy(&out.get_output().stderr).into_owned()
    };
    let very = run("-vv");
    assert!(very.contains("x-request-id: r-42"), "{very}");
    assert!(very.contains("set-cookie: ***"), "{very}");
    assert!(!very.contains("c00kie-v4lue"), "{very}");
    assert!(very.contains("access_token=***"), "{very}");
    assert!(!very.contains("l1nk-t0ken"), "{very}");
    assert!(!run("-v").contains("x-request-id"));
}

#[test]
fn short_help_fits_a_screen_and_long_help_lists_the_environment_once() {
    let short = apifetch().arg("-h").env("COLUMNS", "80").assert().success();
    let short = String::from_utf8_lossy(&short.get_output().stdout).to_string();
    assert!(short.lines().count() <= 48, "{short}");
    assert!(short.contains("--demo") && short.contains("apifetch --demo --out demo.csv"));
    assert!(!short.contains("[env:"), "{short}");
    assert!(short.lines().all(|l| l.chars().count() <= 80), "{short}");
    let long = apifetch()
        .arg("--help")
        .env("COLUMNS", "100")
        .assert()
        .success();
    let long = String::from_utf8_lossy(&long.get_output().stdout).to_string();
    assert!(!long.contains("[env:"), "{long}");
    assert_eq!(
        long.matches("APIFETCH_TOKEN").count(),
        2,
        "the section and -H's advice"
    );
    assert!(
        long.contains("Environment (each stands for its option"),
        "{long}"
    );
    assert!(
        long.contains("  APIFETCH_TOKEN                 --bearer"),
        "{long}"
    );
    // With no arguments at all: the short help, which points at --demo.
    let none = assert_cmd::Command::new(env!("CARGO_BIN_EXE_apifetch"))
        .env_clear()
        .env("COLUMNS", "80")
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&none.get_output().stderr).contains("--demo"));
}

// Saved API profiles.

#[test]
fn a_profile_supplies_the_url_headers_and_flags_and_the_command_line_wins() {
    let server = Server::start(paged(records(5))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.shop]\nurl = \"{}\"\nheaders = [\"X-Trace: from-profile\"]\n\
             params = [\"status=open\"]\nbearer_env = \"SHOP_TOKEN\"\n\
             options = [\"--page-size\", \"2\"]\n",
            server.url("")
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        apifetch()
            .args(["--profile", "shop", "--config"])
            .arg(&config)
            .args(extra)
            .env("SHOP_TOKEN", "t0ken")
            .assert()
    };
    let out = run(&["/items"]).success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(5));
    let first = &server.requests()[0];
    assert_eq!(first.path, "/items");
    assert_eq!(first.param("status"), Some("open"));
    assert_eq!(first.param("per_page"), Some("2"));
    assert_eq!(first.header("x-trace"), Some("from-profile"));
    assert_eq!(first.header("authorization"), Some("Bearer t0ken"));
    let before = server.requests().len();
    run(&["/items", "--page-size", "3"]).success();
    assert_eq!(
        server.requests()[before].param("per_page"),
        Some("3"),
        "the flag wins"
    );
    apifetch()
        .args(["--profile", "shop", "--config"])
        .arg(&config)
        .arg("/items")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("$SHOP_TOKEN, which is not set"));
    apifetch()
        .args(["--profile", "nope", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has no such profile (it has: shop)",
        ));
}

#[cfg(unix)]
#[test]
fn a_profile_others_can_read_that_holds_a_secret_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(paged(records(1))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = format!(
        "[profiles.p]\nurl = \"{}\"\nheaders = [\"X-Api-Key: k3y\"]\n",
        server.url("/items")
    );
    std::fs::write(&config, text).unwrap();
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = apifetch()
            .args(["--profile", "p", "--config"])
            .arg(&config)
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert_eq!(
            stderr.contains("others can read it"),
            warned,
            "{mode:o}: {stderr}"
        );
        assert!(!stderr.contains("k3y"), "{stderr}");
    }
}

#[test]
fn a_probe_saves_a_profile_that_fetches_everything_without_its_secrets() {
    let server = Server::start(paged(records(5))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("apifetch").join("config.toml");
    let out = apifetch()
        .arg(server.url("/items?api_key=s3cr3t&q=x"))
        .args([
            "-H",
            "Authorization: Bearer s3cr3t",
            "-H",
            "Accept: application/json",
        ])
        .args([
            "--page-size",
            "2",
            "--probe",
            "--save-profile",
            "items",
            "--config",
        ])
        .arg(&config)
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&out.get_output().stdout);
    assert!(printed.contains("saved as profile items"), "{printed}");
    assert!(
        printed.contains("not saved   the URL's api_key, authorization"),
        "{printed}"
    );
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(!saved.contains("s3cr3t"), "{saved}");
    assert!(saved.contains("accept: application/json"), "{saved}");
    let before = server.requests().len();
    let run = apifetch()
        .args(["--profile", "items", "--config"])
        .arg(&config)
        .assert()
        .success();
    assert_eq!(ids(&run.get_output().stdout), expected_ids(5));
    let first = &server.requests()[before];
    assert_eq!(
        (first.param("q"), first.param("api_key")),
        (Some("x"), None)
    );
}

#[cfg(unix)]
#[test]
fn a_wait_counts_down_on_the_terminal() {
    let asked = std::sync::atomic::AtomicBool::new(false);
    let server = Server::start(move |req| {
        let page = page_number(req);
        if page == 2 && !asked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Reply::status(429).header("retry-after", "2");
        }
        let body = json!({"data": [{"id": page}], "page": page, "has_more": page < 2});
        Reply::json(&body)
    })
    .unwrap();
    let shown = on_a_terminal(&[&server.url("/")]);
    let lefts: std::collections::BTreeSet<&str> = shown
        .split("retrying in ")
        .skip(1)
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert!(lefts.len() >= 3, "the wait counts down: {lefts:?}\n{shown}");
    assert!(shown.contains("first page · 0 retries"), "{shown}");
}

/// The interface as users read it: a change to a flag shows up here as a visible diff.
#[test]
fn help_snapshots() {
    for (name, args) in [("short_help", &["-h"][..]), ("long_help", &["--help"])] {
        let out = apifetch()
            .args(args)
            .env("COLUMNS", "100")
            .assert()
            .success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        insta::assert_snapshot!(name, text);
    }
}
