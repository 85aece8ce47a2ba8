//! What the first response says about pagination, in the places well-known APIs and server
//! frameworks say it: how to ask for the next page, and in which parameter.
//!
//! Detection only reads; it returns what it found and why ([`Found`]), and the paginator
//! logs it and acts on it. Parameter names come from what the API showed (its links, the
//! fields it echoes, the name its cursor field implies) or from the user's flags; where a
//! name is a guess, the other names known for that field follow it, to be tried in turn
//! only if the API is seen to ignore the first.

use reqwest::header::HeaderMap;
use serde_json::Value;
use serde_json::value::RawValue;
use url::Url;

use super::totals::count;
use super::{CursorSource, Style, link, shorten};
use crate::error::Error;
use crate::paginate::Settings;
use crate::shape::records::{self, Page};

/// Where APIs put a next-page URL in the body, tried in order (`next_url` before `next`:
/// Datasette sends a bare token in `next` beside the URL).
const NEXT_POINTERS: &[&str] = &[
    "/next_url",
    "/next_page_url",
    "/next",
    "/links/next",
    "/links/next/href",
    "/_links/next/href",
    "/paging/next",
    "/paging/next/link",
    "/@odata.nextLink",
    "/odata.nextLink",
    "/nextLink",
    "/nextRecordsUrl",
    "/next_page",
    "/nextPage",
    "/pagination/next",
    "/pagination/next_url",
    "/pagination/links/next",
    "/meta/next",
    "/meta/next_url",
    "/meta/links/next",
    "/meta/pagination/links/next",
];

/// Where APIs put a cursor, and the parameters such a cursor is sent back in, most likely
/// first (Google's `nextPageToken` goes back as `pageToken`, Jira's as `nextPageToken`).
const CURSOR_POINTERS: &[(&str, &[&str])] = &[
    ("/next_cursor", &["cursor", "start_cursor", "next_cursor"]),
    ("/nextCursor", &["cursor", "nextCursor"]),
    ("/cursor", &["cursor"]),
    ("/next_page_token", &["page_token", "next_page_token"]),
    ("/nextPageToken", &["pageToken", "nextPageToken"]),
    ("/next_token", &["next_token", "pagination_token"]),
    ("/continuationToken", &["continuationToken"]),
    ("/continuation_token", &["continuation_token"]),
    ("/meta/next_token", &["pagination_token", "next_token"]),
    ("/meta/next_cursor", &["cursor"]),
    ("/meta/nextCursor", &["cursor"]),
    ("/pagination/next_cursor", &["cursor"]),
    ("/pagination/nextCursor", &["cursor"]),
    ("/response_metadata/next_cursor", &["cursor"]),
    ("/paging/next/after", &["after"]),
    ("/paging/cursors/after", &["after"]),
    // Airtable: a string token (a number here is an offset echo, below).
    ("/offset", &["offset"]),
    // A bare token where others put a URL (a URL here was taken as a next URL above).
    ("/next", &["next", "cursor", "_next"]),
];

/// Notion's list object sends `next_cursor` back as `start_cursor`.
const NOTION_PARAMS: &[&str] = &["start_cursor", "cursor"];

/// A number echoed for the page just served, and the parameter that asks for a page.
const PAGE_POINTERS: &[(&str, &[&str])] = &[
    ("/page", &["page"]),
    ("/current_page", &["page", "current_page"]),
    ("/currentPage", &["page", "currentPage"]),
    ("/page_number", &["page_number", "page"]),
    ("/pageNumber", &["pageNumber", "page"]),
    ("/page/number", &["page"]),
    ("/meta/current_page", &["page"]),
    ("/meta/page", &["page"]),
    ("/meta/pagination/page", &["page", "pagination[page]"]),
    ("/meta/pagination/current_page", &["page"]),
    ("/pagination/page", &["page"]),
    ("/pagination/current_page", &["page"]),
    ("/pagination/currentPage", &["page"]),
];

/// Spring Data's page object echoes its 0-based page as `number`, a name too common to
/// trust unless its page totals stand beside it.
const SPRING_NUMBER: &str = "/number";
const SPRING_TOTALS: &[&str] = &["/totalPages", "/totalElements"];

/// The number of the next page, given outright (Kaminari, many hand-written APIs).
const NEXT_PAGE_POINTERS: &[&str] = &[
    "/next",
    "/next_page",
    "/nextPage",
    "/meta/next_page",
    "/pagination/next_page",
];

