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

use crate::cli::args::{
    AuthArgs, Cli, Color, LoggingArgs, PaginationArgs, PolitenessArgs, RequestArgs, RetryArgs,
};
use crate::engine::{Action, Config, Target};
use crate::error::Error;
use crate::fetch::{self, Auth, Proxies, Tls};
use crate::incremental;
use crate::paginate::Graphql;
use crate::paginate::{self, CursorSource, Style};
use crate::place::{self, Place};
use crate::policy::Politeness;
use crate::policy::{breaker, pace, retry};
use crate::report::logging;
use crate::report::logging::LogFormat;
use crate::report::redact::{self, Secret};
use crate::report::units::human;
use crate::shape::records::Select;
use crate::sink;
use crate::sink::checkpoint::Files;
use crate::sink::compress::Compression;
use crate::sink::output::Format;
use crate::sink::rows::Form;

impl TryFrom<Cli> for Config {
    type Error = Error;

    /// Each group of flags becomes its module's settings; what is checked here is only what
    /// spans groups (the target, the body's pointers, the summary's place, credentials).
    fn try_from(cli: Cli) -> Result<Self, Error> {
        let target = target(&cli)?;
        let (cooldown, max_wait) =
            breaker_waits(cli.polite.breaker_cooldown, cli.retry.retry_max_wait)?;
        let (body, graphql) = payload(&cli.request)?;
        check_body_params(&cli.pages, body.is_some())?;
        let request = cli
            .request
            .settings(&cli.auth, &body, cli.pages.trust_next_origin)?;
        let secrets = collect_secrets(
            &target,
            &request.params,
            &request.headers,
            request.auth.as_ref(),
            &request.proxies,
        );
        check_summary(&cli)?;
        let (out, stream) = resolve_out(cli.out)?;
        let output = output(
            &cli.output,
            out.as_deref().or(stream.as_deref()),
            out.is_some(),
        )?;
        let bounded = [
            ("--max-records", cli.pages.max_records.is_some()),
            ("--max-pages", cli.pages.max_pages.is_some()),
            ("--start-page", cli.pages.start_page.is_some()),
        ];
        let incremental = incremental(&cli.incremental, &bounded, out.as_deref(), &output)?;
        if let Some(settings) = &incremental {
            check_state(&settings.state, out.as_deref())?;
        }
        let (pages, records) = cli.pages.settings(body, graphql, incremental.is_none())?;
        if let Some((since, _)) = incremental.as_ref().and_then(|s| s.since.as_ref()) {
            check_since(since, &target, &request.params, &pages)?;
        }
        Ok(Config {
            target,
            save_profile: cli.request.saved_profile()?,
            action: cli.request.action(),
            out,
            stream,
            output,
            incremental,
            pages,
            records,
            request,
            retry: cli.retry.policy(max_wait)?,
            logging: cli.logging.settings(),
            secrets,
            polite: cli.polite.politeness(cooldown),
        })
    }
}

/// The URL to fetch: the argument, joined to a profile's base URL when it is a path.
fn target(cli: &Cli) -> Result<Target, Error> {
    match (&cli.url, &cli.request.base_url, cli.demo) {
        (_, _, true) => Ok(Target::Demo),
        (Some(path), Some(base), false) if path.starts_with('/') => Ok(Target::Url(parse_url(
            &format!("{}{path}", base.trim_end_matches('/')),
        )?)),
        (Some(raw), _, false) | (None, Some(raw), false) => Ok(Target::Url(parse_url(raw)?)),
        (None, None, false) => Err(Error::Usage("a URL is required (or --demo)".into())),
    }
}

impl PaginationArgs {
    /// The paginator's settings, and where the records are.
    fn settings(
        self,
        body: Option<serde_json::Value>,
        graphql: Option<Graphql>,
        may_stop_short: bool,
    ) -> Result<(paginate::Settings, Select), Error> {
        let style = pagination_style(&self)?;
        let cursor = match (self.cursor_path, self.cursor_from_record) {
            (Some(pointer), _) => Some(CursorSource::Body(pointer)),
            (None, Some(pointer)) => Some(CursorSource::LastRecord(pointer)),
            (None, None) => None,
        };
        let records = Select {
            pointer: self.records,
            object_is_record: style == Style::None,
            item: None,
        };
        let pages = paginate::Settings {
            style,
            page_param: self.page_param,
            size_param: self.size_param,
            page_size: self.page_size,
            start_page: self.start_page,
            max_pages: self.max_pages,
            offset_param: self.offset_param,
            limit_param: self.limit_param,
            cursor,
            cursor_param: self.cursor_param,
            next_path: self.next_path,
            has_more: self.has_more,
            total: self.total,
            max_records: self.max_records,
            may_stop_short,
            body,
            graphql,
        };
        Ok((pages, records))
    }
}

