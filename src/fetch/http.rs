//! One HTTP attempt, and the client that makes it.
//!
//! An attempt either yields a whole successful response or a [`Failure`] classified for the
//! retry policy; the caller never sees a half-read body.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Certificate, Client, Method, NoProxy, Proxy, RequestBuilder, StatusCode, redirect};
use tracing::{debug, trace, warn};
use url::{Origin, Url};

use crate::error::Error;
use crate::fetch::{Auth, Proxies, Settings};
use crate::policy::Politeness;
use crate::policy::deadline::Deadline;
use crate::policy::gate::Gate;
use crate::policy::ratelimit::{self, Quota};
use crate::policy::retry::{self, Failure};
use crate::report::redact;
use crate::shape::graphql;

/// A successful response, read in full.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How much of an error body to quote in a message.
const SNIPPET_CHARS: usize = 200;

/// How much of an error body is read at all: enough for the snippet, and an endless error
/// page cannot hold the request open.
const ERROR_BODY_BYTES: u64 = 4 * SNIPPET_CHARS as u64;

/// Redirects followed in a row at most, as curl and browsers do.
const MAX_REDIRECTS: usize = 10;

/// A client for a run: for `https://` URLs when `secure`, else for plain HTTP, which
/// never reads the system's certificates. The user's headers and credentials are not
/// client defaults: [`Fetcher`] adds them per request, so that they can be withheld from
/// other origins. No `Referer` is sent: it would carry the URL, API key parameters and
/// all, to wherever a redirect points.
fn client(request: &Settings, secure: bool) -> Result<Client, Error> {
    let mut builder = Client::builder()
        .user_agent(&request.user_agent)
        .timeout(request.timeout)
        .connect_timeout(request.connect_timeout)
        .referer(false)
        // Followed by `Fetcher::exchange`, which decides per hop what may be sent there:
        // reqwest's own following would drop `Authorization` even where it is trusted and
        // keep `-H` API keys even where it is not.
        .redirect(redirect::Policy::none());
    if let Some(pem) = &request.tls.cacert {
        let certs = Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| Error::Usage("--cacert holds no PEM certificate".into()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    // A plain URL still goes over TLS to an https:// proxy.
    let proxy_tls = [&request.proxies.http, &request.proxies.https]
        .into_iter()
        .flatten()
        .any(|proxy| proxy.expose().starts_with("https://"));
    if !secure && !proxy_tls {
        builder = builder.tls_certs_only([]);
    }
    if request.tls.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(resolver) = &request.resolver {
        builder = builder.dns_resolver(Arc::clone(&resolver.0));
    }
    // reqwest would read the proxy variables itself, without the loopback rule.
    builder = builder.no_proxy();
    for proxy in proxies(&request.proxies)? {
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))
}

/// A resolver of host names in place of the system's, for [`Settings::resolver`].
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn reqwest::dns::Resolve>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// The environment's proxies, each bypassing loopback and `NO_PROXY`.
fn proxies(config: &Proxies) -> Result<Vec<Proxy>, Error> {
    let bypass = || NoProxy::from_string(&config.bypass);
    let invalid =
        |var: &'static str| move |_| Error::Usage(format!("{var} is not a valid proxy URL"));
    let mut proxies = Vec::new();
    if let Some(url) = &config.http {
        let proxy = Proxy::http(url.expose()).map_err(invalid("HTTP_PROXY"))?;
        proxies.push(proxy.no_proxy(bypass()));
    }
    if let Some(url) = &config.https {
        let proxy = Proxy::https(url.expose()).map_err(invalid("HTTPS_PROXY"))?;
        proxies.push(proxy.no_proxy(bypass()));
    }
    Ok(proxies)
}

/// The client, the retry policy and the run-wide [`Gate`] (pacing, rate-limit holds,
/// circuit breaker), shared by every request of a run.
pub struct Fetcher {
    /// For `http://` URLs: reading the system's certificates takes a few milliseconds that
    /// a plain-HTTP run need not spend.
    plain: Client,
    /// For `https://` URLs, set up on first use (or why that failed).
    secure: OnceLock<Result<Client, String>>,
    setup: Settings,
    /// `-X`: every request's method (a redirect other than 307 and 308 turns it to GET).
    method: Method,
    /// The requests are GraphQL queries, whose errors come in a 200's body.
    graphql: bool,
    auth: Option<Auth>,
    max_body: u64,
    policy: retry::Policy,
    gate: Gate,
    deadline: Deadline,
    headers: HeaderMap,
    trust: Trust,
    /// Other origins already warned about, so the warning is not repeated per page.
    warned: Mutex<HashSet<String>>,
    /// Attempts that went out beyond the first of their request. Counted as they go out,
    /// not derived from other counts: a request dropped while it waited in the gate (a
    /// page fetched ahead and no longer needed) made no attempt at all.
    retries: AtomicU64,
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
    /// `started` is when the run began, which `--max-time` counts from.
    pub fn new(
        request: &Settings,
        policy: retry::Policy,
        polite: &Politeness,
        started: tokio::time::Instant,
    ) -> Result<Self, Error> {
        let deadline = Deadline::new(started, polite.max_time);
        if request.tls.insecure {
            warn!(
                "--insecure: TLS certificates are NOT verified; anyone on the network path can \
                 read and change this traffic, credentials included"
            );
        }
        Ok(Fetcher {
            plain: client(request, false)?,
            secure: OnceLock::new(),
            setup: request.clone(),
            method: request.method.clone(),
            graphql: request.graphql,
            auth: request.auth.clone(),
            max_body: request.max_response_size,
            gate: Gate::new(polite.pacing, polite.breaker, policy.max_wait, deadline),
            policy,
            deadline,
            headers: HeaderMap::new(),
            trust: Trust::Everywhere,
            warned: Mutex::new(HashSet::new()),
            retries: AtomicU64::new(0),
        })
    }

    /// Sends `headers` with every request to where `trust` allows.
    pub fn with_headers(mut self, headers: HeaderMap, trust: Trust) -> Self {
        self.headers = headers;
        self.trust = trust;
        self
    }

    /// Whether the user's headers and credentials may go to `url`: on an origin they are
    /// not trusted to they are withheld (said once per origin).
    fn trusted(&self, url: &Url) -> bool {
        if (self.headers.is_empty() && self.auth.is_none()) || self.trust.allows(url) {
            return true;
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
        false
    }

    /// Attempts made beyond the first of each request.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// GETs `url`, retrying transient failures as the policy allows, within the deadline.
    pub async fn fetch(&self, url: &Url, body: Option<&Bytes>) -> Result<Response, Error> {
        let shown = redact::url(url);
        let trusted = self.trusted(url);
        let mut tries = 0;
        let attempts = retry::run(&self.policy, &self.deadline, &shown, || {
            tries += 1;
            self.attempt(url, body, &shown, trusted, tries > 1)
        });
        self.deadline.bound(&shown, attempts).await
    }

    fn request(
        &self,
        url: &Url,
        method: &Method,
        body: Option<&Bytes>,
        trusted: bool,
    ) -> Result<RequestBuilder, Failure> {
        let client = match url.scheme() {
            "https" => self
                .secure
                .get_or_init(|| client(&self.setup, true).map_err(|e| e.to_string()))
                .as_ref()
                .map_err(|e| Failure::Untrusted(e.clone()))?,
            "http" => &self.plain,
            // The user's URL was checked; this one came from the server, in a next link
            // or a redirect (`file:`, `ftp:`, `javascript:`).
            other => {
                return Err(Failure::Unreachable(format!(
                    "the URL's scheme `{other}` is not http or https"
                )));
            }
        };
        let request = client.request(method.clone(), url.clone());
        let request = match body {
            Some(body) => request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone()),
            None => request,
        };
        if !trusted {
            return Ok(request);
        }
        let request = request.headers(self.headers.clone());
        Ok(match &self.auth {
            Some(Auth::Bearer(token)) => request.bearer_auth(token.expose()),
            Some(Auth::Basic { user, password }) => {
                request.basic_auth(user, Some(password.expose()))
            }
            None => request,
        })
    }

    /// One exchange once the gate lets it out, logged at `-v` with the `bytes` it read
    /// (the summary counts requests and bytes from these events). `retry`: it is not the
    /// request's first attempt.
    async fn attempt(
        &self,
        url: &Url,
        body: Option<&Bytes>,
        shown: &str,
        trusted: bool,
        retry: bool,
    ) -> Result<Result<Response, Failure>, Error> {
        let pass = self.gate.admit(shown).await?;
        if retry {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        let (mut bytes, mut quota) = (0, None);
        let result = self
            .exchange(url, body, trusted, &mut bytes, &mut quota)
            .await;
        // Only a failure that will be retried holds the other requests back: after a
        // permanent one the run ends, and its Retry-After must not pause what is in flight.
        let retry_after = match &result {
            Err(failure @ Failure::Status { retry_after, .. })
                if self.policy.may_retry(failure) =>
            {
                *retry_after
            }
            _ => None,
        };
        self.gate.record(pass, result.is_ok(), quota, retry_after);
        let (status, outcome) = match &result {
            Ok(response) => (Some(response.status.as_u16()), response.status.to_string()),
            Err(Failure::Status { status, .. }) => (Some(*status), format!("HTTP {status}")),
            Err(failure) => (failure.status(), failure.describe()),
        };
        debug!(
            url = shown,
            status, bytes, "GET {shown}: {outcome}, {bytes} bytes"
        );
        Ok(result)
    }

    /// Sends one request (one hop of a redirect chain), logging its answer at `-vv`.
    async fn send(
        &self,
        url: &Url,
        method: &Method,
        body: Option<&Bytes>,
        trusted: bool,
    ) -> Result<reqwest::Response, Failure> {
        let response = self
            .request(url, method, body, trusted)?
            .send()
            .await
            .map_err(|e| match untrusted(&e) {
                Some(hint) => Failure::Untrusted(format!("{}{hint}", describe(&e))),
                None if no_such_host(&e) => Failure::Unreachable(format!(
                    "the host name {} does not resolve: {}",
                    url.host_str().unwrap_or_default(),
                    describe(&e)
                )),
                // A URL the HTTP layer cannot send, or an answer whose head is past
                // what it reads, is the same on every try.
                None if e.is_builder() => {
                    Failure::Unreachable(format!("the URL cannot be sent ({})", describe(&e)))
                }
                None if head_too_large(&e) => Failure::Unreachable(format!(
                    "the response head is larger than apifetch reads ({})",
                    describe(&e)
                )),
                None if refused(&e) => Failure::Refused {
                    addr: format!(
                        "{}:{}",
                        url.host_str().unwrap_or_default(),
                        url.port_or_known_default().unwrap_or_default()
                    ),
                    what: describe(&e),
                },
                None => Failure::Transport(describe(&e)),
            })?;
        trace!(
            "{} {} [{}]",
            redact::url(url),
            response.status(),
            redact::headers(response.headers())
        );
        Ok(response)
    }

    /// Sends the request, following redirects, and reads the response. `quota` is set to
    /// what the response says is left of the API's rate-limit quota, whatever the status.
    async fn exchange(
        &self,
        url: &Url,
        body: Option<&Bytes>,
        trusted: bool,
        bytes: &mut u64,
        quota: &mut Option<Quota>,
    ) -> Result<Response, Failure> {
        let mut response = self.follow(url, body, trusted).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let now = SystemTime::now();
        *quota = ratelimit::quota(&headers, now);
        if status.is_success() {
            let body = read_body(&mut response, self.max_body, Overflow::Refuse, bytes).await?;
            if let Some(errors) = self.graphql.then(|| graphql::errors(&body)).flatten() {
                return Err(match errors.throttled {
                    true => Failure::Status {
                        status: status.as_u16(),
                        retry_after: errors.wait.or(quota.as_ref().and_then(Quota::exhausted)),
                        rate_limited: true,
                        body: errors.message,
                    },
                    false => Failure::Graphql(errors.message),
                });
            }
            return Ok(Response {
                status,
                headers,
                body: without_bom(body),
            });
        }
        // Without a usable Retry-After, the quota's reset says how long to wait.
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, now))
            .filter(|wait| !wait.is_zero())
            .or(quota.as_ref().and_then(Quota::exhausted));
        let rate_limited = ratelimit::is_rate_limit(status, &headers, now);
        // The body only explains the error; if it cannot be read, the status still stands.
        let body = read_body(&mut response, ERROR_BODY_BYTES, Overflow::Truncate, bytes)
            .await
            .unwrap_or_default();
        let body = match (unfollowed(status), snippet(&body)) {
            (Some(why), body) if body.is_empty() => why,
            (Some(why), body) => format!("{why}: {body}"),
            (None, body) => body,
        };
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
            rate_limited,
            body,
        })
    }

    /// Sends the request and follows its redirects, by the rules of [`hop`], to the
    /// response that is not one.
    async fn follow(
        &self,
        url: &Url,
        body: Option<&Bytes>,
        trusted: bool,
    ) -> Result<reqwest::Response, Failure> {
        let (mut at, mut trusted) = (url.clone(), trusted);
        let (mut method, mut body) = (self.method.clone(), body);
        let mut response = self.send(&at, &method, body, trusted).await?;
        let mut visited = vec![at.clone()];
        while let Some(to) = redirect(&response) {
            if visited.contains(&to) {
                return Err(Failure::Unreachable(format!(
                    "a redirect loop: {} redirects back to {}",
                    redact::url(&at),
                    redact::url(&to)
                )));
            }
            if visited.len() > MAX_REDIRECTS {
                return Err(Failure::Unreachable(format!(
                    "more than {MAX_REDIRECTS} redirects in a row"
                )));
            }
            visited.push(to.clone());
            let credentials = !(self.headers.is_empty() && self.auth.is_none());
            trusted = match hop(&at, &to, trusted && credentials, trusted, &self.trust) {
                Some(trusted) => trusted,
                None => {
                    return Err(Failure::Redirected {
                        status: response.status().as_u16(),
                        to: redact::url(&to),
                    });
                }
            };
            at = to;
            // As browsers and curl do: 307 and 308 repeat the request as it was, the other
            // redirects fetch the new place with a GET.
            if !matches!(
                response.status(),
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            ) {
                (method, body) = (Method::GET, None);
            }
            response = self.send(&at, &method, body, trusted).await?;
        }
        Ok(response)
    }
}

