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
use crate::paginate::{CursorSource, Style};
use crate::records::Select;
use crate::retry;

#[derive(Debug, Clone)]
pub enum Target {
    Url(Url),
    /// The built-in simulated API, started when the run starts.
    Demo,
}

#[derive(Debug, Clone)]
pub struct Pages {
    /// `--paginate`, with `auto` already narrowed by the flags that imply a style.
    pub style: Style,
    pub page_param: String,
    pub size_param: String,
    pub page_size: u64,
    pub start_page: u64,
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
}

#[derive(Debug, Clone)]
pub struct Request {
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Send `headers` to next pages on other origins too (`--trust-next-origin`).
    pub trust_next_origin: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// `None` writes to standard output.
    pub out: Option<PathBuf>,
    pub pages: Pages,
    pub records: Select,
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
        let style = pagination_style(&cli)?;
        let cursor = match (cli.cursor_path, cli.cursor_from_record) {
            (Some(pointer), _) => Some(CursorSource::Body(pointer)),
            (None, Some(pointer)) => Some(CursorSource::LastRecord(pointer)),
            (None, None) => None,
        };
        Ok(Config {
            target,
            out: cli.out.filter(|p| p.as_os_str() != "-"),
            pages: Pages {
                style,
                page_param: cli.page_param,
                size_param: cli.size_param,
                page_size: cli.page_size,
                start_page: cli.start_page,
                max_pages: cli.max_pages,
                offset_param: cli.offset_param,
                limit_param: cli.limit_param,
                cursor,
                cursor_param: cli.cursor_param,
                next_path: cli.next_path,
                has_more: cli.has_more,
                total: cli.total,
                max_records: cli.max_records,
            },
            records: Select {
                pointer: cli.records,
                object_is_record: style == Style::None,
            },
            request: Request {
                params: cli.params,
                headers,
                timeout: cli.timeout,
                connect_timeout: cli.connect_timeout,
                trust_next_origin: cli.trust_next_origin,
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

/// `--paginate`, where `auto` gives way to the style that `--cursor-path`,
/// `--cursor-from-record` or `--next-path` imply; flags of another style are refused
/// rather than silently ignored.
fn pagination_style(cli: &Cli) -> Result<Style, Error> {
    let cursor_flag = match (&cli.cursor_path, &cli.cursor_from_record) {
        (Some(_), _) => Some("--cursor-path"),
        (None, Some(_)) => Some("--cursor-from-record"),
        (None, None) => cli.cursor_param.as_ref().map(|_| "--cursor-param"),
    };
    let next_flag = cli.next_path.as_ref().map(|_| "--next-path");
    let style = match (cli.paginate, cursor_flag, next_flag) {
        (_, Some(c), Some(n)) => {
            return Err(Error::Usage(format!(
                "{c} and {n} are different pagination styles"
            )));
        }
        (Style::Auto, Some("--cursor-param"), None) => Style::Auto,
        (Style::Auto, Some(_), None) => Style::Cursor,
        (Style::Auto, None, Some(_)) => Style::Next,
        (style, _, _) => style,
    };
    let misfit = match style {
        Style::Auto | Style::Cursor => next_flag,
        Style::Next => cursor_flag,
        _ => cursor_flag.or(next_flag),
    };
    match misfit {
        Some(flag) => Err(Error::Usage(format!(
            "{flag} does not apply to --paginate {}",
            clap::ValueEnum::to_possible_value(&style)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        ))),
        None => Ok(style),
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