impl RequestArgs {
    /// The client's settings. A request with a body is a POST unless `-X` says otherwise.
    fn settings(
        &self,
        auth: &AuthArgs,
        body: &Option<serde_json::Value>,
        trust_next_origin: bool,
    ) -> Result<fetch::Settings, Error> {
        let params = self
            .params
            .iter()
            .map(|p| parse_param(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        for line in header_lines(&self.headers, &self.env_headers)? {
            let (name, value) = parse_header(&line)?;
            headers.append(name, value);
        }
        let method = match (&self.method, body) {
            (Some(method), _) => method.clone(),
            (None, Some(_)) => reqwest::Method::POST,
            (None, None) => reqwest::Method::GET,
        };
        Ok(fetch::Settings {
            method,
            graphql: self.graphql.is_some(),
            params,
            headers,
            user_agent: self.user_agent.clone(),
            auth: auth.credentials()?,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            trust_next_origin,
            max_response_size: self.max_response_size,
            tls: auth.tls()?,
            proxies: Proxies::from_env(|name| std::env::var(name).ok()),
            resolver: None,
        })
    }

    fn action(&self) -> Action {
        match (self.probe, self.dry_run) {
            (true, _) => Action::Probe,
            (_, true) => Action::DryRun,
            _ => Action::Fetch,
        }
    }

    /// `--save-profile NAME`: the config file to save it in, and the name.
    fn saved_profile(&self) -> Result<Option<(PathBuf, String)>, Error> {
        let Some(name) = &self.save_profile else {
            return Ok(None);
        };
        let path = crate::profile::path(self.config.as_deref(), |v| std::env::var(v).ok())
            .ok_or_else(|| {
                Error::Usage("--save-profile: no config file (set HOME or --config)".into())
            })?;
        Ok(Some((path, name.clone())))
    }
}

impl AuthArgs {
    fn credentials(&self) -> Result<Option<Auth>, Error> {
        match (&self.bearer, &self.user) {
            // Checked here, where it is a usage error: later it would be a failed
            // request, retried as if the network were at fault.
            (Some(token), _) if HeaderValue::from_str(token.expose()).is_err() => {
                Err(Error::Usage(
                    "the --bearer token has characters a header cannot carry \
                     (a line break or control character: was it read from a file with a newline?)"
                        .into(),
                ))
            }
            (Some(token), _) => Ok(Some(Auth::Bearer(token.clone()))),
            (None, Some(user)) => Ok(Some(parse_user(user)?)),
            (None, None) => Ok(None),
        }
    }

    fn tls(&self) -> Result<Tls, Error> {
        let cacert = self
            .cacert
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|e| {
                    Error::Usage(format!("cannot read --cacert {}: {e}", path.display()))
                })
            })
            .transpose()?;
        Ok(Tls {
            cacert,
            insecure: self.insecure,
        })
    }
}

impl RetryArgs {
    /// The retry policy; `max_wait` is settled with the breaker's cool-down.
    fn policy(self, max_wait: Duration) -> Result<retry::Policy, Error> {
        if self.backoff > self.backoff_max {
            return Err(Error::Usage(format!(
                "--backoff ({}) is longer than --backoff-max ({})",
                human(self.backoff),
                human(self.backoff_max)
            )));
        }
        Ok(retry::Policy {
            retries: self.retries,
            base: self.backoff,
            cap: self.backoff_max,
            jitter: self.jitter,
            retry_on: self.retry_on,
            max_wait,
        })
    }
}