/// A numeric offset echoed back, and the parameter that asks for one (Feathers echoes
/// `skip` and reads `$skip`; Jira echoes and reads `startAt`).
const OFFSET_POINTERS: &[(&str, &[&str])] = &[
    ("/offset", &["offset"]),
    ("/meta/offset", &["offset"]),
    ("/pagination/offset", &["offset"]),
    ("/startAt", &["startAt"]),
    ("/start", &["start"]),
    ("/skip", &["skip", "$skip"]),
];

/// Booleans that are true while more pages follow.
const MORE_POINTERS: &[&str] = &[
    "/has_more",
    "/hasMore",
    "/has_next",
    "/hasNext",
    "/hasNextPage",
    "/meta/has_more",
    "/meta/hasMore",
    "/meta/has_next",
    "/pagination/has_more",
    "/pagination/hasMore",
    "/pagination/has_next",
    "/pageInfo/hasNextPage",
];

/// Booleans that are true on the last page (Jira's `isLast`, Spring's `last`,
/// Salesforce's `done`).
const LAST_POINTERS: &[&str] = &["/isLast", "/is_last", "/last", "/done"];

/// How the first response says the next page is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Follow `Link: rel="next"`.
    Link,
    /// Follow the URL at this pointer.
    Next { pointer: String },
    /// Send the cursor read from `from` back in the first of `params` that works.
    Cursor {
        from: CursorSource,
        params: Vec<String>,
    },
    /// Page numbers: `current` is the number of the page just read, when known.
    Page {
        params: Vec<String>,
        current: Option<u64>,
    },
    /// Record offsets: `start` is the offset of the page just read.
    Offset { params: Vec<String>, start: u64 },
    /// More follows, but nothing says how to ask for it: page numbers in `page`, and if
    /// the API ignores them, offsets in `offset`.
    Guess { page: String, offset: String },
    /// The response shows no way to a next page and no sign that there is one.
    Once,
}

/// What detection decided, and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub found: Found,
    pub why: String,
}

fn decided(found: Found, why: impl Into<String>) -> Decision {
    Decision {
        found,
        why: why.into(),
    }
}

/// Whether this page says more pages follow: `Some(false)` on the last page.
pub fn more(pages: &Settings, page: &Page) -> Option<bool> {
    if let Some(pointer) = &pages.has_more {
        return boolean(page, pointer);
    }
    MORE_POINTERS
        .iter()
        .find_map(|p| boolean(page, p))
        .or_else(|| {
            LAST_POINTERS
                .iter()
                .find_map(|p| boolean(page, p).map(|last| !last))
        })
}

/// Decides from the first response how to reach the next page, among what `style`
/// allows. `url` is the URL that was fetched; `records` the page's records; `more_stated`
/// whether the response says more records or pages follow (`has_more`, a total above what
/// arrived); `start` the page number or offset the user's URL or flags asked for.
pub fn style(
    style: Style,
    pages: &Settings,
    headers: &HeaderMap,
    page: &Page,
    records: &[&str],
    url: &Url,
    more_stated: bool,
) -> Result<Decision, Error> {
    match style {
        Style::Auto => Ok(auto(pages, headers, page, records, url, more_stated)),
        Style::Link if link::find(headers, "next", url).is_some() || link::any(headers) => {
            Ok(decided(Found::Link, "Link header (--paginate link)"))
        }
        Style::Next => next_url(page).ok_or_else(|| nothing(style, page, headers)),
        Style::Cursor => cursor(pages, page).ok_or_else(|| nothing(style, page, headers)),
        Style::Page => Ok(page_numbers(pages, page, url)),
        Style::Offset => Ok(offsets(pages, page, url)),
        Style::Link => Err(nothing(style, page, headers)),
        Style::None => Ok(decided(Found::Once, "--paginate none makes one request")),
    }
}

fn auto(
    pages: &Settings,
    headers: &HeaderMap,
    page: &Page,
    records: &[&str],
    url: &Url,
    more_stated: bool,
) -> Decision {
    if link::find(headers, "next", url).is_some() {
        return decided(Found::Link, "Link header");
    }
    if let Some(found) = next_url(page)
        .or_else(|| cursor(pages, page))
        .or_else(|| stripe(page, records))
        .or_else(|| next_page_number(page, url))
        .or_else(|| echoed_offset(page))
        .or_else(|| echoed_page(page))
    {
        return found;
    }
    if query_number(url, &pages.page_param).is_some() {
        return page_numbers(pages, page, url);
    }
    if query_number(url, &pages.offset_param).is_some() {
        return offsets(pages, page, url);
    }
    if more_stated {
        return decided(
            Found::Guess {
                page: pages.page_param.clone(),
                offset: pages.offset_param.clone(),
            },
            format!(
                "page numbers in `{}` (or else offsets in `{}`): the response says more \
                 records follow but names no next page, cursor, page number or offset",
                pages.page_param, pages.offset_param
            ),
        );
    }
    decided(
        Found::Once,
        "none: the response has no next link, cursor, page number, offset, has_more or \
         total, so it is taken as the whole result (if the API has more pages, name its \
         style with --paginate)",
    )
}

