//! Runtime configuration: the command line, validated once.
//!
//! The fetch code never sees raw strings or re-checks flags; everything here is already in
//! the form it is used in.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::level_filters::LevelFilter;
use url::Url;

use crate::cli::{Cli, Color, LogFormat};
use crate::error::Error;
use crate::output::Format;
use crate::paginate::{CursorSource, Style};
use crate::records::Select;
use crate::redact::{self, Secret};
use crate::retry::human;
use crate::spool::Form;
use crate::{breaker, http, pace, retry};

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
    /// `--page-size`: sent only when given.
    pub page_size: Option<u64>,
    /// `--start-page`: sent only when given; otherwise the URL's own page number, if any,
    /// or what the API shows, tells where the run starts.
    pub start_page: Option<u64>,
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
    pub user_agent: String,
    pub auth: Option<Auth>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Send `headers` to next pages on other origins too (`--trust-next-origin`).
    pub trust_next_origin: bool,
    /// Larger response bodies are refused rather than read into memory.
    pub max_response_size: u64,
    pub tls: Tls,
    pub proxies: Proxies,
    /// Resolves host names in place of the system's resolver when set: tests answer
    /// lookups themselves, so nothing they do leaves loopback, DNS included.
    pub resolver: Option<http::Resolver>,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Bearer(Secret),
    Basic { user: String, password: Secret },
}

#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Extra trusted CA certificates, PEM.
    pub cacert: Option<Vec<u8>>,
    /// Skip certificate verification (`--insecure`).
    pub insecure: bool,
}

/// Proxies from the environment, as curl reads them. Kept as secrets: proxy URLs often
/// carry a password.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    pub http: Option<Secret>,
    pub https: Option<Secret>,
    /// Hosts that bypass the proxies, in `NO_PROXY` syntax. Always includes loopback.
    pub bypass: String,
}

/// How the run reports on itself.
#[derive(Debug, Clone)]
pub struct Logging {
    pub level: LevelFilter,
    pub format: LogFormat,
    pub color: bool,
    /// Show a live progress display (stderr is a terminal and not `--quiet`).
    pub progress: bool,
    pub summary: Option<PathBuf>,
}

/// What the output looks like, and whether a run continues an interrupted one.
#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    /// How records are spooled; decided by the format and the column options.
    pub form: Form,
    /// Continue from the checkpoint beside `--out`, if there is one.
    pub resume: bool,
    /// The least time between two syncs of the partial file and its checkpoint.
    pub checkpoint_every: Duration,
    /// `--max-columns`: the most columns a table may have.
    pub max_columns: usize,
}

