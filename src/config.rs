//! Runtime configuration: the command line, validated once.
//!
//! The fetch code never sees raw strings or re-checks flags; everything here is already in
//! the form it is used in.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::cli::Cli;
use crate::error::Error;
use crate::retry;

#[derive(Debug, Clone)]
pub enum Target {
    Url(Url),
    /// The built-in simulated API, started when the run starts.
    Demo,
}

#[derive(Debug, Clone)]
pub struct Pages {
    pub page_param: String,
    pub size_param: String,
    pub page_size: u64,
    pub start_page: u64,
    pub max_pages: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// `None` writes to standard output.
    pub out: Option<PathBuf>,
    pub pages: Pages,
    pub request: Request,
    pub retry: retry::Policy,
}

impl TryFrom<Cli> for Config {
    type Error = Error;

    fn try_from(cli: Cli) -> Result<Self, Error> {
        let target = match (&cli.url, cli.demo) {
            (_, true) => Target::Demo,
            (Some(raw), false) => Target::Url(parse_url(raw)?),
            (None, false) => return Err(Error::Usage("a URL is required (or --demo)".into())),
        };
        if cli.backoff > cli.backoff_max {
            return Err(Error::Usage(format!(
                "--backoff ({:?}) is longer than --backoff-max ({:?})",
                cli.backoff, cli.backoff_max
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &cli.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Usage(format!("`{name}` is not a valid header name")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Error::Usage(format!("the value of header `{name}` is not valid")))?;
            value.set_sensitive(crate::redact::is_secret_header(name.as_str()));
            headers.append(name, value);
        }
        Ok(Config {
            target,
            out: cli.out.filter(|p| p.as_os_str() != "-"),
            pages: Pages {
                page_param: cli.page_param,
                size_param: cli.size_param,
                page_size: cli.page_size,
                start_page: cli.start_page,
                max_pages: cli.max_pages,
            },
            request: Request {
                params: cli.params,
                headers,
                timeout: cli.timeout,
                connect_timeout: cli.connect_timeout,
            },
            retry: retry::Policy {
                retries: cli.retries,
                base: cli.backoff,
                cap: cli.backoff_max,
                jitter: cli.jitter,
                retry_on: cli.retry_on,
                max_wait: cli.retry_max_wait,
            },
        })
    }
}

fn parse_url(raw: &str) -> Result<Url, Error> {
    // The raw text is not echoed: it may carry credentials we cannot yet tell apart.
    let url = Url::parse(raw).map_err(|e| Error::Usage(format!("the URL is not valid: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Error::Usage(format!(
            "unsupported URL scheme `{other}` (use http or https)"
        ))),
    }
}
