//! Politeness end to end: pacing, rate-limit headers, the circuit breaker, the deadline,
//! and compressed responses.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::json;

/// How long each request came after the previous one was answered: a wait the client
/// starts on a reply, measured without the lag between its sending and the server noticing.
fn waits_after_replies(requests: &[Recorded]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|w| w[1].at - w[0].answered.expect("answered"))
        .collect()
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

fn assert_logged(out: &assert_cmd::assert::Assert, text: &str) {
    let log = stderr(out);
    assert!(log.contains(text), "expected `{text}` in:\n{log}");
}

/// Asserts the server saw exactly `n` requests, the last at least `span` after the first.
fn assert_requests_span(server: &Server, n: usize, span: Duration) {
    let reqs = server.requests();
    assert_eq!(reqs.len(), n);
    let seen = reqs[n - 1].at - reqs[0].at;
    assert!(seen >= span, "{n} requests within {seen:?}");
}

#[test]
fn a_rate_spaces_every_request_start_by_its_interval() {
    let server = Server::start(paged(records(40))).unwrap();
    let started = Instant::now();
    let out = apifetch()
        .args(["--rate", "20/s", "--page-size", "1"])
        .arg(server.url("/"))
        .assert()
        .success();
    let elapsed = started.elapsed();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(40));
    let interval = Duration::from_millis(50);
    assert!(elapsed >= interval * 39, "40 requests in {elapsed:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 40);
    // Starts are an interval apart, but an arrival can lag its start on a loaded machine,
    // making the next gap look short. What must hold for every window on the server's
    // clock: between the i-th and j-th arrivals fit at least j-i-1 whole intervals, i.e.
    // no window ever sees more than one request beyond the rate.
    let slack = Duration::from_millis(5);
    for i in 0..reqs.len() {
        for j in i + 2..reqs.len() {
            let span = reqs[j].at - reqs[i].at;
            let room = interval * (j - i - 1) as u32;
            assert!(
                span + slack >= room,
                "requests {i}..{j} arrived within {span:?}; the rate allows no less than {room:?}"
            );
        }
    }
}

#[test]
fn a_delay_pauses_between_consecutive_requests() {
    let server = Server::start(paged(records(3))).unwrap();
    apifetch()
        .args(["--delay", "0.3", "--page-size", "1"])
        .arg(server.url("/"))
        .assert()
        .success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for wait in waits_after_replies(&reqs) {
        assert!(wait >= Duration::from_millis(300), "{wait:?}");
    }
}

/// A page-numbered API with a quota of `quota` requests per window: each answer reports
/// what is left and a reset `reset` ahead, and a request that arrives while the quota is
/// used up gets a 429 (counted in `refused`).
struct Quota {
    window_start: Mutex<Option<(Instant, usize)>>,
    refused: AtomicUsize,
}

fn quota_api(
    records_in_all: usize,
    quota: usize,
    reset: Duration,
    headers: fn(remaining: usize, reset: Duration) -> Vec<(&'static str, String)>,
) -> (std::sync::Arc<Quota>, Server) {
    let state = std::sync::Arc::new(Quota {
        window_start: Mutex::new(None),
        refused: AtomicUsize::new(0),
    });
    let serve = paged_with_total(records(records_in_all));
    let shared = std::sync::Arc::clone(&state);
    let server = Server::start(move |req| {
        let mut window = shared.window_start.lock().unwrap();
        let (start, used) = match *window {
            Some((start, used)) if req.at < start + reset => (start, used),
            _ => (req.at, 0),
        };
        if used >= quota {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return Reply::status(429);
        }
        *window = Some((start, used + 1));
        let left = start + reset - req.at;
        let mut reply = serve(req);
        for (name, value) in headers(quota - used - 1, left) {
            reply = reply.header(name, value);
        }
        reply
    })
    .unwrap();
    (state, server)
}

/// GitHub-style quota headers: `X-RateLimit-Remaining` and a reset in seconds.
fn x_ratelimit(remaining: usize, reset: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", format!("{:.3}", reset.as_secs_f64())),
    ]
}