/// How gently the run treats the API: pacing, the circuit breaker, the deadline, and
/// how many requests may be in flight at once.
#[derive(Debug, Clone)]
pub struct Politeness {
    pub pacing: pace::Pacing,
    /// `None`: `--breaker 0`, no breaker.
    pub breaker: Option<breaker::Settings>,
    /// `--max-time`, counted from the start of the run.
    pub max_time: Option<Duration>,
    /// `--concurrency`: at least 1.
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// The output file, replaced atomically when the run succeeds. `None` writes to
    /// standard output, or to `stream`.
    pub out: Option<PathBuf>,
    /// A device or pipe named by `--out` (`/dev/stdout`, a FIFO): written in place like
    /// standard output, since it cannot be replaced by renaming.
    pub stream: Option<PathBuf>,
    pub output: Output,
    pub pages: Pages,
    pub records: Select,
    pub request: Request,
    pub retry: retry::Policy,
    pub logging: Logging,
    /// Every credential the run knows, so free text (errors, log lines) can be scrubbed
    /// of them.
    pub secrets: Vec<Secret>,
    pub polite: Politeness,
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
                "--backoff ({}) is longer than --backoff-max ({})",
                human(cli.backoff),
                human(cli.backoff_max)
            )));
        }
        let params = cli
            .params
            .iter()
            .map(|p| parse_param(p))
            .collect::<Result<Vec<_>, _>>()?;
        let breaker = (cli.breaker > 0)
            .then(|| breaker_cooldown(cli.breaker_cooldown, cli.retry_max_wait))
            .transpose()?
            .map(|cooldown| breaker::Settings {
                threshold: cli.breaker,
                cooldown,
            });
        let mut headers = HeaderMap::new();
        for raw in &cli.headers {
            let (name, value) = parse_header(raw)?;
            headers.append(name, value);
        }
        let style = pagination_style(&cli)?;
        let cursor = match (cli.cursor_path, cli.cursor_from_record) {
            (Some(pointer), _) => Some(CursorSource::Body(pointer)),
            (None, Some(pointer)) => Some(CursorSource::LastRecord(pointer)),
            (None, None) => None,
        };
        let auth = match (cli.bearer, cli.user) {
            // Checked here, where it is a usage error: later it would be a failed
            // request, retried as if the network were at fault.
            (Some(token), _) if HeaderValue::from_str(token.expose()).is_err() => {
                return Err(Error::Usage(
                    "the --bearer token has characters a header cannot carry \
                     (a line break or control character: was it read from a file with a newline?)"
                        .into(),
                ));
            }
            (Some(token), _) => Some(Auth::Bearer(token)),
            (None, Some(user)) => Some(parse_user(&user)?),
            (None, None) => None,
        };
        let cacert = cli
            .cacert
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|e| {
                    Error::Usage(format!("cannot read --cacert {}: {e}", path.display()))
                })
            })
            .transpose()?;
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let secrets = collect_secrets(&target, &params, &headers, auth.as_ref());
        let proxies = Proxies::from_env(|name| std::env::var(name).ok());
        let (out, stream) = resolve_out(cli.out)?;
        let output = output(
            &cli.output,
            out.as_deref().or(stream.as_deref()),
            out.is_some(),
        )?;
        Ok(Config {
            target,
            out,
            stream,
            output,
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
                params,
                headers,
                user_agent: cli.user_agent,
                auth,
                timeout: cli.timeout,
                connect_timeout: cli.connect_timeout,
                trust_next_origin: cli.trust_next_origin,
                max_response_size: cli.max_response_size,
                tls: Tls {
                    cacert,
                    insecure: cli.insecure,
                },
                proxies,
                resolver: None,
            },
            retry: retry::Policy {
                retries: cli.retries,
                base: cli.backoff,
                cap: cli.backoff_max,
                jitter: cli.jitter,
                retry_on: cli.retry_on,
                max_wait: cli.retry_max_wait,
            },
            logging: Logging {
                level: match (cli.quiet, cli.verbose) {
                    (true, 0) => LevelFilter::ERROR,
                    (false, 0) => LevelFilter::INFO,
                    (_, 1) => LevelFilter::DEBUG,
                    (_, _) => LevelFilter::TRACE,
                },
                format: cli.log_format,
                color: cli.log_format == LogFormat::Text
                    && match cli.color {
                        Color::Always => true,
                        Color::Never => false,
                        Color::Auto => {
                            stderr_is_terminal
                                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        }
                    },
                progress: stderr_is_terminal && !(cli.quiet && cli.verbose == 0),
                summary: cli.summary_json,
            },
            secrets,
            polite: Politeness {
                pacing: pace::Pacing {
                    rate: cli.rate,
                    delay: cli.delay,
                },
                breaker,
                max_time: cli.max_time,
                concurrency: cli.concurrency,
            },
        })
    }
}

/// The cool-down when `--breaker-cooldown` is not given.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