fn next_url(page: &Page) -> Option<Decision> {
    NEXT_POINTERS.iter().find_map(|pointer| {
        let why = match page.value(pointer)? {
            Value::String(s) if looks_like_url(&s) => format!("next URL at {pointer}"),
            Value::Null => format!("next URL at {pointer} (none: this is the last page)"),
            _ => return None,
        };
        Some(decided(
            Found::Next {
                pointer: pointer.to_string(),
            },
            why,
        ))
    })
}

fn cursor(pages: &Settings, page: &Page) -> Option<Decision> {
    let notion = page.value("/object") == Some(Value::String("list".into()));
    CURSOR_POINTERS.iter().find_map(|(pointer, params)| {
        match page.value(pointer)? {
            // A number there is an offset or a page number (below).
            Value::Number(_) if ["/offset", "/next"].contains(pointer) => return None,
            Value::String(_) | Value::Number(_) | Value::Null => {}
            _ => return None,
        }
        let params = match &pages.cursor_param {
            Some(param) => vec![param.clone()],
            None if notion && *pointer == "/next_cursor" => owned(NOTION_PARAMS),
            None => owned(params),
        };
        let why = format!("cursor at {pointer}, sent back as `{}`", params[0]);
        Some(decided(
            Found::Cursor {
                from: CursorSource::Body(pointer.to_string()),
                params,
            },
            why,
        ))
    })
}

/// Stripe's list object: `has_more`, and the last record's `id` sent as `starting_after`.
/// Its `url` tells it from look-alikes that page by number (express-paginate).
fn stripe(page: &Page, records: &[&str]) -> Option<Decision> {
    let list = page.value("/object") == Some(Value::String("list".into()))
        && matches!(page.value("/url"), Some(Value::String(_)));
    let last_id = records.last().and_then(|r| records::lookup(r, "/id"));
    (list && boolean(page, "/has_more").is_some() && last_id.is_some()).then(|| {
        decided(
            Found::Cursor {
                from: CursorSource::LastRecord("/id".into()),
                params: owned(&["starting_after"]),
            },
            "a list object with has_more: the last record's /id, sent as `starting_after`",
        )
    })
}

/// The number of the next page, given outright; its parameter is the one in the URL that
/// holds the number before it (json-server's `_page`), or else `page`.
fn next_page_number(page: &Page, url: &Url) -> Option<Decision> {
    NEXT_PAGE_POINTERS.iter().find_map(|pointer| {
        let next = page.value(pointer).as_ref().and_then(count)?;
        let current = next.checked_sub(1);
        let param = url
            .query_pairs()
            .find(|(_, v)| v.parse::<u64>().ok() == current)
            .map_or("page".to_string(), |(k, _)| k.into_owned());
        let why = format!("page numbers in `{param}`, the next one given at {pointer}");
        Some(decided(
            Found::Page {
                params: vec![param],
                current,
            },
            why,
        ))
    })
}

fn echoed_offset(page: &Page) -> Option<Decision> {
    OFFSET_POINTERS.iter().find_map(|(pointer, params)| {
        let Value::Number(n) = page.value(pointer)? else {
            return None;
        };
        Some(decided(
            Found::Offset {
                params: owned(params),
                start: n.as_u64()?,
            },
            format!("offsets in `{}`, as {pointer} echoes", params[0]),
        ))
    })
}

fn echoed_page(page: &Page) -> Option<Decision> {
    let spring = SPRING_TOTALS.iter().any(|p| page.raw(p).is_some());
    let spring = spring.then_some((SPRING_NUMBER, &["page"][..]));
    PAGE_POINTERS
        .iter()
        .copied()
        .chain(spring)
        .find_map(|(pointer, params)| {
            let Value::Number(n) = page.value(pointer)? else {
                return None;
            };
            let current = n.as_u64()?;
            Some(decided(
                Found::Page {
                    params: owned(params),
                    current: Some(current),
                },
                format!(
                    "page numbers in `{}`, as {pointer} echoes (this was page {current})",
                    params[0]
                ),
            ))
        })
}

