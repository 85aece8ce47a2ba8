//! Where the next page comes from, and when there are no more.
//!
//! Real APIs paginate in half a dozen ways ([`Style`]). With `--paginate auto` the first
//! response decides: a `Link: rel="next"` header, a next-page URL or a cursor at a path
//! well-known APIs use, an echoed numeric `offset`, or else page numbers. Whatever the
//! style, a run that would go round in circles (a URL or cursor seen before, a page
//! identical to the one before it) stops with [`Error::BadResponse`] instead of looping
//! until `--max-pages`.

mod detect;
mod guard;
mod link;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;
use url::Url;

use crate::config::Pages;
use crate::error::Error;
use crate::records::{self, Page};
pub use guard::Guard;

/// How an API hands out its pages (`--paginate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// Decided from the first response (logged at INFO).
    Auto,
    /// Page numbers: `page=1,2,3…` with a page size.
    Page,
    /// Record offsets: `offset=0,100,…` with `limit`, advancing by the records received.
    Offset,
    /// An opaque cursor from the body (or the last record) sent back as a parameter.
    Cursor,
    /// A next-page URL in the body.
    Next,
    /// A `Link: <…>; rel="next"` header.
    Link,
    /// One request.
    None,
}

/// Where a cursor is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", content = "pointer", rename_all = "snake_case")]
pub enum CursorSource {
    /// A JSON Pointer into the response body (`/next_cursor`, `/meta/next`).
    Body(String),
    /// A JSON Pointer into the last record of the page (keyset: Stripe's `starting_after`).
    LastRecord(String),
}

/// What the paginator decided after a page.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetch the next page.
    Continue,
    /// The API said there is nothing more, or `--max-records` was reached (the reason is
    /// for the log).
    Done(&'static str),
    /// `--max-pages` stopped the run while more pages may remain.
    Capped,
}

/// Where the next request starts: everything needed to continue a run later, given the
/// same configuration. Styles decided by `--paginate auto` are recorded here too (a
/// cursor's parameter and source, a next URL's pointer), so a resumed run does not have
/// to detect them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Page-number pagination: the number of the next page.
    Page { number: u64 },
    /// Offset pagination: the offset of the next page's first record.
    Offset { offset: u64 },
    /// The first request of a style whose later requests come from the responses (cursor,
    /// next URL, link, none): the URL as given.
    First,
    /// The first request's URL with `param=value`.
    Cursor {
        value: String,
        param: String,
        from: CursorSource,
    },
    /// A next-page URL taken from the body at `pointer`.
    Next { url: Url, pointer: String },
    /// A next-page URL taken from the `Link` header.
    Link { url: Url },
}

/// The style once decided, with what it needs to find the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Not decided yet: the first response picks among this style's candidates (`Auto`:
    /// all of them; `Cursor`/`Next`: the common paths of that style).
    Detect(Style),
    Page,
    Offset,
    Cursor {
        param: String,
        from: CursorSource,
    },
    Next {
        pointer: String,
    },
    Link,
    Once,
}

/// What the API said about the size of the whole result.
#[derive(Debug, Default)]
struct Totals {
    records: Option<u64>,
    /// Counted from `--start-page`.
    pages: Option<u64>,
}

#[derive(Debug)]
pub struct Paginator {
    base: Url,
    pages: Pages,
    mode: Mode,
    position: Position,
    fetched: u64,
    /// Records kept so far, including those of the run being resumed.
    records: u64,
    /// The largest page seen: the page size the server actually grants.
    page_records: u64,
    totals: Totals,
    guard: Guard,
    /// Entries of the guard already handed out with a [`Progress`].
    handed: usize,
}

/// Where the run stands after a page: what a checkpoint saved with that page holds.
#[derive(Debug)]
pub struct Progress {
    /// Where the next request starts.
    pub position: Position,
    /// What the loop checks learned from the page (see [`Guard::since`]).
    pub guard: Guard,
    /// Pages fetched so far.
    pub pages: u64,
    /// No more pages will come.
    pub done: bool,
}