/// `--breaker-cooldown`, which must fit within `--retry-max-wait` or an open circuit would
/// always give up. Left unset, it follows a shorter `--retry-max-wait`: the user never
/// asked for 30 s. Only a cool-down the user gave, longer than the limit, is a mistake.
fn breaker_cooldown(given: Option<Duration>, max_wait: Duration) -> Result<Duration, Error> {
    match given {
        None => Ok(DEFAULT_COOLDOWN.min(max_wait)),
        Some(cooldown) if cooldown > max_wait => Err(Error::Usage(format!(
            "--breaker-cooldown ({}) is longer than --retry-max-wait ({}): an open circuit \
             would always give up",
            human(cooldown),
            human(max_wait)
        ))),
        Some(cooldown) => Ok(cooldown),
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

impl Proxies {
    /// Reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case, upper
    /// first). Loopback is always bypassed: a local API (or the demo) reached through a
    /// corporate proxy would fail or leak to it.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()))
        };
        let all = first(&["ALL_PROXY", "all_proxy"]);
        let user_bypass = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Proxies {
            http: first(&["HTTP_PROXY", "http_proxy"])
                .or_else(|| all.clone())
                .map(Secret::new),
            https: first(&["HTTPS_PROXY", "https_proxy"])
                .or(all)
                .map(Secret::new),
            bypass: [user_bypass.as_str(), "localhost", "127.0.0.0/8", "::1"]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Every credential in the request, as text that must never be printed.
fn collect_secrets(
    target: &Target,
    params: &[(String, String)],
    headers: &HeaderMap,
    auth: Option<&Auth>,
) -> Vec<Secret> {
    let mut secrets = Vec::new();
    if let Target::Url(url) = target {
        // `user:pass@` names someone and proves it with the password; a lone `token@` is
        // the credential itself. Scrubbing a mere user name from all text would mangle it.
        let credential = url.password().unwrap_or(url.username());
        if !credential.is_empty() {
            secrets.push(Secret::new(credential));
        }
        secrets.extend(
            url.query_pairs()
                .filter(|(k, _)| redact::is_secret_param(k))
                .map(|(_, v)| Secret::new(v)),
        );
    }
    secrets.extend(
        params
            .iter()
            .filter(|(k, _)| redact::is_secret_param(k))
            .map(|(_, v)| Secret::new(v.as_str())),
    );
    secrets.extend(
        headers
            .iter()
            .filter(|(name, _)| redact::is_secret_header(name.as_str()))
            .filter_map(|(_, v)| v.to_str().ok())
            .flat_map(|v| {
                // `Bearer abc` leaks as much through `abc` alone.
                let last = v.rsplit(' ').next().unwrap_or(v);
                [Secret::new(v), Secret::new(last)]
            }),
    );
    match auth {
        Some(Auth::Bearer(token)) => secrets.push(token.clone()),
        Some(Auth::Basic { password, .. }) => secrets.push(password.clone()),
        None => {}
    }
    secrets
}

/// `KEY=VALUE`. Errors never quote the text: the value may be a credential.
fn parse_param(raw: &str) -> Result<(String, String), Error> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage("a --param is not KEY=VALUE".into())),
    }
}

/// `Name: value`, with credential values marked sensitive. Errors name at most the header,
/// never its value.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| Error::Usage("a --header is not `Name: value`".into()))?;
    let name = name.trim();
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::Usage(format!("`{name}` is not a valid header name")))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| Error::Usage(format!("the value of header `{name}` is not valid")))?;
    value.set_sensitive(redact::is_secret_header(name.as_str()));
    Ok((name, value))
}

/// `USER:PASS` for basic authentication.
fn parse_user(raw: &Secret) -> Result<Auth, Error> {
    let (user, password) = raw
        .expose()
        .split_once(':')
        .ok_or_else(|| Error::Usage("--user must be USER:PASS".into()))?;
    Ok(Auth::Basic {
        user: user.to_string(),
        password: Secret::new(password),
    })
}

/// Sorts `--out` by what is at that path now, as (file, stream): a symlink is followed,
/// so the file it points at is replaced and the link kept; a directory is refused before
/// any request is made; a device, pipe or anything under /dev or /proc (`/dev/stdout`,
/// which may resolve to a redirected file that must be appended to, not replaced) is
/// written in place.
fn resolve_out(out: Option<PathBuf>) -> Result<(Option<PathBuf>, Option<PathBuf>), Error> {
    let Some(path) = out.filter(|p| p.as_os_str() != "-") else {
        return Ok((None, None));
    };
    if path.starts_with("/dev") || path.starts_with("/proc") {
        return Ok((None, Some(path)));
    }
    let path = follow_links(path);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Err(Error::output(
            std::io::Error::other("it is a directory"),
            format!("cannot write {}", path.display()),
        )),
        Ok(meta) if !meta.is_file() => Ok((None, Some(path))),
        _ => Ok((Some(path), None)),
    }
}

/// Where a chain of symlinks ends, even when its last target does not exist yet (a first
/// run into a link made ahead of time must create the target, not replace the link).
fn follow_links(mut path: PathBuf) -> PathBuf {
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => {
                let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
                path = base.join(target);
            }
            Err(_) => break,
        }
    }
    path
}

