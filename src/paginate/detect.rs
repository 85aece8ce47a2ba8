//! What a response says about pagination, in the places well-known APIs say it: which
//! style it uses (for `--paginate auto`), whether there is more, and how much there is.

use reqwest::header::HeaderMap;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::{info, warn};
use url::Url;

use super::{CursorSource, Mode, Style, Totals, link, shorten};
use crate::config::Pages;
use crate::records::Page;

/// Where APIs put a next-page URL in the body, tried in order.
const NEXT_POINTERS: &[&str] = &[
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
    "/pagination/next",
];

/// Where APIs put a cursor, and the parameter they expect it back in.
const CURSOR_POINTERS: &[(&str, &str)] = &[
    ("/next_cursor", "cursor"),
    ("/cursor", "cursor"),
    ("/next_page_token", "page_token"),
    ("/nextPageToken", "pageToken"),
    ("/meta/next_cursor", "cursor"),
    ("/pagination/next_cursor", "cursor"),
    ("/response_metadata/next_cursor", "cursor"),
    ("/paging/next/after", "after"),
    ("/paging/cursors/after", "after"),
    // Airtable: a string token (a number here is an offset echo, below).
    ("/offset", "offset"),
];

/// A numeric offset echoed back: the API paginates by offset.
const OFFSET_POINTERS: &[&str] = &["/offset", "/meta/offset", "/pagination/offset"];

const HAS_MORE_POINTERS: &[&str] = &[
    "/has_more",
    "/hasMore",
    "/meta/has_more",
    "/pagination/has_more",
];

const TOTAL_POINTERS: &[&str] = &[
    "/total",
    "/total_count",
    "/totalCount",
    "/meta/total",
    "/meta/total_count",
    "/pagination/total",
];

const TOTAL_PAGES_POINTERS: &[&str] = &[
    "/total_pages",
    "/totalPages",
    "/meta/total_pages",
    "/pagination/total_pages",
];

/// The default `--cursor-param`, when the cursor's field does not imply another.
const DEFAULT_CURSOR_PARAM: &str = "cursor";

/// Decides the style from the first response, among the candidates `style` allows.
/// `page_numbered` tells whether a `Link` next URL only moves to the following page
/// number (GitHub, json-server): such links are followed as page numbers, which also lets
/// their `rel="last"` tell how many pages there are.
pub(super) fn style(
    style: Style,
    pages: &Pages,
    headers: &HeaderMap,
    page: &Page,
    url: &Url,
    page_numbered: impl FnOnce(&Url) -> bool,
) -> Mode {
    let auto = style == Style::Auto;
    if auto {
        if let Some(next) = link::find(headers, "next", url) {
            if page_numbered(&next) {
                info!(
                    "pagination: link header with page numbers in `{}`",
                    pages.page_param
                );
                return Mode::Page;
            }
            info!("pagination: link header");
            return Mode::Link;
        }
    }
    if auto || style == Style::Next {
        for pointer in NEXT_POINTERS {
            match page.value(pointer) {
                Some(Value::String(s)) if looks_like_url(&s) => {
                    info!("pagination: next URL at {pointer}");
                    return Mode::Next {
                        pointer: pointer.to_string(),
                    };
                }
                Some(Value::Null) => {
                    info!("pagination: next URL at {pointer} (none: this is the last page)");
                    return Mode::Next {
                        pointer: pointer.to_string(),
                    };
                }
                Some(Value::String(s)) => warn!(
                    "pagination: {pointer} holds `{}`, which is not a URL; if it is a cursor \
                     pass --cursor-path {pointer} --cursor-param NAME",
                    shorten(&s)
                ),
                _ => {}
            }
        }
    }
    if auto || style == Style::Cursor {
        for (pointer, param) in CURSOR_POINTERS {
            let found = match page.value(pointer) {
                Some(Value::Number(_)) => *pointer != "/offset",
                Some(Value::String(_) | Value::Null) => true,
                _ => false,
            };
            if found {
                let param = pages.cursor_param.as_deref().unwrap_or(param);
                info!(
                    "pagination: cursor at {pointer}, sent back as `{param}` \
                     (--cursor-param NAME if the API expects another name)"
                );
                return Mode::Cursor {
                    param: param.to_string(),
                    from: CursorSource::Body(pointer.to_string()),
                };
            }
        }
    }
    if auto {
        if let Some(pointer) = OFFSET_POINTERS
            .iter()
            .find(|p| matches!(page.value(p), Some(Value::Number(_))))
        {
            info!(
                "pagination: offsets (`{}`, `{}`), as {pointer} suggests",
                pages.offset_param, pages.limit_param
            );
            return Mode::Offset;
        }
        info!(
            "pagination: page numbers (`{}`, `{}`)",
            pages.page_param, pages.size_param
        );
        return Mode::Page;
    }
    let (flag, tried) = match style {
        Style::Next => ("--next-path", NEXT_POINTERS.join(", ")),
        _ => (
            "--cursor-path",
            CURSOR_POINTERS
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    warn!("pagination: nothing at {tried}; stopping after one page (pass {flag} POINTER)");
    Mode::Once
}

/// `has_more` (or `--has-more`), when the page has it.
pub(super) fn has_more(pages: &Pages, page: &Page) -> Option<bool> {
    let pointers = match &pages.has_more {
        Some(pointer) => std::slice::from_ref(pointer),
        None => return first_bool(page, HAS_MORE_POINTERS),
    };
    first_bool(page, pointers)
}

/// The record and page totals this page states, where it states them.
pub(super) fn totals(pages: &Pages, headers: &HeaderMap, page: &Page, url: &Url) -> Totals {
    let records = match &pages.total {
        Some(pointer) => page.value(pointer).as_ref().and_then(count),
        None => TOTAL_POINTERS
            .iter()
            .find_map(|p| page.value(p).as_ref().and_then(count))
            .or_else(|| {
                headers
                    .get("x-total-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
            }),
    };
    let page_total = TOTAL_PAGES_POINTERS
        .iter()
        .find_map(|p| page.value(p).as_ref().and_then(count))
        .or_else(|| {
            let last = link::find(headers, "last", url)?;
            let number: u64 = query_value(&last, &pages.page_param)?.parse().ok()?;
            Some((number + 1).saturating_sub(pages.start_page))
        });
    Totals {
        records,
        pages: page_total,
    }
}

/// The parameter a cursor is sent back in: `--cursor-param`, or the name the API that
/// uses this field expects (`nextPageToken` → `pageToken`), or `cursor`.
pub(super) fn cursor_param(pages: &Pages, from: &CursorSource) -> String {
    if let Some(param) = &pages.cursor_param {
        return param.clone();
    }
    let known = match from {
        CursorSource::Body(pointer) => CURSOR_POINTERS
            .iter()
            .find(|(p, _)| p == pointer)
            .map(|(_, param)| *param),
        CursorSource::LastRecord(_) => None,
    };
    known.unwrap_or(DEFAULT_CURSOR_PARAM).to_string()
}

/// A cursor as text: a non-empty string, or a number. `null`, `""` and anything else mean
/// there is no next page.
pub(super) fn cursor_text(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
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

fn first_bool(page: &Page, pointers: &[impl AsRef<str>]) -> Option<bool> {
    pointers.iter().find_map(|p| match page.value(p.as_ref()) {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    })
}

/// A count sent as a number or a numeric string.
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
