//! The command line, exactly as users type it. Validation and defaults that depend on other
//! flags live in [`crate::cli::config`]; this module only describes and parses.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, ValueEnum};

use crate::incremental::{Lookback, SinceFormat};
use crate::paginate::Style;
use crate::policy::deadline::LONGEST;
use crate::policy::pace::Rate;
use crate::policy::retry::Jitter;
use crate::report::logging::LogFormat;
use crate::report::redact::Secret;
use crate::sink::compress::Compression;
use crate::sink::output::Format;

/// Bounds of the numeric flags: far beyond any real use, and small enough that no count
/// built from them (pages × page size, a page number plus one) can overflow.
const MILLION: u64 = 1_000_000;
const BILLION: u64 = 1_000_000_000;

/// The largest `--max-response-size`: a body is held in memory whole.
const MAX_BODY: u64 = 4 << 30;

const EXIT_CODES: &str = "\
Exit codes:
  0    success: every record the API has (also: zero records, --max-pages or
       --max-records reached, or a reader that closed standard output early, as
       `| head` does)
  2    usage error: bad flags or values, or a flag that names nothing in the first
       response
  3    permanent failure, not retried: an HTTP error such as 401, 403, 404, 501, a TLS
       certificate that does not verify, a redirect that would carry credentials elsewhere,
       a redirect loop, a next link or redirect that is not http or https, a host name
       that does not exist
  4    gave up: retries exhausted, the server asked to wait longer than --retry-max-wait,
       or --max-time would have been passed
  5    bad response: not JSON, no records array, a pagination loop, fewer records than
       the API announced, a body over --max-response-size, a body whose
       Content-Encoding does not decode, or with --append a record without a comparable
       --incremental FIELD
  6    output error: the output file could not be written
  130  interrupted (Ctrl-C, SIGTERM)

A failed or interrupted run with --out FILE keeps FILE.partial and FILE.checkpoint;
the same command with --resume continues where it stopped.";

const EXAMPLES: &str = "\
Examples:
  apifetch https://api.example.com/v1/orders --out orders.csv
  apifetch https://api.example.com/v1/orders --probe
  apifetch https://api.example.com/v1/orders --param status=open -H @headers.txt
  apifetch --demo --out demo.csv";

/// What `-h` ends with: where the rest is.
const SHORT_END: &str = "\
Exit codes: 0 ok, 2 usage, 3 permanent failure, 4 gave up, 5 bad response,
6 output, 130 interrupted. --help has every option and the exit codes in full,
as does `man apifetch` (apifetch --generate man).";

/// The options `-h` shows, with a one-line help each: what most runs need. `--help`
/// shows them all, at length.
const SHORT_HELP: &[(&str, &str)] = &[
    ("url", "The API endpoint"),
    (
        "out",
        "Write here, whole or not at all (default: standard output)",
    ),
    (
        "format",
        "csv, tsv, jsonl or json (default: from --out's extension)",
    ),
    (
        "demo",
        "Fetch from a simulated API on 127.0.0.1 (no network needed)",
    ),
    ("headers", "Extra header `Name: value`, or @FILE of them"),
    (
        "bearer",
        "Send `Authorization: Bearer TOKEN` (or APIFETCH_TOKEN)",
    ),
    ("params", "Extra query parameter KEY=VALUE (repeatable)"),
    (
        "paginate",
        "auto (default), page, offset, cursor, next, link or none",
    ),
    (
        "records",
        "Where the records are: /data/items or .data.items",
    ),
    (
        "probe",
        "Fetch one page; print what it shows and the flags to pin it",
    ),
    ("resume", "Continue an interrupted --out run"),
    ("quiet", "Only errors on stderr"),
    (
        "verbose",
        "More logs: -v each request, -vv response headers",
    ),
];