/// `named` is the path `--out` gave (its extension picks the default format); `resumable`
/// says whether it is a file that can carry a partial run.
fn output(
    cli: &crate::cli::OutputArgs,
    named: Option<&Path>,
    resumable: bool,
) -> Result<Output, Error> {
    let format = cli
        .format
        .unwrap_or_else(|| named.map_or(Format::Csv, Format::from_path));
    if cli.resume && !resumable {
        return Err(Error::Usage(
            "--resume needs --out FILE: a run to standard output has nothing to resume".into(),
        ));
    }
    let form = if format.is_tabular() {
        if cli.flatten_sep.is_empty() {
            return Err(Error::Usage(
                "--flatten-sep cannot be empty (use --no-flatten to keep nested objects whole)"
                    .into(),
            ));
        }
        if cli.columns.iter().any(String::is_empty) {
            return Err(Error::Usage("--columns has an empty column name".into()));
        }
        if cli.columns.len() > cli.max_columns {
            return Err(Error::Usage(format!(
                "--columns names {} columns, more than --max-columns {}",
                cli.columns.len(),
                cli.max_columns
            )));
        }
        Form::Cells {
            sep: (!cli.no_flatten).then(|| cli.flatten_sep.clone()),
            only: (!cli.columns.is_empty()).then(|| cli.columns.clone()),
            delimiter: if format == Format::Tsv { b'\t' } else { b',' },
            csv_safe: cli.csv_safe,
        }
    } else {
        let tabular_only = [
            ("--columns", !cli.columns.is_empty()),
            ("--flatten-sep", cli.flatten_sep != "."),
            ("--no-flatten", cli.no_flatten),
            ("--csv-safe", cli.csv_safe),
        ];
        if let Some((flag, _)) = tabular_only.iter().find(|(_, given)| *given) {
            return Err(Error::Usage(format!(
                "{flag} applies to csv and tsv output; {} writes records as the API sent them",
                format.name()
            )));
        }
        Form::Lines
    };
    Ok(Output {
        format,
        form,
        resume: cli.resume,
        checkpoint_every: cli.checkpoint_every,
        max_columns: cli.max_columns,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_cooldown_follows_a_shorter_retry_max_wait_and_a_given_one_must_fit() {
        let secs = Duration::from_secs;
        assert_eq!(breaker_cooldown(None, secs(300)).unwrap(), secs(30));
        assert_eq!(breaker_cooldown(None, secs(5)).unwrap(), secs(5));
        assert_eq!(breaker_cooldown(Some(secs(5)), secs(5)).unwrap(), secs(5));
        assert_eq!(
            breaker_cooldown(Some(secs(30)), secs(5))
                .unwrap_err()
                .to_string(),
            "--breaker-cooldown (30.0s) is longer than --retry-max-wait (5.0s): an open \
             circuit would always give up"
        );
    }

    #[test]
    fn params_and_headers_split_once() {
        assert_eq!(parse_param("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert!(parse_param("=x").is_err());
        let (name, value) = parse_header("X-Trace:  a:b ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-trace", "a:b"));
        assert!(!value.is_sensitive());
        assert!(parse_header("X-Api-Key: k").unwrap().1.is_sensitive());
        assert!(parse_header("bad header: x").is_err());
    }

    #[test]
    fn errors_never_quote_a_credential() {
        for err in [
            parse_param("=hunter2").unwrap_err(),
            parse_header("Authorization Bearer hunter2").unwrap_err(),
            parse_header("Authorization: Bearer hunter2\x7f").unwrap_err(),
            parse_user(&Secret::new("hunter2")).unwrap_err(),
        ] {
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn secrets_are_every_credential_but_not_a_user_name() {
        let exposed = |url: &str, headers: &[&str]| {
            let target = Target::Url(Url::parse(url).unwrap());
            let mut map = HeaderMap::new();
            for raw in headers {
                let (name, value) = parse_header(raw).unwrap();
                map.append(name, value);
            }
            let params = [("api_key".to_string(), "p4ram".to_string())];
            collect_secrets(&target, &params, &map, None)
                .iter()
                .map(|s| s.expose().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            exposed("https://ann:pa55@h/x?token=t0k3n&page=2", &["Accept: */*"]),
            ["pa55", "t0k3n", "p4ram"]
        );
        assert_eq!(
            exposed("https://ghp_abc@h/x", &["Authorization: Bearer b34rer"]),
            ["ghp_abc", "p4ram", "Bearer b34rer", "b34rer"]
        );
    }

    #[test]
    fn proxies_come_from_the_environment_and_never_serve_loopback() {
        let env = |name: &str| match name {
            "https_proxy" => Some("http://proxy:3128".to_string()),
            "ALL_PROXY" => Some("http://all:1".to_string()),
            "NO_PROXY" => Some("internal.test".to_string()),
            _ => None,
        };
        let p = Proxies::from_env(env);
        assert_eq!(p.https.unwrap().expose(), "http://proxy:3128");
        assert_eq!(p.http.unwrap().expose(), "http://all:1");
        assert_eq!(p.bypass, "internal.test,localhost,127.0.0.0/8,::1");
        let none = Proxies::from_env(|_| None);
        assert!(none.http.is_none() && none.https.is_none());
        assert_eq!(none.bypass, "localhost,127.0.0.0/8,::1");
    }
}