impl PolitenessArgs {
    /// `cooldown` is settled with the retries' max wait.
    fn politeness(self, cooldown: Duration) -> Politeness {
        Politeness {
            pacing: pace::Pacing {
                rate: self.rate,
                delay: self.delay,
            },
            breaker: (self.breaker > 0).then_some(breaker::Settings {
                threshold: self.breaker,
                cooldown,
            }),
            max_time: self.max_time,
            concurrency: self.concurrency,
        }
    }
}

impl LoggingArgs {
    fn settings(self) -> logging::Settings {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        logging::Settings {
            level: match (self.quiet, self.verbose) {
                (true, 0) => LevelFilter::ERROR,
                (false, 0) => LevelFilter::INFO,
                (_, 1) => LevelFilter::DEBUG,
                (_, _) => LevelFilter::TRACE,
            },
            format: self.log_format,
            color: self.log_format == LogFormat::Text
                && match self.color {
                    Color::Always => true,
                    Color::Never => false,
                    Color::Auto => {
                        stderr_is_terminal
                            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    }
                },
            progress: stderr_is_terminal && !(self.quiet && self.verbose == 0),
            summary: self.summary_json,
        }
    }
}

/// The cool-down when `--breaker-cooldown` is not given.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

/// `--breaker-cooldown` and `--retry-max-wait`, as (cool-down, max wait). The cool-down
/// must fit within the max wait or an open circuit would always give up. A value the
/// user left out follows the one they gave (a shorter max wait shortens the default
/// cool-down, a longer cool-down lengthens the default max wait): they asked for neither
/// 30 s nor 300 s. Only two values the user gave that contradict each other are a mistake.
fn breaker_waits(
    cooldown: Option<Duration>,
    max_wait: Option<Duration>,
) -> Result<(Duration, Duration), Error> {
    match (cooldown, max_wait) {
        (None, None) => Ok((DEFAULT_COOLDOWN, DEFAULT_MAX_WAIT)),
        (None, Some(max_wait)) => Ok((DEFAULT_COOLDOWN.min(max_wait), max_wait)),
        (Some(cooldown), None) => Ok((cooldown, DEFAULT_MAX_WAIT.max(cooldown))),
        (Some(cooldown), Some(max_wait)) if cooldown > max_wait => Err(Error::Usage(format!(
            "--breaker-cooldown ({}) is longer than --retry-max-wait ({}): an open circuit \
             would always give up",
            human(cooldown),
            human(max_wait)
        ))),
        (Some(cooldown), Some(max_wait)) => Ok((cooldown, max_wait)),
    }
}

/// The request body (`--data`, or `--graphql` with `--variables`), checked to be JSON
/// before any request, and how a GraphQL query pages.
fn payload(request: &RequestArgs) -> Result<(Option<serde_json::Value>, Option<Graphql>), Error> {
    if let Some(data) = &request.data {
        let text = load(data, "--data")?;
        let body = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("--data is not JSON: {e}")))?;
        return Ok((Some(body), None));
    }
    let Some(query) = &request.graphql else {
        return Ok((None, None));
    };
    let query = load(query, "--graphql")?;
    let variables = match &request.variables {
        Some(v) => serde_json::from_str(&load(v, "--variables")?)
            .map_err(|e| Error::Usage(format!("--variables is not JSON: {e}")))?,
        None => serde_json::json!({}),
    };
    if !variables.is_object() {
        return Err(Error::Usage("--variables must be a JSON object".into()));
    }
    let graphql = match &request.cursor_var {
        Some(name) => Graphql {
            cursor_var: Some(name.trim_start_matches('$').to_string()),
            backward: argument_var(&query, "before") == Some(name.trim_start_matches('$')),
        },
        None => match (
            argument_var(&query, "after"),
            argument_var(&query, "before"),
        ) {
            (Some(after), _) => Graphql {
                cursor_var: Some(after.to_string()),
                backward: false,
            },
            (None, before) => Graphql {
                cursor_var: before.map(str::to_string),
                backward: before.is_some(),
            },
        },
    };
    let body = serde_json::json!({"query": query, "variables": variables});
    Ok((Some(body), Some(graphql)))
}

/// The variable a GraphQL query passes as argument `name` (`after: $cursor` → `cursor`).
fn argument_var<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    let mut rest = query;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(value) = after.strip_prefix(':').map(str::trim_start) {
            if let Some(var) = value.strip_prefix('$') {
                let end = var
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(var.len());
                return Some(&var[..end]);
            }
        }
    }
    None
}