/// Fetch every record of a paginated JSON API into a CSV, TSV, JSON Lines or JSON file.
///
/// apifetch requests page after page until the API says there are no more, retrying
/// transient failures (connection errors, timeouts, 408/425/429/5xx) with exponential
/// backoff and jitter, and obeying Retry-After. Records are written to --out only when the
/// whole run succeeded; a failed run leaves the previous file untouched.
#[derive(Debug, Parser)]
#[command(
    name = "apifetch",
    version,
    about,
    long_about,
    args_override_self = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The API endpoint. Query parameters already in it are kept.
    #[arg(
        value_name = "URL",
        required_unless_present_any = ["demo", "generate", "base_url"],
        env = "APIFETCH_URL",
        hide_env_values = true
    )]
    pub url: Option<String>,

    /// Where to write the records; `-` or no --out means standard output. A name ending in
    /// .gz or .zst is compressed (orders.csv.gz).
    #[arg(
        short,
        long,
        value_name = "FILE",
        env = "APIFETCH_OUT",
        hide_env_values = true
    )]
    pub out: Option<PathBuf>,

    /// Run against a built-in simulated API on 127.0.0.1 that injects a 503 and a 429, to
    /// see retries recover without any network.
    #[arg(long, conflicts_with = "url")]
    pub demo: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub incremental: IncrementalArgs,

    #[command(flatten)]
    pub pages: PaginationArgs,

    #[command(flatten)]
    pub request: RequestArgs,

    #[command(flatten)]
    pub retry: RetryArgs,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub polite: PolitenessArgs,

    #[command(flatten)]
    pub logging: LoggingArgs,

    /// Print shell completions or the man page to stdout, then exit.
    #[arg(long, value_name = "WHAT", value_enum, hide = true)]
    pub generate: Option<Generate>,
}

/// Pagination: where the next page is, and where the records are.
#[derive(Debug, Args)]
#[command(next_help_heading = "Pagination")]
pub struct PaginationArgs {
    /// Query parameter that carries the page number, where the API does not show its own.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "page",
        env = "APIFETCH_PAGE_PARAM",
        hide_env_values = true
    )]
    pub page_param: String,

    /// Query parameter that carries --page-size.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "per_page",
        env = "APIFETCH_SIZE_PARAM",
        hide_env_values = true
    )]
    pub size_param: String,

    /// Records to ask for per page, 1 to 1000000, sent only when given. The API may send
    /// fewer; that alone never ends the run [default: the API's own]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MILLION), env = "APIFETCH_PAGE_SIZE", hide_env_values = true)]
    pub page_size: Option<u64>,

    /// Number of the first page, 0 to 1000000000, sent only when given [default: the
    /// URL's --page-param value, else the first page the API serves]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(0..=BILLION),
        env = "APIFETCH_START_PAGE",
        hide_env_values = true
    )]
    pub start_page: Option<u64>,

    /// Stop after this many pages (1 to 1000000000), even if more remain (a warning says
    /// so). Unlimited by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=BILLION), env = "APIFETCH_MAX_PAGES", hide_env_values = true)]
    pub max_pages: Option<u64>,

    /// How the API hands out pages: auto decides from the first response, which is the URL
    /// as given (and logs what it chose); page numbers, offsets, a cursor in the body, a
    /// next URL in the body, a Link header, or none (one request). A style that finds
    /// nothing in the first response is an error, not a fallback [default: auto]
    /// [possible values: auto, page, offset, cursor, next, link, none]
    #[arg(long, value_name = "STYLE", value_enum, default_value_t = Style::Auto, env = "APIFETCH_PAGINATE", hide_env_values = true)]
    pub paginate: Style,

    /// Query parameter that carries the offset (--paginate offset).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "offset",
        env = "APIFETCH_OFFSET_PARAM",
        hide_env_values = true
    )]
    pub offset_param: String,

    /// Query parameter that carries the page size with offsets (--paginate offset).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "limit",
        env = "APIFETCH_LIMIT_PARAM",
        hide_env_values = true
    )]
    pub limit_param: String,

    /// JSON Pointer to the next cursor in the body (e.g. /meta/next); implies --paginate
    /// cursor. Without it, cursor and auto look at /next_cursor, /cursor, /nextPageToken, …
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, conflicts_with = "cursor_from_record", env = "APIFETCH_CURSOR_PATH", hide_env_values = true)]
    pub cursor_path: Option<String>,

    /// JSON Pointer to the cursor in the last record of each page (keyset, e.g. /id with
    /// --cursor-param starting_after); implies --paginate cursor.
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, env = "APIFETCH_CURSOR_FROM_RECORD", hide_env_values = true)]
    pub cursor_from_record: Option<String>,

    /// Query parameter the cursor is sent back in [default: cursor, or the name the
    /// detected field implies, e.g. pageToken for /nextPageToken]
    #[arg(
        long,
        value_name = "NAME",
        env = "APIFETCH_CURSOR_PARAM",
        hide_env_values = true
    )]
    pub cursor_param: Option<String>,

    /// JSON Pointer to the next page's URL in the body (e.g. /links/next); implies
    /// --paginate next.
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, env = "APIFETCH_NEXT_PATH", hide_env_values = true)]
    pub next_path: Option<String>,

    /// JSON Pointer to a boolean that is false on the last page [default: /has_more,
    /// /hasMore, /meta/has_more, /pagination/has_more]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, env = "APIFETCH_HAS_MORE", hide_env_values = true)]
    pub has_more: Option<String>,

    /// JSON Pointer to the total number of records [default: /total, /total_count, …,
    /// or the X-Total-Count header]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, env = "APIFETCH_TOTAL", hide_env_values = true)]
    pub total: Option<String>,

    /// JSON Pointer to the records array [default: a top-level array, or the array at
    /// /data, /items, /results, /records, /entries, /value, /rows, one level deeper, or
    /// the only array-valued field]
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer, env = "APIFETCH_RECORDS", hide_env_values = true)]
    pub records: Option<String>,

    /// Stop after this many records (1 to 1000000000000); the last page is cut. Unlimited
    /// by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000 * BILLION), env = "APIFETCH_MAX_RECORDS", hide_env_values = true)]
    pub max_records: Option<u64>,

    /// Send -H headers and credentials to a next page on another origin (scheme, host or
    /// port) too, and follow redirects there. By default they are withheld there, with a
    /// warning, and a redirect to another origin that would carry them fails the run.
    // No environment variable, like --insecure: a setting that sends credentials to other
    // hosts should be visible on the command line, not switched on silently.
    #[arg(long)]
    pub trust_next_origin: bool,
}