/// Whether a redirect from `at` to `to` is followed, and if so whether the user's headers
/// and credentials go along (`Some(trusted)`); `None` refuses it. They go on to the
/// user's origin (or anywhere, with `--trust-next-origin`), and along an upgrade from
/// http to https on the same host; a request that carries them (`sends`: headers or
/// credentials it was sending, or credentials in its own URL) is not followed anywhere
/// else, and one that carries none is followed without them.
fn hop(at: &Url, to: &Url, sends: bool, trusted: bool, trust: &Trust) -> Option<bool> {
    let upgrade = is_upgrade(at, to);
    let carries = sends || carries_credentials(at);
    if carries && !upgrade && !trust.allows(to) {
        return None;
    }
    Some(trusted && (upgrade || trust.allows(to)))
}

/// The statuses that redirect, as browsers, curl and reqwest's own policy follow them.
/// The rest of 3xx are not: 300 leaves the choice to a person, 304 answers a conditional
/// request apifetch never makes, and 305 (deprecated) would send the request through a
/// proxy the server names.
const REDIRECTS: [StatusCode; 5] = [
    StatusCode::MOVED_PERMANENTLY,
    StatusCode::FOUND,
    StatusCode::SEE_OTHER,
    StatusCode::TEMPORARY_REDIRECT,
    StatusCode::PERMANENT_REDIRECT,
];