/// The text of a flag that takes `TEXT`, `@FILE` or `@-` (standard input).
fn load(arg: &str, flag: &str) -> Result<String, Error> {
    let read = match arg.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin()),
        Some(path) => std::fs::read_to_string(path),
        None => return Ok(arg.to_string()),
    };
    read.map_err(|e| Error::Usage(format!("{flag} {arg}: cannot read it: {e}")))
}

/// A `--*-param` that is a JSON Pointer puts its value in the request body, so there
/// must be one.
fn check_body_params(pages: &PaginationArgs, has_body: bool) -> Result<(), Error> {
    let flags = [
        ("--page-param", Some(&pages.page_param)),
        ("--size-param", Some(&pages.size_param)),
        ("--offset-param", Some(&pages.offset_param)),
        ("--limit-param", Some(&pages.limit_param)),
        ("--cursor-param", pages.cursor_param.as_ref()),
    ];
    match flags
        .iter()
        .find(|(_, value)| value.is_some_and(|v| v.starts_with('/')))
    {
        Some((flag, Some(pointer))) if !has_body => Err(Error::Usage(format!(
            "{flag} {pointer} puts its value in the request body, but there is none: pass \
             --data JSON"
        ))),
        _ => Ok(()),
    }
}

/// `--paginate`, where `auto` gives way to the style that `--cursor-path`,
/// `--cursor-from-record` or `--next-path` imply; flags of another style are refused
/// rather than silently ignored.
fn pagination_style(pages: &PaginationArgs) -> Result<Style, Error> {
    let cursor_flag = match (&pages.cursor_path, &pages.cursor_from_record) {
        (Some(_), _) => Some("--cursor-path"),
        (None, Some(_)) => Some("--cursor-from-record"),
        (None, None) => pages.cursor_param.as_ref().map(|_| "--cursor-param"),
    };
    let next_flag = pages.next_path.as_ref().map(|_| "--next-path");
    let style = match (pages.paginate, cursor_flag, next_flag) {
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

/// Query parameter values shorter than this are not masked in free text: under names
/// like `key` or `sig` a one-character value is more likely a filter than a credential,
/// and masking it everywhere would wreck every log line. Credentials sent as such
/// (headers, `--bearer`, `-u`, userinfo, proxies) are masked whatever their length.
const SHORTEST_SECRET_PARAM: usize = 4;

/// Every credential the run sends, in every form it is sent in (see [`redact::forms`]),
/// as text that must never be printed.
fn collect_secrets(
    target: &Target,
    params: &[(String, String)],
    headers: &HeaderMap,
    auth: Option<&Auth>,
    proxies: &Proxies,
) -> Vec<Secret> {
    let mut secrets = Vec::new();
    let mut param_values: Vec<String> = params
        .iter()
        .filter(|(k, _)| redact::is_secret_param(k))
        .map(|(_, v)| v.clone())
        .collect();
    if let Target::Url(url) = target {
        // `user:pass@` names someone and proves it with the password; a lone `token@` is
        // the credential itself. Scrubbing a mere user name from all text would mangle it.
        secrets.extend(redact::userinfo(url));
        param_values.extend(
            url.query_pairs()
                .filter(|(k, _)| redact::is_secret_param(k))
                .map(|(_, v)| v.into_owned()),
        );
    }
    for value in param_values
        .iter()
        .filter(|v| v.len() >= SHORTEST_SECRET_PARAM)
    {
        secrets.extend(redact::forms(value));
    }
    secrets.extend(header_secrets(headers));
    match auth {
        Some(Auth::Bearer(token)) => secrets.extend(redact::forms(token.expose())),
        Some(Auth::Basic { user, password }) => {
            secrets.extend(redact::forms(password.expose()));
            secrets.push(redact::basic(user, password.expose()));
        }
        None => {}
    }
    for proxy in [&proxies.http, &proxies.https].into_iter().flatten() {
        if let Some(url) = proxy_url(proxy.expose()) {
            secrets.extend(redact::userinfo(&url));
        }
    }
    secrets
}

/// The credentials in secret headers, in every form they may leak in.
fn header_secrets(headers: &HeaderMap) -> Vec<Secret> {
    let mut secrets = Vec::new();
    for (name, value) in headers {
        let Some(value) = value
            .to_str()
            .ok()
            .filter(|_| redact::is_secret_header(name.as_str()))
        else {
            continue;
        };
        // `Bearer abc` leaks as much through `abc` alone, and `Cookie: a=1; b=2` through
        // each value.
        let last = value.rsplit(' ').next().unwrap_or(value);
        let cookies = value
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(_, v)| v.trim());
        for part in [value, last].into_iter().chain(cookies) {
            secrets.extend(redact::forms(part));
        }
    }
    secrets
}

/// Every header line given: `-H NAME: VALUE`, the lines of each `-H @FILE` (blank lines
/// and `#` comments skipped), and those of `APIFETCH_HEADERS`.
fn header_lines(given: &[String], from_env: &[String]) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    for arg in given {
        match arg.strip_prefix('@') {
            Some(_) => lines.extend(
                load(arg, "-H")?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            ),
            None => lines.push(arg.clone()),
        }
    }
    lines.extend(
        from_env
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string),
    );
    Ok(lines)
}