/// Page numbers in `--page-param`, starting from the number the URL or `--start-page`
/// asked for, or else the one the response echoes.
fn page_numbers(pages: &Settings, page: &Page, url: &Url) -> Decision {
    let param = &pages.page_param;
    let current = query_number(url, param).or_else(|| match echoed_page(page)?.found {
        Found::Page { current, .. } => current,
        _ => None,
    });
    let why = match current {
        Some(n) => format!("page numbers in `{param}` (this was page {n})"),
        None => format!("page numbers in `{param}`"),
    };
    decided(
        Found::Page {
            params: vec![param.clone()],
            current,
        },
        why,
    )
}

/// Offsets in `--offset-param`, from the offset the URL asked for, or else the one the
/// response echoes, or else 0.
fn offsets(pages: &Settings, page: &Page, url: &Url) -> Decision {
    let param = &pages.offset_param;
    let start = query_number(url, param)
        .or_else(|| match echoed_offset(page)?.found {
            Found::Offset { start, .. } => Some(start),
            _ => None,
        })
        .unwrap_or(0);
    decided(
        Found::Offset {
            params: vec![param.clone()],
            start,
        },
        format!("offsets in `{param}`"),
    )
}

/// The error for an explicit style, or a pointer flag, that finds nothing on the first
/// page: a flag that names something absent is a mistake to fix, not a hint to ignore.
fn nothing(style: Style, page: &Page, headers: &HeaderMap) -> Error {
    let (looked, flag) = match style {
        Style::Next => (list(NEXT_POINTERS.iter().copied()), "--next-path POINTER"),
        Style::Link => ("a Link header".to_string(), "--paginate auto"),
        _ => (
            list(CURSOR_POINTERS.iter().map(|(p, _)| *p)),
            "--cursor-path POINTER",
        ),
    };
    Error::Usage(format!(
        "--paginate {}: the first response has nothing at {looked}; {}; name it with {flag}",
        style_name(style),
        suspects(page, headers)
    ))
}

/// The error for a pointer flag that points at nothing in the first response.
pub fn absent(flag: &str, pointer: &str, page: &Page, headers: &HeaderMap) -> Error {
    Error::Usage(format!(
        "{flag} {pointer}: the first response has nothing there; {}",
        suspects(page, headers)
    ))
}

/// Checks that every pointer flag names something in the first response (a `null` there
/// counts: it means "none, this is the last page").
pub fn check_pointers(pages: &Settings, page: &Page, headers: &HeaderMap) -> Result<(), Error> {
    let flags = [
        ("--next-path", pages.next_path.as_deref()),
        ("--has-more", pages.has_more.as_deref()),
        ("--total", pages.total.as_deref()),
        (
            "--cursor-path",
            match &pages.cursor {
                Some(CursorSource::Body(pointer)) => Some(pointer.as_str()),
                _ => None,
            },
        ),
    ];
    for (flag, pointer) in flags {
        if let Some(pointer) = pointer.filter(|p| page.raw(p).is_none()) {
            return Err(absent(flag, pointer, page, headers));
        }
    }
    if let Some(pointer) = &pages.has_more {
        if boolean(page, pointer).is_none() {
            return Err(Error::Usage(format!(
                "--has-more {pointer}: the first response has {} there, not true or false",
                page.raw(pointer).map_or("nothing", |r| r.get())
            )));
        }
    }
    Ok(())
}

/// Where APIs echo the page size they served; the last part of the pointer is the name
/// they read it from.
const SIZE_POINTERS: &[&str] = &[
    "/per_page",
    "/perPage",
    "/page_size",
    "/pageSize",
    "/size",
    "/limit",
    "/maxResults",
    "/page/size",
    "/meta/per_page",
    "/meta/page_size",
    "/meta/pagination/per_page",
    "/meta/pagination/pageSize",
    "/pagination/per_page",
    "/pagination/page_size",
    "/pagination/limit",
];