/// What each request sends, and what to do instead of fetching.
#[derive(Debug, Args)]
#[command(next_help_heading = "Request")]
pub struct RequestArgs {
    /// HTTP method of every request [default: GET, or POST with --data or --graphql]. A
    /// pagination POST is a read: it is retried like a GET.
    #[arg(short = 'X', long, value_name = "METHOD", value_parser = parse_method)]
    pub method: Option<reqwest::Method>,

    /// JSON request body, sent as application/json (implies -X POST unless -X is given):
    /// the text itself, @FILE, or @- for standard input. Page numbers, offsets, sizes and
    /// cursors go into it where a --*-param flag is a JSON Pointer (--cursor-param
    /// /start_cursor).
    #[arg(short = 'd', long, value_name = "JSON")]
    pub data: Option<String>,

    /// A GraphQL query (or @FILE), POSTed as {"query", "variables"}: the connection with
    /// pageInfo is found in the response and paged through its cursor variable.
    #[arg(long, value_name = "QUERY", conflicts_with = "data")]
    pub graphql: Option<String>,

    /// Variables of the --graphql query, as a JSON object (or @FILE).
    #[arg(long, value_name = "JSON", requires = "graphql")]
    pub variables: Option<String>,

    /// The --graphql variable the cursor goes into [default: the one the query passes as
    /// `after:`, or `before:` to page backwards]
    #[arg(long, value_name = "NAME", requires = "graphql")]
    pub cursor_var: Option<String>,

    /// Fetch the first page only, write no data, and print what was detected (style,
    /// parameter names, records, totals, columns with a sample) and the flags that pin it
    /// down for a cron job.
    #[arg(long, conflicts_with = "dry_run")]
    pub probe: bool,

    /// Use the saved API profile NAME from the config file: its URL (a URL argument that
    /// is a path is joined to it), headers, parameters and flags; flags given here win.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// The base URL of the profile in use, put here by the profile: a URL argument that
    /// is a path is joined to it, and with no URL argument it is the URL.
    #[arg(long, value_name = "URL", hide = true)]
    pub base_url: Option<String>,

