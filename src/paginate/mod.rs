//! Where the next page comes from, and when there are no more.
//!
//! Real APIs paginate in half a dozen ways ([`Style`]). The first request is the URL as
//! given (with only what the user's flags add); its response decides the rest
//! ([`detect`]): a `Link: rel="next"` header, a next-page URL or a cursor where well-known
//! APIs put them, an echoed page number or offset, or, where the response only says that
//! more follows, page numbers whose base (0 or 1) is found out by asking. Whatever the
//! style, a run that would go round in circles stops with [`Error::BadResponse`] instead
//! of looping until `--max-pages`, and a run that ends with fewer records than the API
//! announced fails instead of passing as complete.

mod detect;
mod guard;
mod link;
mod settings;
mod totals;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

use crate::error::Error;
use crate::shape::graphql;
use crate::shape::records::{self, Page, Select};
pub use detect::absent;
pub use guard::Guard;
pub use settings::{Graphql, Settings};
use totals::{Stated, Totals};

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
/// same configuration. What the first response decided (a parameter's name, a cursor's
/// source, a next URL's pointer) is recorded here too, so a resumed run does not have to
/// detect it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Page-number pagination: the number of the next page in `param`; `first` is the
    /// number of the first page (0 or 1), which page totals count from.
    Page {
        number: u64,
        param: String,
        first: Option<u64>,
    },
    /// Offset pagination: the offset of the next page's first record in `param`.
    Offset { offset: u64, param: String },
    /// The first request: the URL as given.
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
    /// Not decided yet: the first response picks among this style's candidates.
    Detect(Style),
    Page,
    Offset,
    Cursor {
        from: CursorSource,
    },
    Next {
        pointer: String,
    },
    Link,
    Once,
}

#[derive(Debug)]
pub struct Paginator {
    /// The first request: the user's URL with `--param` and the page size and start page
    /// the user asked for. Later page numbers, offsets and cursors are set on it.
    base: Url,
    /// The first request's body (`--data`, a GraphQL query), with the page size and start
    /// page set where their parameters point into it.
    body: Option<Value>,
    /// The GraphQL connection the first response showed.
    connection: Option<graphql::Connection>,
    /// What the first response decided, and why (`--probe` prints it).
    decided: Option<String>,
    pages: Settings,
    mode: Mode,
    position: Position,
    /// Other names for the parameter in `position`, to try in turn if the API turns out
    /// to ignore it; empty when the name came from the user.
    untried: Vec<String>,
    /// The page just fetched asked for page 1 to learn whether the first page, fetched
    /// without a number, was page 0 or page 1.
    probing: bool,
    /// The offset parameter to switch to if page numbers that were only a guess turn out
    /// to be ignored.
    fallback: Option<String>,
    /// The first page's records, hashed, while that is being learned: page 1 sharing most
    /// of them is the first page again (a record or two may have moved in between).
    first_page: Vec<u64>,
    fetched: u64,
    /// Records received so far, including those of the run being resumed (before an
    /// incremental run drops any: the API's totals count them).
    records: u64,
    /// The largest page seen: the page size the server actually grants.
    page_records: u64,
    totals: Totals,
    /// The last page said more records follow (`has_more`, or a total not yet reached).
    said_more: bool,
    guard: Guard,
    /// Positions the guard had remembered when it was last handed out with a [`Standing`].
    handed: u64,
}

/// Where the run stands after a page: what a checkpoint saved with that page holds.
#[derive(Debug)]
pub struct Standing {
    /// Where the next request starts.
    pub position: Position,
    /// What the loop checks learned from the page (see [`Guard::since`]).
    pub guard: Guard,
    /// Pages fetched so far.
    pub pages: u64,
    /// No more pages will come.
    pub done: bool,
    /// Records received so far, which the API's totals are checked against: more than
    /// were written when an incremental run dropped some.
    pub records: u64,
}

impl Paginator {
    /// `base` is the user's URL; `params` are the `--param` extras added to it, as are the
    /// page size and start page when the user gave them. Nothing else is added before the
    /// API has shown how it paginates.
    pub fn new(base: &Url, params: &[(String, String)], pages: &Settings) -> Self {
        let mut base = base.clone();
        let mut body = pages.body.clone();
        let mut added: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let size_param = match pages.style {
            Style::Offset => &pages.limit_param,
            _ => &pages.size_param,
        };
        for (param, value) in [
            (size_param, pages.page_size),
            (&pages.page_param, pages.start_page),
        ] {
            match (value, &mut body) {
                (Some(value), Some(body)) if param.starts_with('/') => {
                    set_pointer(body, param, Value::from(value));
                }
                (Some(value), _) => added.push((param, value.to_string())),
                (None, _) => {}
            }
        }
        set_query(&mut base, &added);
        let mode = match (pages.style, &pages.cursor, &pages.next_path) {
            (Style::Cursor, Some(from), _) => Mode::Cursor { from: from.clone() },
            (Style::Next, _, Some(pointer)) => Mode::Next {
                pointer: pointer.clone(),
            },
            (style, _, _) => Mode::Detect(style),
        };
        Paginator {
            base,
            body,
            connection: None,
            decided: None,
            pages: pages.clone(),
            mode,
            position: Position::First,
            untried: Vec::new(),
            probing: false,
            fallback: None,
            first_page: Vec::new(),
            fetched: 0,
            records: 0,
            page_records: 0,
            totals: Totals::default(),
            said_more: false,
            guard: Guard::default(),
            handed: 0,
        }
    }

    /// The URL of the page to fetch now.
    pub fn url(&self) -> Url {
        self.url_at(&self.position)
    }

    /// The URL of the page at `position`.
    pub fn url_at(&self, position: &Position) -> Url {
        self.request_at(position).0
    }

    /// The URL and body of the request for the page at `position` (for fetching pages
    /// ahead, see [`Self::upcoming`]). A parameter that is a JSON Pointer (`/start_cursor`)
    /// is set in the body instead of the query: numbers as numbers, a cursor as the JSON
    /// value the API sent (Elasticsearch's `search_after` is an array).
    pub fn request_at(&self, position: &Position) -> (Url, Option<Bytes>) {
        let (param, value) = match position {
            Position::Page { number, param, .. } => (param, Value::from(*number)),
            Position::Offset { offset, param } => (param, Value::from(*offset)),
            Position::Cursor { value, param, .. } => (param, cursor_value(param, value)),
            Position::First => return (self.base.clone(), self.body()),
            Position::Next { url, .. } | Position::Link { url } => {
                return (url.clone(), self.body());
            }
        };
        match (param.starts_with('/'), self.body.clone()) {
            (true, Some(mut body)) => {
                set_pointer(&mut body, param, value);
                (self.base.clone(), Some(Bytes::from(body.to_string())))
            }
            _ => {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                let mut url = self.base.clone();
                set_query(&mut url, &[(param, text)]);
                (url, self.body())
            }
        }
    }