/// Checks that `--page-size` reached the API: a first response that echoes another size
/// under another name shows the size went out in a parameter the API does not read (or,
/// worse, read as a filter). An echo under the same name is the API's cap, worth a warning.
pub fn check_size(pages: &Settings, page: &Page) -> Result<(), Error> {
    let Some(asked) = pages.page_size else {
        return Ok(());
    };
    let sent = match pages.style {
        Style::Offset => &pages.limit_param,
        _ => &pages.size_param,
    };
    let Some((pointer, served)) = SIZE_POINTERS
        .iter()
        .find_map(|p| Some((*p, page.value(p).as_ref().and_then(count)?)))
    else {
        return Ok(());
    };
    let name = pointer.rsplit('/').next().unwrap_or_default();
    match (served == asked, name == sent) {
        (true, _) => Ok(()),
        (false, true) => {
            tracing::warn!("the API serves at most {served} records a page (asked for {asked})");
            Ok(())
        }
        (false, false) => Err(Error::Usage(format!(
            "--page-size {asked} went out as `{sent}`, but the API answered with {pointer} = \
             {served}: it reads its page size from another parameter; pass --size-param NAME \
             (--limit-param with --paginate offset), or leave --page-size out"
        ))),
    }
}

/// What the response has that looks like pagination, for messages that must say where to
/// point a flag instead.
pub fn suspects(page: &Page, headers: &HeaderMap) -> String {
    const HINTS: &[&str] = &[
        "next", "cursor", "token", "after", "more", "last", "total", "count", "page", "offset",
        "skip", "start", "link", "continu", "done",
    ];
    let fields = page.outline();
    let named = |(pointer, _): &&(String, Value)| {
        let name = pointer
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_lowercase();
        HINTS.iter().any(|hint| name.contains(hint))
    };
    // The fields named like pagination, or, where none is, every field (few enough to read).
    let shown: Vec<&(String, Value)> = match fields.iter().filter(named).count() {
        0 => fields.iter().take(12).collect(),
        _ => fields.iter().filter(named).collect(),
    };
    let mut found: Vec<String> = shown
        .into_iter()
        .map(|(pointer, value)| format!("{pointer} = {}", shorten(&value.to_string())))
        .collect();
    if link::any(headers) {
        found.push("a Link header".into());
    }
    for name in ["x-total-count", "x-next-page", "x-pagination"] {
        if headers.contains_key(name) {
            found.push(format!("a {name} header"));
        }
    }
    match found.is_empty() {
        true => "it has no other fields".into(),
        false => format!("it has: {}", found.join(", ")),
    }
}

/// The parameter a user-given cursor is sent back in: `--cursor-param`, or the name the
/// API that uses this field expects, or `cursor`.
pub fn cursor_params(pages: &Settings, from: &CursorSource) -> Vec<String> {
    if let Some(param) = &pages.cursor_param {
        return vec![param.clone()];
    }
    let known = match from {
        CursorSource::Body(pointer) => CURSOR_POINTERS
            .iter()
            .find(|(p, _)| p == pointer)
            .map(|(_, params)| *params),
        CursorSource::LastRecord(_) => None,
    };
    owned(known.unwrap_or(&["cursor"]))
}

/// A cursor as text: a non-empty string, or a number. `null`, `""` and anything else mean
/// there is no next page. A cursor the API sent percent-encoded is decoded, since it is
/// encoded again when it is put in the query.
pub fn cursor_text(raw: &RawValue) -> Option<String> {
    let text = match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::String(s) if !s.is_empty() => s,
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(percent_decoded(&text).unwrap_or(text))
}

/// A cursor as JSON text, for a request body: any value but `null`, `false` and `""`
/// (Elasticsearch's `search_after` is the last hit's `sort` array).
pub fn cursor_json(raw: &RawValue) -> Option<String> {
    match raw.get().trim() {
        "null" | "false" | "\"\"" => None,
        text => Some(text.to_string()),
    }
}

/// `text` decoded, if it holds percent escapes and nothing an encoded string cannot (a
/// space, a `%` that starts no escape).
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let escape = |i: usize| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    let percents = (0..bytes.len()).filter(|i| bytes[*i] == b'%');
    if !text.contains('%') || text.contains(' ') || !percents.into_iter().all(escape) {
        return None;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// Whether a string at a next-URL path is a URL rather than a cursor that happens to
/// live there: absolute, rooted, or relative with a query (cursors are base64 or
/// alphanumeric tokens, which never hold `?`).
fn looks_like_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || ["/", "?", "./", "../"].iter().any(|p| s.starts_with(p))
        || (s.contains('?') && !s.contains(char::is_whitespace))
}

fn boolean(page: &Page, pointer: &str) -> Option<bool> {
    match page.value(pointer)? {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

/// The number in query parameter `name` of `url`.
pub fn query_number(url: &Url, name: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn style_name(style: Style) -> String {
    clap::ValueEnum::to_possible_value(&style)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
