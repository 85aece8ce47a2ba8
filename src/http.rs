//! One HTTP attempt, and the client that makes it.
//!
//! An attempt either yields a whole successful response or a [`Failure`] classified for the
//! retry policy; the caller never sees a half-read body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use url::Url;

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

pub fn client(request: &Request) -> Result<Client, Error> {
    Client::builder()
        .user_agent(concat!("apifetch/", env!("CARGO_PKG_VERSION")))
        .default_headers(request.headers.clone())
        .timeout(request.timeout)
        .connect_timeout(request.connect_timeout)
        .build()
        .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))
}

/// The client and the retry policy, shared by every request of a run.
pub struct Fetcher {
    client: Client,
    policy: retry::Policy,
    requests: AtomicU64,
    attempts: AtomicU64,
}

impl Fetcher {
    pub fn new(client: Client, policy: retry::Policy) -> Self {
        Fetcher {
            client,
            policy,
            requests: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        }
    }

    /// Attempts made beyond the first of each request.
    pub fn retries(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed) - self.requests.load(Ordering::Relaxed)
    }

    /// GETs `url`, retrying transient failures as the policy allows.
    pub async fn get(&self, url: &Url) -> Result<Response, Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let shown = crate::redact::url(url);
        retry::run(&self.policy, &shown, || self.attempt(url)).await
    }

    async fn attempt(&self, url: &Url) -> Result<Response, Failure> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("GET {}", crate::redact::url(url));
        let response = self
            .client
            .get(url.clone())
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
