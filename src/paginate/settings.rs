//! What the command line says about pagination; anything it leaves out is learned from the
//! responses.

use crate::paginate::{CursorSource, Style};

/// The pagination flags, checked and narrowed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--paginate`, with `auto` already narrowed by the flags that imply a style.
    pub style: Style,
    pub page_param: String,
    pub size_param: String,
    /// `--page-size`: sent only when given.
    pub page_size: Option<u64>,
    /// `--start-page`: sent only when given; otherwise the URL's own page number, if any,
    /// or what the API shows, tells where the run starts.
    pub start_page: Option<u64>,
    pub max_pages: Option<u64>,
    pub offset_param: String,
    pub limit_param: String,
    /// `--cursor-path` or `--cursor-from-record`.
    pub cursor: Option<CursorSource>,
    pub cursor_param: Option<String>,
    pub next_path: Option<String>,
    pub has_more: Option<String>,
    pub total: Option<String>,
    pub max_records: Option<u64>,
    /// Whether `--max-records` or `--max-pages` could serve a user content with part of
    /// the result: not in an `--incremental` run, whose mark would pass records it never
    /// fetched, so a shortfall's advice leaves them out there.
    pub may_stop_short: bool,
    /// The JSON body every request carries (`--data`, or a GraphQL query with its
    /// variables); a `*_param` that is a JSON Pointer sets its value in here.
    pub body: Option<serde_json::Value>,
    /// A GraphQL query: its connection is found in the first response, and paged by the
    /// cursor variable.
    pub graphql: Option<Graphql>,
}

#[cfg(test)]
impl Settings {
    /// The settings the command line gives by default, with `style`: for unit tests.
    pub fn defaults(style: Style) -> Self {
        Settings {
            style,
            page_param: "page".into(),
            size_param: "per_page".into(),
            page_size: None,
            start_page: None,
            max_pages: None,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            cursor: None,
            cursor_param: None,
            next_path: None,
            has_more: None,
            total: None,
            max_records: None,
            may_stop_short: true,
            body: None,
            graphql: None,
        }
    }
}

/// How a GraphQL query pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphql {
    /// The variable the cursor goes into (`$after` in `after: $after`).
    pub cursor_var: Option<String>,
    /// The query pages backwards (`before:`, `hasPreviousPage`, `startCursor`).
    pub backward: bool,
}
