//! How much the API says there is: a record total or a page count, wherever well-known APIs
//! and frameworks state it (body fields, `X-Total-Count` and its cousins, `Content-Range`,
//! a JSON `X-Pagination` header, `Link rel="last"`). A run is checked against the total at
//! its end, so a short delivery fails instead of passing as success.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::link;
use crate::shape::records::Page;

/// Body fields holding the number of records in the whole result.
const RECORD_POINTERS: &[&str] = &[
    "/total",
    "/total_count",
    "/totalCount",
    "/totalElements",
    "/total_items",
    "/totalItems",
    "/total_results",
    "/totalResults",
    "/total_entries",
    "/totalSize",
    "/meta/total",
    "/meta/total_count",
    "/meta/totalCount",
    "/meta/pagination/total",
    "/meta/page/total",
    "/page/totalElements",
    "/pagination/total",
    "/pagination/total_count",
    "/pagination/totalCount",
];

/// `count` is a total in Django REST framework, Zendesk and Django Ninja, but the size of
/// the page in some other APIs: it is taken as a total only where it cannot be the latter.
const AMBIGUOUS_COUNT: &str = "/count";

/// Body fields holding the number of pages (or, for 1-based APIs, the last page's number).
const PAGE_POINTERS: &[&str] = &[
    "/total_pages",
    "/totalPages",
    "/num_pages",
    "/pageCount",
    "/pages",
    "/last_page",
    "/page/totalPages",
    "/meta/total_pages",
    "/meta/totalPages",
    "/meta/last_page",
    "/meta/pagination/total_pages",
    "/meta/pagination/pageCount",
    "/pagination/total_pages",
    "/pagination/totalPages",
    "/pagination/pages",
];

/// Headers holding the record total as a bare number.
const RECORD_HEADERS: &[&str] = &[
    "x-total-count",
    "x-total",
    "x-wp-total",
    "x-pagination-total-count",
];

const PAGE_HEADERS: &[&str] = &[
    "x-total-pages",
    "x-wp-totalpages",
    "x-pagination-page-count",
];

/// A total and where it was stated, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stated {
    pub count: u64,
    pub source: String,
}

/// What one response says about the size of the whole result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub records: Option<Stated>,
    /// The number of pages; for a `Link rel="last"` with a page number, that number.
    pub pages: Option<u64>,
}

/// Reads the totals a response states. `--total` (`pointer`) replaces the body fields;
/// `page_len` is how many records this response holds, `more` whether it says more follow.
pub fn read(
    pointer: Option<&str>,
    headers: &HeaderMap,
    page: &Page,
    url: &Url,
    page_len: u64,
    more: bool,
) -> Totals {
    let records = match pointer {
        Some(pointer) => at(page, pointer),
        None => RECORD_POINTERS
            .iter()
            .find_map(|p| at(page, p))
            .or_else(|| {
                at(page, AMBIGUOUS_COUNT)
                    .filter(|s| s.count > page_len || (!more && s.count == page_len))
            })
            .or_else(|| header_records(headers)),
    };
    let pages = PAGE_POINTERS
        .iter()
        .find_map(|p| page.value(p).as_ref().and_then(count))
        .or_else(|| PAGE_HEADERS.iter().find_map(|h| header_number(headers, h)))
        .or_else(|| {
            x_pagination(headers, &["TotalPages", "totalPages", "total_pages"]).map(|s| s.count)
        })
        .or_else(|| last_link_page(headers, url));
    Totals { records, pages }
}

fn at(page: &Page, pointer: &str) -> Option<Stated> {
    let count = count(&page.value(pointer)?)?;
    Some(Stated {
        count,
        source: format!("`{pointer}` in the body"),
    })
}