/// A proxy variable's URL; curl and reqwest take `host:port` without a scheme as http.
fn proxy_url(raw: &str) -> Option<Url> {
    Url::parse(raw)
        .ok()
        .filter(|url| url.has_host())
        .or_else(|| Url::parse(&format!("http://{raw}")).ok())
}

/// `KEY=VALUE`. Errors quote the text only when it looks like a bare name: anything else
/// may be a credential.
fn parse_param(raw: &str) -> Result<(String, String), Error> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage(format!(
            "--param {} is not KEY=VALUE (e.g. --param status=open)",
            named(raw)
        ))),
    }
}

/// An argument as an error may show it: itself when it looks like a bare name, since
/// anything else may be a credential.
fn named(raw: &str) -> String {
    let bare = raw.len() <= 40
        && !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match bare {
        true => format!("`{raw}`"),
        false => "(not shown: it may hold a credential)".into(),
    }
}

/// `Name: value`, with credential values marked sensitive. Errors name at most the header,
/// never its value.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let (name, value) = raw.split_once(':').ok_or_else(|| {
        Error::Usage(format!(
            "-H {} is not `Name: value` (e.g. -H 'Accept: application/json')",
            named(raw)
        ))
    })?;
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

/// Sorts `--out` by what is at that path now, as (file, stream) (see [`Place::of`]): a
/// directory is refused before any request is made.
fn resolve_out(out: Option<PathBuf>) -> Result<(Option<PathBuf>, Option<PathBuf>), Error> {
    let Some(path) = out.filter(|p| p.as_os_str() != "-") else {
        return Ok((None, None));
    };
    match Place::of(path) {
        Place::Stream(path) => Ok((None, Some(path))),
        Place::File(path) if path.is_dir() => Err(Error::output(
            std::io::Error::other("it is a directory"),
            format!("cannot write {}", path.display()),
        )),
        Place::File(path) => Ok((Some(path), None)),
    }
}

/// Where `--summary-json` goes, unless it names the output file or one of the files kept
/// beside it: [`Config::try_from`] refuses that, and the summary of that refusal must not
/// replace what it names either.
pub fn summary_place(cli: &Cli) -> Option<Place> {
    let place = Place::of(cli.logging.summary_json.clone()?);
    summary_clash(&place, cli.out.clone(), &cli.incremental)
        .is_none()
        .then_some(place)
}

/// Refuses a `--summary-json` that names a file the run writes.
fn check_summary(cli: &Cli) -> Result<(), Error> {
    let Some(summary) = &cli.logging.summary_json else {
        return Ok(());
    };
    let place = Place::of(summary.clone());
    match summary_clash(&place, cli.out.clone(), &cli.incremental) {
        Some(what) => Err(Error::Usage(format!(
            "--summary-json {} names {what}, which it would overwrite",
            summary.display()
        ))),
        None => Ok(()),
    }
}

/// What `--summary-json` would overwrite of the output's files or the incremental state,
/// if anything.
fn summary_clash(
    summary: &Place,
    out: Option<PathBuf>,
    incremental: &crate::cli::args::IncrementalArgs,
) -> Option<&'static str> {
    let (out, _) = resolve_out(out).ok()?;
    let state = (incremental.incremental.as_ref())
        .and_then(|_| state_path(incremental.state.as_deref(), out.as_deref()).ok());
    let state = state.map(|state| (state, "the --incremental state file"));
    output_files(out.as_deref())
        .into_iter()
        .chain(state)
        .find(|(path, _)| summary.is(path))
        .map(|(_, what)| what)
}

