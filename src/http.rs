//! One HTTP attempt, and the client that makes it.
//!
//! An attempt either yields a whole successful response or a [`Failure`] classified for the
//! retry policy; the caller never sees a half-read body.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use tracing::warn;
use url::{Origin, Url};

use crate::config::Request;
use crate::error::Error;
use crate::retry::{self, Failure};

/// A successful response, read in full.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How much of an error body to quote in a message.
const SNIPPET_CHARS: usize = 200;

/// The client for a run. The user's headers are not client defaults: [`Fetcher`] adds
/// them per request, so that they can be withheld from other origins.
pub fn client(request: &Request) -> Result<Client, Error> {
    Client::builder()
        .user_agent(concat!("apifetch/", env!("CARGO_PKG_VERSION")))
        .timeout(request.timeout)
        .connect_timeout(request.connect_timeout)
        .build()
        .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))
}

/// The client and the retry policy, shared by every request of a run.
pub struct Fetcher {
    client: Client,
    policy: retry::Policy,
    headers: HeaderMap,
    trust: Trust,
    /// Other origins already warned about, so the warning is not repeated per page.
    warned: Mutex<HashSet<String>>,
    requests: AtomicU64,
    attempts: AtomicU64,
}

/// Where the user's headers (`-H`, and the credentials among them) may be sent.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only to this origin (the URL the user gave): a next link elsewhere must not carry
    /// the user's `Authorization`, `Cookie` or API key, as curl does without
    /// `--location-trusted`.
    Origin(Origin),
    /// Everywhere (`--trust-next-origin`).
    Everywhere,
}

impl Trust {
    pub fn new(home: &Url, everywhere: bool) -> Self {
        if everywhere {
            Trust::Everywhere
        } else {
            Trust::Origin(home.origin())
        }
    }

    fn allows(&self, url: &Url) -> bool {
        match self {
            Trust::Origin(origin) => url.origin() == *origin,
            Trust::Everywhere => true,
        }
    }
}

impl Fetcher {
    pub fn new(client: Client, policy: retry::Policy) -> Self {
        Fetcher {
            client,
            policy,
            headers: HeaderMap::new(),
            trust: Trust::Everywhere,
            warned: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        }
    }

    /// Sends `headers` with every request to where `trust` allows.
    pub fn with_headers(mut self, headers: HeaderMap, trust: Trust) -> Self {
        self.headers = headers;
        self.trust = trust;
        self
    }

    /// The user's headers for a request to `url`: all of them, or none on an origin they
    /// are not trusted to (said once per origin).
    fn headers_for(&self, url: &Url) -> HeaderMap {
        if self.headers.is_empty() || self.trust.allows(url) {
            return self.headers.clone();
        }
        let origin = url.origin().ascii_serialization();
        if self
            .warned
            .lock()
            .expect("not poisoned")
            .insert(origin.clone())
        {
            warn!(
                "the next page is on another origin ({origin}); not sending it the -H headers \
                 or credentials (--trust-next-origin sends them)"
            );
        }
        HeaderMap::new()
    }

    /// Attempts made beyond the first of each request.
    pub fn retries(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed) - self.requests.load(Ordering::Relaxed)
    }

    /// GETs `url`, retrying transient failures as the policy allows.
    pub async fn get(&self, url: &Url) -> Result<Response, Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let shown = crate::redact::url(url);
        let headers = self.headers_for(url);
        retry::run(&self.policy, &shown, || self.attempt(url, &headers)).await
    }

    async fn attempt(&self, url: &Url, headers: &HeaderMap) -> Result<Response, Failure> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("GET {}", crate::redact::url(url));
        let response = self
            .client
            .get(url.clone())
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| Failure::Transport(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let body = response.bytes().await.map_err(|e| {
                Failure::Transport(format!("response body broke off: {}", describe(&e)))
            })?;
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        // The body only explains the error; if it cannot be read, the status still stands.
        let body = response.bytes().await.unwrap_or_default();
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
            body: snippet(&body),
        })
    }
}

/// The first [`SNIPPET_CHARS`] characters of a body, on one line.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = out.char_indices().nth(SNIPPET_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A transport error as one line, naming its kind first. reqwest's own message repeats the
/// URL (unredacted), so the chain of sources is used instead.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_one_line_and_bounded() {
        assert_eq!(
            snippet(b"{\"error\":\n  \"nope\"}"),
            "{\"error\": \"nope\"}"
        );
        let long = "é".repeat(500);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}
