//! The command line, exactly as users type it. Validation and defaults that depend on other
//! flags live in [`crate::config`]; this module only describes and parses.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::paginate::Style;
use crate::retry::Jitter;

const EXIT_CODES: &str = "\
Exit codes:
  0    success (also: zero records, or --max-pages reached)
  2    usage error: bad flags or values
  3    permanent HTTP error (401, 403, 404, 501, ...): not retried
  4    gave up: retries exhausted, or the server asked to wait longer than --retry-max-wait
  5    bad response: not JSON, no records array, a pagination loop
  6    output error: the output file could not be written
  130  interrupted (Ctrl-C)";

const EXAMPLES: &str = "\
Examples:
  apifetch https://api.example.com/v1/orders --out orders.csv
  apifetch https://api.example.com/v1/orders --page-size 500 --param status=open -H 'Accept: application/json'
  apifetch --demo --out demo.csv";

/// Fetch every record of a paginated JSON API into a CSV file.
///
/// apifetch requests page after page until the API says there are no more, retrying
/// transient failures (connection errors, timeouts, 408/425/429/5xx) with exponential
/// backoff and jitter, and obeying Retry-After. Records are written to --out only when the
/// whole run succeeded; a failed run leaves the previous file untouched.
#[derive(Debug, Parser)]
#[command(name = "apifetch", version, about, long_about, args_override_self = true, after_long_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"), after_help = EXIT_CODES)]
pub struct Cli {
    /// The API endpoint. Query parameters already in it are kept.
    #[arg(value_name = "URL", required_unless_present = "demo")]
    pub url: Option<String>,

    /// Where to write the records; `-` or no --out means standard output.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Run against a built-in simulated API on 127.0.0.1 that injects a 503 and a 429, to
    /// see retries recover without any network.
    #[arg(long, conflicts_with = "url")]
    pub demo: bool,