impl Paginator {
    /// `base` is the user's URL; `params` are the `--param` extras added to every request
    /// built from it (next URLs from the API are followed as given).
    pub fn new(base: &Url, params: &[(String, String)], pages: &Pages) -> Self {
        let mut base = base.clone();
        set_query(&mut base, &[]);
        if !params.is_empty() {
            base.query_pairs_mut().extend_pairs(params);
        }
        let mode = match pages.style {
            Style::Auto => Mode::Detect(Style::Auto),
            Style::Page => Mode::Page,
            Style::Offset => Mode::Offset,
            Style::Cursor => match &pages.cursor {
                Some(from) => Mode::Cursor {
                    param: detect::cursor_param(pages, from),
                    from: from.clone(),
                },
                None => Mode::Detect(Style::Cursor),
            },
            Style::Next => match &pages.next_path {
                Some(pointer) => Mode::Next {
                    pointer: pointer.clone(),
                },
                None => Mode::Detect(Style::Next),
            },
            Style::Link => Mode::Link,
            Style::None => Mode::Once,
        };
        let position = match pages.style {
            Style::Auto | Style::Page => Position::Page {
                number: pages.start_page,
            },
            Style::Offset => Position::Offset { offset: 0 },
            _ => Position::First,
        };
        Paginator {
            base,
            pages: pages.clone(),
            mode,
            position,
            fetched: 0,
            records: 0,
            page_records: 0,
            totals: Totals::default(),
            guard: Guard::default(),
            handed: 0,
        }
    }

    /// The URL of the page to fetch now.
    pub fn url(&self) -> Url {
        self.url_at(&self.position)
    }

    /// The URL of the page at `position` (for fetching pages ahead, see [`Self::upcoming`]).
    pub fn url_at(&self, position: &Position) -> Url {
        match position {
            Position::Page { number } => self.page_url(*number),
            Position::Offset { offset } => {
                self.sized(&self.pages.offset_param, *offset, &self.pages.limit_param)
            }
            Position::First => self.first_url(),
            Position::Cursor { value, param, .. } => {
                let mut url = self.first_url();
                set_query(&mut url, &[(param, value)]);
                url
            }
            Position::Next { url, .. } | Position::Link { url } => url.clone(),
        }
    }

    /// Where the next request starts.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Pages fetched so far (including pages fetched by the run being resumed).
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// The style in use: `--paginate`, or what `auto` decided once the first page is in.
    pub fn style(&self) -> Style {
        match &self.mode {
            Mode::Detect(style) => *style,
            Mode::Page => Style::Page,
            Mode::Offset => Style::Offset,
            Mode::Cursor { .. } => Style::Cursor,
            Mode::Next { .. } => Style::Next,
            Mode::Link => Style::Link,
            Mode::Once => Style::None,
        }
    }

    /// Continues from where an earlier run stopped after `fetched` pages and `records`
    /// records. A position past the first page also settles the style, so `auto` is not
    /// decided again on a later page. `guard` is what the loop checks had seen by then, so
    /// a loop the earlier run stopped at is caught again at once.
    pub fn resume(&mut self, position: Position, fetched: u64, records: u64, guard: Guard) {
        self.handed = guard.entries();
        self.guard = guard;
        if fetched > 0 {
            self.mode = match &position {
                Position::Page { .. } => Mode::Page,
                Position::Offset { .. } => Mode::Offset,
                Position::Cursor { param, from, .. } => Mode::Cursor {
                    param: param.clone(),
                    from: from.clone(),
                },
                Position::Next { pointer, .. } => Mode::Next {
                    pointer: pointer.clone(),
                },
                Position::Link { .. } => Mode::Link,
                Position::First => self.mode.clone(),
            };
        }
        self.position = position;
        self.fetched = fetched;
        self.records = records;
    }