    fn body(&self) -> Option<Bytes> {
        self.body.as_ref().map(|b| Bytes::from(b.to_string()))
    }

    /// How to find a page's records: `given` (`--records`), or, for a GraphQL query, the
    /// nodes of the connection its first response shows, whose `pageInfo` then drives
    /// the paging: `hasNextPage` as has-more, `endCursor` sent back in the query's cursor
    /// variable, `totalCount` as the total (`hasPreviousPage` and `startCursor` when the
    /// query pages backwards).
    pub fn select(&mut self, page: &Page, given: &Select) -> Result<Select, Error> {
        let Some(graphql) = self.pages.graphql.clone() else {
            return Ok(given.clone());
        };
        if self.fetched == 0 {
            self.connection = graphql::connection(page)?;
            if let Some(found) = &self.connection {
                let backward = graphql.backward;
                let var = graphql.cursor_var.clone().ok_or_else(|| {
                    Error::Usage(format!(
                        "the query pages {} but passes no variable as `after:` (or `before:`) \
                         to move it: add one, or name it with --cursor-var",
                        found.path
                    ))
                })?;
                info!(
                    "pagination: GraphQL connection {}, its cursor sent back as ${var}",
                    found.path
                );
                self.pages.has_more = Some(found.has_more(backward));
                self.pages.cursor_param = Some(format!("/variables/{var}"));
                if page.raw(&found.total()).is_some() {
                    self.pages.total = Some(found.total());
                }
                self.mode = Mode::Cursor {
                    from: CursorSource::Body(found.cursor(backward)),
                };
            }
        }
        Ok(match &self.connection {
            Some(found) => Select {
                pointer: Some(found.records.clone()),
                item: found.item.clone(),
                ..given.clone()
            },
            None => given.clone(),
        })
    }

    /// What auto detection decided from the first page, and why.
    pub fn decided(&self) -> Option<&str> {
        self.decided.as_deref()
    }

    /// Other names the parameter may have, when one page could not confirm the one in use.
    pub fn unconfirmed(&self) -> &[String] {
        &self.untried
    }