/// Why a 3xx answer ended up as the final response, to say so in the error.
fn unfollowed(status: StatusCode) -> Option<String> {
    let name = status.canonical_reason().unwrap_or("a redirection status");
    if REDIRECTS.contains(&status) {
        Some(format!("{name} without a Location to follow"))
    } else if status.is_redirection() {
        Some(format!(
            "{name}: not a redirect apifetch follows, and no records"
        ))
    } else {
        None
    }
}

/// A body without the UTF-8 byte-order mark some servers put before the JSON: JSON text
/// may not start with one (RFC 8259), but its readers are told to ignore it.
fn without_bom(body: Bytes) -> Bytes {
    match body.strip_prefix("\u{feff}".as_bytes()) {
        Some(rest) => body.slice_ref(rest),
        None => body,
    }
}

/// Where a redirect points, if the response is one that is followed.
fn redirect(response: &reqwest::Response) -> Option<Url> {
    if !REDIRECTS.contains(&response.status()) {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    response.url().join(location).ok()
}

/// What to do with a body longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// It is the payload: refuse it rather than hold a partial one.
    Refuse,
    /// Only its start matters (an error page): keep that much.
    Truncate,
}

/// The most memory reserved for a body before any of it has arrived.
const PREALLOCATE_MAX: u64 = 64 << 20;