    /// The config file holding profiles [default: $XDG_CONFIG_HOME/apifetch/config.toml]
    #[arg(
        long,
        value_name = "FILE",
        env = "APIFETCH_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,

    /// With --probe: save what was found (URL, headers, parameters and the flags that pin
    /// the pagination) as profile NAME. Credentials are not saved; the profile names the
    /// environment variable to take them from.
    #[arg(long, value_name = "NAME", requires = "probe")]
    pub save_profile: Option<String>,

    /// Send nothing: print the first request as a curl command line, secrets masked.
    #[arg(long)]
    pub dry_run: bool,

    /// Extra query parameter for every request (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Extra request header (repeatable), or @FILE with one header a line (blank lines and
    /// # comments skipped). Values of credential headers (Authorization, Cookie,
    /// *-Api-Key, *-Token) never appear in logs or errors. Arguments are visible to every
    /// local user in `ps`: keep credentials in @FILE, APIFETCH_HEADERS or APIFETCH_TOKEN.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Headers from the environment, one a line, sent besides any -H: a way to give a
    /// credential header that no other user can read in `ps`.
    #[arg(
        long = "env-headers",
        hide = true,
        env = "APIFETCH_HEADERS",
        hide_env_values = true,
        value_delimiter = '\n'
    )]
    pub env_headers: Vec<String>,

    /// The User-Agent header sent with every request.
    #[arg(short = 'A', long, value_name = "TEXT", default_value = concat!("apifetch/", env!("CARGO_PKG_VERSION")), env = "APIFETCH_USER_AGENT", hide_env_values = true)]
    pub user_agent: String,

    /// Refuse (exit 5) a response body larger than this, before it is read past the limit.
    /// Accepts bytes or a K, M or G suffix (binary: 1M = 1048576), at most 4G.
    #[arg(long, value_name = "BYTES", default_value = "100M", value_parser = parse_size, env = "APIFETCH_MAX_RESPONSE_SIZE", hide_env_values = true)]
    pub max_response_size: u64,

    /// Time limit for one request, including reading its body; above 0.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_limit, env = "APIFETCH_TIMEOUT", hide_env_values = true)]
    pub timeout: Duration,

    /// Time limit for establishing a connection; above 0.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_limit, env = "APIFETCH_CONNECT_TIMEOUT", hide_env_values = true)]
    pub connect_timeout: Duration,
}

/// When to retry, and how long to wait.
#[derive(Debug, Args)]
#[command(next_help_heading = "Retries")]
pub struct RetryArgs {
    /// Retries after the first attempt of each request, 0 to 100.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(0..=100),
        env = "APIFETCH_RETRIES",
        hide_env_values = true
    )]
    pub retries: u32,

    /// Wait before the first retry; it doubles with each further retry.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_duration, env = "APIFETCH_BACKOFF", hide_env_values = true)]
    pub backoff: Duration,

    /// Longest wait between retries.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_duration, env = "APIFETCH_BACKOFF_MAX", hide_env_values = true)]
    pub backoff_max: Duration,

    /// How waits are randomised: equal draws from [d/2, d], full from [0, d], none waits d.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = Jitter::Equal, env = "APIFETCH_JITTER", hide_env_values = true)]
    pub jitter: Jitter,

    /// HTTP statuses that are retried; every other error status fails at once.
    #[arg(long, value_name = "CODES", value_delimiter = ',', default_value = "408,425,429,500,502,503,504", value_parser = clap::value_parser!(u16).range(100..600), env = "APIFETCH_RETRY_ON", hide_env_values = true)]
    pub retry_on: Vec<u16>,

    /// Give up instead of waiting longer than this for one retry (e.g. a long Retry-After)
    /// [default: 300, or --breaker-cooldown when that is longer]
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "APIFETCH_RETRY_MAX_WAIT", hide_env_values = true)]
    pub retry_max_wait: Option<Duration>,
}

/// Credentials and certificates.
#[derive(Debug, Args)]
#[command(next_help_heading = "Auth and TLS")]
pub struct AuthArgs {
    /// Send `Authorization: Bearer TOKEN` with every request.
    #[arg(long, value_name = "TOKEN", value_parser = secret, env = "APIFETCH_TOKEN", hide_env_values = true)]
    pub bearer: Option<Secret>,

