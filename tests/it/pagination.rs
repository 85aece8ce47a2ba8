//! Every pagination style end to end, in the shapes real APIs use, with auto detection,
//! stop conditions, loop safety and credentials that do not follow links to other hosts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use predicates::prelude::*;
use serde_json::{Value, json};

/// Records every API below holds: 7, served 3 per page whatever the client asks for, so
/// the pages are 3, 3 and 1 records long.
const RECORDS: usize = 7;
const PER_PAGE: usize = 3;

/// One page as an API is about to render it.
struct Window {
    records: Vec<Value>,
    /// Offset of the page's first record.
    offset: usize,
    /// Offset of the next page's first record, if there is one.
    next: Option<usize>,
    /// `http://HOST:PORT`, for APIs that send absolute URLs.
    origin: String,
}

/// An API that reads the offset of the page asked for off the request with `start` and
/// renders the page with `render`.
fn api(
    start: impl Fn(&Recorded) -> usize + Send + Sync + 'static,
    render: impl Fn(Window) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let all = records(RECORDS);
    move |req| {
        let offset = start(req).min(RECORDS);
        let end = (offset + PER_PAGE).min(RECORDS);
        render(Window {
            records: all[offset..end].to_vec(),
            offset,
            next: (end < RECORDS).then_some(end),
            origin: format!("http://{}", req.header("host").unwrap_or_default()),
        })
    }
}

