//! Hostile servers and careless operators: files apifetch never follows or clobbers,
//! secrets in every encoding, origins, and server text that must not drive the terminal.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::*;
use predicates::prelude::*;

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
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
    mkfifo(&fifo);
    // If the FIFO were replaced by a file, the reader would block forever: it reads on a
    // thread and hands the text back over a channel the test waits on with a time limit.
    let (sent, received) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || sent.send(std::fs::read_to_string(fifo).unwrap()));
    }
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
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
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
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "out.csv.partial is a symbolic link",
        ));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(!out.exists());
}

#[test]
fn a_partial_file_that_is_not_a_regular_file_of_ours_is_refused() {
    let server = Server::start(paged(records(3))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fifo.csv");
    mkfifo(&beside(&out, ".partial"));
    apifetch()
        .arg(server.url("/"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "fifo.csv.partial is not a regular file",
        ));
    // Only root can give a file away; elsewhere the FIFO case stands for both.
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        let out = dir.path().join("theirs.csv");
        let partial = beside(&out, ".partial");
        std::fs::write(&partial, "someone else's\n").unwrap();
        std::os::unix::fs::chown(&partial, Some(65534), Some(65534)).unwrap();
        apifetch()
            .arg(server.url("/"))
            .arg("--out")
            .arg(&out)
            .assert()
            .code(6)
            .stderr(predicate::str::contains(
                "theirs.csv.partial belongs to another user",
            ));
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