/// Reads a body chunk by chunk, never holding more than `limit` bytes, so an endless or
/// enormous response cannot fill memory. `read` counts what arrived.
async fn read_body(
    response: &mut reqwest::Response,
    limit: u64,
    overflow: Overflow,
    read: &mut u64,
) -> Result<Bytes, Failure> {
    let announced = response.content_length().unwrap_or(0);
    if overflow == Overflow::Refuse && announced > limit {
        return Err(Failure::TooLarge { limit });
    }
    // A Content-Length that lies reserves at most PREALLOCATE_MAX before data arrives.
    // Rounded up to whole 64 KiB: pages of nearly the same size then take blocks of the
    // same size, which the allocator reuses instead of letting the heap grow page by page.
    let reserve = announced.min(limit).min(PREALLOCATE_MAX);
    let reserve = match overflow {
        Overflow::Refuse => reserve.next_multiple_of(64 << 10),
        Overflow::Truncate => reserve,
    };
    let mut body = BytesMut::with_capacity(reserve as usize);
    let failed = |e: reqwest::Error| {
        if undecodable(&e) {
            // reqwest has taken the Content-Encoding header away; the decoder's own
            // message names the coding, or what it found instead.
            let cause = causes(&e).last().map(ToString::to_string);
            Failure::Undecodable(format!(
                "the response body does not decode from its Content-Encoding: {}",
                cause.unwrap_or_default()
            ))
        } else {
            Failure::Transport(format!("response body broke off: {}", describe(&e)))
        }
    };
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        *read += chunk.len() as u64;
        let room = limit.saturating_sub(body.len() as u64);
        if chunk.len() as u64 > room {
            if overflow == Overflow::Refuse {
                return Err(Failure::TooLarge { limit });
            }
            body.extend_from_slice(&chunk[..room as usize]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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

/// Whether a redirect from `from` to `to` only upgrades the same service to https: the
/// same host, from the default http port to the default https port. Another port on the
/// host is another service, which must not get the credentials.
fn is_upgrade(from: &Url, to: &Url) -> bool {
    // `Url::port` is `None` for the scheme's default port, written or not.
    from.scheme() == "http"
        && to.scheme() == "https"
        && from.host() == to.host()
        && from.port().is_none()
        && to.port().is_none()
}

/// Whether `url` itself carries a credential: user info, or a credential query parameter.
fn carries_credentials(url: &Url) -> bool {
    !url.username().is_empty()
        || url.password().is_some()
        || url
            .query_pairs()
            .any(|(name, _)| redact::is_secret_param(&name))
}

/// The causes of `err`, outermost first. rustls and the body decoders report in an
/// `io::Error` deep in the chain, whose `source()` skips the error it wraps, so the walk
/// steps into wrapped I/O errors itself.
fn causes(err: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(err), |cause| match cause
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => cause.source(),
    })
}

/// Whether the connection failed because the server's certificate did not verify, and if
/// so what to add to the message.
fn untrusted(err: &reqwest::Error) -> Option<&'static str> {
    use rustls::{CertificateError, Error as Tls};
    causes(err).find_map(|cause| match cause.downcast_ref::<Tls>()? {
        Tls::InvalidCertificate(CertificateError::UnknownIssuer) => {
            Some("; --cacert FILE trusts a private CA")
        }
        Tls::InvalidCertificate(_) | Tls::NoCertificatesPresented | Tls::UnsupportedNameType => {
            Some("")
        }
        _ => None,
    })
}