    /// Query parameter that carries the page number.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "page",
        help_heading = "Pagination"
    )]
    pub page_param: String,

    /// Query parameter that carries the page size.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "per_page",
        help_heading = "Pagination"
    )]
    pub size_param: String,

    /// Records to ask for per page. The API may send fewer; that alone never ends the run.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Pagination")]
    pub page_size: u64,

    /// Number of the first page.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "Pagination"
    )]
    pub start_page: u64,

    /// Stop after this many pages, even if more remain (a warning says so). Unlimited by
    /// default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Pagination")]
    pub max_pages: Option<u64>,

    /// How the API hands out pages: auto decides from the first response (and logs what it
    /// chose); page numbers, offsets, a cursor in the body, a next URL in the body, a Link
    /// header, or none (one request).
    #[arg(long, value_name = "STYLE", value_enum, default_value_t = Style::Auto, help_heading = "Pagination")]
    pub paginate: Style,

    /// Query parameter that carries the offset (--paginate offset).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "offset",
        help_heading = "Pagination"
    )]
    pub offset_param: String,

    /// Query parameter that carries the page size with offsets (--paginate offset).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "limit",
        help_heading = "Pagination"
    )]
    pub limit_param: String,

    /// JSON Pointer to the next cursor in the body (e.g. /meta/next); implies --paginate
    /// cursor. Without it, cursor and auto look at /next_cursor, /cursor, /nextPageToken, …
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, conflicts_with = "cursor_from_record", help_heading = "Pagination")]
    pub cursor_path: Option<String>,

    /// JSON Pointer to the cursor in the last record of each page (keyset, e.g. /id with
    /// --cursor-param starting_after); implies --paginate cursor.
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, help_heading = "Pagination")]
    pub cursor_from_record: Option<String>,

    /// Query parameter the cursor is sent back in [default: cursor, or the name the
    /// detected field implies, e.g. pageToken for /nextPageToken]
    #[arg(long, value_name = "NAME", help_heading = "Pagination")]
    pub cursor_param: Option<String>,

    /// JSON Pointer to the next page's URL in the body (e.g. /links/next); implies
    /// --paginate next.
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, help_heading = "Pagination")]
    pub next_path: Option<String>,

    /// JSON Pointer to a boolean that is false on the last page [default: /has_more,
    /// /hasMore, /meta/has_more, /pagination/has_more]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, help_heading = "Pagination")]
    pub has_more: Option<String>,

    /// JSON Pointer to the total number of records [default: /total, /total_count, …,
    /// or the X-Total-Count header]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, help_heading = "Pagination")]
    pub total: Option<String>,

    /// JSON Pointer to the records array [default: a top-level array, or the array at
    /// /data, /items, /results, /records, /entries, /value, /rows, one level deeper, or
    /// the only array-valued field]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, help_heading = "Pagination")]
    pub records: Option<String>,

    /// Stop after this many records; the last page is cut. Unlimited by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Pagination")]
    pub max_records: Option<u64>,

    /// Send -H headers and credentials to a next page on another origin (scheme, host or
    /// port) too. By default they are withheld there, with a warning.
    #[arg(long, help_heading = "Pagination")]
    pub trust_next_origin: bool,

    /// Extra query parameter for every request (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param, help_heading = "Request")]
    pub params: Vec<(String, String)>,

    /// Extra request header (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header, help_heading = "Request")]
    pub headers: Vec<(String, String)>,

    /// Time limit for one request, including reading its body.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_duration, help_heading = "Request")]
    pub timeout: Duration,

    /// Time limit for establishing a connection.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_duration, help_heading = "Request")]
    pub connect_timeout: Duration,

    /// Retries after the first attempt of each request.
    #[arg(long, value_name = "N", default_value_t = 5, help_heading = "Retries")]
    pub retries: u32,

    /// Wait before the first retry; it doubles with each further retry.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_duration, help_heading = "Retries")]
    pub backoff: Duration,

    /// Longest wait between retries.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_duration, help_heading = "Retries")]
    pub backoff_max: Duration,

    /// How waits are randomised: equal draws from [d/2, d], full from [0, d], none waits d.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = Jitter::Equal, help_heading = "Retries")]
    pub jitter: Jitter,

    /// HTTP statuses that are retried; every other error status fails at once.
    #[arg(long, value_name = "CODES", value_delimiter = ',', default_value = "408,425,429,500,502,503,504", value_parser = clap::value_parser!(u16).range(100..600), help_heading = "Retries")]
    pub retry_on: Vec<u16>,

    /// Give up instead of waiting longer than this for one retry (e.g. a long Retry-After).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_duration, help_heading = "Retries")]
    pub retry_max_wait: Duration,

    /// More log output (-v: each request, -vv: debugging).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet", help_heading = "Logging")]
    pub verbose: u8,

    /// Only errors on stderr; nothing at all on success.
    #[arg(short, long, help_heading = "Logging")]
    pub quiet: bool,
}

/// Seconds as a number (`0.05`, `30`) or a human duration (`500ms`, `2m`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a valid number of seconds"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e} (use seconds like 1.5, or 500ms, 2m)"))
}

/// A JSON Pointer (RFC 6901) to somewhere inside a response: `/meta/next`.
fn parse_pointer(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a JSON Pointer: it starts with `/`, like /{s}"
        ))
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_string())?;
    let name = name.trim();
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    Ok((name.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_fractions_and_units() {
        assert_eq!(parse_duration("0.05"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn pointers_start_with_a_slash() {
        assert_eq!(parse_pointer("/meta/next"), Ok("/meta/next".into()));
        assert!(
            parse_pointer("meta.next")
                .unwrap_err()
                .contains("/meta.next")
        );
    }

    #[test]
    fn params_and_headers_split_once() {
        assert_eq!(parse_param("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert!(parse_param("=x").is_err());
        assert_eq!(
            parse_header("X-Trace:  a:b "),
            Ok(("X-Trace".into(), "a:b".into()))
        );
        assert!(parse_header("bad header: x").is_err());
    }
}
