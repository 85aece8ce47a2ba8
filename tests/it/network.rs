//! What the network side does with hostile or absurd answers: redirects to other origins,
//! waits too long to compute, `Retry-After` on errors that are not retried, and retry
//! accounting with pages fetched ahead.

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;
use predicates::prelude::*;
use serde_json::json;

#[test]
fn an_absurd_retry_after_gives_up_at_once_however_many_digits_it_has() {
    for asked in [
        "10000000000000000000",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999999",
    ] {
        let server = Server::start(move |_| {
            Reply::json(&json!({"error": "later"}))
                .with_status(503)
                .header("retry-after", asked)
        })
        .unwrap();
        apifetch()
            .arg(server.url("/items"))
            .assert()
            .code(4)
            .stderr(predicate::str::contains(
                "server asked to wait 100 years (HTTP 503), longer than --retry-max-wait 5m0s",
            ));
        assert_eq!(server.requests().len(), 1, "Retry-After: {asked}");
    }
}

#[test]
fn numeric_flags_out_of_their_range_are_usage_errors() {
    let server = Server::start(paged(records(3))).unwrap();
    for (flag, value) in [
        ("--retries", "4294967295"),
        ("--retries", "101"),
        ("--breaker", "101"),
        ("--page-size", "1000001"),
        ("--start-page", "1000000001"),
        ("--max-pages", "1000000001"),
        ("--max-records", "1000000000001"),
        ("--max-response-size", "5G"),
        ("--timeout", "0"),
        ("--connect-timeout", "0"),
        ("--max-time", "0"),
    ] {
        apifetch()
            .arg(server.url("/items"))
            .args([flag, value])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
    }
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn numeric_flags_at_the_ends_of_their_range_are_accepted() {
    let server = Server::start(paged(records(3))).unwrap();
    let out = apifetch()
        .arg(server.url("/items"))
        .args([
            "--retries",
            "100",
            "--breaker",
            "100",
            "--page-size",
            "1000000",
        ])
        .args([
            "--max-pages",
            "1000000000",
            "--max-records",
            "1000000000000",
        ])
        .args(["--max-response-size", "4G"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
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
    // for their --rate slot when the run ends, which fails for the records missing.
    let all = records(10);
    let server = Server::start(move |req| {
        let (page, _) = page_of(&all, req);
        let number = page_number(req);
        Reply::json(&json!({"data": page, "page": number, "has_more": number == 1, "total": 10}))
    })
    .unwrap();
    let out = apifetch()
        .args(["--concurrency", "4", "--rate", "2/s", "--page-size", "1"])
        .arg(server.url("/items"))
        .assert()
        .code(5);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("the API announced 10 records (`/total` in the body), 2 arrived"),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
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
            Reply::json(
                &json!({"data": page, "page": page_number(req), "has_more": has_more, "total": 3}),
            )
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

/// The API on 127.0.0.1 redirects `/items` to `/moved` on 127.0.0.2, which serves two
/// records; the user's URL carries an API key parameter, and `args` are added.
fn redirected_elsewhere(args: &[&str]) -> (Server, Server, assert_cmd::assert::Assert) {
    redirected_from("/items?api_key=s3cret", args)
}

/// [`redirected_elsewhere`], from `path` on the API.
fn redirected_from(path: &str, args: &[&str]) -> (Server, Server, assert_cmd::assert::Assert) {
    let other = Server::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), |_| {
        Reply::json(&json!({"data": records(2), "has_more": false}))
    })
    .unwrap();
    let moved = other.url("/moved?token=t0k");
    let home =
        Server::start(move |_| Reply::status(302).header("location", moved.clone())).unwrap();
    let mut cmd = apifetch();
    cmd.arg(home.url(path)).args(args);
    let assert = cmd.assert();
    (home, other, assert)
}

#[test]
fn a_redirect_to_another_origin_is_a_permanent_failure_that_sends_it_nothing() {
    let (home, other, assert) = redirected_elsewhere(&["-H", "X-Api-Key: k3y"]);
    let assert = assert.code(3);
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(home.requests().len(), 1, "not retried");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr);
    let expected = format!(
        "HTTP 302 (not retried): redirected to another origin ({}), which is followed only \
         with --trust-next-origin",
        other.url("/moved?token=***")
    );
    assert!(stderr.contains(&expected), "{stderr}");
    for secret in ["s3cret", "k3y", "t0k"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

#[test]
fn statuses_300_304_and_305_are_not_followed_but_fail_at_once() {
    for status in [300, 304, 305] {
        let server = Server::start(move |req| match req.path.as_str() {
            "/items" => Reply::status(status).header("location", "/elsewhere"),
            _ => Reply::json(&json!({"data": records(2), "has_more": false})),
        })
        .unwrap();
        let out = apifetch().arg(server.url("/items")).assert().code(3);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert!(
            stderr.contains(&format!("HTTP {status} (not retried): "))
                && stderr.contains("not a redirect apifetch follows, and no records"),
            "{stderr}"
        );
        assert!(!stderr.contains("--resume"), "{stderr}");
        let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/items"], "HTTP {status}");
    }
}

#[test]
fn trust_next_origin_follows_a_redirect_to_another_origin() {
    let (_home, other, assert) = redirected_elsewhere(&[
        "-H",
        "X-Api-Key: k3y",
        "--bearer",
        "b34rer",
        "--trust-next-origin",
    ]);
    let assert = assert.success();
    assert_eq!(ids(&assert.get_output().stdout), expected_ids(2));
    let reqs = other.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/moved");
    assert_eq!(reqs[0].header("referer"), None);
    assert_eq!(
        reqs[0].header("x-api-key"),
        Some("k3y"),
        "trusted: headers go along"
    );
    assert_eq!(reqs[0].header("authorization"), Some("Bearer b34rer"));
}

#[test]
fn a_redirect_to_another_origin_stops_when_only_the_url_carries_a_credential() {
    let (_home, other, assert) = redirected_elsewhere(&[]);
    assert.code(3);
    assert!(other.requests().is_empty(), "{:?}", other.requests());
}

#[test]
fn a_redirect_to_another_origin_is_followed_when_nothing_carries_a_credential() {
    let (_home, other, assert) = redirected_from("/items?page=1", &[]);
    assert_eq!(ids(&assert.success().get_output().stdout), expected_ids(2));
    let reqs = other.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("referer"), None);
}

#[test]
fn a_redirect_on_the_same_origin_is_followed_without_a_referer() {
    let all = records(3);
    let server = Server::start(move |req| match req.path.as_str() {
        "/old" => Reply::status(301).header("location", format!("/items?{}", query(req))),
        _ => paged(all.clone())(req),
    })
    .unwrap();
    let out = apifetch()
        .arg(server.url("/old?api_key=s3cret"))
        .args(["-H", "X-Api-Key: k3y", "--page-size", "2"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    let reqs = server.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/old", "/items", "/old", "/items"]);
    for req in &reqs {
        assert_eq!(req.header("x-api-key"), Some("k3y"), "{}", req.path);
        assert_eq!(req.header("referer"), None, "{}", req.path);
    }
}

/// The request's query string, as received.
fn query(req: &Recorded) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&req.query)
        .finish()
}

#[test]
fn a_next_link_that_is_not_http_ends_the_run_at_once_without_a_resume_hint() {
    for next in [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
    ] {
        let server = Server::start(move |_| {
            Reply::json(&json!({"data": records(2)}))
                .header("link", format!("<{next}>; rel=\"next\""))
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = apifetch()
            .arg(server.url("/items"))
            .arg("--out")
            .arg(dir.path().join("out.csv"))
            .assert()
            .code(3);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        let scheme = next.split(':').next().unwrap();
        assert!(
            stderr.contains(&format!(
                "the URL's scheme `{scheme}` is not http or https (not retried); 2 records \
                 are kept in"
            )) && stderr.contains("(--resume would meet the same failure)"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("run the same command with --resume"),
            "{stderr}"
        );
        assert_eq!(server.requests().len(), 1, "{next}");
    }
}

#[test]
fn a_redirect_loop_or_an_endless_chain_ends_the_run_at_once() {
    let server = Server::start(|req| {
        let n: usize = req.path[3..].parse().unwrap();
        let to = match n {
            // /r/0 → /r/1 → /r/0: a loop.
            0 => "/r/1".to_string(),
            1 => "/r/0".to_string(),
            // /r/100 → /r/101 → …: a chain without end.
            n => format!("/r/{}", n + 1),
        };
        Reply::status(302).header("location", to)
    })
    .unwrap();
    apifetch()
        .args(["--paginate", "none"])
        .arg(server.url("/r/0"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "a redirect loop: {} redirects back to {} (not retried)",
            server.url("/r/1"),
            server.url("/r/0")
        )));
    assert_eq!(server.requests().len(), 2);
    apifetch()
        .arg(server.url("/r/100"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "more than 10 redirects in a row (not retried)",
        ));
    assert_eq!(server.requests().len(), 2 + 11);
}

fn gzipped(value: &serde_json::Value) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(value.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_body_that_does_not_decode_from_its_content_encoding_is_a_bad_response_at_once() {
    let gz = gzipped(&json!({"data": records(200)}));
    for (coding, body, cause) in [
        ("gzip", b"not gzip at all".to_vec(), "Invalid gzip header"),
        (
            "gzip",
            gz[..gz.len() / 2].to_vec(),
            "unexpected end of file",
        ),
        ("br", b"not brotli at all".to_vec(), "brotli error"),
        (
            "zstd",
            b"not zstd at all".to_vec(),
            "Unknown frame descriptor",
        ),
    ] {
        let server = Server::start(move |_| {
            Reply::status(200)
                .header("content-encoding", coding)
                .body(body.clone())
        })
        .unwrap();
        apifetch()
            .arg(server.url("/"))
            .assert()
            .code(5)
            .stderr(predicate::str::contains(format!(
                "the response body does not decode from its Content-Encoding: {cause} (not \
                 retried)"
            )));
        assert_eq!(server.requests().len(), 1, "{coding}: {cause}");
    }
}

#[test]
fn a_compressed_body_cut_short_is_retried() {
    let gz = gzipped(&json!({"data": records(200), "has_more": false}));
    let cut = gz.len() / 2;
    let server = Server::start(flaky(
        1,
        move || {
            Reply::status(200)
                .header("content-encoding", "gzip")
                .body(gz.clone())
                .cut_after(cut)
        },
        records(3),
    ))
    .unwrap();
    let out = apifetch().arg(server.url("/")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(3));
    assert_eq!(server.requests().len(), 2);
}

/// Answers every host name lookup from `answer`, counting the lookups: tests of name
/// resolution never make a real one.
struct Lookups {
    answer: fn(&str) -> Result<std::net::SocketAddr, &'static str>,
    asked: std::sync::atomic::AtomicUsize,
}

impl reqwest::dns::Resolve for Lookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = (self.answer)(name.as_str());
        Box::pin(async move {
            match answer {
                Ok(addr) => Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs),
                // What the system's resolver reports, through the standard library.
                Err(why) => Err(std::io::Error::other(format!(
                    "failed to lookup address information: {why}"
                ))
                .into()),
            }
        })
    }
}

/// Runs apifetch in this process on `args`, its host names resolved by `lookups`; how
/// the run ended, and how many lookups it made.
fn run_resolving(
    args: &[&str],
    answer: fn(&str) -> Result<std::net::SocketAddr, &'static str>,
) -> (Result<apifetch::Summary, apifetch::Error>, usize) {
    use clap::Parser;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lookups = std::sync::Arc::new(Lookups {
        answer,
        asked: Default::default(),
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let cli = apifetch::cli::Cli::try_parse_from(
        [
            "apifetch",
            "--backoff",
            "0.01",
            "--backoff-max",
            "0.05",
            "--breaker-cooldown",
            "0.05",
        ]
        .iter()
        .chain(args)
        .chain(&["--out", out.to_str().unwrap()]),
    )
    .unwrap();
    let mut config = apifetch::Config::try_from(cli).unwrap();
    config.request.proxies = Default::default();
    config.request.resolver = Some(apifetch::Resolver(lookups.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(apifetch::run(config));
    (
        result,
        lookups.asked.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[test]
fn the_injected_resolver_is_the_one_asked() {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| Server::start(paged(records(3))).unwrap());
    let url = format!("http://api.test:{}/items", server.addr().port());
    let (result, asked) = run_resolving(&[&url], |name| match name {
        "api.test" => Ok(SERVER.get().unwrap().addr()),
        _ => Err("Name or service not known"),
    });
    assert_eq!(result.unwrap().records, 3);
    assert_eq!((asked, server.requests().len()), (1, 1));
}

#[test]
fn a_host_name_that_does_not_exist_ends_the_run_at_once() {
    let (result, asked) = run_resolving(&["http://api.exampel.test/items"], |_| {
        Err("Name or service not known")
    });
    let error = result.unwrap_err();
    assert_eq!(error.exit(), apifetch::Exit::Permanent, "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "http://api.exampel.test/items: the host name api.exampel.test \
             does not resolve: "
        ) && message.ends_with("Name or service not known (not retried)"),
        "{message}"
    );
    assert_eq!(asked, 1, "not retried");
}

#[test]
fn a_lookup_that_failed_for_now_is_retried() {
    let (result, asked) = run_resolving(&["--retries", "2", "http://api.test/items"], |_| {
        Err("Temporary failure in name resolution")
    });
    let error = result.unwrap_err();
    assert_eq!(error.exit(), apifetch::Exit::GaveUp, "{error}");
    assert!(
        error.to_string().contains("gave up after 3 attempts"),
        "{error}"
    );
    assert_eq!(asked, 3);
}

#[test]
fn an_oversized_head_or_a_url_too_long_to_send_ends_the_run_at_once() {
    let server =
        Server::start(|_| Reply::json(&json!([{"id": 1}])).header("x-big", "a".repeat(1_000_000)))
            .unwrap();
    apifetch()
        .arg(server.url("/items"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "the response head is larger than apifetch reads",
        ))
        .stderr(predicate::str::contains("--resume").not());
    assert_eq!(server.requests().len(), 1);
    let server = Server::start(|_| Reply::json(&json!([{"id": 1}]))).unwrap();
    apifetch()
        .arg(server.url(&format!("/items?q={}", "b".repeat(70_000))))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("the URL cannot be sent"));
    assert_eq!(server.requests().len(), 0);
}