    /// HTTP basic authentication with this user name and password.
    #[arg(short = 'u', long, value_name = "USER:PASS", value_parser = secret, env = "APIFETCH_USER", hide_env_values = true, conflicts_with = "bearer")]
    pub user: Option<Secret>,

    /// Also trust the CA certificate(s) in this PEM file, besides the system's.
    #[arg(
        long,
        value_name = "FILE",
        env = "APIFETCH_CACERT",
        hide_env_values = true
    )]
    pub cacert: Option<PathBuf>,

    /// Do not verify TLS certificates. Anyone on the network path can then read and change
    /// the traffic, credentials included; a warning says so on every run.
    #[arg(long)]
    pub insecure: bool,
}

/// How gently the API is treated.
#[derive(Debug, Args)]
#[command(next_help_heading = "Politeness")]
pub struct PolitenessArgs {
    /// Pause between consecutive requests: after one ends, before the next starts.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_duration, env = "APIFETCH_DELAY", hide_env_values = true)]
    pub delay: Duration,

    /// At most N request starts per second over the whole run, or per minute or hour with
    /// N/m, N/h (`10/m` starts one every 6 s). Unlimited by default.
    #[arg(
        long,
        value_name = "N[/s|/m|/h]",
        env = "APIFETCH_RATE",
        hide_env_values = true
    )]
    pub rate: Option<Rate>,

    /// Consecutive failed attempts that open the circuit breaker: then nothing is sent for
    /// --breaker-cooldown, and one probe decides whether to resume. 0 turns it off; at
    /// most 100.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(0..=100),
        env = "APIFETCH_BREAKER",
        hide_env_values = true
    )]
    pub breaker: u32,

    /// How long an open circuit sends nothing before probing [default: 30, or
    /// --retry-max-wait when that is shorter]
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "APIFETCH_BREAKER_COOLDOWN", hide_env_values = true)]
    pub breaker_cooldown: Option<Duration>,

    /// Time limit for the whole run. A wait that would end past it is not started:
    /// apifetch gives up at once (exit 4); above 0. Unlimited by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_limit, env = "APIFETCH_MAX_TIME", hide_env_values = true)]
    pub max_time: Option<Duration>,

    /// Pages fetched at once (1 to 64), when their positions are known in advance: page
    /// numbers or offsets with a known total. Records are still written in page order;
    /// styles whose next page comes from the previous response stay one at a time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64), env = "APIFETCH_CONCURRENCY", hide_env_values = true)]
    pub concurrency: usize,
}

/// What the run says about itself.
#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LoggingArgs {
    /// More log output (-v: each request and wait, -vv: also every response's headers).
    /// Wins over --quiet (as given on the command line over APIFETCH_QUIET in a job).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr; nothing at all on success.
    #[arg(
        short,
        long,
        env = "APIFETCH_QUIET", value_parser = BoolishValueParser::new(),
        hide_env_values = true
    )]
    pub quiet: bool,

    /// Log as human-readable text, or as JSON Lines with stable fields (level, msg, page,
    /// records, status, attempt, wait_ms, url) for log collectors.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text, env = "APIFETCH_LOG_FORMAT", hide_env_values = true)]
    pub log_format: LogFormat,

    /// When to color the logs; `auto` means when stderr is a terminal and NO_COLOR is unset.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Color::Auto, env = "APIFETCH_COLOR", hide_env_values = true)]
    pub color: Color,

    /// Write a JSON summary of the run here (exit code, records, pages, requests, retries,
    /// waits, bytes, elapsed time, output), also when the run fails. A regular file is
    /// replaced atomically; a device, FIFO or standard stream is written in place; it may
    /// not be --out, its .partial or its .checkpoint.
    #[arg(
        long,
        value_name = "FILE",
        env = "APIFETCH_SUMMARY_JSON",
        hide_env_values = true
    )]
    pub summary_json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Never,
    Auto,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    CompletionsBash,
    CompletionsZsh,
    CompletionsFish,
    Man,
}

