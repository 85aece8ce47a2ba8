//! Hostile servers and careless operators: files apifetch never follows or clobbers,
//! secrets in every encoding, origins, and server text that must not drive the terminal.
#![cfg(unix)] // FIFOs, symlinks, file owners and /dev/shm

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::common::*;
use predicates::prelude::*;
use serde_json::json;

/// Runs apifetch on `server` into `out`, expecting it to refuse the partial file with
/// `why`.
fn assert_partial_refused(server: &Server, out: &Path, why: &str) {
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(out)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(why));
}

/// `out` with `suffix` appended to its name: `out.csv.partial`.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[test]
fn a_summary_to_a_fifo_is_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("summary.json");
    let received = fifo_reader(&fifo);
    let server = Server::start(paged(records(2))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--summary-json")
        .arg(&fifo)
        .assert()
        .success();
    let text = received
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the summary went into the FIFO");
    let summary: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(summary["exit_code"], 0);
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO is still a FIFO");
}

#[test]
fn a_summary_through_a_symlink_replaces_its_target_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("summary.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let server = Server::start(paged(records(2))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--summary-json")
        .arg(&link)
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(summary["exit_code"], 0);
}

#[test]
fn a_summary_naming_the_output_or_a_file_beside_it_is_a_usage_error() {
    let server = Server::start(paged(records(2))).unwrap();
    for suffix in ["", ".partial", ".checkpoint"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        std::fs::write(&out, "previous run\n").unwrap();
        // Named another way (`./`), it is still the same file.
        let summary = format!("./{}", beside(Path::new("out.csv"), suffix).display());
        apifetch()
            .current_dir(dir.path())
            .arg(server.url("/"))
            .args(["--out", "out.csv", "--summary-json", &summary])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--summary-json"));
        assert_eq!(std::fs::read(&out).unwrap(), b"previous run\n", "{suffix}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "{suffix}: nothing else written"
        );
    }
    assert!(server.requests().is_empty(), "no request was made");
}

#[test]
fn a_symlink_planted_at_the_partial_file_is_refused_and_not_followed() {
    let server = Server::start(paged(records(3))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let out = dir.path().join("out.csv");
    std::os::unix::fs::symlink(&victim, beside(&out, ".partial")).unwrap();
    assert_partial_refused(&server, &out, "out.csv.partial is a symbolic link");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(!out.exists());
}

#[test]
fn a_partial_file_that_is_not_a_regular_file_of_ours_is_refused() {
    let server = Server::start(paged(records(3))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fifo.csv");
    mkfifo(&beside(&out, ".partial"));
    assert_partial_refused(&server, &out, "fifo.csv.partial is not a regular file");
    // Only root can give a file away; elsewhere the FIFO case stands for both.
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        let out = dir.path().join("theirs.csv");
        let partial = beside(&out, ".partial");
        std::fs::write(&partial, "someone else's\n").unwrap();
        std::os::unix::fs::chown(&partial, Some(65534), Some(65534)).unwrap();
        assert_partial_refused(&server, &out, "theirs.csv.partial belongs to another user");
        assert_eq!(std::fs::read(&partial).unwrap(), b"someone else's\n");
    }
}

#[test]
fn a_symlinked_checkpoint_is_not_read() {
    let server = Server::start(paged(records(3))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "{}").unwrap();
    std::os::unix::fs::symlink(&elsewhere, beside(&out, ".checkpoint")).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&out)
        .arg("--resume")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "out.csv.checkpoint is a symbolic link",
        ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_regular_file_under_dev_is_replaced_like_any_other_file() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "previous run\n").unwrap();
    let server = Server::start(paged(records(2))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let written = std::fs::read(&out).unwrap();
    assert_eq!(ids(&written), expected_ids(2), "replaced, not appended to");
}