/// The offset in a numeric parameter (0 when absent).
fn offset_in(param: &'static str) -> impl Fn(&Recorded) -> usize + Send + Sync + 'static {
    move |req| req.param(param).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The offset of page number `param` (1-based).
fn page_in(param: &'static str) -> impl Fn(&Recorded) -> usize + Send + Sync + 'static {
    move |req| {
        let page: usize = req.param(param).and_then(|v| v.parse().ok()).unwrap_or(1);
        (page.max(1) - 1) * PER_PAGE
    }
}

/// The offset of page number `param`, counted from 0.
fn page_from_0(param: &'static str) -> impl Fn(&Recorded) -> usize + Send + Sync + 'static {
    move |req| req.param(param).and_then(|v| v.parse().ok()).unwrap_or(0) * PER_PAGE
}

/// The offset in the digits of an opaque cursor like `c3` (0 when absent).
fn cursor_in(param: &'static str) -> impl Fn(&Recorded) -> usize + Send + Sync + 'static {
    move |req| {
        req.param(param)
            .and_then(|c| {
                c.chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }
}

fn cursor(offset: Option<usize>) -> Value {
    offset.map_or(Value::Null, |o| json!(format!("c{o}")))
}

/// One real-world shape: the flags it needs (ideally none), the log line that shows the
/// style auto detection picked, and the API.
struct Shape {
    name: &'static str,
    flags: &'static [&'static str],
    log: &'static str,
    /// Requests the run makes: one per page, unless the API's first page leaves something
    /// to find out (whether pages count from 0 or 1, which name a parameter has).
    requests: usize,
    api: Box<dyn Fn(&Recorded) -> Reply + Send + Sync>,
}

fn shape(
    name: &'static str,
    flags: &'static [&'static str],
    log: &'static str,
    api: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> Shape {
    Shape {
        name,
        flags,
        log,
        requests: 3,
        api: Box::new(api),
    }
}

impl Shape {
    fn requests(mut self, n: usize) -> Self {
        self.requests = n;
        self
    }
}

fn shapes() -> Vec<Shape> {
    vec![
        shape(
            "has_more",
            &[],
            "pagination: page numbers in `page` (or else offsets in `offset`): the response says more",
            api(page_in("page"), |w| {
                Reply::json(&json!({"data": w.records, "has_more": w.next.is_some()}))
            }),
        )
        .requests(4),
        shape(
            "0-based, nothing echoed",
            &[],
            "pagination: page numbers in `page` (or else offsets in `offset`): the response says more",
            api(page_from_0("page"), |w| {
                Reply::json(&json!({"data": w.records, "has_more": w.next.is_some()}))
            }),
        ),
        shape(
            "spring data (0-based)",
            &[],
            "pagination: page numbers in `page`, as /number echoes (this was page 0)",
            api(page_from_0("page"), |w| {
                Reply::json(
                    &json!({"content": w.records, "number": w.offset / PER_PAGE, "size": PER_PAGE, "totalElements": RECORDS, "totalPages": 3, "last": w.next.is_none()}),
                )
            }),
        ),
        shape(
            "spring data rest hal (0-based, no links)",
            &[],
            "pagination: page numbers in `page`, as /page/number echoes (this was page 0)",
            api(page_from_0("page"), |w| {
                Reply::json(
                    &json!({"_embedded": {"orders": w.records}, "page": {"size": PER_PAGE, "totalElements": RECORDS, "totalPages": 3, "number": w.offset / PER_PAGE}}),
                )
            }),
        ),
        shape(
            "fastapi-pagination",
            &[],
            "pagination: page numbers in `page`, as /page echoes (this was page 1)",
            api(page_in("page"), |w| {
                Reply::json(
                    &json!({"items": w.records, "total": RECORDS, "page": w.offset / PER_PAGE + 1, "size": PER_PAGE, "pages": 3}),
                )
            }),
        ),
        shape(
            "laravel",
            &[],
            "pagination: next URL at /next_page_url",
            api(page_in("page"), |w| {
                let next = w
                    .next
                    .map(|n| format!("{}/items?page={}", w.origin, n / PER_PAGE + 1));
                Reply::json(
                    &json!({"current_page": w.offset / PER_PAGE + 1, "data": w.records, "next_page_url": next, "per_page": PER_PAGE, "total": RECORDS}),
                )
            }),
        ),
        shape(
            "django rest framework",
            &[],
            "pagination: next URL at /next",
            api(page_in("page"), |w| {
                let next = w
                    .next
                    .map(|n| format!("{}/items/?page={}", w.origin, n / PER_PAGE + 1));
                Reply::json(
                    &json!({"count": RECORDS, "next": next, "previous": null, "results": w.records}),
                )
            }),
        ),
        shape(
            "feathers (plain parameters are filters)",
            &[],
            "trying `$skip`",
            |req: &Recorded| {
                // Feathers reads `$skip`; any other parameter filters the records by field.
                let all = records(RECORDS);
                if req.query.iter().any(|(k, _)| !k.starts_with('$')) {
                    return Reply::json(
                        &json!({"total": 0, "limit": PER_PAGE, "skip": 0, "data": []}),
                    );
                }
                let skip: usize = req.param("$skip").map_or(0, |s| s.parse().unwrap());
                let page = &all[skip.min(RECORDS)..(skip + PER_PAGE).min(RECORDS)];
                Reply::json(
                    &json!({"total": RECORDS, "limit": PER_PAGE, "skip": skip, "data": page}),
                )
            },
        )
        .requests(4),
        shape(
            "express-paginate (a list object without Stripe's url)",
            &[],
            "pagination: page numbers in `page`",
            api(page_in("page"), |w| {
                Reply::json(
                    &json!({"object": "list", "has_more": w.next.is_some(), "data": w.records}),
                )
            }),
        )
        .requests(4),
        shape(
            "django ninja limit/offset (page is ignored)",
            &[],
            "trying offsets in `offset`",
            api(offset_in("offset"), |w| {
                Reply::json(&json!({"items": w.records, "count": RECORDS}))
            }),
        )
        .requests(5),
        shape(
            "fastapi with unknown parameters refused",
            &[],
            "as /page echoes",
            |req: &Recorded| {
                if req.query.iter().any(|(k, _)| k != "page" && k != "size") {
                    return Reply::json(&json!({"detail": "extra_forbidden"})).with_status(400);
                }
                api(page_in("page"), |w| {
                    Reply::json(
                        &json!({"items": w.records, "total": RECORDS, "page": w.offset / PER_PAGE + 1, "size": PER_PAGE, "pages": 3}),
                    )
                })(req)
            },
        ),
        shape(
            "datasette (rows as arrays beside the column names)",
            &[],
            "pagination: next URL at /next_url",
            api(cursor_in("_next"), |w| {
                let rows: Vec<Value> = w
                    .records
                    .iter()
                    .map(|r| json!([r["id"], r["name"], r["meta"]]))
                    .collect();
                let next = w.next.map(|n| format!("c{n}"));
                let next_url = next.as_ref().map(|n| format!("{}/items?_next={n}", w.origin));
                Reply::json(
                    &json!({"database": "db", "table": "items", "columns": ["id", "name", "meta"], "rows": rows, "next": next, "next_url": next_url}),
                )
            }),
        ),
        shape(
            "jira nextPageToken",
            &[],
            "trying `nextPageToken`",
            api(cursor_in("nextPageToken"), |w| {
                let mut body = json!({"issues": w.records, "isLast": w.next.is_none()});
                if let Some(n) = w.next {
                    body["nextPageToken"] = json!(format!("c{n}"));
                }
                Reply::json(&body)
            }),
        )
        .requests(4),
        shape(
            "twitter v2",
            &[],
            "sent back as `pagination_token`",
            api(cursor_in("pagination_token"), |w| {
                let mut meta = json!({"result_count": w.records.len()});
                if let Some(n) = w.next {
                    meta["next_token"] = json!(format!("c{n}"));
                }
                Reply::json(&json!({"data": w.records, "meta": meta}))
            }),
        ),
        shape(
            "github",
            &[],
            "pagination: Link header",
            api(page_in("page"), |w| {
                let page = w.offset / PER_PAGE + 1;
                let link = |p: usize, rel: &str| {
                    format!("<{}/items?per_page=100&page={p}>; rel=\"{rel}\"", w.origin)
                };
                let mut links = vec![link(3, "last")];
                if w.next.is_some() {
                    links.insert(0, link(page + 1, "next"));
                }
                Reply::json(&json!(w.records))
                    .header("link", links.join(", "))
                    .header("x-total-count", RECORDS.to_string())
            }),
        ),
        shape(
            "shopify",
            &[],
            "pagination: Link header",
            api(cursor_in("page_info"), |w| {
                let reply = Reply::json(&json!({"products": w.records}));
                match w.next {
                    Some(n) => reply.header(
                        "Link",
                        format!("</admin/products.json?limit=3&page_info=c{n}>; REL=next"),
                    ),
                    None => reply,
                }
            }),
        ),
        shape(
            "offset echo",
            &[],
            "pagination: offsets",
            api(offset_in("offset"), |w| {
                Reply::json(
                    &json!({"items": w.records, "offset": w.offset, "limit": PER_PAGE, "total": RECORDS}),
                )
            }),
        ),
        shape(
            "next_cursor",
            &[],
            "pagination: cursor at /next_cursor, sent back as `cursor`",
            api(cursor_in("cursor"), |w| {
                Reply::json(&json!({"results": w.records, "next_cursor": cursor(w.next)}))
            }),
        ),
        shape(
            "slack",
            &[],
            "pagination: cursor at /response_metadata/next_cursor",
            api(cursor_in("cursor"), |w| {
                let next = w.next.map(|o| format!("c{o}")).unwrap_or_default();
                Reply::json(
                    &json!({"ok": true, "members": w.records, "response_metadata": {"next_cursor": next}}),
                )
            }),
        ),
        shape(
            "google",
            &[],
            "sent back as `pageToken`",
            api(cursor_in("pageToken"), |w| {
                let mut body = json!({"kind": "list", "items": w.records});
                if let Some(n) = w.next {
                    body["nextPageToken"] = json!(format!("c{n}"));
                }
                Reply::json(&body)
            }),
        ),
        shape(
            "hubspot",
            &[],
            "pagination: next URL at /paging/next/link",
            api(cursor_in("after"), |w| {
                let mut body = json!({"results": w.records});
                if let Some(n) = w.next {
                    body["paging"] = json!({"next": {"after": format!("c{n}"), "link": format!("{}/crm/v3/objects/contacts?after=c{n}", w.origin)}});
                }
                Reply::json(&body)
            }),
        ),
        shape(
            "salesforce",
            &[],
            "pagination: next URL at /nextRecordsUrl",
            api(
                |req| {
                    req.path
                        .rsplit_once('-')
                        .and_then(|(_, o)| o.parse().ok())
                        .unwrap_or(0)
                },
                |w| {
                    let mut body = json!({"totalSize": RECORDS, "done": w.next.is_none(), "records": w.records});
                    if let Some(n) = w.next {
                        body["nextRecordsUrl"] =
                            json!(format!("/services/data/v59.0/query/01gRM-{n}"));
                    }
                    Reply::json(&body)
                },
            ),
        ),
        shape(
            "odata",
            &[],
            "pagination: next URL at /@odata.nextLink",
            api(cursor_in("$skiptoken"), |w| {
                let mut body = json!({"@odata.context": "x", "value": w.records});
                if let Some(n) = w.next {
                    body["@odata.nextLink"] =
                        json!(format!("{}/v1.0/users?$skiptoken=c{n}", w.origin));
                }
                Reply::json(&body)
            }),
        ),
        shape(
            "json:api absolute",
            &[],
            "pagination: next URL at /links/next",
            api(cursor_in("page[after]"), |w| {
                let next = w
                    .next
                    .map(|n| format!("{}/articles?page%5Bafter%5D=c{n}", w.origin));
                Reply::json(&json!({"data": w.records, "links": {"self": "x", "next": next}}))
            }),
        ),
        shape(
            "json:api relative",
            &[],
            "pagination: next URL at /links/next",
            api(cursor_in("page[after]"), |w| {
                let next = w.next.map(|n| format!("articles?page%5Bafter%5D=c{n}"));
                Reply::json(&json!({"data": w.records, "links": {"next": next}}))
            }),
        ),
        shape(
            "hal",
            &[],
            "pagination: next URL at /_links/next/href",
            api(cursor_in("p"), |w| {
                let mut links = json!({"self": {"href": "/orders"}});
                if let Some(n) = w.next {
                    links["next"] = json!({"href": format!("/orders?p=c{n}")});
                }
                Reply::json(
                    &json!({"_links": links, "_embedded": {"orders": w.records}, "total": RECORDS}),
                )
            }),
        ),
        shape(
            "zendesk",
            &[],
            "pagination: next URL at /next_page",
            api(page_in("page"), |w| {
                let next = w
                    .next
                    .map(|n| format!("{}/api/v2/tickets.json?page={}", w.origin, n / PER_PAGE + 1));
                Reply::json(&json!({"tickets": w.records, "next_page": next, "count": RECORDS}))
            }),
        ),
        shape(
            "airtable",
            &[],
            "pagination: cursor at /offset",
            api(cursor_in("offset"), |w| {
                let mut body = json!({"records": w.records});
                if let Some(n) = w.next {
                    body["offset"] = json!(format!("itr{n}/rec"));
                }
                Reply::json(&body)
            }),
        ),
        shape(
            "notion",
            &[],
            "sent back as `start_cursor`",
            api(cursor_in("start_cursor"), |w| {
                Reply::json(
                    &json!({"object": "list", "results": w.records, "next_cursor": cursor(w.next), "has_more": w.next.is_some()}),
                )
            }),
        ),
        shape(
            "stripe",
            &[],
            "a list object with has_more: the last record's /id, sent as `starting_after`",
            api(offset_in("starting_after"), |w| {
                Reply::json(
                    &json!({"object": "list", "url": "/v1/customers", "data": w.records, "has_more": w.next.is_some()}),
                )
            }),
        ),
        shape(
            "jira",
            &[],
            "pagination: offsets in `startAt`, as /startAt echoes",
            api(offset_in("startAt"), |w| {
                Reply::json(
                    &json!({"startAt": w.offset, "maxResults": PER_PAGE, "total": RECORDS, "issues": w.records}),
                )
            }),
        ),
    ]
}

#[test]
fn real_api_shapes_yield_every_record_once_in_as_few_requests_as_pages() {
    for shape in shapes() {
        let api = Arc::new(shape.api);
        let server = Server::start(move |req| api(req)).unwrap();
        let out = apifetch()
            .arg(server.url("/items"))
            .args(shape.flags)
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert_eq!(
            ids(&out.get_output().stdout),
            expected_ids(RECORDS),
            "{}: {stderr}",
            shape.name
        );
        assert!(stderr.contains(shape.log), "{}: {stderr}", shape.name);
        let requests = server.requests();
        assert_eq!(requests.len(), shape.requests, "{}: {stderr}", shape.name);
        assert_eq!(
            (requests[0].path.as_str(), requests[0].query.len()),
            ("/items", 0),
            "{}: the first request is the URL as given",
            shape.name
        );
    }
}

#[test]
fn explicit_cursor_and_next_styles_send_the_url_untouched_first() {
    let server = Server::start(api(cursor_in("cursor"), |w| {
        Reply::json(&json!({"data": w.records, "meta": {"next": cursor(w.next)}}))
    }))
    .unwrap();
    let out = apifetch()
        .arg(server.url("/items?q=1"))
        .args(["--cursor-path", "/meta/next"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(RECORDS));
    let queries: Vec<_> = server.requests().iter().map(|r| r.query.clone()).collect();
    let pairs = |c: Option<&str>| {
        let mut q = vec![("q".to_string(), "1".to_string())];
        q.extend(c.map(|c| ("cursor".to_string(), c.to_string())));
        q
    };
    assert_eq!(queries, [pairs(None), pairs(Some("c3")), pairs(Some("c6"))]);
}

#[test]
fn offsets_advance_by_what_a_capping_server_returns() {
    let server = Server::start(api(offset_in("offset"), |w| {
        Reply::json(&json!({"items": w.records, "total": RECORDS}))
    }))
    .unwrap();
    let out = apifetch()
        .arg(server.url("/items"))
        .args(["--paginate", "offset", "--page-size", "5"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(RECORDS));
    let asked: Vec<_> = server
        .requests()
        .iter()
        .map(|r| {
            (
                r.param("offset").unwrap_or("-").to_string(),
                r.param("limit").unwrap().to_string(),
            )
        })
        .collect();
    let want = [("-", "5"), ("3", "5"), ("6", "5")].map(|(o, l)| (o.to_string(), l.to_string()));
    assert_eq!(asked, want);
}

#[test]
fn has_more_and_total_pointers_override_the_defaults() {
    let server = Server::start(api(page_in("page"), |w| {
        Reply::json(&json!({"data": w.records, "meta": {"more": w.next.is_some()}}))
    }))
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--has-more", "/meta/more"])
        .assert()
        .success();
    // The first page, page 1 again to learn that pages count from 1, then pages 2 and 3.
    assert_eq!(server.requests().len(), 4);

    let server = Server::start(api(page_in("page"), |w| {
        Reply::json(&json!({"data": w.records, "count": {"all": RECORDS}}))
    }))
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--total", "/count/all"])
        .assert()
        .success();
    // The first page, page 1 again to learn that pages count from 1, then pages 2 and 3.
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn max_records_cuts_the_last_page() {
    let server = Server::start(api(page_in("page"), |w| {
        Reply::json(&json!({"data": w.records, "has_more": w.next.is_some()}))
    }))
    .unwrap();
    let out = apifetch()
        .arg(server.url("/"))
        .args(["--max-records", "5"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(5));
    // The first page, page 1 again (all of it compared, not only what fits), page 2.
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn records_pointer_and_single_object_responses() {
    let server = Server::start(|_| {
        Reply::json(&json!({"result": {"list": records(2), "tags": ["a"]}, "warnings": []}))
    })
    .unwrap();
    for path in ["/result/list", ".result.list", "result.list"] {
        let out = apifetch()
            .arg(server.url("/"))
            .args(["--records", path, "--paginate", "none"])
            .assert()
            .success();
        assert_eq!(ids(&out.get_output().stdout), expected_ids(2), "{path}");
    }

    let server = Server::start(|_| Reply::json(&json!({"id": 42, "name": "me"}))).unwrap();
    let out = apifetch()
        .arg(server.url("/me?x=1"))
        .args(["--paginate", "none"])
        .assert()
        .success();
    assert_eq!(
        csv_rows(&out.get_output().stdout),
        [vec!["id", "name"], vec!["42", "me"]]
    );
    let reqs = server.requests();
    assert_eq!((reqs.len(), reqs[0].query.len()), (1, 1));
}

#[test]
fn a_cursor_cycle_is_a_bad_response() {
    let server = Server::start(|req| {
        let (data, next) = match req.param("cursor") {
            None => (1, "A"),
            Some("A") => (2, "B"),
            _ => (3, "A"),
        };
        Reply::json(&json!({"data": [{"id": data}], "next_cursor": next}))
    })
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "pagination loop: page 3 sent cursor `A` again, which already fetched page 2",
        ));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_repeated_page_that_always_has_more_is_a_bad_response() {
    let server = Server::start(|_| {
        Reply::json(&json!({"data": records(2), "has_more": true, "next_cursor": "same"}))
    })
    .unwrap();
    apifetch()
        .arg(server.url("/"))
        .args(["--cursor-from-record", "/name"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "page 2 repeated the 2 records of page 1",
        ));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_server_ignoring_the_page_parameter_is_a_bad_response() {
    let server =
        Server::start(|_| Reply::json(&json!({"data": records(4), "has_more": true}))).unwrap();
    apifetch()
        .arg(server.url("/"))
        .assert()
        .code(5)
        .stderr(predicate::str::contains("trying offsets in `offset`"))
        .stderr(predicate::str::contains(
            "pagination loop: page 2 repeated the 4 records of page 1; the API seems to ignore `offset`",
        ))
        .stderr(predicate::str::contains("--paginate none"));
    // The first page; page 1 (the same: pages count from 1?); page 2 (the same again: page
    // numbers are ignored); offset 4 (the same again).
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn a_response_with_no_sign_of_more_pages_is_fetched_once() {
    let server = Server::start(|_| Reply::json(&json!(records(4)))).unwrap();
    let out = apifetch()
        .arg(server.url("/items?q=x"))
        .assert()
        .success()
        .stderr(predicate::str::contains("taken as the whole result"));
    assert_eq!(ids(&out.get_output().stdout), expected_ids(4));
    let reqs = server.requests();
    assert_eq!((reqs.len(), reqs[0].query.len()), (1, 1));
}

#[test]
fn a_resumed_run_still_knows_the_loop_it_stopped_at() {
    let pager =
        Server::start(|_| Reply::json(&json!({"data": records(4), "has_more": true}))).unwrap();
    let cycler = Server::start(|req| {
        let (id, next) = match req.param("cursor") {
            None => (1, "A"),
            Some("A") => (2, "B"),
            _ => (3, "A"),
        };
        Reply::json(&json!({"data": [{"id": id}], "next_cursor": next}))
    })
    .unwrap();
    for (server, kept) in [(&pager, 4), (&cycler, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let partial = dir.path().join("out.jsonl.partial");
        let run = |extra: &[&str]| {
            apifetch()
                .arg(server.url("/"))
                .arg("--out")
                .arg(&out)
                .args(extra)
                .assert()
                .code(5)
                .stderr(predicate::str::contains("pagination loop"));
        };
        run(&[]);
        let lines = || std::fs::read_to_string(&partial).unwrap().lines().count();
        assert_eq!(lines(), kept);
        let before = server.requests().len();
        run(&["--resume"]);
        assert_eq!(
            server.requests().len(),
            before + 1,
            "caught at the first request"
        );
        assert_eq!(lines(), kept, "nothing repeated was appended");
    }
}

/// The first page lives on 127.0.0.1 and links to a second page on `other`.
fn two_hosts(trust: bool) -> (Server, Server, assert_cmd::assert::Assert) {
    let other = Server::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), |_| {
        Reply::json(&json!({"data": [{"id": 2}], "links": {"next": null}}))
    })
    .unwrap();
    let next = other.url("/page2");
    let home = Server::start(move |req| {
        let body = match req.path.as_str() {
            "/page1" => json!({"data": [{"id": 1}], "links": {"next": "/same-origin"}}),
            _ => json!({"data": [{"id": 1.5}], "links": {"next": next}}),
        };
        Reply::json(&body)
    })
    .unwrap();
    let mut cmd = apifetch();
    cmd.arg(home.url("/page1")).args([
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "X-Api-Key: k3y",
        "-H",
        "Cookie: session=c00kie",
    ]);
    if trust {
        cmd.arg("--trust-next-origin");
    }
    let assert = cmd.assert().success();
    (home, other, assert)
}

#[test]
fn credentials_do_not_follow_a_next_link_to_another_origin() {
    let (home, other, assert) = two_hosts(false);
    assert_eq!(ids(&assert.get_output().stdout), ["1", "1.5", "2"]);
    for req in home.requests() {
        assert_eq!(
            req.header("authorization"),
            Some("Bearer s3cret"),
            "{}",
            req.path
        );
        assert_eq!(req.header("x-api-key"), Some("k3y"));
    }
    let reqs = other.requests();
    assert_eq!(reqs.len(), 1);
    for name in [
        "authorization",
        "x-api-key",
        "cookie",
        "proxy-authorization",
    ] {
        assert_eq!(
            reqs[0].header(name),
            None,
            "{name} was sent to the other origin"
        );
    }
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr);
    assert!(
        stderr.contains("the next page is on another origin (http://127.0.0.2:"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn trust_next_origin_sends_them_anyway() {
    let (_home, other, assert) = two_hosts(true);
    assert_eq!(ids(&assert.get_output().stdout), ["1", "1.5", "2"]);
    let reqs = other.requests();
    assert_eq!(reqs[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(reqs[0].header("cookie"), Some("session=c00kie"));
}

#[test]
fn flags_of_another_style_are_usage_errors() {
    for flags in [
        &["--paginate", "page", "--cursor-path", "/c"][..],
        &["--next-path", "/n", "--cursor-from-record", "/id"],
        &["--paginate", "offset", "--next-path", "/n"],
        &["--records", "data..items"],
    ] {
        apifetch()
            .arg("http://127.0.0.1:9/")
            .args(flags)
            .assert()
            .code(2);
    }
}

#[test]
fn a_next_link_cycle_is_a_bad_response() {
    // /a → /b → /a, each page with different records.
    let server = Server::start(|req| {
        let (id, next) = match req.path.as_str() {
            "/a" => (1, "/b"),
            _ => (2, "/a"),
        };
        Reply::json(&json!([{"id": id, "seen": req.n}]))
            .header("link", format!("<{next}>; rel=\"next\""))
    })
    .unwrap();
    apifetch()
        .arg(server.url("/a"))
        .args(["--paginate", "link"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(format!(
            "pagination loop: page 2 sent next URL {} again, which already fetched page 1",
            server.url("/a")
        )));
    assert_eq!(server.requests().len(), 2);
}

/// An API of 7 records, 3 a page, that states `total` in its body (or, with `header`, in
/// `X-Total-Count`) but delivers only `delivered` of them.
fn short_api(total: usize, delivered: usize, header: bool) -> Server {
    Server::start(move |req| {
        let offset = page_in("page")(req).min(delivered);
        let end = (offset + PER_PAGE).min(delivered);
        let page = (offset / PER_PAGE + 1) as u64;
        let records = &records(RECORDS)[offset..end];
        match header {
            true => Reply::json(&json!({"data": records, "page": page}))
                .header("x-total-count", total.to_string()),
            false => Reply::json(&json!({"data": records, "page": page, "total": total})),
        }
    })
    .unwrap()
}

#[test]
fn fewer_records_than_the_api_announced_fail_and_keep_what_arrived() {
    for (header, source) in [
        (false, "`/total` in the body"),
        (true, "the x-total-count header"),
    ] {
        let server = short_api(RECORDS, 5, header);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        apifetch()
            .arg(server.url("/items"))
            .arg("--out")
            .arg(&out)
            .assert()
            .code(5)
            .stderr(predicate::str::contains(format!(
                "the API announced 7 records ({source}), 5 arrived"
            )))
            .stderr(predicate::str::contains("--resume"));
        assert!(!out.exists(), "no output file claims to be complete");
        let partial = std::fs::read(dir.path().join("out.csv.partial")).unwrap();
        assert_eq!(ids(&partial), expected_ids(5));
    }
}

#[test]
fn an_empty_first_page_under_a_total_above_zero_fails() {
    let server = short_api(RECORDS, 0, false);
    apifetch()
        .arg(server.url("/items"))
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "the API announced 7 records (`/total` in the body), 0 arrived",
        ));
}

#[test]
fn a_total_that_grows_during_the_run_is_a_warning() {
    let server = Server::start(move |req| {
        let page = page_number(req);
        let all = records(RECORDS);
        let start = ((page - 1) * PER_PAGE).min(RECORDS);
        let end = (start + PER_PAGE).min(RECORDS);
        let total = if page == 1 { RECORDS - 1 } else { RECORDS };
        Reply::json(&json!({"data": &all[start..end], "page": page, "total": total}))
    })
    .unwrap();
    let out = apifetch()
        .arg(server.url("/items"))
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "the API's total changed from 6 to 7 records",
        ));
    assert_eq!(ids(&out.get_output().stdout), expected_ids(RECORDS));
}

#[test]
fn max_records_and_max_pages_stop_short_of_the_total_on_purpose() {
    for flags in [["--max-records", "4"], ["--max-pages", "1"]] {
        let server = short_api(RECORDS, RECORDS, false);
        apifetch()
            .arg(server.url("/items"))
            .args(flags)
            .assert()
            .success();
    }
}

#[test]
fn flags_that_point_at_nothing_stop_before_anything_is_written() {
    let server = Server::start(|_| {
        Reply::json(&json!({"data": records(2), "meta": {"next": "c2", "more": true}, "total": 9}))
    })
    .unwrap();
    for flags in [
        &["--cursor-path", "/nope"][..],
        &["--next-path", "/links/nxt"],
        &["--has-more", "/nope"],
        &["--total", "/nope"],
        &["--records", "/nope"],
        &["--cursor-from-record", "/nope"],
        &["--paginate", "next"],
        &["--paginate", "link"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        let assert = apifetch()
            .arg(server.url("/items"))
            .args(flags)
            .arg("--out")
            .arg(&out)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr);
        assert!(
            stderr.contains("the first response has nothing"),
            "{flags:?}: {stderr}"
        );
        assert!(
            stderr.contains("/meta/next = \"c2\""),
            "{flags:?}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{flags:?}: nothing written"
        );
    }
    // Present, and null: the last page.
    let server =
        Server::start(|_| Reply::json(&json!({"data": records(2), "meta": {"next": null}})))
            .unwrap();
    let out = apifetch()
        .arg(server.url("/items"))
        .args(["--cursor-path", "/meta/next"])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(2));
}

#[test]
fn the_page_size_is_sent_only_when_given() {
    let server = Server::start(paged(records(RECORDS))).unwrap();
    apifetch().arg(server.url("/items")).assert().success();
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.param("per_page").is_none()),
        "no page size was asked for"
    );
    let server = Server::start(paged(records(RECORDS))).unwrap();
    apifetch()
        .arg(server.url("/items"))
        .args(["--page-size", "4"])
        .assert()
        .success();
    let sizes: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.param("per_page").map(str::to_string))
        .collect();
    assert_eq!(sizes, [Some("4".to_string()), Some("4".to_string())]);
}

#[test]
fn a_refused_parameter_is_blamed_on_whoever_added_it() {
    // Says there is more, but refuses every parameter it does not know, naming it.
    let server = Server::start(|req| match req.query.iter().find(|(k, _)| k != "q") {
        Some((name, _)) => {
            Reply::json(&json!({"error": format!("unknown parameter: {name}")})).with_status(400)
        }
        None => Reply::json(&json!({"data": records(2), "has_more": true})),
    })
    .unwrap();
    apifetch()
        .arg(server.url("/items?q=1"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("unknown parameter: page"))
        .stderr(predicate::str::contains("apifetch added `page`"));
    apifetch()
        .arg(server.url("/items?q=1"))
        .args(["--param", "sort=id"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "`sort` is in the URL or the flags you gave, not added by apifetch",
        ));
}

#[test]
fn no_content_after_the_first_page_is_the_end() {
    for last in [Reply::status(204), Reply::status(200).body("")] {
        let last = std::sync::Mutex::new(Some(last));
        let server = Server::start(move |req| match req.param("page") {
            None => Reply::json(&json!({"data": records(2), "page": 1})),
            Some(_) => last
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| Reply::status(500)),
        })
        .unwrap();
        let out = apifetch().arg(server.url("/items")).assert().success();
        assert_eq!(ids(&out.get_output().stdout), expected_ids(2));
        assert_eq!(server.requests().len(), 2);
    }
    // A 204 first is a result with no records.
    let server = Server::start(|_| Reply::status(204)).unwrap();
    apifetch().arg(server.url("/items")).assert().success();
}

#[test]
fn a_last_link_past_the_number_range_does_not_override_the_next_link() {
    let server = Server::start(|req| {
        let page = page_number(req);
        let mut reply = Reply::json(&json!([{"id": page}]));
        let last = format!("</items?page={}>; rel=\"last\"", u64::MAX);
        reply = match page {
            1 => reply.header("link", format!("</items?page=2>; rel=\"next\", {last}")),
            _ => reply.header("link", last),
        };
        reply
    })
    .unwrap();
    let out = apifetch().arg(server.url("/items")).assert().success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(2));
}

#[test]
fn a_page_number_at_the_end_of_the_range_stops_instead_of_wrapping() {
    let server = Server::start(|req| {
        Reply::json(&json!({"data": [{"id": req.param("page").unwrap_or("-")}], "has_more": true}))
    })
    .unwrap();
    apifetch()
        .arg(server.url(&format!("/items?page={}", u64::MAX)))
        .assert()
        .code(5)
        .stderr(predicate::str::contains("largest number apifetch can send"));
    assert_eq!(server.requests().len(), 1);
}

// Request bodies: POST searches and GraphQL.

/// A POST search API over 7 records, 3 a page, paged by the cursor in the body's
/// `start_cursor` (Notion's database query).
fn notion() -> Server {
    notion_refusing(Arc::new(AtomicBool::new(false)))
}

/// [`notion`], refusing the second page with a 403 while `refuse` is set.
fn notion_refusing(refuse: Arc<AtomicBool>) -> Server {
    Server::start(move |req| {
        if req.json()["start_cursor"] == "c3" && refuse.load(Ordering::SeqCst) {
            return Reply::status(403);
        }
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("content-type"), Some("application/json"));
        let body = req.json();
        let offset: usize = body["start_cursor"]
            .as_str()
            .map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
        let end = (offset + PER_PAGE).min(RECORDS);
        let next = (end < RECORDS).then(|| format!("c{end}"));
        Reply::json(&json!({
            "object": "list",
            "results": &records(RECORDS)[offset..end],
            "next_cursor": next,
            "has_more": next.is_some(),
            "filter_seen": body["filter"],
        }))
    })
    .unwrap()
}

#[test]
fn a_notion_query_is_paged_through_the_cursor_in_its_body() {
    let server = notion();
    let out = apifetch()
        .arg(server.url("/v1/databases/d1/query"))
        .args(["-d", r#"{"filter": {"property": "done"}, "page_size": 3}"#])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(RECORDS));
    let bodies: Vec<Value> = server.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies[0],
        json!({"filter": {"property": "done"}, "page_size": 3})
    );
    assert_eq!(bodies[1]["start_cursor"], "c3");
    assert_eq!(bodies[2]["start_cursor"], "c6");
    assert!(
        server.requests().iter().all(|r| r.query.is_empty()),
        "nothing in the query"
    );
}

#[test]
fn a_body_that_is_not_json_or_a_pointer_without_a_body_is_a_usage_error() {
    for args in [
        &["-d", "{not json"][..],
        &["--cursor-param", "/start_cursor"],
        &["--graphql", "{ a }", "--variables", "[1]"],
    ] {
        apifetch()
            .arg("http://127.0.0.1:9/")
            .args(args)
            .assert()
            .code(2);
    }
}

#[test]
fn elasticsearch_search_after_sends_the_last_hits_sort_array_back() {
    let server = Server::start(|req| {
        let body = req.json();
        let after = body["search_after"][0].as_u64().unwrap_or(0) as usize;
        let size = body["size"].as_u64().unwrap() as usize;
        let hits: Vec<Value> = (after + 1..=(after + size).min(RECORDS))
            .map(|i| json!({"_id": format!("d{i}"), "_source": {"n": i}, "sort": [i, format!("d{i}")]}))
            .collect();
        Reply::json(&json!({"took": 1, "hits": {"total": {"value": RECORDS}, "hits": hits}}))
    })
    .unwrap();
    let out = apifetch()
        .arg(server.url("/logs/_search"))
        .args([
            "-d",
            r#"{"size": 3, "sort": [{"n": "asc"}, {"_id": "asc"}]}"#,
        ])
        .args(["--records", "/hits/hits", "--cursor-from-record", "/sort"])
        .args(["--cursor-param", "/search_after"])
        .assert()
        .success();
    let ids: Vec<String> = ids(&out.get_output().stdout);
    assert_eq!(
        ids,
        (1..=RECORDS).map(|i| format!("d{i}")).collect::<Vec<_>>()
    );
    let afters: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r.json()["search_after"].clone())
        .collect();
    assert_eq!(
        afters,
        [
            Value::Null,
            json!([3, "d3"]),
            json!([6, "d6"]),
            json!([7, "d7"])
        ]
    );
}

/// A GraphQL API over 7 issues, 3 a page, as GitHub shapes a connection: `edges` or
/// `nodes` (by the query's text), `pageInfo`, `totalCount`.
fn github_graphql(fail: impl Fn(usize) -> Option<Reply> + Send + Sync + 'static) -> Server {
    Server::start(move |req| {
        if let Some(reply) = fail(req.n) {
            return reply;
        }
        let body = req.json();
        let query = body["query"].as_str().unwrap();
        let after: usize = body["variables"]["cursor"]
            .as_str()
            .map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
        let end = (after + PER_PAGE).min(RECORDS);
        let page = &records(RECORDS)[after..end];
        let mut issues = json!({
            "totalCount": RECORDS,
            "pageInfo": {"hasNextPage": end < RECORDS, "endCursor": format!("c{end}")},
        });
        match query.contains("edges") {
            true => {
                issues["edges"] = page
                    .iter()
                    .map(|n| json!({"cursor": "x", "node": n}))
                    .collect()
            }
            false => issues["nodes"] = json!(page),
        }
        Reply::json(&json!({"data": {"repository": {"issues": issues}}}))
    })
    .unwrap()
}

const NODES: &str = "query($cursor: String) { repository(owner: \"o\", name: \"r\") { issues(first: 3, after: $cursor) { totalCount pageInfo { hasNextPage endCursor } nodes { id name meta { even } } } } }";

#[test]
fn a_graphql_connection_is_paged_by_its_cursor_variable() {
    for query in [
        NODES.to_string(),
        NODES.replace(
            "nodes { id name meta { even } }",
            "edges { node { id name meta { even } } }",
        ),
    ] {
        let server = github_graphql(|_| None);
        let out = apifetch()
            .arg(server.url("/graphql"))
            .args(["--graphql", &query, "--variables", r#"{"owner": "o"}"#])
            .assert()
            .success()
            .stderr(predicate::str::contains(
                "GraphQL connection /data/repository/issues, its cursor sent back as $cursor",
            ));
        assert_eq!(
            ids(&out.get_output().stdout),
            expected_ids(RECORDS),
            "{query}"
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        assert!(requests.iter().all(|r| r.method == "POST"));
        assert_eq!(requests[0].json()["variables"], json!({"owner": "o"}));
        assert_eq!(
            requests[1].json()["variables"],
            json!({"owner": "o", "cursor": "c3"})
        );
        assert_eq!(requests[2].json()["variables"]["cursor"], "c6");
    }
}

#[test]
fn a_graphql_rate_limit_is_waited_out_and_other_errors_stop_the_run() {
    let server = github_graphql(|n| {
        (n == 1).then(|| {
            Reply::json(&json!({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}))
        })
    });
    let out = apifetch()
        .arg(server.url("/graphql"))
        .args(["--graphql", NODES])
        .assert()
        .success();
    assert_eq!(ids(&out.get_output().stdout), expected_ids(RECORDS));
    assert_eq!(server.requests().len(), 4, "page 2 asked twice");

    let server = github_graphql(|n| {
        (n == 1).then(|| {
            Reply::json(&json!({"data": null, "errors": [{"message": "Field 'x' doesn't exist", "extensions": {"code": "undefinedField"}}]}))
        })
    });
    apifetch()
        .arg(server.url("/graphql"))
        .args(["--graphql", NODES])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "GraphQL error: Field 'x' doesn't exist (undefinedField)",
        ));
    assert_eq!(server.requests().len(), 2, "not retried");
}

#[test]
fn a_repeated_end_cursor_is_a_loop() {
    let server = Server::start(|_| {
        Reply::json(&json!({"data": {"items": {"pageInfo": {"hasNextPage": true, "endCursor": "same"}, "nodes": [{"id": 1}]}}}))
    })
    .unwrap();
    apifetch()
        .arg(server.url("/graphql"))
        .args(["--graphql", "query($after: String) { items(after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } }"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("pagination loop"));
}

#[test]
fn an_interrupted_post_run_resumes_to_the_same_bytes() {
    let refuse = Arc::new(AtomicBool::new(true));
    let server = notion_refusing(Arc::clone(&refuse));
    let dir = tempfile::tempdir().unwrap();
    let (whole, out) = (dir.path().join("whole.csv"), dir.path().join("out.csv"));
    let run = |path: &std::path::Path, extra: &[&str]| {
        apifetch()
            .arg(server.url("/q"))
            .args(["-d", r#"{"filter": {"property": "done"}}"#, "--out"])
            .arg(path)
            .args(extra)
            .assert()
    };
    run(&out, &[])
        .code(3)
        .stderr(predicate::str::contains("--resume"));
    refuse.store(false, Ordering::SeqCst);
    let before = server.requests().len();
    run(&out, &["--resume"]).success();
    assert_eq!(
        server.requests()[before].json()["start_cursor"],
        "c3",
        "resumed at page 2"
    );
    run(&whole, &[]).success();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&whole).unwrap());
    assert_eq!(ids(&std::fs::read(&out).unwrap()), expected_ids(RECORDS));
}

// Looking before fetching.

#[test]
fn a_probe_writes_nothing_and_prints_flags_that_fetch_everything() {
    let server = Server::start(api(page_from_0("page"), |w| {
        Reply::json(
            &json!({"content": w.records, "number": w.offset / PER_PAGE, "totalPages": 3, "totalElements": RECORDS}),
        )
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let probe = apifetch()
        .arg(server.url("/items"))
        .arg("--probe")
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&probe.get_output().stdout).to_string();
    assert_eq!(server.requests().len(), 1, "only the first page");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no data written"
    );
    assert!(
        printed.contains("records     3 on the first page at /content"),
        "{printed}"
    );
    assert!(printed.contains("total       7 records"), "{printed}");
    assert!(printed.contains("columns     id, name, meta"), "{printed}");
    let flags = printed
        .lines()
        .find_map(|l| l.strip_prefix("to skip detection: "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert_eq!(
        flags,
        "--paginate page --page-param page --start-page 0 --records /content"
    );
    let before = server.requests().len();
    let run = apifetch()
        .arg(server.url("/items"))
        .args(flags.split(' '))
        .assert()
        .success();
    assert_eq!(ids(&run.get_output().stdout), expected_ids(RECORDS));
    assert_eq!(server.requests().len() - before, 3);
}

#[test]
fn a_dry_run_sends_nothing_and_prints_a_curl_line_with_secrets_masked() {
    let server = Server::start(|_| Reply::json(&json!([]))).unwrap();
    let out = apifetch()
        .arg(server.url("/items?api_key=k3y&q=a b"))
        .args(["-H", "Authorization: Bearer s3cret", "-H", "X-Trace: t1"])
        .args(["-d", r#"{"size": 2}"#, "--dry-run"])
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert_eq!(server.requests().len(), 0);
    assert!(
        !printed.contains("s3cret") && !printed.contains("k3y"),
        "{printed}"
    );
    assert!(printed.starts_with("curl -X POST '"), "{printed}");
    assert!(printed.contains("-H 'authorization: ***'"), "{printed}");
    assert!(printed.contains("-H 'x-trace: t1'"), "{printed}");
    assert!(
        printed.trim_end().ends_with(r#"--data '{"size":2}'"#),
        "{printed}"
    );
}