/// The command line as users see it: `-h` shows the options most runs need, with examples;
/// `--help` shows every option, and lists the environment variables once, in a section of
/// their own, rather than on every line.
pub fn command() -> clap::Command {
    let command = <Cli as clap::CommandFactory>::command();
    let variables: Vec<String> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let flag = match (arg.get_long(), arg.get_value_names()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(names)) => names.first()?.to_string(),
                (None, None) => arg.get_id().to_string(),
            };
            Some(format!("  {env:<30} {flag}"))
        })
        .collect();
    let environment = format!(
        "Environment (each stands for its option; the option on the command line wins):\n\
         {}\n  {:<30} headers, one a line, sent besides any -H",
        variables.join("\n"),
        "APIFETCH_HEADERS"
    );
    command
        .mut_args(|arg| {
            let arg = arg.hide_env(true);
            match SHORT_HELP
                .iter()
                .find(|(id, _)| *id == arg.get_id().as_str())
            {
                Some((_, short)) => {
                    let long = arg.get_long_help().or(arg.get_help()).cloned();
                    // The one-liners of options with values name the values themselves.
                    let takes_value = arg.get_action().takes_values();
                    let arg = arg
                        .help(*short)
                        .hide_possible_values(takes_value)
                        .hide_default_value(takes_value);
                    match long {
                        Some(long) => arg.long_help(long),
                        None => arg,
                    }
                }
                None => arg.hide_short_help(true),
            }
        })
        .after_help(format!("{EXAMPLES}\n\n{SHORT_END}"))
        .after_long_help(format!("{EXAMPLES}\n\n{environment}\n\n{EXIT_CODES}"))
}

/// Parses `args` (a saved profile's already put in) with [`command`]'s help.
pub fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    let matches = command().get_matches_from(args);
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Credentials are wrapped at once, so even `Debug` of the parsed command line hides them.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// A byte count: `1048576`, `512K`, `100M`, `1G` (binary units; a trailing `iB` or `B` is
/// allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{s}` is not a size (use bytes, or 512K, 100M, 1G)"
            ));
        }
    };
    let size = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a size (use bytes, or 512K, 100M, 1G)"))?;
    if size > MAX_BODY {
        return Err(format!("`{s}` is larger than 4G"));
    }
    Ok(size)
}

/// What the output looks like, and resuming an interrupted run.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format: csv, tsv, jsonl or json [default: from the --out extension (.csv,
    /// .tsv, .jsonl, .ndjson, .json, before any .gz or .zst), else csv]
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        env = "APIFETCH_FORMAT",
        hide_env_values = true
    )]
    pub format: Option<Format>,

    /// Compress the output as it is written: gzip or zstd, or none [default: from the --out
    /// name (orders.csv.gz, events.jsonl.zst), else none]. For standard output and names
    /// that do not say; a name that does (.gz, .zst) must agree. A run to --out keeps its
    /// partial file uncompressed, so --resume works as for any output.
    #[arg(
        long,
        value_name = "CODEC",
        value_enum,
        env = "APIFETCH_COMPRESS",
        hide_env_values = true
    )]
    pub compress: Option<Compression>,

    /// Only these columns, in this order, named as they appear in the header (e.g.
    /// `id,customer.name`); a record without one gets an empty cell. csv and tsv only.
    /// With the columns fixed, a table on standard output is written page by page.
    #[arg(
        long,
        value_name = "COLUMNS",
        value_delimiter = ',',
        env = "APIFETCH_COLUMNS",
        hide_env_values = true
    )]
    pub columns: Vec<String>,

    /// The most columns a csv or tsv table may have (1 to 1000000), counting names
    /// --columns drops: records whose keys all differ would make a table of mostly empty
    /// cells, its size the square of theirs. Past it the run fails (exit 5); such records
    /// fit --format jsonl, or --columns.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000), env = "APIFETCH_MAX_COLUMNS", hide_env_values = true)]
    pub max_columns: usize,

    /// Joins the keys of nested objects into column names (`address.geo.lat`).
    #[arg(
        long,
        value_name = "SEP",
        default_value = ".",
        env = "APIFETCH_FLATTEN_SEP",
        hide_env_values = true
    )]
    pub flatten_sep: String,

    /// Keep nested objects whole, as JSON text in one column, instead of one column per
    /// nested key.
    #[arg(long, env = "APIFETCH_NO_FLATTEN", value_parser = BoolishValueParser::new(), hide_env_values = true)]
    pub no_flatten: bool,

    /// Prefix text cells starting with =, +, -, @, tab or CR with `'`, so a spreadsheet
    /// shows them instead of running them as formulas (CSV injection). JSON numbers, such
    /// as -13.11, stay numbers.
    #[arg(long, env = "APIFETCH_CSV_SAFE", value_parser = BoolishValueParser::new(), hide_env_values = true)]
    pub csv_safe: bool,

    /// Continue an interrupted run from FILE.checkpoint beside --out, producing the same
    /// file an uninterrupted run would have; without a checkpoint, start from the beginning.
    #[arg(long, env = "APIFETCH_RESUME", value_parser = BoolishValueParser::new(), hide_env_values = true)]
    pub resume: bool,

    /// How often a run to --out syncs its partial file and checkpoint to disk while pages
    /// stream in; after a power cut, resuming redoes at most this much. A killed process
    /// redoes only the page it was fetching: each page and its checkpoint reach the system
    /// as they arrive (an --incremental run whose --lookback window outgrows a small note
    /// redoes up to this much). 0: after every page. A run that fails or is interrupted
    /// always syncs every page it finished.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_duration, env = "APIFETCH_CHECKPOINT_EVERY", hide_env_values = true)]
    pub checkpoint_every: Duration,

    /// For the test suite only: a pause before each block the final write of the output
    /// puts out, so a test can signal a run while that write is going on. Real runs write
    /// as fast as the disk allows, and their build has no such flag.
    #[cfg(feature = "testing")]
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_duration, hide = true)]
    pub test_final_write_pause: Duration,
}