/// The output file and the files kept beside it, each with how a message names it.
fn output_files(out: Option<&Path>) -> Vec<(PathBuf, &'static str)> {
    let Some(out) = out else {
        return Vec::new();
    };
    let files = Files::beside(out);
    vec![
        (out.to_path_buf(), "--out"),
        (files.partial, "the partial file beside --out"),
        (files.checkpoint, "the checkpoint beside --out"),
    ]
}

/// Refuses a `--since-param` that would collide with another parameter of the request:
/// the mark would silently replace the page number, or be sent beside the user's own
/// value. It always goes in the query string, so a JSON Pointer (a body field) is refused
/// too rather than sent as a query parameter named `/since`.
fn check_since(
    since: &str,
    target: &Target,
    params: &[(String, String)],
    pages: &paginate::Settings,
) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::Usage(format!("--since-param {since}: {why}")));
    if since.starts_with('/') {
        return refuse(
            "the mark is sent in the query string, not the request body; name a query \
             parameter (e.g. updated_since)"
                .into(),
        );
    }
    let paging = [
        ("--page-param", Some(&pages.page_param)),
        ("--size-param", Some(&pages.size_param)),
        ("--offset-param", Some(&pages.offset_param)),
        ("--limit-param", Some(&pages.limit_param)),
        ("--cursor-param", pages.cursor_param.as_ref()),
    ];
    if let Some((flag, _)) = paging
        .iter()
        .find(|(_, name)| name.is_some_and(|n| n == since))
    {
        return refuse(format!(
            "pagination sends `{since}` already ({flag}); the mark would replace it: name \
             another parameter, or give {flag} another name"
        ));
    }
    let in_url = match target {
        Target::Url(url) => url.query_pairs().any(|(name, _)| name == since),
        Target::Demo => false,
    };
    if in_url {
        return refuse(format!(
            "the URL's query has `{since}` already; the mark is sent in it, so take it out \
             of the URL"
        ));
    }
    if params.iter().any(|(name, _)| name == since) {
        return refuse(format!(
            "--param {since}=… gives it already; the mark is sent in it, so drop the --param"
        ));
    }
    Ok(())
}

/// Refuses a `--state` that names the output or a file kept beside it: each run would
/// replace the other's contents, exit 0. (One that names `--summary-json` is refused with
/// the summary's own checks.)
fn check_state(state: &Path, out: Option<&Path>) -> Result<(), Error> {
    let place = Place::of(state.to_path_buf());
    match output_files(out)
        .into_iter()
        .find(|(path, _)| place.is(path))
    {
        Some((_, what)) => Err(Error::Usage(format!(
            "--state {} names {what}, which the state would overwrite; keep the state in a \
             file of its own",
            state.display()
        ))),
        None => Ok(()),
    }
}

/// `named` is the path `--out` gave (its extensions pick the default format and
/// compression); `resumable` says whether it is a file that can carry a partial run.
fn output(
    cli: &crate::cli::args::OutputArgs,
    named: Option<&Path>,
    resumable: bool,
) -> Result<sink::Settings, Error> {
    let (compression, named) = compression(cli.compress, named)?;
    let format = match (cli.format, named) {
        (Some(format), _) => format,
        (None, Some(path)) => Format::from_path(&path).map_err(Error::Usage)?,
        (None, None) => Format::Csv,
    };
    if cli.resume && !resumable {
        return Err(Error::Usage(
            "--resume needs --out FILE: a run to standard output has nothing to resume".into(),
        ));
    }
    let form = form(cli, format)?;
    Ok(sink::Settings {
        format,
        compression,
        form,
        resume: cli.resume,
        checkpoint_every: cli.checkpoint_every,
        max_columns: cli.max_columns,
        final_write_pause: final_write_pause(cli),
    })
}

/// `--test-final-write-pause`, which only a build for the tests has.
#[cfg(feature = "testing")]
fn final_write_pause(cli: &crate::cli::args::OutputArgs) -> Duration {
    cli.test_final_write_pause
}