    /// The flags that pin down what the first page showed, so a scheduled run need not
    /// detect it again (and fails loudly if the API changes).
    pub fn pinned(&self) -> Vec<String> {
        let words: Vec<&str> = match (&self.mode, &self.position) {
            _ if self.connection.is_some() => vec![],
            (Mode::Page, Position::Page { param, .. }) => {
                vec!["--paginate", "page", "--page-param", param]
            }
            (Mode::Offset, Position::Offset { param, .. }) => {
                vec!["--paginate", "offset", "--offset-param", param]
            }
            (Mode::Cursor { from }, Position::Cursor { param, .. }) => match from {
                CursorSource::Body(p) => vec!["--cursor-path", p, "--cursor-param", param],
                CursorSource::LastRecord(p) => {
                    vec!["--cursor-from-record", p, "--cursor-param", param]
                }
            },
            (Mode::Next { pointer }, _) => vec!["--next-path", pointer],
            (Mode::Link, _) => vec!["--paginate", "link"],
            (Mode::Once, _) => vec!["--paginate", "none"],
            _ => vec![],
        };
        let mut flags: Vec<String> = words.into_iter().map(String::from).collect();
        if let Position::Page {
            first: Some(first), ..
        } = &self.position
        {
            flags.extend(["--start-page".to_string(), first.to_string()]);
        }
        flags
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

    /// Continues from where an earlier run stopped after `fetched` pages and `records` records
    /// received. A position past the first page also settles the style, so it is not
    /// decided again on a later page. `guard` is what the loop checks had seen by then, so
    /// a loop the earlier run stopped at is caught again at once.
    pub fn resume(&mut self, position: Position, fetched: u64, records: u64, guard: Guard) {
        self.handed = guard.remembered();
        self.guard = guard;
        self.mode = match &position {
            Position::Page { .. } => Mode::Page,
            Position::Offset { .. } => Mode::Offset,
            Position::Cursor { from, .. } => Mode::Cursor { from: from.clone() },
            Position::Next { pointer, .. } => Mode::Next {
                pointer: pointer.clone(),
            },
            Position::Link { .. } => Mode::Link,
            Position::First => self.mode.clone(),
        };
        self.position = position;
        self.fetched = fetched;
        self.records = records;
    }

    /// Where the run stands now, for the checkpoint of the page just fetched; `done` says
    /// that it was the last.
    pub fn standing(&mut self, done: bool) -> Standing {
        let guard = self.guard.since(self.handed);
        self.handed = self.guard.remembered();
        Standing {
            position: self.position.clone(),
            guard,
            pages: self.fetched,
            done,
            records: self.records,
        }
    }

    /// The number of records in the whole result, when the API says so (`--total`,
    /// `total`, `total_count`, `X-Total-Count`, …). Known once a page is in.
    pub fn total_records(&self) -> Option<u64> {
        self.totals.records.as_ref().map(|s| s.count)
    }

    /// The number of pages in the whole run, for page numbers and offsets: from a page
    /// count the API states, or the record total divided by the largest page seen so far
    /// (the page size the server grants, which may be less than `--page-size`). `None`
    /// until a page is in, when the API gives no total, and for styles whose next page
    /// comes from the previous response.
    pub fn total_pages(&self) -> Option<u64> {
        let from_records = || {
            let records = self.total_records()?;
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
    /// Empty when the later positions depend on responses (cursor, next URL, link), no
    /// total is known, or a page's parameter is still being tried out.
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
        if self.probing || !self.untried.is_empty() {
            return Vec::new();
        }
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
            Position::Page {
                number,
                param,
                first: Some(first),
            } => {
                let last = first.saturating_add(total_pages);
                (*number..last)
                    .take(take)
                    .map(|number| Position::Page {
                        number,
                        param: param.clone(),
                        first: Some(*first),
                    })
                    .collect()
            }
            Position::Offset { offset, param } => {
                let total = self.total_records().unwrap_or(0);
                (0..)
                    .map_while(|k: u64| offset.checked_add(k.checked_mul(self.page_records)?))
                    .take_while(|o| *o < total)
                    .take(take)
                    .map(|offset| Position::Offset {
                        offset,
                        param: param.clone(),
                    })
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

    /// Moves past a page that came with these headers, this body and these records, and
    /// leaves in `records` those to write: cut to [`Self::room`], and none when the page is
    /// not to be written:
    /// a page 1 that proved to be the first page again, or a page that showed the API
    /// ignores the parameter it was asked with (it is asked for again with another
    /// name). Fails when the API is paginating in a loop, when a flag names something the
    /// first response does not have, and when the API announced more records than arrived.
    pub fn advance(
        &mut self,
        headers: &HeaderMap,
        page: &Page,
        records: &mut Vec<&str>,
    ) -> Result<Step, Error> {
        let url = self.url();
        let more = detect::more(&self.pages, page);
        let stated = totals::read(
            self.pages.total.as_deref(),
            headers,
            page,
            &url,
            records.len() as u64,
            more == Some(true),
        );
        self.note(stated);
        if self.fetched == 0 {
            self.decide(headers, page, records, &url, more)?;
        } else if self.learn(records)? != Learned::Nothing {
            // Nothing new arrived: the same position is asked for again, or the next one.
            records.clear();
            return Ok(Step::Continue);
        }
        records.truncate(self.room());
        self.fetched += 1;
        self.records += records.len() as u64;
        self.page_records = self.page_records.max(records.len() as u64);
        self.guard.check_page(records, self.fetched, || {
            repeated_page_hint(&self.mode, &self.position)
        })?;
        let step = self.step(headers, page, records, &url, more)?;
        // An empty page is the end, not news about what follows it.
        if !records.is_empty() {
            self.said_more = more == Some(true)
                || self.total_records().is_some_and(|t| self.records < t)
                || self.pages_left();
        }
        Ok(match step {
            Step::Continue if self.room() == 0 => Step::Done("--max-records reached"),
            Step::Continue if self.pages.max_pages.is_some_and(|m| self.fetched >= m) => {
                Step::Capped
            }
            step => step,
        })
    }

    /// Whether the page count the API stated says the page at the current position
    /// exists (page numbers only).
    fn pages_left(&self) -> bool {
        match (&self.mode, &self.position, self.totals.pages) {
            (
                Mode::Page,
                Position::Page {
                    number,
                    first: Some(first),
                    ..
                },
                Some(count),
            ) => *number < first.saturating_add(count),
            _ => false,
        }
    }

    /// Learns from the first page how to ask for the next one, once its explicit flags
    /// are checked against it.
    fn decide(
        &mut self,
        headers: &HeaderMap,
        page: &Page,
        records: &[&str],
        url: &Url,
        more: Option<bool>,
    ) -> Result<(), Error> {
        detect::check_pointers(&self.pages, page, headers)?;
        detect::check_size(&self.pages, page)?;
        match self.mode {
            Mode::Detect(style) => {
                let more_stated = more == Some(true)
                    || self
                        .total_records()
                        .is_some_and(|t| t > records.len() as u64)
                    || self.totals.pages.is_some_and(|p| p > 1);
                let decision =
                    detect::style(style, &self.pages, headers, page, records, url, more_stated)?;
                info!("pagination: {}", decision.why);
                self.decided = Some(decision.why);
                self.settle(decision.found);
            }
            _ => self.settle_given(page, headers, records)?,
        }
        self.guard.note_first(records);
        if self.probing {
            self.first_page = records.iter().map(guard::hash).collect();
        }
        Ok(())
    }

    /// What the run lost that the API said it had, once the last page is in: fewer
    /// records than its total, or an empty page where the page before said more follow.
    /// `None` when the run is complete, or stopped early on the user's limits.
    pub fn shortfall(&self, step: &Step) -> Option<Error> {
        if *step == Step::Capped || self.room() == 0 {
            return None;
        }
        let advice = match self.pages.may_stop_short {
            true => {
                "what arrived is kept; run again later (the API may have been changing), \
                     or pass --max-records or --max-pages if part of the result is enough"
            }
            false => "what arrived is kept; run again later (the API may have been changing)",
        };
        if let Some(Stated { count, source }) = &self.totals.records {
            if self.records < *count {
                return Some(Error::BadResponse(format!(
                    "the API announced {count} records ({source}), {} arrived; {advice}",
                    self.records
                )));
            }
            if self.records > *count {
                warn!(
                    "{} records arrived, more than the {count} the API announced ({source})",
                    self.records
                );
            }
        }
        match step {
            Step::Done("empty page") if self.said_more => Some(Error::BadResponse(format!(
                "page {} was empty although the API said more records follow \
                 ({} arrived); {advice}",
                self.fetched, self.records
            ))),
            // The last page said more follow (`has_more`), yet named no way to them.
            Step::Done(
                why @ ("no next cursor" | "no next URL" | "no next link" | "one request"),
            ) if self.said_more => Some(Error::BadResponse(format!(
                "page {} said more records follow, but the API gave no way to them ({why}; \
                 {} arrived); {advice}",
                self.fetched, self.records
            ))),
            _ => None,
        }
    }

    /// For a refusal of `url` (a 400 or 422) whose body names one of its parameters:
    /// whether apifetch added that parameter or the user gave it, so the message says
    /// whose mistake to fix.
    pub fn blame(&self, url: &Url, body: &str) -> Option<String> {
        let names =
            |u: &Url| -> Vec<String> { u.query_pairs().map(|(k, _)| k.into_owned()).collect() };
        let given = names(&self.base);
        let named = |name: &&String| body.contains(name.as_str());
        if let Some(added) = names(url).iter().filter(|n| !given.contains(n)).find(named) {
            return Some(format!(
                "apifetch added `{added}` to page the API as it understood the first response; \
                 if the API pages another way, name its style with --paginate and its \
                 parameter with --page-param, --offset-param or --cursor-param"
            ));
        }
        given.iter().find(named).map(|theirs| {
            format!("`{theirs}` is in the URL or the flags you gave, not added by apifetch")
        })
    }

    /// Takes the totals a page states; a total that changes mid-run is worth a warning
    /// (records were added or removed while the run went on), and the latest one counts.
    fn note(&mut self, stated: Totals) {
        if let (Some(old), Some(new)) = (&self.totals.records, &stated.records) {
            if old.count != new.count {
                warn!(
                    "the API's total changed from {} to {} records during the run",
                    old.count, new.count
                );
            }
        }
        self.totals = Totals {
            records: stated.records.or(self.totals.records.take()),
            pages: stated.pages.or(self.totals.pages),
        };
    }

    /// Where a parameter named `name` goes. A request with a JSON body (a POST search,
    /// Notion's query) takes what it is paged by in the body: names apifetch found go
    /// there, names the flags give stay as written (a `/pointer` for the body, a plain name
    /// for the query).
    fn placed(&self, name: String) -> String {
        let flags = [
            &self.pages.page_param,
            &self.pages.size_param,
            &self.pages.offset_param,
            &self.pages.limit_param,
        ];
        match self.body.is_some()
            && !name.starts_with('/')
            && !flags.contains(&&name)
            && self.pages.cursor_param.as_ref() != Some(&name)
        {
            true => format!("/{name}"),
            false => name,
        }
    }

    /// Acts on what the first response showed: the position of the page just read, from
    /// which [`Self::step`] moves on.
    fn settle(&mut self, found: detect::Found) {
        let mut untried = Vec::new();
        let mut names = |params: Vec<String>| {
            let mut params = params.into_iter().map(|name| self.placed(name));
            let param = params.next().unwrap_or_default();
            untried = params.collect();
            param
        };
        let (mode, position) = match found {
            detect::Found::Link => (Mode::Link, Position::First),
            detect::Found::Next { pointer } => (Mode::Next { pointer }, Position::First),
            detect::Found::Cursor { from, params } => {
                let param = names(params);
                let position = Position::Cursor {
                    value: String::new(),
                    param,
                    from: from.clone(),
                };
                (Mode::Cursor { from }, position)
            }
            detect::Found::Page { params, current } => {
                let param = names(params);
                (Mode::Page, self.page_position(param, current))
            }
            detect::Found::Guess { page, offset } => {
                self.fallback = Some(offset);
                (Mode::Page, self.page_position(page, None))
            }
            detect::Found::Offset { params, start } => {
                let param = names(params);
                (
                    Mode::Offset,
                    Position::Offset {
                        offset: start,
                        param,
                    },
                )
            }
            detect::Found::Once => (Mode::Once, Position::First),
        };
        self.untried = untried;
        self.mode = mode;
        self.position = position;
    }

    /// The position of a page with number `current`. Not knowing the first page's number,
    /// call it 0 and ask for page 1: the answer tells whether that was the first page again.
    fn page_position(&mut self, param: String, current: Option<u64>) -> Position {
        self.probing = current.is_none();
        Position::Page {
            number: current.unwrap_or(0),
            param,
            first: current.filter(|n| *n <= 1),
        }
    }

    /// For a cursor the flags named (`--cursor-path`, `--cursor-from-record`): the
    /// parameter it goes back in, and a check that the last record has it.
    fn settle_given(
        &mut self,
        page: &Page,
        headers: &HeaderMap,
        records: &[&str],
    ) -> Result<(), Error> {
        let Mode::Cursor { from } = &self.mode else {
            return Ok(());
        };
        if let (CursorSource::LastRecord(pointer), Some(last)) = (from, records.last()) {
            if records::lookup(last, pointer).is_none() {
                return Err(absent("--cursor-from-record", pointer, page, headers));
            }
        }
        let mut params = detect::cursor_params(&self.pages, from).into_iter();
        self.position = Position::Cursor {
            value: String::new(),
            param: params.next().unwrap_or_default(),
            from: from.clone(),
        };
        self.untried = params.collect();
        Ok(())
    }

    /// Whether page 1, asked for after the first page, repeats it: then pages count from
    /// 1 and the next is page 2. Most of it shared, not just a record or two that moved: a
    /// 0-based page 1 with one record shifted in from the first page is still the second
    /// page.
    fn counts_from_one(&mut self, records: &[&str]) -> bool {
        let first_page = std::mem::take(&mut self.first_page);
        let shared = records
            .iter()
            .filter(|r| first_page.contains(&guard::hash(r)))
            .count();
        let again = shared * 2 > records.len();
        let Position::Page { number, first, .. } = &mut self.position else {
            return false;
        };
        *first = Some(if again { 1 } else { 0 });
        if again {
            info!("pagination: page 1 is the first page again, so pages count from 1");
            *number = 2;
        }
        again
    }

    /// What a page other than the first taught, before it is written: that page 1 is
    /// the first page again (numbers start at 1), or that the API ignored the parameter's
    /// name, which is then swapped for the next one to try.
    fn learn(&mut self, records: &[&str]) -> Result<Learned, Error> {
        if std::mem::take(&mut self.probing) && self.counts_from_one(records) {
            return Ok(Learned::FirstAgain);
        }
        // An API that ignores a parameter answers with the first page (or, for a name
        // it takes as a filter, with nothing although more was announced).
        let first_again = self.guard.is_first(records);
        let repeated = first_again || self.guard.repeats(records);
        if repeated && self.untried.is_empty() {
            if let Some(param) = self.fallback.take() {
                info!(
                    "pagination: the API seems to ignore page numbers; trying offsets in `{param}`"
                );
                self.mode = Mode::Offset;
                self.position = Position::Offset {
                    offset: self.records,
                    param,
                };
                return Ok(Learned::Renamed);
            }
        }
        let ignored = repeated || (records.is_empty() && self.said_more);
        if ignored && !self.untried.is_empty() {
            if let Some(param) = match &mut self.position {
                Position::Page { param, .. }
                | Position::Offset { param, .. }
                | Position::Cursor { param, .. } => Some(param),
                _ => None,
            } {
                let next = self.untried.remove(0);
                let what = if repeated {
                    "repeated a page"
                } else {
                    "was empty"
                };
                info!(
                    "pagination: the API seems to ignore `{param}` (the page asked with it \
                     {what}); trying `{next}`"
                );
                *param = next;
                return Ok(Learned::Renamed);
            }
        }
        if first_again {
            return Err(Error::BadResponse(format!(
                "pagination loop: page {} repeated the {} records of page 1{}",
                self.fetched + 1,
                records.len(),
                repeated_page_hint(&self.mode, &self.position)
            )));
        }
        Ok(Learned::Nothing)
    }

    fn step(
        &mut self,
        headers: &HeaderMap,
        page: &Page,
        records: &[&str],
        url: &Url,
        more: Option<bool>,
    ) -> Result<Step, Error> {
        if more == Some(false) {
            return Ok(Step::Done("has_more is false"));
        }
        let total_reached =
            more != Some(true) && self.total_records().is_some_and(|t| self.records >= t);
        match self.mode.clone() {
            Mode::Page | Mode::Offset if records.is_empty() => Ok(Step::Done("empty page")),
            Mode::Page => self.next_page(more, total_reached),
            Mode::Offset => self.next_offset(records.len() as u64, total_reached),
            Mode::Cursor { from } => self.next_cursor(page, records, from),
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
                None => Ok(Step::Done("no next link")),
            },
            Mode::Once => Ok(Step::Done("one request")),
            Mode::Detect(_) => unreachable!("the first page decides the style"),
        }
    }

    /// The page after this one, unless a page count or the total says this was the last.
    fn next_page(&mut self, more: Option<bool>, total_reached: bool) -> Result<Step, Error> {
        let Position::Page {
            number,
            param,
            first,
        } = self.position.clone()
        else {
            unreachable!("page numbers keep a page position");
        };
        let next = number
            .checked_add(1)
            .ok_or_else(|| overflow("page number"))?;
        let past = first
            .zip(self.totals.pages)
            .map(|(f, n)| f.saturating_add(n));
        if more != Some(true) && past.is_some_and(|past| next >= past) {
            return Ok(Step::Done("last page of the page count"));
        }
        if total_reached {
            return Ok(Step::Done("all records of the total fetched"));
        }
        self.position = Position::Page {
            number: next,
            param,
            first,
        };
        Ok(Step::Continue)
    }

    /// The offset past this page's `count` records.
    fn next_offset(&mut self, count: u64, total_reached: bool) -> Result<Step, Error> {
        let Position::Offset { offset, param } = self.position.clone() else {
            unreachable!("offsets keep an offset position");
        };
        let offset = offset
            .checked_add(count)
            .ok_or_else(|| overflow("offset"))?;
        self.position = Position::Offset { offset, param };
        if total_reached {
            return Ok(Step::Done("all records of the total fetched"));
        }
        Ok(Step::Continue)
    }

    /// The cursor the page gives for the next one, unless the run has sent it before.
    fn next_cursor(
        &mut self,
        page: &Page,
        records: &[&str],
        from: CursorSource,
    ) -> Result<Step, Error> {
        let Position::Cursor {
            value: current,
            param,
            ..
        } = self.position.clone()
        else {
            unreachable!("cursors keep a cursor position");
        };
        let raw = match &from {
            CursorSource::Body(pointer) => page.raw(pointer),
            CursorSource::LastRecord(pointer) => {
                records.last().and_then(|r| records::lookup(r, pointer))
            }
        };
        // Into the body goes the value as sent; into the query, its text.
        let value = match param.starts_with('/') {
            true => raw.and_then(detect::cursor_json),
            false => raw.and_then(detect::cursor_text),
        };
        let Some(value) = value else {
            return Ok(Step::Done("no next cursor"));
        };
        if !current.is_empty() {
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
                format!("next URL {}", crate::report::redact::url(&next))
            })?;
        self.position = position(next);
        Ok(Step::Continue)
    }
}

/// What a page taught about the API's parameters.
#[derive(Debug, PartialEq, Eq)]
enum Learned {
    Nothing,
    /// Page 1 was the first page again.
    FirstAgain,
    /// The parameter's name was ignored; another is tried.
    Renamed,
}

fn overflow(what: &str) -> Error {
    Error::BadResponse(format!(
        "the {what} would pass the largest number apifetch can send; stopping"
    ))
}

/// What to do about a page that repeats the one before, in the style's terms.
fn repeated_page_hint(mode: &Mode, position: &Position) -> String {
    let (param, flag) = match (mode, position) {
        (Mode::Page, Position::Page { param, .. }) => (param, "--page-param"),
        (Mode::Offset, Position::Offset { param, .. }) => (param, "--offset-param"),
        (Mode::Cursor { .. }, Position::Cursor { param, .. }) => (param, "--cursor-param"),
        _ => return String::new(),
    };
    format!(
        "; the API seems to ignore `{param}`: if it is not paginated pass --paginate none, \
         otherwise name its parameter with {flag} or its style with --paginate"
    )
}

/// A cursor short enough for a log line.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A cursor as it goes into a request: parsed back into the JSON value it was when the
/// parameter points into the body, the text itself otherwise.
fn cursor_value(param: &str, value: &str) -> Value {
    match param.starts_with('/') {
        true => serde_json::from_str(value).unwrap_or_else(|_| Value::from(value)),
        false => Value::from(value),
    }
}

/// Sets `value` at JSON Pointer `pointer` in `doc`, making the objects on the way.
fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = tokens.split_last() else {
        *doc = value;
        return;
    };
    let mut at = doc;
    for token in path {
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        at = at
            .as_object_mut()
            .expect("made an object above")
            .entry(token.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if !at.is_object() {
        *at = Value::Object(serde_json::Map::new());
    }
    at.as_object_mut()
        .expect("made an object above")
        .insert(last.clone(), value);
}

/// Sets each (name, value) in the query, replacing any values the URL already had for
/// that name. Every other parameter is kept as it was written, so the API gets back
/// exactly the text the user gave (`$skip`, `page[size]`, `+` for a space).
fn set_query(url: &mut Url, set: &[(&str, String)]) {
    if set.is_empty() {
        return;
    }
    let names: Vec<&str> = set.iter().map(|(name, _)| *name).collect();
    let kept: Vec<String> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|piece| !piece.is_empty())
        .filter(|piece| {
            let name = piece.split('=').next().unwrap_or_default();
            let decoded = url::form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !names.contains(&decoded.as_str())
        })
        .map(str::to_string)
        .collect();
    let added = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(set.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let query = kept
        .into_iter()
        .chain([added])
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&query));
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, LINK};