/// Fetching only what changed since the last successful run.
#[derive(Debug, Args)]
#[command(next_help_heading = "Incremental")]
pub struct IncrementalArgs {
    /// Write only records whose FIELD (a JSON Pointer such as /updated_at, or .updated_at)
    /// is above the mark the last successful run reached, and move the mark on when this
    /// one succeeds. Numbers compare as numbers, RFC 3339 timestamps as instants, other
    /// strings as text; a record without a comparable FIELD is kept, with a warning (with
    /// --append it is an error, as it would be appended again every run).
    #[arg(long, value_name = "FIELD", value_parser = parse_pointer, env = "APIFETCH_INCREMENTAL", hide_env_values = true)]
    pub incremental: Option<String>,

    /// Where the mark is kept between runs; a state of another URL or FIELD is refused
    /// [default: --out with .state added; required on standard output]
    #[arg(
        long,
        value_name = "FILE",
        requires = "incremental",
        env = "APIFETCH_STATE",
        hide_env_values = true
    )]
    pub state: Option<PathBuf>,

    /// Query parameter that sends the mark to the API (e.g. updated_since), so that it
    /// returns only what changed. Records below the mark that come anyway are dropped, and
    /// those at it that the last run wrote.
    #[arg(
        long,
        value_name = "NAME",
        requires = "incremental",
        env = "APIFETCH_SINCE_PARAM",
        hide_env_values = true
    )]
    pub since_param: Option<String>,

    /// How --since-param writes the mark: raw (as the API sent it), rfc3339 (in UTC),
    /// epoch (seconds) or epoch-ms.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = SinceFormat::Raw, requires = "since_param", env = "APIFETCH_SINCE_FORMAT", hide_env_values = true)]
    pub since_format: SinceFormat,

    /// The API sorts records newest first by FIELD: stop after the page that reaches the
    /// mark instead of paging through everything older.
    #[arg(long, requires = "incremental", env = "APIFETCH_NEWEST_FIRST", value_parser = BoolishValueParser::new(), hide_env_values = true)]
    pub newest_first: bool,

    /// Read again this far before the mark, for APIs whose FIELD lags behind their
    /// writes: a duration with a unit (10m, 2h) before a timestamp, a count (100) below a
    /// number. Needs --key.
    #[arg(long, value_name = "DURATION|N", value_parser = Lookback::parse, requires = "incremental", env = "APIFETCH_LOOKBACK", hide_env_values = true)]
    pub lookback: Option<Lookback>,

    /// JSON Pointer to what identifies a record (e.g. /id): a record read again at the mark
    /// or within --lookback is dropped when it was written before with this FIELD value or
    /// a later one. Without it, records at the mark are told apart by their whole text.
    #[arg(long, value_name = "FIELD", value_parser = parse_pointer, requires = "incremental", env = "APIFETCH_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// Add the new records to the end of --out instead of replacing it with them: jsonl
    /// always, csv and tsv while the columns stay the same (a new column is an error); not
    /// json or a compressed output. A record without FIELD is an error here, since it would
    /// be added again every run.
    #[arg(long, requires = "incremental", env = "APIFETCH_APPEND", value_parser = BoolishValueParser::new(), hide_env_values = true)]
    pub append: bool,
}

