//! Fetching later pages while earlier ones are in flight (`--concurrency`).
//!
//! Only positions the paginator knows in advance are fetched ahead (page numbers or
//! offsets with a known total); responses are handed out strictly in page order, so the
//! records are written in order and exactly once. Pacing, rate limits and the breaker
//! still hold for the whole run: every request passes the same [`crate::policy::gate`].

use std::collections::VecDeque;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use tracing::info;
use url::Url;

use crate::error::Error;
use crate::fetch::http::{Fetcher, Response};
use crate::paginate::{Paginator, Position, Style};

/// A page's URL and how fetching it ended.
pub type Fetched = (Url, Result<Response, Error>);

pub struct Window<'a> {
    fetcher: &'a Fetcher,
    /// Requests in flight at most (`--concurrency`).
    size: usize,
    /// The positions of the requests in `in_flight`, in the same order.
    queued: VecDeque<Position>,
    in_flight: FuturesOrdered<BoxFuture<'a, Fetched>>,
    /// Whether a page came through this window yet: only then does the paginator know
    /// what it can (a resumed run has no total until its first new page is in).
    handed_out: bool,
    said_sequential: bool,
}

impl<'a> Window<'a> {
    pub fn new(fetcher: &'a Fetcher, size: usize) -> Self {
        Window {
            fetcher,
            size,
            queued: VecDeque::new(),
            in_flight: FuturesOrdered::new(),
            handed_out: false,
            said_sequential: false,
        }
    }

    /// The response for the paginator's current position. Meanwhile up to `size` known
    /// positions from there on are in flight; fetched pages the paginator did not move
    /// to (an offset page came back short) are dropped and asked for again.
    pub async fn next(&mut self, pages: &Paginator) -> Fetched {
        let mut wanted = if self.size > 1 {
            pages.upcoming(self.size)
        } else {
            Vec::new()
        };
        if wanted.is_empty() {
            self.say_sequential(pages);
            wanted.push(pages.position().clone());
        }
        // Every page the paginator moves to is the one fetched first, unless a short
        // offset page moved it elsewhere: then what was fetched ahead is of no use.
        if self.queued.front().is_some_and(|first| *first != wanted[0]) {
            self.queued.clear();
            self.in_flight = FuturesOrdered::new();
        }
        for position in wanted.into_iter().skip(self.queued.len()) {
            let (url, body) = pages.request_at(&position);
            let fetcher = self.fetcher;
            self.in_flight.push_back(Box::pin(async move {
                let response = fetcher.fetch(&url, body.as_ref()).await;
                (url, response)
            }));
            self.queued.push_back(position);
        }
        self.queued.pop_front();
        let fetched = self.in_flight.next().await;
        self.handed_out = true;
        fetched.expect("the current position is always queued")
    }

    /// Says once, after the first page, why `--concurrency` cannot fetch ahead.
    fn say_sequential(&mut self, pages: &Paginator) {
        if self.size == 1 || self.said_sequential || !self.handed_out {
            return;
        }
        self.said_sequential = true;
        let why = match pages.style() {
            Style::Page | Style::Offset => "the API gives no total (total, total_pages, \
                 X-Total-Count or Link rel=\"last\"), so later pages are not known in advance"
                .to_string(),
            style => format!(
                "with {} pagination each page's position comes from the previous response",
                format!("{style:?}").to_lowercase()
            ),
        };
        info!(
            "--concurrency {}: fetching one page at a time: {why}",
            self.size
        );
    }
}
