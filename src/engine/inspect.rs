//! Looking before fetching: `--dry-run` prints the first request without sending it, and
//! `--probe` fetches the first page only and prints what it shows, ending with the flags
//! that pin it down for a cron job.

use std::io::{self, Write};

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::engine::{Config, read, text};
use crate::error::Error;
use crate::fetch::Auth;
use crate::fetch::http::Fetcher;
use crate::paginate::Paginator;
use crate::profile::{self, Profile};
use crate::report::redact;
use crate::shape::records::Page;

/// The first request as a curl command line, with every secret masked.
pub fn dry_run(config: &Config, pages: &Paginator) -> Result<(), Error> {
    let (url, body) = pages.request_at(pages.position());
    let mut words = vec!["curl".to_string()];
    if config.request.method != reqwest::Method::GET || body.is_some() {
        words.extend(["-X".into(), config.request.method.to_string()]);
    }
    words.push(quote(&redact::url(&url)));
    let mut headers = vec![format!("User-Agent: {}", config.request.user_agent)];
    headers.extend(config.request.headers.iter().map(|(name, value)| {
        let value = match redact::is_secret_header(name.as_str()) {
            true => "***",
            false => value.to_str().unwrap_or("(not text)"),
        };
        format!("{name}: {value}")
    }));
    match &config.request.auth {
        Some(Auth::Bearer(_)) => headers.push("Authorization: Bearer ***".into()),
        Some(Auth::Basic { user, .. }) => {
            words.extend(["-u".into(), quote(&format!("{user}:***"))]);
        }
        None => {}
    }
    if body.is_some() {
        headers.push("Content-Type: application/json".into());
    }
    for header in headers {
        words.extend(["-H".into(), quote(&header)]);
    }
    if let Some(body) = body {
        words.extend(["--data".into(), quote(&String::from_utf8_lossy(&body))]);
    }
    print(&words.join(" "))
}

/// Fetches the first page and prints what apifetch makes of it.
pub async fn probe(
    fetcher: &Fetcher,
    pages: &mut Paginator,
    config: &Config,
    url: &Url,
) -> Result<(), Error> {
    let (first, body) = pages.request_at(pages.position());
    let response = fetcher.fetch(&first, body.as_ref()).await?;
    let headers: HeaderMap = response.headers.clone();
    let body = text(response.status, response.body, url, true)?;
    let (page, mut records) = read(&body, url, &headers, config, pages)?;
    let found = records.len();
    let sample = records
        .first()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    pages.advance(&headers, &page, &mut records)?;
    let mut lines = vec![format!("probed {}", redact::url(&first))];
    lines.extend(findings(pages, config, &page, found, sample));
    let mut pinned = pages.pinned();
    if config.records.pointer.is_none() {
        if let Some(pointer) = page.records_pointer().filter(|p| !p.is_empty()) {
            pinned.extend(["--records".to_string(), pointer]);
        }
    }
    if !pinned.is_empty() {
        let words: Vec<String> = pinned.iter().map(|w| quote(w)).collect();
        lines.push(format!("to skip detection: {}", words.join(" ")));
    }
    if let Some((path, name)) = &config.save_profile {
        let (saved, left_out) = profile_of(config, url, pinned);
        profile::save(path, name, saved)?;
        lines.push(format!("saved as profile {name} in {}", path.display()));
        if !left_out.is_empty() {
            lines.push(format!(
                "  not saved   {}: credentials stay out of the file; name the environment \
                 variable that holds each (bearer_env, headers_env)",
                left_out.join(", ")
            ));
        }
    }
    print(&lines.join("\n"))
}

/// What the first page shows: the pagination decided and why, where the records are and
/// how many, the total, the columns and a sample (secrets masked).
fn findings(
    pages: &Paginator,
    config: &Config,
    page: &Page,
    found: usize,
    sample: Option<Value>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(why) = pages.decided() {
        lines.push(format!("  pagination  {why}"));
    }
    let pointer = config
        .records
        .pointer
        .clone()
        .or_else(|| page.records_pointer());
    let at = match pointer.as_deref() {
        Some(pointer) if !pointer.is_empty() => format!(" at {pointer}"),
        _ => String::new(),
    };
    lines.push(format!("  records     {found} on the first page{at}"));
    if let Some(total) = pages.total_records() {
        lines.push(format!("  total       {total} records"));
    }
    if let Some(Value::Object(fields)) = sample {
        let columns: Vec<&str> = fields.keys().map(String::as_str).collect();
        lines.push(format!("  columns     {}", columns.join(", ")));
        let sample = Value::Object(fields).to_string();
        lines.push(format!(
            "  sample      {}",
            redact::scrub(&sample, &config.secrets)
        ));
    }
    if !pages.unconfirmed().is_empty() {
        lines.push(format!(
            "  maybe       the API may read {} instead: one page cannot tell, a run can",
            pages
                .unconfirmed()
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    lines
}

/// What `--save-profile` keeps of this run: the URL and the headers and parameters that
/// are not credentials, the page size, and the flags that pin the pagination; with the
/// names of the credentials left out.
fn profile_of(config: &Config, url: &Url, mut options: Vec<String>) -> (Profile, Vec<String>) {
    if let Some(size) = config.pages.page_size {
        options.extend(["--page-size".to_string(), size.to_string()]);
    }
    let mut left_out = Vec::new();
    let mut url = url.clone();
    if !url.username().is_empty() {
        left_out.push("the URL's user info".to_string());
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let (secret, kept): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| redact::is_secret_param(k));
    left_out.extend(secret.into_iter().map(|(k, _)| format!("the URL's {k}")));
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let mut headers = Vec::new();
    for (name, value) in &config.request.headers {
        match (redact::is_secret_header(name.as_str()), value.to_str()) {
            (false, Ok(value)) => headers.push(format!("{name}: {value}")),
            _ => left_out.push(name.to_string()),
        }
    }
    if config.request.auth.is_some() {
        left_out.push("--bearer/--user".into());
    }
    let (secret, params): (Vec<_>, Vec<_>) = config
        .request
        .params
        .iter()
        .partition(|(k, _)| redact::is_secret_param(k));
    left_out.extend(secret.into_iter().map(|(k, _)| format!("--param {k}")));
    let profile = Profile {
        url: Some(url.to_string()),
        headers,
        params: params
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        options,
        ..Profile::default()
    };
    (profile, left_out)
}

/// A word for a POSIX shell: as it is when it is safe, else in single quotes.
fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Prints to standard output; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), Error> {
    match writeln!(io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::output(e, "cannot write to standard output"))
        }
        _ => Ok(()),
    }
}
