//! Where the next page comes from, and when there are no more.

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::config::Pages;
use crate::records::Page;

/// What the paginator decided after a page.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetch the next page.
    Continue,
    /// The API said there is nothing more (the reason is for the log).
    Done(&'static str),
    /// `--max-pages` stopped the run while more pages may remain.
    Capped,
}

/// Where the next request starts: everything needed to continue a run later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Page-number pagination: the number of the next page.
    Page { number: u64 },
}

/// Page-number pagination: `page=1,2,3…` with a page size.
#[derive(Debug)]
pub struct Paginator {
    base: Url,
    pages: Pages,
    position: Position,
    fetched: u64,
}

impl Paginator {
    /// `base` is the user's URL; `params` are the `--param` extras added to every request.
    pub fn new(base: &Url, params: &[(String, String)], pages: &Pages) -> Self {
        let mut base = base.clone();
        set_query(&mut base, &[]);
        if !params.is_empty() {
            base.query_pairs_mut().extend_pairs(params);
        }
        Paginator {
            base,
            position: Position::Page {
                number: pages.start_page,
            },
            pages: pages.clone(),
            fetched: 0,
        }
    }

    /// The URL of the page to fetch now.
    pub fn url(&self) -> Url {
        let mut url = self.base.clone();
        let Position::Page { number } = &self.position;
        let page = number.to_string();
        let size = self.pages.page_size.to_string();
        set_query(
            &mut url,
            &[
                (&self.pages.page_param, &page),
                (&self.pages.size_param, &size),
            ],
        );
        url
    }

    /// Where the next request starts.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Pages fetched so far (including pages fetched by the run being resumed).
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// Continues from where an earlier run stopped.
    pub fn resume(&mut self, position: Position, fetched: u64) {
        self.position = position;
        self.fetched = fetched;
    }

    /// Moves past a page that held `records` records and came with these headers and body.
    pub fn advance(&mut self, _headers: &HeaderMap, page: &Page, records: usize) -> Step {
        self.fetched += 1;
        let Position::Page { number } = &mut self.position;
        *number += 1;
        if records == 0 {
            return Step::Done("empty page");
        }
        if page.value("/has_more") == Some(Value::Bool(false)) {
            return Step::Done("has_more is false");
        }
        if self.pages.max_pages.is_some_and(|max| self.fetched >= max) {
            return Step::Capped;
        }
        Step::Continue
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

    fn page(json: &str) -> Page<'_> {
        Page::parse(json.as_bytes()).unwrap()
    }

    fn pages(max: Option<u64>) -> Pages {
        Pages {
            page_param: "page".into(),
            size_param: "per_page".into(),
            page_size: 50,
            start_page: 1,
            max_pages: max,
        }
    }

    #[test]
    fn keeps_existing_query_and_replaces_page_params() {
        let base = Url::parse("http://h/x?status=open&page=9").unwrap();
        let p = Paginator::new(&base, &[("sort".into(), "id".into())], &pages(None));
        assert_eq!(
            p.url().as_str(),
            "http://h/x?status=open&sort=id&page=1&per_page=50"
        );
    }

    #[test]
    fn stops_on_empty_page_and_has_more_false_but_not_on_short_pages() {
        let base = Url::parse("http://h/x").unwrap();
        let mut p = Paginator::new(&base, &[], &pages(None));
        assert_eq!(
            p.advance(&HeaderMap::new(), &page(r#"[1]"#), 1),
            Step::Continue
        );
        assert_eq!(p.position(), &Position::Page { number: 2 });
        assert_eq!(
            p.advance(
                &HeaderMap::new(),
                &page(r#"{"data": [1], "has_more": true}"#),
                1
            ),
            Step::Continue
        );
        assert_eq!(
            p.advance(
                &HeaderMap::new(),
                &page(r#"{"data": [1], "has_more": false}"#),
                1
            ),
            Step::Done("has_more is false")
        );
        let mut p = Paginator::new(&base, &[], &pages(None));
        assert_eq!(
            p.advance(&HeaderMap::new(), &page(r#"[]"#), 0),
            Step::Done("empty page")
        );
    }

    #[test]
    fn max_pages_caps_only_when_more_may_remain() {
        let base = Url::parse("http://h/x").unwrap();
        let mut p = Paginator::new(&base, &[], &pages(Some(2)));
        assert_eq!(
            p.advance(&HeaderMap::new(), &page(r#"[1]"#), 1),
            Step::Continue
        );
        assert_eq!(
            p.advance(&HeaderMap::new(), &page(r#"[1]"#), 1),
            Step::Capped
        );
        let mut p = Paginator::new(&base, &[], &pages(Some(1)));
        assert_eq!(
            p.advance(
                &HeaderMap::new(),
                &page(r#"{"data": [1], "has_more": false}"#),
                1
            ),
            Step::Done("has_more is false")
        );
    }
}