/// How resolvers say that a host name does not exist (glibc, musl, macOS, Windows), as
/// opposed to a lookup that failed for now (`EAI_AGAIN`, "Temporary failure in name
/// resolution"), which is retried. The standard library keeps only the message of a
/// failed `getaddrinfo`, not its code.
const NO_SUCH_HOST: [&str; 5] = [
    "Name or service not known",
    "No address associated with hostname",
    "Name does not resolve",
    "nodename nor servname provided, or not known",
    "No such host is known",
];

/// Whether the request failed because its host name does not exist: a typo that no
/// retry, and no `--resume`, gets past.
fn no_such_host(err: &reqwest::Error) -> bool {
    err.is_dns() && causes(err).any(|cause| is_no_such_host(&cause.to_string()))
}

fn is_no_such_host(message: &str) -> bool {
    NO_SUCH_HOST.iter().any(|said| message.contains(said))
}

/// Whether nothing listened where the request tried to connect.
fn refused(err: &reqwest::Error) -> bool {
    err.is_connect()
        && causes(err).any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        })
}

/// Whether a body arrived but does not decode from its `Content-Encoding`: the decoder's
/// own I/O error, with no connection error (hyper's) beneath it. A body cut short while
/// it was being decoded broke off, like any other, and is worth asking for again.
fn undecodable(err: &reqwest::Error) -> bool {
    !err.is_timeout()
        && causes(err).any(|cause| cause.is::<std::io::Error>())
        && !causes(err).any(|cause| cause.is::<hyper::Error>())
}