fn header_records(headers: &HeaderMap) -> Option<Stated> {
    RECORD_HEADERS
        .iter()
        .find_map(|name| {
            header_number(headers, name).map(|count| Stated {
                count,
                source: format!("the {name} header"),
            })
        })
        .or_else(|| content_range(headers))
        .or_else(|| {
            x_pagination(
                headers,
                &["TotalCount", "totalCount", "total", "TotalItemCount"],
            )
        })
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Content-Range: items 0-24/1000` (PostgREST, react-admin back ends); `/*` says nothing.
fn content_range(headers: &HeaderMap) -> Option<Stated> {
    let value = headers.get("content-range")?.to_str().ok()?;
    let count = value.rsplit_once('/')?.1.trim().parse().ok()?;
    Some(Stated {
        count,
        source: "the Content-Range header".into(),
    })
}

/// ASP.NET's `X-Pagination: {"TotalCount": 100, "TotalPages": 10, …}`.
fn x_pagination(headers: &HeaderMap, keys: &[&str]) -> Option<Stated> {
    let value: Value = serde_json::from_slice(headers.get("x-pagination")?.as_bytes()).ok()?;
    let count = keys.iter().find_map(|k| value.get(k).and_then(count))?;
    Some(Stated {
        count,
        source: "the X-Pagination header".into(),
    })
}

/// The page number of `Link rel="last"`, when its query has exactly one number that differs
/// from the `rel="next"` link's (GitHub, GitLab, json-server).
fn last_link_page(headers: &HeaderMap, url: &Url) -> Option<u64> {
    let last = link::find(headers, "last", url)?;
    let next = link::find(headers, "next", url)?;
    let numbers = |u: &Url| -> Vec<(String, u64)> {
        u.query_pairs()
            .filter_map(|(k, v)| Some((k.into_owned(), v.parse().ok()?)))
            .collect()
    };
    let next = numbers(&next);
    let mut differing = numbers(&last)
        .into_iter()
        .filter(|pair| !next.contains(pair));
    let (_, number) = differing.next()?;
    differing.next().is_none().then_some(number)
}

/// A count sent as a number or a numeric string.
pub fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn read_from(body: &str, headers: &[(&'static str, &str)]) -> Totals {
        let page = Page::parse(body).unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        read(
            None,
            &map,
            &page,
            &Url::parse("http://h/x").unwrap(),
            2,
            true,
        )
    }

    #[test]
    fn record_totals_come_from_the_body_and_the_headers_real_apis_use() {
        type Headers<'a> = &'a [(&'static str, &'a str)];
        let cases: &[(&str, Headers, u64)] = &[
            (r#"{"data": [1, 2], "total": 9}"#, &[], 9),
            (r#"{"content": [1, 2], "totalElements": "9"}"#, &[], 9),
            (
                r#"{"data": [1, 2], "meta": {"pagination": {"total": 9}}}"#,
                &[],
                9,
            ),
            (r#"{"results": [1, 2], "count": 9}"#, &[], 9),
            ("[1, 2]", &[("x-total-count", "9")], 9),
            ("[1, 2]", &[("x-wp-total", "9")], 9),
            ("[1, 2]", &[("content-range", "items 0-1/9")], 9),
            (
                "[1, 2]",
                &[("x-pagination", r#"{"TotalCount": 9, "TotalPages": 5}"#)],
                9,
            ),
        ];
        for (body, headers, want) in cases {
            let got = read_from(body, headers);
            assert_eq!(
                got.records.map(|s| s.count),
                Some(*want),
                "{body} {headers:?}"
            );
        }
    }

    #[test]
    fn a_count_that_may_be_the_page_size_is_not_a_total() {
        assert_eq!(
            read_from(r#"{"results": [1, 2], "count": 2}"#, &[]).records,
            None
        );
        assert_eq!(
            read_from("[1, 2]", &[("content-range", "0-1/*")]).records,
            None
        );
    }

    #[test]
    fn page_counts_come_from_fields_headers_and_the_last_link() {
        assert_eq!(
            read_from(r#"{"items": [1], "pages": 4}"#, &[]).pages,
            Some(4)
        );
        assert_eq!(read_from("[1]", &[("x-wp-totalpages", "4")]).pages, Some(4));
        let link = r#"<http://h/x?page=2&per_page=1>; rel="next", <http://h/x?page=4&per_page=1>; rel="last""#;
        assert_eq!(read_from("[1]", &[("link", link)]).pages, Some(4));
    }
}