/// Seconds as a number (`0.05`, `30`) or a human duration (`500ms`, `2m`, `1h30m`).
///
/// Longer than [`LONGEST`] (100 years) is refused: it can only be a mistake, and bounding
/// every duration keeps the instants computed from it from overflowing.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let duration = match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a valid number of seconds"))?,
        Err(_) => humantime::parse_duration(s).map_err(|_| {
            format!("`{s}` is not a duration: use seconds (1.5) or a unit (500ms, 2m, 1h)")
        })?,
    };
    if duration > LONGEST {
        return Err(format!("`{s}` is longer than 100 years"));
    }
    Ok(duration)
}

/// A time limit: a duration as [`parse_duration`] reads it, but not zero, which would make
/// every request (or the run) fail before it began.
fn parse_limit(s: &str) -> Result<Duration, String> {
    let limit = parse_duration(s)?;
    if limit.is_zero() {
        return Err(format!("`{s}` must be longer than 0"));
    }
    Ok(limit)
}

/// An HTTP method, as curl takes it (`-X post` is POST).
fn parse_method(s: &str) -> Result<reqwest::Method, String> {
    reqwest::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{s}` is not an HTTP method"))
}

/// A place inside a response: a JSON Pointer (RFC 6901: `/meta/next`), or a path as jq
/// and dlt write it (`.meta.next`, `meta.next`, `.items[0].id`): keys between dots, `[N]`
/// an index. A key that holds a dot or a bracket needs the pointer form.
fn parse_pointer(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        return Ok(s.to_string());
    }
    let path = s.strip_prefix('.').unwrap_or(s);
    let invalid = || {
        format!(
            "`{s}` is neither a JSON Pointer (/meta/next) nor a dotted path (.meta.next, \
             .items[0].id)"
        )
    };
    let mut pointer = String::new();
    for segment in path.split('.') {
        let (key, indexes) = segment.split_once('[').unwrap_or((segment, ""));
        if key.is_empty() && indexes.is_empty() {
            return Err(invalid());
        }
        if !key.is_empty() {
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        if !indexes.is_empty() {
            for index in format!("[{indexes}").split_terminator(']') {
                let index = index
                    .strip_prefix('[')
                    .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
                pointer.push('/');
                pointer.push_str(index.ok_or_else(invalid)?);
            }
            if !indexes.ends_with(']') {
                return Err(invalid());
            }
        }
    }
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn durations_accept_fractions_and_units() {
        assert_eq!(parse_duration("0.05"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_duration("100y"),
            Ok(Duration::from_secs(3_155_760_000))
        );
        assert!(parse_duration("18000000000000000000").is_err());
        assert!(parse_duration("101y").is_err());
    }

    #[test]
    fn pointers_start_with_a_slash() {
        for (typed, pointer) in [
            ("/meta/next", "/meta/next"),
            (".meta.next", "/meta/next"),
            ("meta.next", "/meta/next"),
            (".items[0].id", "/items/0/id"),
            ("data[2][0]", "/data/2/0"),
            (".a~b", "/a~0b"),
        ] {
            assert_eq!(parse_pointer(typed).as_deref(), Ok(pointer), "{typed}");
        }
        for bad in [".", "", "a..b", ".items[x]", ".items[0", "a[]"] {
            assert!(parse_pointer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["0", "-1", "12T", "M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