/// Whether the server's status line and headers passed the HTTP layer's size limit.
fn head_too_large(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large)
        {
            return true;
        }
        source = cause.source();
    }
    false
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
    fn only_a_leading_byte_order_mark_is_dropped() {
        let bom = |text: &'static str| without_bom(Bytes::from_static(text.as_bytes()));
        assert_eq!(bom("\u{feff}[1]"), "[1]");
        assert_eq!(bom("\u{feff}\u{feff}[1]"), "\u{feff}[1]");
        assert_eq!(bom("[\"\u{feff}\"]"), "[\"\u{feff}\"]");
        assert_eq!(bom(""), "");
    }

    #[test]
    fn only_redirect_statuses_are_followed_and_the_rest_of_3xx_say_why_not() {
        let why = |code| unfollowed(StatusCode::from_u16(code).unwrap());
        for code in [300, 304, 305, 306] {
            assert!(why(code).unwrap().contains("not a redirect"), "{code}");
        }
        assert_eq!(
            why(301).as_deref(),
            Some("Moved Permanently without a Location to follow")
        );
        assert_eq!(why(200), None);
        assert_eq!(why(404), None);
    }

    #[test]
    fn a_missing_host_is_told_from_a_lookup_that_failed_for_now() {
        for gone in [
            "failed to lookup address information: Name or service not known",
            "failed to lookup address information: No address associated with hostname",
            "failed to lookup address information: Name does not resolve",
            "failed to lookup address information: nodename nor servname provided, or not known",
        ] {
            assert!(is_no_such_host(gone), "{gone}");
        }
        for now in [
            "failed to lookup address information: Temporary failure in name resolution",
            "failed to lookup address information: Try again",
            "Connection refused (os error 111)",
        ] {
            assert!(!is_no_such_host(now), "{now}");
        }
    }

    #[test]
    fn only_the_default_ports_make_an_upgrade() {
        let upgrade =
            |from: &str, to: &str| is_upgrade(&Url::parse(from).unwrap(), &Url::parse(to).unwrap());
        assert!(upgrade("http://h/x", "https://h/y"));
        assert!(upgrade("http://h:80/x", "https://h:443/y"));
        assert!(!upgrade("http://h:8080/x", "https://h/y"));
        assert!(!upgrade("http://h/x", "https://h:8443/y"));
        assert!(!upgrade("http://h/x", "https://g/y"));
        assert!(!upgrade("https://h/x", "https://h/y"));
    }

    #[test]
    fn credentials_in_a_url_are_userinfo_or_a_credential_parameter() {
        let carries = |url: &str| carries_credentials(&Url::parse(url).unwrap());
        assert!(carries("http://tok@h/"));
        assert!(carries("http://u:p@h/"));
        assert!(carries("http://h/?page=2&API_KEY=k"));
        assert!(!carries("http://h/?page=2&q=key"));
    }

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

    #[test]
    fn credentials_follow_a_redirect_only_where_they_may_go() {
        let url = |s: &str| Url::parse(s).unwrap();
        let home = url("http://api.test/v1");
        let only_home = Trust::new(&home, false);
        let everywhere = Trust::new(&home, true);
        let cases = [
            // (from, to, sends credentials, trust, decision)
            (
                "http://api.test/a",
                "http://api.test/b",
                true,
                &only_home,
                Some(true),
            ),
            (
                "http://api.test/a",
                "https://api.test/a",
                true,
                &only_home,
                Some(true),
            ),
            (
                "http://api.test:8080/a",
                "https://api.test/a",
                true,
                &only_home,
                None,
            ),
            (
                "http://api.test/a",
                "http://cdn.test/a",
                true,
                &only_home,
                None,
            ),
            (
                "http://api.test/a",
                "http://cdn.test/a",
                false,
                &only_home,
                Some(false),
            ),
            (
                "http://api.test/a?api_key=k",
                "http://cdn.test/a",
                false,
                &only_home,
                None,
            ),
            (
                "http://api.test/a",
                "http://cdn.test/a",
                true,
                &everywhere,
                Some(true),
            ),
        ];
        for (from, to, sends, trust, decision) in cases {
            assert_eq!(
                hop(&url(from), &url(to), sends, sends, trust),
                decision,
                "{from} → {to}"
            );
        }
    }
}