#[test]
fn a_used_up_quota_is_waited_out_instead_of_provoking_a_429() {
    let (quota, server) = quota_api(6, 2, Duration::from_secs(1), x_ratelimit);
    let out = apifetch()
        .args(["--page-size", "2", "--retries", "0"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(6));
    assert_eq!(quota.refused.load(Ordering::Relaxed), 0, "no 429 provoked");
    assert_requests_span(&server, 3, Duration::from_secs(1));
    assert_logged(
        &out,
        "rate limit used up (X-RateLimit-Remaining: 0): pausing requests",
    );
}

#[test]
fn a_spent_quota_waits_for_its_own_reset_not_an_earlier_pages() {
    // Pages 1 and 2 say 99 left until a reset in 60 s; page 3 says none left, reset in
    // 1 s. Waiting 60 s would pass --retry-max-wait and give up.
    let serve = paged(records(4));
    let server = Server::start(move |req| {
        let (remaining, reset) = match req.param("page") {
            Some("3") => ("0", "1"),
            _ => ("99", "60"),
        };
        serve(req)
            .header("x-ratelimit-remaining", remaining)
            .header("x-ratelimit-reset", reset)
    })
    .unwrap();
    let out = apifetch()
        .args(["--page-size", "1", "--retry-max-wait", "10"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(4));
    let waits = waits_after_replies(&server.requests());
    assert!(waits[2] >= Duration::from_millis(900), "{waits:?}");
    assert_logged(
        &out,
        "rate limit used up (X-RateLimit-Remaining: 0): pausing requests for 1.0s",
    );
}

#[test]
fn concurrent_requests_never_start_more_than_the_quota_left() {
    let (quota, server) = quota_api(9, 3, Duration::from_secs(1), x_ratelimit);
    let out = fetch_with_concurrency(&server, "3", &["--page-size", "1", "--retries", "0"]);
    assert_eq!(ids(&out), expected_ids(9));
    assert_eq!(quota.refused.load(Ordering::Relaxed), 0, "no 429 provoked");
}

#[test]
fn the_structured_ratelimit_field_is_obeyed_too() {
    let (quota, server) = quota_api(6, 1, Duration::from_secs(1), |remaining, reset| {
        vec![(
            "ratelimit",
            format!(
                r#""default";r={remaining};t={}"#,
                reset.as_secs_f64().ceil()
            ),
        )]
    });
    apifetch()
        .args(["--page-size", "3", "--retries", "0"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(quota.refused.load(Ordering::Relaxed), 0, "no 429 provoked");
    assert_requests_span(&server, 2, Duration::from_secs(1));
}

#[test]
fn a_github_epoch_reset_is_a_time_not_a_delay() {
    // Epoch resets have whole seconds: ask for 2 s after the first request (which may come
    // late on a loaded machine) and expect at least 1 s.
    let served = AtomicUsize::new(0);
    let serve = paged(records(2));
    let server = Server::start(move |req| {
        let reply = serve(req);
        if served.fetch_add(1, Ordering::Relaxed) == 0 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let reset = now.as_secs() + 2;
            reply
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", reset.to_string())
        } else {
            reply
        }
    })
    .unwrap();
    apifetch()
        .args(["--page-size", "1"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_requests_span(&server, 2, Duration::from_secs(1));
}

/// Answers the first `failures` requests with `reply`, every later one from an API of
/// `n` records.
fn fails_first(
    failures: usize,
    reply: Reply,
    n: usize,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let serve = paged(records(n));
    move |req| {
        if req.n < failures {
            reply.clone()
        } else {
            serve(req)
        }
    }
}

#[test]
fn a_github_secondary_rate_limit_403_with_retry_after_is_retried() {
    let server = Server::start(fails_first(
        1,
        Reply::json(&json!({"message": "You have exceeded a secondary rate limit."}))
            .with_status(403)
            .header("retry-after", "1"),
        3,
    ))
    .unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    assert_requests_span(&server, 2, Duration::from_secs(1));
    assert_logged(
        &out,
        "HTTP 403 (rate limited) (attempt 1 of 6); retrying in",
    );
}

#[test]
fn a_403_with_a_used_up_quota_waits_for_the_reset() {
    let server = Server::start(fails_first(
        1,
        Reply::status(403)
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "1"),
        3,
    ))
    .unwrap();
    apifetch().arg(server.url("/")).assert().success();
    assert_requests_span(&server, 2, Duration::from_secs(1));
}

#[test]
fn a_plain_403_is_still_permanent() {
    let server = Server::start(fails_first(
        1,
        Reply::status(403)
            .header("x-ratelimit-remaining", "4999")
            .body("forbidden"),
        3,
    ))
    .unwrap();
    apifetch().arg(server.url("/")).assert().code(3);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_breaker_opens_sends_nothing_during_the_cooldown_probes_once_and_closes() {
    // Six failures with --breaker 2: two open the circuit, four probes fail and reopen
    // it, then the fifth probe succeeds and the rest of the run flows.
    let server = Server::start(fails_first(6, Reply::status(503), 4)).unwrap();
    let out = apifetch()
        .args([
            "--breaker",
            "2",
            "--breaker-cooldown",
            "0.4",
            "--retries",
            "6",
        ])
        .args(["--page-size", "2"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(4));
    let reqs = server.requests();
    // Page 1: two failures open the circuit; probes 3..=6 each fail and reopen it;
    // probe 7 succeeds; page 2 follows at once.
    assert_eq!(hits_per_page(&reqs), [("1".into(), 7), ("2".into(), 1)]);
    let cooldown = Duration::from_millis(400);
    for (i, wait) in waits_after_replies(&reqs)
        .into_iter()
        .enumerate()
        .skip(1)
        .take(5)
    {
        assert!(
            wait >= cooldown,
            "request {} came {wait:?} after the circuit opened",
            i + 1
        );
    }
    let log = stderr(&out);
    for (line, times) in [
        ("circuit open for 400ms after 2 consecutive failures", 1),
        ("circuit half-open: sending one probe request", 5),
        ("circuit open again for 400ms: the probe failed", 4),
        ("circuit closed: the probe succeeded", 1),
    ] {
        assert_eq!(log.matches(line).count(), times, "{line}\n{log}");
    }
}

#[test]
fn waiting_for_the_breaker_does_not_use_up_retries() {
    // --retries 2 allows three attempts. Two failures open the circuit; the third attempt
    // is the probe and succeeds: the cool-down in between counts as no attempt at all.
    let server = Server::start(fails_first(2, Reply::status(500), 1)).unwrap();
    apifetch()
        .args([
            "--breaker",
            "2",
            "--breaker-cooldown",
            "0.2",
            "--retries",
            "2",
        ])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn breaker_zero_turns_it_off() {
    let server = Server::start(|_| Reply::status(503)).unwrap();
    let out = apifetch()
        .args([
            "--breaker",
            "0",
            "--breaker-cooldown",
            "60",
            "--retries",
            "7",
        ])
        .arg(server.url("/"))
        .assert()
        .code(4);
    assert_eq!(server.requests().len(), 8);
    assert!(!stderr(&out).contains("circuit"), "{}", stderr(&out));
}

#[test]
fn a_retry_after_past_the_deadline_gives_up_at_once_with_exit_4() {
    let server = Server::start(|_| Reply::status(503).header("retry-after", "5")).unwrap();
    let out = apifetch()
        .args(["--max-time", "2"])
        .arg(server.url("/"))
        .assert()
        .code(4);
    assert_eq!(server.requests().len(), 1);
    assert_logged(&out, "before retrying: that would pass --max-time 2.0s");
}

#[test]
fn a_rate_limit_reset_past_the_deadline_gives_up_with_exit_4() {
    let serve = paged(records(4));
    let server = Server::start(move |req| {
        serve(req)
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "30")
    })
    .unwrap();
    let out = apifetch()
        .args(["--max-time", "5", "--page-size", "2"])
        .arg(server.url("/"))
        .assert()
        .code(4);
    assert_eq!(server.requests().len(), 1);
    assert_logged(
        &out,
        "for the rate limit to reset (X-RateLimit-Remaining: 0): that would pass --max-time 5.0s",
    );
}

#[test]
fn a_request_still_running_at_the_deadline_ends_the_run_with_exit_4() {
    let serve = paged(records(1));
    let server = Server::start(move |req| serve(req).delay(Duration::from_secs(5))).unwrap();
    let out = apifetch()
        .args(["--max-time", "0.5"])
        .arg(server.url("/"))
        .assert()
        .code(4);
    assert_logged(&out, "--max-time 500ms reached before the request finished");
}

#[test]
fn gzip_responses_are_decoded() {
    let body = json!({"data": records(3), "has_more": false}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let server = Server::start(move |_| {
        Reply::status(200)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(compressed.clone())
    })
    .unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    let accepted = server.requests()[0]
        .header("accept-encoding")
        .unwrap_or_default()
        .to_string();
    for coding in ["gzip", "br", "zstd"] {
        assert!(accepted.contains(coding), "accept-encoding: {accepted}");
    }
}

#[test]
fn a_short_retry_max_wait_alone_is_no_conflict_with_the_default_cooldown() {
    let server = Server::start(paged(records(3))).unwrap();
    // Not `apifetch()`: it gives a --breaker-cooldown, and this is about its default.
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_apifetch"))
        .env_clear()
        .timeout(Duration::from_secs(60))
        .args(["--retry-max-wait", "5"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
}

#[test]
fn a_long_cooldown_alone_lengthens_the_default_retry_max_wait() {
    let server = Server::start(paged(records(3))).unwrap();
    let out = apifetch()
        .args(["--breaker-cooldown", "10m"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
}

#[test]
fn impossible_politeness_settings_are_usage_errors() {
    for args in [
        &["--rate", "0/s"][..],
        &["--rate", "5/day"],
        &["--max-time", "0"],
        &["--breaker-cooldown", "10m", "--retry-max-wait", "5m"],
    ] {
        apifetch()
            .args(args)
            .arg("http://127.0.0.1:9/")
            .assert()
            .code(2);
    }
}

/// The most requests the server was answering at any one moment.
fn most_in_flight(requests: &[Recorded]) -> usize {
    requests
        .iter()
        .map(|r| {
            requests
                .iter()
                .filter(|o| o.at <= r.at && r.at < o.answered.expect("answered"))
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn fetch_with_concurrency(server: &Server, n: &str, args: &[&str]) -> Vec<u8> {
    let out = apifetch()
        .args(["--concurrency", n])
        .args(args)
        .arg(server.url("/"))
        .assert()
        .success();
    out.get_output().stdout.clone()
}

#[test]
fn concurrency_fetches_known_pages_at_once_and_writes_them_in_order() {
    let slow = |records| {
        let serve = paged_with_total(records);
        move |req: &Recorded| serve(req).delay(Duration::from_millis(50))
    };
    let sequential = Server::start(slow(records(100))).unwrap();
    let one = fetch_with_concurrency(&sequential, "1", &["--page-size", "5"]);
    assert_eq!(most_in_flight(&sequential.requests()), 1);
    let parallel = Server::start(slow(records(100))).unwrap();
    let eight = fetch_with_concurrency(&parallel, "8", &["--page-size", "5"]);
    assert_eq!(ids(&eight), expected_ids(100));
    assert_eq!(one, eight, "the same output, byte for byte");
    let reqs = parallel.requests();
    let every_page_once: Vec<(String, usize)> = (1..=20).map(|p| (p.to_string(), 1)).collect();
    let mut hits = hits_per_page(&reqs);
    hits.sort_by_key(|(page, _)| page.parse::<u32>().unwrap());
    assert_eq!(hits, every_page_once);
    assert_eq!(reqs[0].param("page"), None, "the URL as given");
    assert!(
        reqs[1].at >= reqs[0].answered.unwrap(),
        "page 1 goes alone: it tells the total"
    );
    let most = most_in_flight(&reqs);
    assert!((2..=8).contains(&most), "{most} requests at once");
}

/// An offset API of 45 records, 10 per page, that counts them in `X-Total-Count`; the
/// page at offset `short_at` holds 2 records fewer (as when records vanish mid-run).
fn offset_api(short_at: usize) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let all = records(45);
    move |req| {
        let offset: usize = req
            .param("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let size = if offset == short_at { 8 } else { 10 };
        let end = (offset + size).min(all.len());
        Reply::json(&json!(all[offset.min(end)..end]))
            .header("x-total-count", all.len().to_string())
            .delay(Duration::from_millis(20))
    }
}

fn offsets_asked(server: &Server) -> Vec<u32> {
    let mut offsets: Vec<u32> = server
        .requests()
        .iter()
        .map(|r| r.param("offset").unwrap_or("0").parse().unwrap())
        .collect();
    offsets.sort();
    offsets
}

#[test]
fn concurrency_with_offsets_and_x_total_count_asks_for_each_offset_once() {
    let server = Server::start(offset_api(usize::MAX)).unwrap();
    let args = ["--paginate", "offset", "--page-size", "10"];
    let out = fetch_with_concurrency(&server, "4", &args);
    assert_eq!(ids(&out), expected_ids(45));
    assert_eq!(offsets_asked(&server), [0, 10, 20, 30, 40]);
}

#[test]
fn a_short_offset_page_drops_the_pages_fetched_ahead_and_keeps_records_exactly_once() {
    let server = Server::start(offset_api(10)).unwrap();
    let args = ["--paginate", "offset", "--page-size", "10"];
    let out = fetch_with_concurrency(&server, "4", &args);
    assert_eq!(ids(&out), expected_ids(45));
    let offsets = offsets_asked(&server);
    for offset in [0, 10, 18, 28, 38] {
        assert!(
            offsets.contains(&offset),
            "{offset} not asked for: {offsets:?}"
        );
    }
}

#[test]
fn concurrency_stays_sequential_for_cursors_and_says_so() {
    let all = records(9);
    let server = Server::start(move |req| {
        let at: usize = req
            .param("cursor")
            .and_then(|c| c.trim_start_matches('c').parse().ok())
            .unwrap_or(0);
        let end = (at + 3).min(all.len());
        let next = (end < all.len()).then(|| format!("c{end}"));
        Reply::json(&json!({"data": all[at..end], "next_cursor": next}))
            .delay(Duration::from_millis(20))
    })
    .unwrap();
    let out = apifetch()
        .args(["--concurrency", "8"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(9));
    assert_eq!(most_in_flight(&server.requests()), 1);
    assert_logged(
        &out,
        "--concurrency 8: fetching one page at a time: with cursor pagination each page's \
         position comes from the previous response",
    );
}

#[test]
fn concurrency_without_a_total_stays_sequential_and_says_why() {
    let server = Server::start(paged(records(6))).unwrap();
    let out = apifetch()
        .args(["--concurrency", "4", "--page-size", "2"])
        .arg(server.url("/"))
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(6));
    assert_eq!(server.requests().len(), 3);
    assert_logged(&out, "the API gives no total");
}

#[test]
fn pacing_holds_for_the_whole_run_not_per_worker() {
    let server = Server::start(paged_with_total(records(20))).unwrap();
    let started = Instant::now();
    let out = fetch_with_concurrency(&server, "8", &["--rate", "20/s", "--page-size", "1"]);
    let elapsed = started.elapsed();
    assert_eq!(ids(&out), expected_ids(20));
    assert!(
        elapsed >= Duration::from_millis(50) * 19,
        "20 paced requests in {elapsed:?}"
    );
}

#[test]
fn a_retry_after_holds_back_every_request_not_only_the_one_told() {
    let refused = std::sync::atomic::AtomicBool::new(false);
    let serve = paged_with_total(records(6));
    let server = Server::start(move |req| {
        if req.param("page") == Some("2") && !refused.swap(true, Ordering::Relaxed) {
            Reply::status(429).header("retry-after", "1")
        } else {
            serve(req)
        }
    })
    .unwrap();
    // Paced at 5/s, pages 3.. are still waiting for their slots when page 2 is refused.
    let out = fetch_with_concurrency(&server, "4", &["--rate", "5/s", "--page-size", "1"]);
    assert_eq!(ids(&out), expected_ids(6));
    let reqs = server.requests();
    let told = reqs.iter().find(|r| r.param("page") == Some("2")).unwrap();
    let told_at = told.answered.unwrap();
    let during: Vec<_> = reqs
        .iter()
        .filter(|r| r.at > told_at && r.at - told_at < Duration::from_secs(1))
        .map(|r| r.param("page"))
        .collect();
    assert!(during.is_empty(), "sent during the Retry-After: {during:?}");
}

#[test]
fn a_run_ended_by_the_deadline_keeps_its_pages_for_resume() {
    let serve = paged_with_total(records(6));
    let server = Server::start(move |req| {
        let reply = serve(req);
        if req.n == 0 {
            reply
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", "30")
        } else {
            reply
        }
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let run = |extra: &[&str]| {
        apifetch()
            .args(["--page-size", "2", "--max-time", "3", "--concurrency", "2"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .arg(server.url("/"))
            .assert()
    };
    run(&[]).code(4);
    assert!(!out.exists(), "no output from a run that gave up");
    assert!(dir.path().join("out.csv.partial").exists());
    run(&["--resume"]).success();
    assert_eq!(ids(&std::fs::read(&out).unwrap()), expected_ids(6));
    let mut hits = hits_per_page(&server.requests());
    hits.sort();
    assert_eq!(hits, [("1".into(), 1), ("2".into(), 1), ("3".into(), 1)]);
}

#[test]
fn with_concurrency_an_open_circuit_holds_every_request_and_one_probe_decides() {
    // Page 1 tells the total; pages 2-5 then go out together and all fail.
    let serve = paged_with_total(records(8));
    let server = Server::start(move |req| {
        if (1..=4).contains(&req.n) {
            Reply::status(503)
        } else {
            serve(req)
        }
    })
    .unwrap();
    let args = [
        "--page-size",
        "1",
        "--breaker",
        "2",
        "--breaker-cooldown",
        "0.4",
    ];
    let out = fetch_with_concurrency(&server, "4", &args);
    assert_eq!(ids(&out), expected_ids(8));
    let reqs = server.requests();
    let mut failed: Vec<Instant> = reqs[1..=4].iter().map(|r| r.answered.unwrap()).collect();
    failed.sort();
    // The second failure opened the circuit: nothing before its cool-down ends.
    let (probe, after) = (&reqs[5], &reqs[6]);
    assert!(
        probe.at - failed[1] >= Duration::from_millis(400),
        "probe {:?} after the circuit opened",
        probe.at - failed[1]
    );
    assert!(
        after.at >= probe.answered.unwrap(),
        "the rest waited for the probe's outcome"
    );
}

#[test]
fn concurrency_fetches_ahead_only_what_max_records_still_needs() {
    let server = Server::start(paged_with_total(records(100))).unwrap();
    let args = ["--page-size", "5", "--max-records", "12"];
    let out = fetch_with_concurrency(&server, "8", &args);
    assert_eq!(ids(&out), expected_ids(12));
    let mut hits = hits_per_page(&server.requests());
    hits.sort();
    assert_eq!(hits, [("1".into(), 1), ("2".into(), 1), ("3".into(), 1)]);
}