#[cfg(not(feature = "testing"))]
fn final_write_pause(_: &crate::cli::args::OutputArgs) -> Duration {
    Duration::ZERO
}

/// How records are held for `format`: cells for a table, checked against the column
/// flags; lines otherwise, where the table-only flags are a mistake.
fn form(cli: &crate::cli::args::OutputArgs, format: Format) -> Result<Form, Error> {
    if format.is_tabular() {
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
        Ok(Form::Cells {
            sep: (!cli.no_flatten).then(|| cli.flatten_sep.clone()),
            only: (!cli.columns.is_empty()).then(|| cli.columns.clone()),
            delimiter: if format == Format::Tsv { b'\t' } else { b',' },
            csv_safe: cli.csv_safe,
        })
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
        Ok(Form::Lines)
    }
}

/// The compression `--compress` or the output's name asks for, and the name without the
/// compression's extension. A name that says gzip or zstd gets just that: `--compress` is
/// for standard output and names that say nothing, and one that contradicts the name would
/// write a file its name misdescribes.
fn compression(
    flag: Option<Compression>,
    named: Option<&Path>,
) -> Result<(Compression, Option<PathBuf>), Error> {
    let Some(path) = named else {
        return Ok((flag.unwrap_or(Compression::None), None));
    };
    let (by_name, inner) = Compression::from_path(path);
    match flag {
        Some(flag) if by_name != Compression::None && flag != by_name => {
            Err(Error::Usage(format!(
                "--compress {} contradicts the name {}; name the output for what it holds",
                clap::ValueEnum::to_possible_value(&flag)
                    .expect("no variant is skipped")
                    .get_name(),
                path.display()
            )))
        }
        Some(flag) => Ok((flag, Some(inner))),
        None => Ok((by_name, Some(inner))),
    }
}

/// Where an incremental run keeps its mark: `--state`, or beside the output.
fn state_path(state: Option<&Path>, out: Option<&Path>) -> Result<PathBuf, Error> {
    match (state, out) {
        (Some(state), _) => Ok(state.to_path_buf()),
        (None, Some(out)) => Ok(place::beside(out, ".state")),
        (None, None) => Err(Error::Usage(
            "--incremental to standard output needs --state FILE to keep its mark in".into(),
        )),
    }
}

/// `--incremental` and its flags, checked against the output they keep a mark for.
/// `bounded` names the flags that cut a run short, and whether each was given.
fn incremental(
    args: &crate::cli::args::IncrementalArgs,
    bounded: &[(&str, bool)],
    out: Option<&Path>,
    output: &sink::Settings,
) -> Result<Option<incremental::Settings>, Error> {
    let Some(field) = &args.incremental else {
        return Ok(None);
    };
    let state = state_path(args.state.as_deref(), out)?;
    // The mark moves to the highest value written: a run cut short would move it past
    // records it never fetched.
    if let Some(flag) = bounded
        .iter()
        .find_map(|(flag, given)| given.then_some(flag))
    {
        return Err(Error::Usage(format!(
            "{flag} cannot bound an --incremental run: the mark would move past records it \
             never fetched"
        )));
    }
    if args.lookback.is_some() && args.key.is_none() {
        return Err(Error::Usage(
            "--lookback needs --key: the records read again are told apart by their key".into(),
        ));
    }
    match (args.append, out, output.format) {
        (true, None, _) => Err(Error::Usage(
            "--append needs --out FILE: standard output has nothing to add to".into(),
        )),
        (true, _, Format::Json) => Err(Error::Usage(
            "--append cannot add records to a JSON array; write --format jsonl".into(),
        )),
        // A compressed stream cannot be added to without rewriting it whole.
        (true, _, _) if output.compression != Compression::None => Err(Error::Usage(
            "--append cannot add to a compressed output; write a new file each run, or \
             append to an uncompressed one"
                .into(),
        )),
        _ => Ok(Some(incremental::Settings {
            field: field.clone(),
            state,
            since: (args.since_param.clone()).map(|param| (param, args.since_format)),
            newest_first: args.newest_first,
            lookback: args.lookback,
            key: args.key.clone(),
            append: args.append,
        })),
    }
}