/// Every form `value` can be echoed in: raw, percent-encoded (component and form style)
/// and JSON-escaped.
fn encodings(value: &str) -> Vec<String> {
    let component: String = value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let form = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let json = serde_json::to_string(value).unwrap();
    vec![
        value.to_string(),
        component,
        form,
        json[1..json.len() - 1].to_string(),
    ]
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A server that answers 403, echoing `form` in a response header and its body, as an API
/// (or a proxy) quoting a request back does.
fn echoing(form: &str) -> Server {
    let echo = form.to_string();
    Server::start(move |_| {
        Reply::status(403)
            .header("x-echo", echo.clone())
            .body(format!("denied: {echo}"))
    })
    .unwrap()
}

/// Runs apifetch on `url` (with `HTTP_PROXY` set to `proxy`, if given) at `-vv` in both log
/// formats with a summary, against a server echoing `form`; asserts `form` appears nowhere
/// in stderr (log lines and the error line) or the summary.
fn assert_masked(form: &str, url: &str, proxy: Option<&str>, args: &[&str]) {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.json");
        let mut cmd = apifetch();
        if let Some(proxy) = proxy {
            cmd.env("HTTP_PROXY", proxy);
        }
        let out = cmd
            .arg(url)
            .args(["-vv", "--log-format", format, "--summary-json"])
            .arg(&summary)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{format}: {form}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("***"),
            "{format}: the echo was masked:\n{stderr}"
        );
        assert!(
            !stderr.contains(form),
            "{format}: stderr leaks `{form}`:\n{stderr}"
        );
        let summary = std::fs::read_to_string(&summary).unwrap();
        assert!(
            !summary.contains(form),
            "the summary leaks `{form}`:\n{summary}"
        );
    }
}

#[test]
fn credentials_are_masked_in_every_form_they_are_sent_in() {
    let password = r#"Pa"s\s w0rd+"#;
    let user = format!("ann:{password}");
    let mut forms = encodings(password);
    forms.push(base64(&user));
    forms.extend(encodings("c0o"));
    forms.extend(encodings("k3y/v+l ue"));
    forms.push("abc".to_string());
    let args = [
        "-u",
        &user,
        "-H",
        "X-Api-Key: abc",
        "-H",
        "Cookie: session=c0o",
        "--param",
        "api_key=k3y/v+l ue",
    ];
    for form in &forms {
        let server = echoing(form);
        assert_masked(form, &server.url("/items"), None, &args);
        // What the test echoes is what was sent.
        let sent = &server.requests()[0];
        let basic = format!("Basic {}", base64(&user));
        assert_eq!(sent.header("authorization"), Some(basic.as_str()));
        assert_eq!(sent.param("api_key"), Some("k3y/v+l ue"));
    }
}

#[test]
fn url_and_proxy_credentials_are_masked_in_every_form_they_are_sent_in() {
    let mut forms = encodings("u@pw");
    forms.extend(encodings("u%40pw"));
    forms.push(base64("uu:u@pw"));
    forms.extend(encodings("p@ss\""));
    forms.push(base64("pu:p@ss\""));
    forms.extend(encodings("t0k en"));
    for form in &forms {
        // The proxy is set for both runs, so its credentials are known to both; the
        // loopback API is reached directly, the host only the proxy knows through it.
        let proxy = echoing(form);
        let via = proxy.url("").replace("http://", "http://pu:p%40ss%22@");
        let server = echoing(form);
        let url = server.url("/items?token=t0k%20en");
        let url = url.replace("http://", "http://uu:u%40pw@");
        assert_masked(form, &url, Some(&via), &[]);
        let sent = &server.requests()[0];
        let basic = format!("Basic {}", base64("uu:u@pw"));
        assert_eq!(sent.header("authorization"), Some(basic.as_str()));
        let url = "http://uu:u%40pw@api.invalid/items?token=t0k%20en";
        assert_masked(form, url, Some(&via), &[]);
        let sent = &proxy.requests()[0];
        let basic = format!("Basic {}", base64("pu:p@ss\""));
        assert_eq!(sent.header("proxy-authorization"), Some(basic.as_str()));
    }
}