    fn pages(style: Style) -> Settings {
        Settings::defaults(style)
    }

    fn base() -> Url {
        Url::parse("http://h/x").unwrap()
    }

    fn auto() -> Paginator {
        Paginator::new(&base(), &[], &pages(Style::Auto))
    }

    /// Feeds one page body (with `headers`) to the paginator; returns the step and the
    /// records it kept.
    fn feed_kept(
        p: &mut Paginator,
        headers: &HeaderMap,
        json: &str,
    ) -> Result<(Step, usize), Error> {
        let page = Page::parse(json).unwrap();
        let mut records = page.records(&records::Select::default()).unwrap();
        let step = p.advance(headers, &page, &mut records)?;
        Ok((step, records.len()))
    }

    fn feed(p: &mut Paginator, headers: &HeaderMap, json: &str) -> Result<Step, Error> {
        feed_kept(p, headers, json).map(|(step, _)| step)
    }

    fn body(p: &mut Paginator, json: &str) -> Step {
        feed(p, &HeaderMap::new(), json).unwrap()
    }

    fn links(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(value).unwrap());
        h
    }

    fn at_page(number: u64, first: Option<u64>) -> Position {
        Position::Page {
            number,
            param: "page".into(),
            first,
        }
    }

    #[test]
    fn the_first_request_is_the_url_as_given_with_only_what_the_flags_add() {
        let raw = "http://h/x?status=open&page%5Bsize%5D=5&$skip=0&q=a+b";
        let p = Paginator::new(&Url::parse(raw).unwrap(), &[], &pages(Style::Auto));
        assert_eq!(p.url().as_str(), raw);
        let mut sized = pages(Style::Auto);
        sized.page_size = Some(50);
        let p = Paginator::new(
            &Url::parse(raw).unwrap(),
            &[("sort".into(), "id".into())],
            &sized,
        );
        assert_eq!(p.url().as_str(), format!("{raw}&sort=id&per_page=50"));
        let mut start = pages(Style::Offset);
        start.page_size = Some(50);
        let p = Paginator::new(&base(), &[], &start);
        assert_eq!(p.url().as_str(), "http://h/x?limit=50");
    }

    #[test]
    fn echoed_page_numbers_name_the_parameter_and_the_base() {
        let cases = [
            (
                r#"{"data": [1], "page": 1, "total_pages": 3}"#,
                "http://h/x?page=2",
            ),
            (
                r#"{"content": [1], "number": 0, "totalPages": 3}"#,
                "http://h/x?page=1",
            ),
            (
                r#"{"_embedded": {"o": [1]}, "page": {"number": 0, "totalPages": 3}}"#,
                "http://h/x?page=1",
            ),
            (
                r#"{"data": [1], "meta": {"current_page": 1, "last_page": 3}}"#,
                "http://h/x?page=2",
            ),
            (r#"{"items": [1], "next_page": 2}"#, "http://h/x?page=2"),
            (
                r#"{"issues": [1], "startAt": 0, "maxResults": 1, "total": 3}"#,
                "http://h/x?startAt=1",
            ),
            (
                r#"{"data": [1], "skip": 0, "limit": 1, "total": 3}"#,
                "http://h/x?skip=1",
            ),
        ];
        for (json, next) in cases {
            let mut p = auto();
            assert_eq!(body(&mut p, json), Step::Continue, "{json}");
            assert_eq!(p.url().as_str(), next, "{json}");
        }
    }

    #[test]
    fn without_an_echo_page_one_tells_whether_pages_count_from_one() {
        // 1-based: page 1 repeats the first page, which is not written again.
        let mut p = auto();
        assert_eq!(
            body(&mut p, r#"{"data": [1, 2], "has_more": true}"#),
            Step::Continue
        );
        assert_eq!(p.url().as_str(), "http://h/x?page=1");
        let again = feed_kept(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [1, 2], "has_more": true}"#,
        );
        assert_eq!(again.unwrap(), (Step::Continue, 0));
        assert_eq!(p.url().as_str(), "http://h/x?page=2");
        assert_eq!(
            body(&mut p, r#"{"data": [3], "has_more": false}"#),
            Step::Done("has_more is false")
        );
        assert_eq!(p.fetched(), 2);
        // 0-based: page 1 is the second page.
        let mut p = auto();
        body(&mut p, r#"{"data": [1, 2], "total": 4}"#);
        let second = feed_kept(&mut p, &HeaderMap::new(), r#"{"data": [3, 4], "total": 4}"#);
        assert_eq!(
            second.unwrap(),
            (Step::Done("all records of the total fetched"), 2)
        );
        // A record shifted in from the first page does not make page 1 the first page.
        let mut p = auto();
        body(&mut p, r#"{"data": [1, 2, 3], "has_more": true}"#);
        let shifted = feed_kept(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [3, 4, 5], "has_more": false}"#,
        );
        assert_eq!(shifted.unwrap(), (Step::Done("has_more is false"), 3));
    }

    #[test]
    fn a_response_with_no_sign_of_more_is_the_whole_result() {
        let mut p = auto();
        assert_eq!(
            body(&mut p, r#"{"data": [1, 2]}"#),
            Step::Done("one request")
        );
        let mut p = auto();
        assert_eq!(body(&mut p, "[1, 2]"), Step::Done("one request"));
        assert!(p.shortfall(&Step::Done("one request")).is_none());
    }

    #[test]
    fn a_page_number_in_the_url_is_paged_on_until_an_empty_page() {
        let mut p = Paginator::new(
            &Url::parse("http://h/x?page=3").unwrap(),
            &[],
            &pages(Style::Auto),
        );
        assert_eq!(body(&mut p, "[1]"), Step::Continue);
        assert_eq!(p.url().as_str(), "http://h/x?page=4");
        assert_eq!(body(&mut p, "[]"), Step::Done("empty page"));
    }

    #[test]
    fn fewer_records_than_the_total_is_a_shortfall() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Offset));
        assert_eq!(
            body(&mut p, r#"{"items": [1, 2, 3], "total": 5}"#),
            Step::Continue
        );
        let step = body(&mut p, r#"{"items": [], "total": 5}"#);
        let err = p.shortfall(&step).unwrap().to_string();
        assert!(
            err.contains("the API announced 5 records (`/total` in the body), 3 arrived"),
            "{err}"
        );
        assert!(err.contains("--max-records"), "{err}");
        // An incremental run may not stop short: the advice does not offer it.
        let incremental = Settings {
            may_stop_short: false,
            ..pages(Style::Offset)
        };
        let mut p = Paginator::new(&base(), &[], &incremental);
        body(&mut p, r#"{"items": [1, 2, 3], "total": 5}"#);
        let step = body(&mut p, r#"{"items": [], "total": 5}"#);
        let err = p.shortfall(&step).unwrap().to_string();
        assert!(err.contains("3 arrived") && !err.contains("--max"), "{err}");
        // An empty page after one that said more is a shortfall even without a total.
        let mut p = Paginator::new(&base(), &[], &pages(Style::Page));
        body(&mut p, r#"{"data": [1], "page": 1, "has_more": true}"#);
        let step = body(&mut p, r#"{"data": [], "page": 2}"#);
        assert!(
            p.shortfall(&step)
                .unwrap()
                .to_string()
                .contains("page 2 was empty")
        );
        // And so is an empty page within the page count the API stated.
        let mut p = Paginator::new(&base(), &[], &pages(Style::Page));
        body(&mut p, r#"{"data": [1], "page": 1, "total_pages": 3}"#);
        let step = body(&mut p, r#"{"data": [], "page": 2, "total_pages": 3}"#);
        assert!(
            p.shortfall(&step)
                .unwrap()
                .to_string()
                .contains("page 2 was empty")
        );
        // And so is a last page that says more follow but names no cursor.
        let mut p = auto();
        let step = body(
            &mut p,
            r#"{"data": [1], "next_cursor": null, "has_more": true}"#,
        );
        let err = p.shortfall(&step).unwrap().to_string();
        assert!(
            err.contains("page 1 said more records follow, but"),
            "{err}"
        );
        // --max-records and --max-pages stop short on purpose.
        let mut capped = pages(Style::Offset);
        capped.max_records = Some(2);
        let mut p = Paginator::new(&base(), &[], &capped);
        let (step, kept) = {
            let page = Page::parse(r#"{"items": [1, 2, 3], "total": 5}"#).unwrap();
            let mut records = page.records(&records::Select::default()).unwrap();
            records.truncate(p.room());
            (
                p.advance(&HeaderMap::new(), &page, &mut records).unwrap(),
                records.len(),
            )
        };
        assert_eq!((&step, kept), (&Step::Done("--max-records reached"), 2));
        assert!(p.shortfall(&step).is_none());
    }

    #[test]
    fn flags_that_point_at_nothing_are_usage_errors_naming_what_is_there() {
        for (flag, set) in [
            (
                "--cursor-path",
                (|p: &mut Settings| p.cursor = Some(CursorSource::Body("/nope".into())))
                    as fn(&mut Settings),
            ),
            ("--next-path", |p| p.next_path = Some("/nope".into())),
            ("--has-more", |p| p.has_more = Some("/nope".into())),
            ("--total", |p| p.total = Some("/nope".into())),
        ] {
            let mut flags = pages(Style::Auto);
            set(&mut flags);
            flags.style = match flag {
                "--cursor-path" => Style::Cursor,
                "--next-path" => Style::Next,
                _ => Style::Auto,
            };
            let mut p = Paginator::new(&base(), &[], &flags);
            let err = feed(
                &mut p,
                &HeaderMap::new(),
                r#"{"data": [1], "meta": {"nxt": "abc"}}"#,
            )
            .unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{flag}: {err}");
            let err = err.to_string();
            assert!(
                err.contains(&format!(
                    "{flag} /nope: the first response has nothing there"
                )),
                "{err}"
            );
            assert!(err.contains("/meta/nxt = \"abc\""), "{err}");
        }
        for style in [Style::Next, Style::Cursor, Style::Link] {
            let mut p = Paginator::new(&base(), &[], &pages(style));
            let err = feed(&mut p, &HeaderMap::new(), r#"{"data": [1]}"#).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{style:?}: {err}");
        }
        // Present and null: the last page.
        let mut given = pages(Style::Cursor);
        given.cursor = Some(CursorSource::Body("/meta/next".into()));
        let mut p = Paginator::new(&base(), &[], &given);
        assert_eq!(
            body(&mut p, r#"{"data": [1], "meta": {"next": null}}"#),
            Step::Done("no next cursor")
        );
    }

    #[test]
    fn values_go_into_the_body_where_their_parameter_points() {
        let mut post = pages(Style::Auto);
        post.body = Some(serde_json::json!({"filter": {"a": 1}}));
        post.page_size = Some(5);
        post.size_param = "/page/size".into();
        let mut p = Paginator::new(&base(), &[], &post);
        let (url, sent) = p.request_at(p.position());
        assert_eq!(url.as_str(), "http://h/x");
        assert_eq!(sent.unwrap(), r#"{"filter":{"a":1},"page":{"size":5}}"#);
        body(
            &mut p,
            r#"{"object": "list", "results": [1], "next_cursor": "c2"}"#,
        );
        let (_, sent) = p.request_at(p.position());
        assert_eq!(
            sent.unwrap(),
            r#"{"filter":{"a":1},"page":{"size":5},"start_cursor":"c2"}"#
        );
    }

    #[test]
    fn a_page_size_the_api_did_not_read_is_a_usage_error() {
        let mut sized = pages(Style::Auto);
        sized.page_size = Some(20);
        let mut p = Paginator::new(&base(), &[], &sized);
        let err = feed(
            &mut p,
            &HeaderMap::new(),
            r#"{"data": [], "limit": 10, "total": 0}"#,
        );
        let err = err.unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(
            err.to_string()
                .contains("went out as `per_page`, but the API answered with /limit = 10"),
            "{err}"
        );
        // The same name with a smaller size is the API's cap.
        let mut p = Paginator::new(&base(), &[], &sized);
        assert_eq!(
            body(
                &mut p,
                r#"{"data": [1], "page": 1, "per_page": 10, "has_more": false}"#
            ),
            Step::Done("has_more is false")
        );
    }

    #[test]
    fn a_cursor_name_the_api_ignores_is_swapped_for_the_next_known_one() {
        let mut p = auto();
        assert_eq!(
            body(&mut p, r#"{"items": [1], "nextPageToken": "t2"}"#),
            Step::Continue
        );
        assert_eq!(p.url().as_str(), "http://h/x?pageToken=t2");
        let (step, kept) = feed_kept(
            &mut p,
            &HeaderMap::new(),
            r#"{"items": [1], "nextPageToken": "t2"}"#,
        )
        .unwrap();
        assert_eq!((step, kept), (Step::Continue, 0));
        assert_eq!(p.url().as_str(), "http://h/x?nextPageToken=t2");
        assert_eq!(
            body(&mut p, r#"{"items": [2]}"#),
            Step::Done("no next cursor")
        );
        assert_eq!(p.fetched(), 2);
    }

    #[test]
    fn max_pages_caps_only_when_more_may_remain() {
        let mut capped = pages(Style::Page);
        capped.max_pages = Some(2);
        let mut p = Paginator::new(&base(), &[], &capped);
        assert_eq!(body(&mut p, r#"{"data": [1], "page": 1}"#), Step::Continue);
        assert_eq!(body(&mut p, r#"{"data": [2], "page": 2}"#), Step::Capped);
        capped.max_pages = Some(1);
        let mut p = Paginator::new(&base(), &[], &capped);
        assert_eq!(
            body(&mut p, r#"{"data": [1], "has_more": false}"#),
            Step::Done("has_more is false")
        );
    }

    #[test]
    fn offsets_advance_by_records_received_and_stop_at_the_total() {
        let mut p = Paginator::new(&base(), &[], &pages(Style::Offset));
        assert_eq!(p.url().as_str(), "http://h/x");
        assert_eq!(
            body(&mut p, r#"{"items": [1, 2, 3], "total": 5}"#),
            Step::Continue
        );
        assert_eq!(p.url().as_str(), "http://h/x?offset=3");
        assert_eq!(p.total_records(), Some(5));
        assert_eq!(p.total_pages(), Some(2));
        assert_eq!(
            body(&mut p, r#"{"items": [4, 5], "total": 5}"#),
            Step::Done("all records of the total fetched")
        );
    }

    #[test]
    fn totals_predict_upcoming_pages_once_the_numbering_is_known() {
        let mut p = auto();
        assert_eq!(p.upcoming(4), []);
        assert_eq!(
            body(&mut p, r#"{"data": [1, 2], "page": 1, "total_pages": 4}"#),
            Step::Continue
        );
        assert_eq!(p.total_pages(), Some(4));
        let ahead = p.upcoming(10);
        assert_eq!(ahead, [2, 3, 4].map(|n| at_page(n, Some(1))).to_vec());
        assert_eq!(p.url_at(&ahead[2]).as_str(), "http://h/x?page=4");
        // Not while page 1 is being tried.
        let mut p = auto();
        body(&mut p, r#"{"data": [1, 2], "total_pages": 4}"#);
        assert_eq!(p.upcoming(4), []);
        let mut p = Paginator::new(&base(), &[], &pages(Style::Offset));
        let mut h = HeaderMap::new();
        h.insert("x-total-count", HeaderValue::from_static("7"));
        assert_eq!(feed(&mut p, &h, "[1, 2, 3]").unwrap(), Step::Continue);
        let offsets: Vec<_> = p
            .upcoming(5)
            .iter()
            .map(|position| p.url_at(position).to_string())
            .collect();
        assert_eq!(offsets, ["http://h/x?offset=3", "http://h/x?offset=6"]);
    }

    #[test]
    fn numbers_at_the_end_of_the_range_do_not_wrap() {
        let mut p = Paginator::new(
            &Url::parse("http://h/x?page=18446744073709551615").unwrap(),
            &[],
            &pages(Style::Page),
        );
        let err = feed(&mut p, &HeaderMap::new(), "[1]").unwrap_err();
        assert!(err.to_string().contains("largest number"), "{err}");
    }

    #[test]
    fn links_are_followed_as_given() {
        let mut p = auto();
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
                r#"{"count": 9, "next": "http://h/x?page=2", "previous": null, "results": [1]}"#,
                Style::Next,
                "http://h/x?page=2",
            ),
            (
                r#"{"rows": [[1]], "columns": ["id"], "next": "a1", "next_url": "/x?_next=a1"}"#,
                Style::Next,
                "http://h/x?_next=a1",
            ),
            (
                r#"{"data": [1], "next_page_url": "http://h/x?page=2", "current_page": 1}"#,
                Style::Next,
                "http://h/x?page=2",
            ),
            (
                r#"{"results": [1], "next_cursor": "c2"}"#,
                Style::Cursor,
                "http://h/x?cursor=c2",
            ),
            (
                r#"{"object": "list", "results": [1], "next_cursor": "c2", "has_more": true}"#,
                Style::Cursor,
                "http://h/x?start_cursor=c2",
            ),
            (
                r#"{"members": [1], "response_metadata": {"next_cursor": "dXNlcg=="}}"#,
                Style::Cursor,
                "http://h/x?cursor=dXNlcg%3D%3D",
            ),
            (
                r#"{"members": [1], "next_cursor": "dXNlcg%3D%3D"}"#,
                Style::Cursor,
                "http://h/x?cursor=dXNlcg%3D%3D",
            ),
            (
                r#"{"items": [1], "nextPageToken": "t2"}"#,
                Style::Cursor,
                "http://h/x?pageToken=t2",
            ),
            (
                r#"{"data": [1], "meta": {"next_token": "t2"}}"#,
                Style::Cursor,
                "http://h/x?pagination_token=t2",
            ),
            (
                r#"{"records": [1], "offset": "itr/rec"}"#,
                Style::Cursor,
                "http://h/x?offset=itr%2Frec",
            ),
            (
                r#"{"object": "list", "url": "/v1/c", "data": [{"id": "cus_1"}], "has_more": true}"#,
                Style::Cursor,
                "http://h/x?starting_after=cus_1",
            ),
            (
                r#"{"items": [1], "offset": 0, "limit": 1, "total": 9}"#,
                Style::Offset,
                "http://h/x?offset=1",
            ),
            (
                r#"{"data": [1], "has_more": true}"#,
                Style::Page,
                "http://h/x?page=1",
            ),
        ];
        for (json, style, next) in cases {
            let mut p = auto();
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
            let mut p = auto();
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
        let mut p = auto();
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

        let mut p = auto();
        body(&mut p, r#"{"data": [1], "next": "/x?n=2"}"#);
        let err = feed(&mut p, &HeaderMap::new(), r#"{"data": [2], "next": "/x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("next URL http://h/x again"), "{err}");

        let mut p = Paginator::new(
            &Url::parse("http://h/x?page=1").unwrap(),
            &[],
            &pages(Style::Auto),
        );
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
        let mut p = auto();
        body(&mut p, r#"{"items": [1], "nextPageToken": "t2"}"#);
        let saved = serde_json::to_string(p.position()).unwrap();
        assert_eq!(
            saved,
            r#"{"kind":"cursor","value":"t2","param":"pageToken","from":{"in":"body","pointer":"/nextPageToken"}}"#
        );
        let mut q = auto();
        q.resume(
            serde_json::from_str(&saved).unwrap(),
            p.fetched(),
            1,
            p.standing(false).guard,
        );
        assert_eq!((q.style(), q.url()), (Style::Cursor, p.url()));
        assert_eq!(
            body(&mut q, r#"{"items": [2], "nextPageToken": ""}"#),
            Step::Done("no next cursor")
        );
    }
}