fn parse_url(raw: &str) -> Result<Url, Error> {
    // The raw text is echoed only where it cannot carry credentials (no user info, no
    // query), since they cannot yet be told apart.
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase if !raw.contains(['@', '?', '#']) => {
            Error::Usage(format!(
                "the URL has no scheme: did you mean https://{}?",
                raw.trim_start_matches('/')
            ))
        }
        url::ParseError::RelativeUrlWithoutBase => {
            Error::Usage("the URL has no scheme: start it with https:// (or http://)".into())
        }
        e => Error::Usage(format!("the URL is not valid: {e}")),
    })?;
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
    fn a_left_out_wait_follows_the_given_one_and_only_two_given_ones_can_clash() {
        let secs = |n| Some(Duration::from_secs(n));
        let waits = |c, m| breaker_waits(c, m).map(|(c, m)| (c.as_secs(), m.as_secs()));
        assert_eq!(waits(None, None).unwrap(), (30, 300));
        assert_eq!(waits(None, secs(5)).unwrap(), (5, 5));
        assert_eq!(waits(secs(600), None).unwrap(), (600, 600));
        assert_eq!(waits(secs(5), secs(5)).unwrap(), (5, 5));
        assert_eq!(
            waits(secs(30), secs(5)).unwrap_err().to_string(),
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
    fn secrets_are_every_credential_in_every_form_but_not_a_user_name() {
        let exposed = |url: &str, headers: &[&str], proxy: Option<&str>| {
            let target = Target::Url(Url::parse(url).unwrap());
            let mut map = HeaderMap::new();
            for raw in headers {
                let (name, value) = parse_header(raw).unwrap();
                map.append(name, value);
            }
            let params = [
                ("api_key".to_string(), "p4ram".to_string()),
                ("key".to_string(), "abc".to_string()),
            ];
            let proxies = Proxies {
                http: proxy.map(Secret::new),
                ..Proxies::default()
            };
            collect_secrets(&target, &params, &map, None, &proxies)
                .iter()
                .map(|s| s.expose().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            exposed(
                "https://ann:pa55@h/x?token=t0k3n&page=2",
                &["Accept: */*"],
                None
            ),
            ["pa55", "YW5uOnBhNTU=", "p4ram", "t0k3n"]
        );
        assert_eq!(
            exposed(
                "https://ghp_abc@h/x",
                &["Authorization: Bearer b34rer", "X-Api-Key: k1"],
                None
            ),
            [
                "ghp_abc",
                "Z2hwX2FiYzo=",
                "p4ram",
                "Bearer b34rer",
                "Bearer%20b34rer",
                "Bearer+b34rer",
                "b34rer",
                "k1",
                "k1"
            ]
        );
        assert_eq!(
            exposed(
                "https://h/x",
                &["Cookie: s=c0; t=x y"],
                Some("pu:p%40ss@proxy:3128")
            ),
            [
                "p4ram",
                "s%3Dc0%3B%20t%3Dx%20y",
                "s%3Dc0%3B+t%3Dx+y",
                "s=c0; t=x y",
                "y",
                "c0",
                "x y",
                "x%20y",
                "x+y",
                "p%2540ss",
                "p%40ss",
                "p@ss",
                "cHU6cEBzcw=="
            ]
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
        let loopback = "localhost,localhost.,127.0.0.0/8,::1,::ffff:127.0.0.0/104,0.0.0.0,::";
        assert_eq!(p.bypass, format!("internal.test,{loopback}"));
        let none = Proxies::from_env(|_| None);
        assert!(none.http.is_none() && none.https.is_none());
        assert_eq!(none.bypass, loopback);
    }

    #[test]
    fn a_graphql_querys_cursor_variable_is_the_one_it_passes_as_after_or_before() {
        let q =
            "query($first: Int, $cursor: String) { items(first: $first, after: $cursor) { id } }";
        assert_eq!(argument_var(q, "after"), Some("cursor"));
        assert_eq!(argument_var(q, "before"), None);
        let back = "query($c: String) { items(last: 10, before: $c) { id } }";
        assert_eq!(argument_var(back, "before"), Some("c"));
        assert_eq!(
            argument_var("{ items(afterDate: $d) { id } }", "after"),
            None
        );
        assert_eq!(argument_var("{ x(after: \"lit\") }", "after"), None);
    }
}