#[test]
fn loopback_spelled_another_way_never_goes_through_the_proxy() {
    let proxy = Server::start(|_| Reply::status(502)).unwrap();
    let server = Server::start(paged(records(2))).unwrap();
    let port = server.addr().port();
    for host in ["[::ffff:127.0.0.1]", "0.0.0.0"] {
        let out = apifetch()
            .arg(format!("http://{host}:{port}/"))
            .env("HTTP_PROXY", proxy.url(""))
            .assert()
            .success();
        assert_eq!(ids(&out.get_output().stdout), expected_ids(2), "{host}");
    }
    // Whether `localhost.` resolves depends on the machine's resolver; either way it is
    // looked up here, not handed to the proxy.
    apifetch()
        .arg(format!("http://localhost.:{port}/"))
        .env("HTTP_PROXY", proxy.url(""))
        .output()
        .unwrap();
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
}

#[test]
fn a_credential_only_in_the_url_stops_a_redirect_to_another_origin() {
    let other = Server::start(paged(records(2))).unwrap();
    let moved = other.url("/moved");
    let home =
        Server::start(move |_| Reply::status(302).header("location", moved.clone())).unwrap();
    for url in [
        home.url("/items?api_key=s3cret"),
        home.url("/items").replace("http://", "http://t0ken@"),
    ] {
        apifetch()
            .arg(&url)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("redirected to another origin"));
    }
    assert!(other.requests().is_empty(), "{:?}", other.requests());
}

/// Text a hostile server sends to drive a terminal: set the window title, clear the
/// screen, and forge a log line after a line break.
const CONTROL: &str =
    "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\n2026-01-01T00:00:00Z  INFO synced 999 records\u{9b}\u{7f}";

/// Asserts `stderr` holds none of [`CONTROL`]'s control characters and no forged line.
fn assert_inert(stderr: &str) {
    for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{7f}'] {
        assert!(!stderr.contains(c), "{c:?} reached stderr:\n{stderr:?}");
    }
    for line in stderr.lines() {
        assert!(!line.starts_with("2026-01-01"), "a forged line:\n{stderr}");
    }
}

#[test]
fn server_text_in_logs_and_the_error_line_cannot_drive_the_terminal() {
    let key = CONTROL.to_string();
    let server = Server::start(move |req| match req.path.as_str() {
        "/keys" => Reply::json(&serde_json::json!([{ "id": 1, key.as_str(): 1 }])),
        _ => Reply::status(404).body(CONTROL),
    })
    .unwrap();
    // A key the records have is named in a warning.
    let out = apifetch()
        .arg(server.url("/keys"))
        .args(["--columns", "id,nmae", "--color", "never"])
        .assert()
        .success()
        .stderr(predicate::str::contains("none of the first"));
    assert_inert(&String::from_utf8_lossy(&out.get_output().stderr));
    // An error body is quoted in the error line.
    let out = apifetch()
        .arg(server.url("/gone"))
        .args(["--color", "never"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("apifetch: error:"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_inert(&stderr);
    assert!(
        stderr.contains(r"\u{1b}]0;pwned"),
        "shown escaped: {stderr}"
    );
}

#[test]
fn headers_come_from_a_file_and_the_environment_and_stay_masked() {
    let server = Server::start(|_| Reply::json(&json!([{"id": 1}]))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers");
    std::fs::write(
        &file,
        "# the API's key\nX-Api-Key: f1le-s3cret\n\nX-Trace: t1\n",
    )
    .unwrap();
    let out = apifetch()
        .arg(server.url("/items"))
        .arg("-H")
        .arg(format!("@{}", file.display()))
        .args(["-H", "Accept: application/json", "-vv"])
        .env(
            "APIFETCH_HEADERS",
            "Authorization: Bearer env-s3cret\nX-Other: o",
        )
        .assert()
        .success();
    let sent = &server.requests()[0];
    assert_eq!(sent.header("x-api-key"), Some("f1le-s3cret"));
    assert_eq!(sent.header("x-trace"), Some("t1"));
    assert_eq!(sent.header("accept"), Some("application/json"));
    assert_eq!(sent.header("authorization"), Some("Bearer env-s3cret"));
    assert_eq!(sent.header("x-other"), Some("o"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        !stderr.contains("f1le-s3cret") && !stderr.contains("env-s3cret"),
        "{stderr}"
    );
    let help = apifetch().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout);
    assert!(!help.contains("env-s3cret"));
}