    /// Where the run stands now, for the checkpoint of the page just fetched; `done` says
    /// that it was the last.
    pub fn progress(&mut self, done: bool) -> Progress {
        let guard = self.guard.since(self.handed);
        self.handed = self.guard.entries();
        Progress {
            position: self.position.clone(),
            guard,
            pages: self.fetched,
            done,
        }
    }

    /// The number of records in the whole result, when the API says so (`--total`,
    /// `total`, `total_count`, `X-Total-Count`, …). Known once a page is in.
    pub fn total_records(&self) -> Option<u64> {
        self.totals.records
    }

    /// The number of pages in the whole run, counted from the first page, for page
    /// numbers and offsets: from `total_pages` or `Link rel="last"`, or the record total
    /// divided by the largest page seen so far (the page size the server grants, which
    /// may be less than `--page-size`). `None` until a page is in, when the API gives no
    /// total, and for styles whose next page comes from the previous response.
    pub fn total_pages(&self) -> Option<u64> {
        let from_records = || {
            let records = self.totals.records?;
            (self.page_records > 0).then(|| records.div_ceil(self.page_records))
        };
        match self.mode {
            Mode::Page => self.totals.pages.or_else(from_records),
            Mode::Offset => from_records(),
            _ => None,
        }
    }

    /// Up to `n` positions that can be fetched now without waiting for a response,
    /// starting with [`Self::position`] itself, within the known total, `--max-pages` and
    /// the pages `--max-records` still needs (at the page size seen so far).
    /// Empty when the later positions depend on responses (cursor, next URL, link) or no
    /// total is known.
    ///
    /// For concurrent fetching: fetch them in parallel with [`Self::url_at`], then
    /// [`Self::advance`] over the responses in order. Offsets are predicted assuming full
    /// pages of the size seen so far; after each `advance`, if [`Self::position`] differs
    /// from the next predicted position, the server sent a short page and the remaining
    /// prefetched pages must be discarded.
    pub fn upcoming(&self, n: usize) -> Vec<Position> {
        let Some(total_pages) = self.total_pages() else {
            return Vec::new();
        };
        let left_by_cap = self
            .pages
            .max_pages
            .map_or(u64::MAX, |max| max.saturating_sub(self.fetched));
        let left_by_records = match self.pages.max_records {
            Some(_) => (self.room() as u64).div_ceil(self.page_records.max(1)),
            None => u64::MAX,
        };
        let left = left_by_cap.min(left_by_records);
        let take = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        match &self.position {
            Position::Page { number } => {
                let last = self.pages.start_page.saturating_add(total_pages);
                (*number..last)
                    .take(take)
                    .map(|number| Position::Page { number })
                    .collect()
            }
            Position::Offset { offset } => {
                let total = self.totals.records.unwrap_or(0);
                (0..)
                    .map(|k| offset + k * self.page_records)
                    .take_while(|o| *o < total)
                    .take(take)
                    .map(|offset| Position::Offset { offset })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// How many records of the next page to keep under `--max-records` (the last page is
    /// cut, not dropped).
    pub fn room(&self) -> usize {
        self.pages.max_records.map_or(usize::MAX, |max| {
            usize::try_from(max.saturating_sub(self.records)).unwrap_or(usize::MAX)
        })
    }

    /// Moves past a page that came with these headers, this body and these records (as
    /// kept, after [`Self::room`]). Fails when the API is paginating in a loop.
    pub fn advance(
        &mut self,
        headers: &HeaderMap,
        page: &Page,
        records: &[&str],
    ) -> Result<Step, Error> {
        let url = self.url();
        self.fetched += 1;
        self.records += records.len() as u64;
        self.page_records = self.page_records.max(records.len() as u64);
        if let Mode::Detect(style) = self.mode {
            self.mode = detect::style(style, &self.pages, headers, page, &url, |next| {
                self.is_page_url(next)
            });
        }
        let totals = detect::totals(&self.pages, headers, page, &url);
        self.totals = Totals {
            records: totals.records.or(self.totals.records),
            pages: totals.pages.or(self.totals.pages),
        };
        self.guard.check_page(records, self.fetched, || {
            repeated_page_hint(&self.mode, &self.pages)
        })?;
        let step = self.step(headers, page, records, &url)?;
        Ok(match step {
            Step::Continue if self.room() == 0 => Step::Done("--max-records reached"),
            Step::Continue if self.pages.max_pages.is_some_and(|m| self.fetched >= m) => {
                Step::Capped
            }
            step => step,
        })
    }

    fn step(
        &mut self,
        headers: &HeaderMap,
        page: &Page,
        records: &[&str],
        url: &Url,
    ) -> Result<Step, Error> {
        if detect::has_more(&self.pages, page) == Some(false) {
            return Ok(Step::Done("has_more is false"));
        }
        match self.mode.clone() {
            Mode::Page | Mode::Offset if records.is_empty() => Ok(Step::Done("empty page")),
            Mode::Page => {
                let number = match self.position {
                    Position::Page { number } => number,
                    _ => self.pages.start_page,
                };
                // The last page is `start_page + n - 1`; compared as `number + 1 >= start_page
                // + n` so that `--start-page 0` with `total_pages: 0` cannot underflow, and
                // saturating so that a made-up total cannot overflow.
                let after = number.saturating_add(1);
                let past = |n: u64| self.pages.start_page.saturating_add(n);
                if self.totals.pages.is_some_and(|n| after >= past(n)) {
                    return Ok(Step::Done("last page of total_pages"));
                }
                if self.totals.records.is_some_and(|t| self.records >= t) {
                    return Ok(Step::Done("all records of the total fetched"));
                }
                if link::any(headers) && link::find(headers, "next", url).is_none() {
                    return Ok(Step::Done("no next link"));
                }
                self.position = Position::Page { number: number + 1 };
                Ok(Step::Continue)
            }
            Mode::Offset => {
                // Auto detection turns the first page (asked for by number) into offset 0.
                let offset = match self.position {
                    Position::Offset { offset } => offset,
                    _ => 0,
                } + records.len() as u64;
                self.position = Position::Offset { offset };
                if self.totals.records.is_some_and(|t| offset >= t) {
                    return Ok(Step::Done("all records of the total fetched"));
                }
                Ok(Step::Continue)
            }
            Mode::Cursor { param, from } => {
                let value = match &from {
                    CursorSource::Body(pointer) => page.raw(pointer).and_then(detect::cursor_text),
                    CursorSource::LastRecord(pointer) => records
                        .last()
                        .and_then(|r| records::lookup(r, pointer))
                        .and_then(detect::cursor_text),
                };
                let Some(value) = value else {
                    return Ok(Step::Done("no next cursor"));
                };
                if let Position::Cursor { value: current, .. } = &self.position {
                    self.guard
                        .remember(&format!("cursor {current}"), self.fetched);
                }
                self.guard
                    .check_new(&format!("cursor {value}"), self.fetched, || {
                        format!("cursor `{}`", shorten(&value))
                    })?;
                self.position = Position::Cursor { value, param, from };
                Ok(Step::Continue)
            }
            Mode::Next { pointer } => {
                let next = match page.value(&pointer) {
                    Some(Value::String(next)) if !next.is_empty() => next,
                    _ => return Ok(Step::Done("no next URL")),
                };
                let next = url.join(&next).map_err(|e| {
                    Error::BadResponse(format!(
                        "the next-page URL at {pointer} is not a valid URL ({e})"
                    ))
                })?;
                self.follow(url, next, |url| Position::Next { url, pointer })
            }
            Mode::Link => match link::find(headers, "next", url) {
                Some(next) => self.follow(url, next, |url| Position::Link { url }),
                None => {
                    if self.fetched == 1 && !link::any(headers) {
                        warn!(
                            "pagination: the response has no Link header; stopping after one page"
                        );
                    }
                    Ok(Step::Done("no next link"))
                }
            },
            Mode::Once => Ok(Step::Done("--paginate none makes one request")),
            Mode::Detect(_) => unreachable!("the first page decides the style"),
        }
    }

    /// Moves to a next URL, unless this run has been there before.
    fn follow(
        &mut self,
        current: &Url,
        next: Url,
        position: impl FnOnce(Url) -> Position,
    ) -> Result<Step, Error> {
        self.guard.remember(&format!("url {current}"), self.fetched);
        self.guard
            .check_new(&format!("url {next}"), self.fetched, || {
                format!("next URL {}", crate::redact::url(&next))
            })?;
        self.position = position(next);
        Ok(Step::Continue)
    }

    /// Whether `next` is this run's own URL for the following page number.
    fn is_page_url(&self, next: &Url) -> bool {
        let Position::Page { number } = self.position else {
            return false;
        };
        let expected = self.page_url(number + 1);
        let sorted = |url: &Url| {
            let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            pairs.sort();
            (url.origin(), url.path().to_string(), pairs)
        };
        sorted(next) == sorted(&expected)
    }

    fn page_url(&self, number: u64) -> Url {
        self.sized(&self.pages.page_param, number, &self.pages.size_param)
    }

    /// The user's URL with `param=value` and the page size in `size_param`.
    fn sized(&self, param: &str, value: u64, size_param: &str) -> Url {
        let mut url = self.base.clone();
        let size = self.pages.page_size.to_string();
        set_query(
            &mut url,
            &[(param, &value.to_string()), (size_param, &size)],
        );
        url
    }

    /// The URL of the first request. Under `auto` it asks for the first page by number, so
    /// a page-numbered API is paged from the start; a cursor found in its response is then
    /// sent with that same URL.
    fn first_url(&self) -> Url {
        match self.pages.style {
            Style::Auto => self.page_url(self.pages.start_page),
            _ => self.base.clone(),
        }
    }
}

/// What to do about a page that repeats the one before, in the style's terms.
fn repeated_page_hint(mode: &Mode, pages: &Pages) -> String {
    match mode {
        Mode::Page => format!(
            "; the API seems to ignore `{}`: if it is not paginated pass --paginate none, \
             otherwise name its style with --paginate offset, cursor or next",
            pages.page_param
        ),
        Mode::Offset => format!(
            "; the API seems to ignore `{}`: check --offset-param and --limit-param",
            pages.offset_param
        ),
        _ => String::new(),
    }
}

/// A cursor short enough for a log line.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Sets each (name, value) in the query, replacing any values the URL already had for
/// that name and keeping every other parameter in its place. A URL left with an empty
/// query loses its `?`.
fn set_query(url: &mut Url, set: &[(&str, &str)]) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !set.iter().any(|(name, _)| k == name))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() && set.is_empty() {
        url.set_query(None);
        return;
    }
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(set.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, LINK};

    fn pages(style: Style) -> Pages {
        Pages {
            style,
            page_param: "page".into(),
            size_param: "per_page".into(),
            page_size: 50,
            start_page: 1,
            max_pages: None,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            cursor: None,
            cursor_param: None,
            next_path: None,
            has_more: None,
            total: None,
            max_records: None,
        }
    }

    fn base() -> Url {
        Url::parse("http://h/x").unwrap()
    }

    /// Feeds one page body (with `headers`) to the paginator.
    fn feed(p: &mut Paginator, headers: &HeaderMap, json: &str) -> Result<Step, Error> {
        let page = Page::parse(json).unwrap();
        let records = page.records(&records::Select::default()).unwrap();
        p.advance(headers, &page, &records)
    }

    fn body(p: &mut Paginator, json: &str) -> Step {
        feed(p, &HeaderMap::new(), json).unwrap()
    }

    fn links(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keeps_existing_query_and_replaces_page_params() {
        let base = Url::parse("http://h/x?status=open&page=9").unwrap();
        let p = Paginator::new(&base, &[("sort".into(), "id".into())], &pages(Style::Auto));
        assert_eq!(
            p.url().as_str(),
            "http://h/x?status=open&sort=id&page=1&per_page=50"
        );
    }

    #[test]
    fn stops_on_empty_page_and_has_more_false_but_not_on_short_pages() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        assert_eq!(body(&mut p, "[1]"), Step::Continue);
        assert_eq!(p.style(), Style::Page);
        assert_eq!(p.position(), &Position::Page { number: 2 });
        assert_eq!(
            body(&mut p, r#"{"data": [2], "has_more": true}"#),
            Step::Continue
        );
        assert_eq!(
            body(&mut p, r#"{"data": [3], "has_more": false}"#),
            Step::Done("has_more is false")
        );
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        assert_eq!(body(&mut p, "[]"), Step::Done("empty page"));
    }

    #[test]
    fn max_pages_caps_only_when_more_may_remain() {
        let mut capped = pages(Style::Page);
        capped.max_pages = Some(2);
        let mut p = Paginator::new(&base(), &[], &capped);
        assert_eq!(body(&mut p, "[1]"), Step::Continue);
        assert_eq!(body(&mut p, "[2]"), Step::Capped);
        capped.max_pages = Some(1);
        let mut p = Paginator::new(&base(), &[], &capped);
        assert_eq!(
            body(&mut p, r#"{"data": [1], "has_more": false}"#),
            Step::Done("has_more is false")
        );
    }

    #[test]
    fn max_records_leaves_room_for_the_rest_and_then_stops() {
        let mut limited = pages(Style::Page);
        limited.max_records = Some(3);
        let mut p = Paginator::new(&base(), &[], &limited);
        assert_eq!(p.room(), 3);
        assert_eq!(body(&mut p, "[1, 2]"), Step::Continue);
        assert_eq!(p.room(), 1);
        assert_eq!(body(&mut p, "[3]"), Step::Done("--max-records reached"));
    }

    #[test]
    fn offsets_advance_by_records_received_and_stop_at_the_total() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Offset));
        assert_eq!(p.url().as_str(), "http://h/x?offset=0&limit=50");
        assert_eq!(
            body(&mut p, r#"{"items": [1, 2, 3], "total": 5}"#),
            Step::Continue
        );
        assert_eq!(p.url().as_str(), "http://h/x?offset=3&limit=50");
        assert_eq!(p.total_records(), Some(5));
        assert_eq!(p.total_pages(), Some(2));
        assert_eq!(
            body(&mut p, r#"{"items": [4, 5], "total": 5}"#),
            Step::Done("all records of the total fetched")
        );
    }

    #[test]
    fn upcoming_pages_stop_at_what_max_records_still_needs() {
        let mut limited = pages(Style::Page);
        limited.max_records = Some(5);
        let mut p = Paginator::new(&base(), &[], &limited);
        assert_eq!(
            body(&mut p, r#"{"data": [1, 2], "total_pages": 10}"#),
            Step::Continue
        );
        assert_eq!(
            p.upcoming(8),
            [2, 3].map(|number| Position::Page { number }).to_vec()
        );
    }

    #[test]
    fn totals_at_the_ends_of_the_number_range_do_not_overflow() {
        let mut from_zero = pages(Style::Page);
        from_zero.start_page = 0;
        let mut p = Paginator::new(&base(), &[], &from_zero);
        assert_eq!(
            body(&mut p, r#"{"data": [1], "total_pages": 0}"#),
            Step::Done("last page of total_pages")
        );
        let mut p = Paginator::new(&base(), &[], &pages(Style::Page));
        let huge = r#"{"data": [1], "total_pages": 18446744073709551615}"#;
        assert_eq!(body(&mut p, huge), Step::Continue);
        assert_eq!(
            p.upcoming(2),
            [2, 3].map(|number| Position::Page { number }).to_vec()
        );
    }

    #[test]
    fn totals_predict_upcoming_pages() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        assert_eq!(p.upcoming(4), []);
        assert_eq!(
            body(&mut p, r#"{"data": [1, 2], "total_pages": 4}"#),
            Step::Continue
        );
        assert_eq!(p.total_pages(), Some(4));
        let ahead = p.upcoming(10);
        assert_eq!(
            ahead,
            [2, 3, 4].map(|number| Position::Page { number }).to_vec()
        );
        assert_eq!(
            p.url_at(&ahead[2]).as_str(),
            "http://h/x?page=4&per_page=50"
        );
        assert_eq!(p.upcoming(1).len(), 1);

        let mut p = Paginator::new(&base(), &[], &pages(Style::Offset));
        let mut h = HeaderMap::new();
        h.insert("x-total-count", HeaderValue::from_static("7"));
        assert_eq!(feed(&mut p, &h, "[1, 2, 3]").unwrap(), Step::Continue);
        assert_eq!(
            p.upcoming(5),
            [3, 6].map(|offset| Position::Offset { offset }).to_vec()
        );
    }

    #[test]
    fn page_number_links_are_paged_by_number_with_the_last_link_as_total() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        let h = links(
            r#"<http://h/x?per_page=50&page=2>; rel="next", <http://h/x?page=3&per_page=50>; rel="last""#,
        );
        assert_eq!(feed(&mut p, &h, "[1]").unwrap(), Step::Continue);
        assert_eq!(p.style(), Style::Page);
        assert_eq!(p.total_pages(), Some(3));
        let h = links(r#"<http://h/x?page=1&per_page=50>; rel="first""#);
        assert_eq!(feed(&mut p, &h, "[2]").unwrap(), Step::Done("no next link"));
    }

    #[test]
    fn other_links_are_followed_as_given() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        let h = links(r#"</x?page_info=abc>; rel="next""#);
        assert_eq!(feed(&mut p, &h, "[1]").unwrap(), Step::Continue);
        assert_eq!(p.style(), Style::Link);
        assert_eq!(p.url().as_str(), "http://h/x?page_info=abc");
        let h = links(r#"</x?page_info=def>; rel="next""#);
        assert_eq!(feed(&mut p, &h, "[2]").unwrap(), Step::Continue);
        assert_eq!(
            feed(&mut p, &HeaderMap::new(), "[3]").unwrap(),
            Step::Done("no next link")
        );
    }

    #[test]
    fn auto_detects_the_style_of_real_apis() {
        let cases = [
            (
                r#"{"data": [1], "links": {"next": "/x?page=2"}}"#,
                Style::Next,
                "http://h/x?page=2",
            ),
            (
                r#"{"value": [1], "@odata.nextLink": "https://h/x?$skip=1"}"#,
                Style::Next,
                "https://h/x?$skip=1",
            ),
            (
                r#"{"records": [1], "done": false, "nextRecordsUrl": "/q/01g-2000"}"#,
                Style::Next,
                "http://h/q/01g-2000",
            ),
            (
                r#"{"_embedded": {"o": [1]}, "_links": {"next": {"href": "/x?p=2"}}}"#,
                Style::Next,
                "http://h/x?p=2",
            ),
            (
                r#"{"results": [1], "paging": {"next": {"after": "7", "link": "/x?after=7"}}}"#,
                Style::Next,
                "http://h/x?after=7",
            ),
            (
                r#"{"results": [1], "next_cursor": "c2"}"#,
                Style::Cursor,
                "http://h/x?page=1&per_page=50&cursor=c2",
            ),
            (
                r#"{"members": [1], "response_metadata": {"next_cursor": "dXNlcg=="}}"#,
                Style::Cursor,
                "http://h/x?page=1&per_page=50&cursor=dXNlcg%3D%3D",
            ),
            (
                r#"{"items": [1], "nextPageToken": "t2"}"#,
                Style::Cursor,
                "http://h/x?page=1&per_page=50&pageToken=t2",
            ),
            (
                r#"{"records": [1], "offset": "itr/rec"}"#,
                Style::Cursor,
                "http://h/x?page=1&per_page=50&offset=itr%2Frec",
            ),
            (
                r#"{"items": [1], "offset": 0, "limit": 1, "total": 9}"#,
                Style::Offset,
                "http://h/x?offset=1&limit=50",
            ),
            (
                r#"{"data": [1], "has_more": true}"#,
                Style::Page,
                "http://h/x?page=2&per_page=50",
            ),
        ];
        for (json, style, next) in cases {
            let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
            assert_eq!(body(&mut p, json), Step::Continue, "{json}");
            assert_eq!((p.style(), p.url().as_str()), (style, next), "{json}");
        }
    }

    #[test]
    fn a_null_next_or_empty_cursor_is_the_last_page() {
        for json in [
            r#"{"results": [1], "next": null}"#,
            r#"{"results": [1], "next_cursor": ""}"#,
            r#"{"results": [1], "next_cursor": null}"#,
        ] {
            let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
            assert!(matches!(body(&mut p, json), Step::Done(_)), "{json}");
        }
    }

    #[test]
    fn keyset_cursors_come_from_the_last_record() {
        let mut keyset = pages(Style::Cursor);
        keyset.cursor = Some(CursorSource::LastRecord("/id".into()));
        keyset.cursor_param = Some("starting_after".into());
        let mut p = Paginator::new(&base(), &[], &keyset);
        assert_eq!(p.url().as_str(), "http://h/x");
        let page = r#"{"data": [{"id": "a"}, {"id": "b"}], "has_more": true}"#;
        assert_eq!(body(&mut p, page), Step::Continue);
        assert_eq!(p.url().as_str(), "http://h/x?starting_after=b");
        let last = r#"{"data": [{"id": "c"}], "has_more": false}"#;
        assert_eq!(body(&mut p, last), Step::Done("has_more is false"));
    }

    #[test]
    fn loops_are_caught_and_named() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        body(&mut p, r#"{"data": [1], "next_cursor": "A"}"#);
        body(&mut p, r#"{"data": [2], "next_cursor": "B"}"#);
        let err = feed(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [3], "next_cursor": "A"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("page 3 sent cursor `A` again, which already fetched page 2"),
            "{err}"
        );

        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        body(&mut p, r#"{"data": [1], "next": "/x?n=2"}"#);
        let err = feed(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [2], "next": "/x?page=1&per_page=50"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("next URL http://h/x?page=1&per_page=50 again"),
            "{err}"
        );

        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        body(&mut p, r#"{"data": [1, 2], "has_more": true}"#);
        let err = feed(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [1, 2], "has_more": true}"#,
        )
        .unwrap_err();
        assert!(matches!(err, Error::BadResponse(_)));
        let err = err.to_string();
        assert!(
            err.contains("page 2 repeated the 2 records of page 1"),
            "{err}"
        );
        assert!(err.contains("--paginate none"), "{err}");
    }

    #[test]
    fn resuming_settles_the_style_from_the_position() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Auto));
        body(&mut p, r#"{"items": [1], "nextPageToken": "t2"}"#);
        let saved = serde_json::to_string(p.position()).unwrap();
        assert_eq!(
            saved,
            r#"{"kind":"cursor","value":"t2","param":"pageToken","from":{"in":"body","pointer":"/nextPageToken"}}"#
        );
        let mut q = Paginator::new(&base(), &[], &pages(Style::Auto));
        q.resume(
            serde_json::from_str(&saved).unwrap(),
            p.fetched(),
            1,
            p.progress(false).guard,
        );
        assert_eq!((q.style(), q.url()), (Style::Cursor, p.url()));
        assert_eq!(
            body(&mut q, r#"{"items": [2], "nextPageToken": ""}"#),
            Step::Done("no next cursor")
        );
    }
}
