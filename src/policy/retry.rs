//! When to retry, and how long to wait first.
//!
//! Every decision is a pure function of the attempt number, the failure, the server's
//! headers and a random source, so the policy is unit-tested without a network or a clock.
//! [`run`] is the thin async loop that applies it around one request.

use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::{Rng, RngExt};
use tracing::warn;

use crate::error::Error;
use crate::policy::deadline::{Deadline, LONGEST};
use crate::report::units::{counted, human};

/// How the wait before a retry is spread out, so many clients do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Jitter {
    /// Uniform in [d/2, d]: spread out, but never much sooner than the backoff.
    Equal,
    /// Uniform in [0, d]: the most spread; AWS's recommendation for contended servers.
    Full,
    /// Exactly d.
    None,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Jitter,
    /// Statuses worth retrying; every other 4xx/5xx is permanent.
    pub retry_on: Vec<u16>,
    /// The longest single wait we accept, from `Retry-After` or anything else.
    pub max_wait: Duration,
}

impl Policy {
    /// Whether retrying `failure` can help at all: not after a permanent status or a body
    /// that was too large.
    pub fn may_retry(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Transport(_) | Failure::Refused { .. } => true,
            Failure::TooLarge { .. }
            | Failure::Redirected { .. }
            | Failure::Untrusted(_)
            | Failure::Unreachable(_)
            | Failure::Undecodable(_)
            | Failure::Graphql(_) => false,
            Failure::Status {
                status,
                rate_limited,
                ..
            } => *rate_limited || self.retry_on.contains(status),
        }
    }
}

/// Why an attempt failed, in the terms the policy decides on.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No usable response: reset, DNS, timeout, a body cut short.
    Transport(String),
    /// Nothing listens at `addr` (host:port): retried, since servers restart, and named
    /// plainly when the retries run out.
    Refused { addr: String, what: String },
    /// The server answered with an error status.
    Status {
        status: u16,
        /// The wait the server asked for (`Retry-After`, or the reset of a used-up
        /// rate-limit quota); zero means "whenever you like".
        retry_after: Option<Duration>,
        /// A refusal that is really a rate limit (a 403 with `Retry-After`): retried like a
        /// 429 whatever `--retry-on` says.
        rate_limited: bool,
        /// The start of the response body, for the error message.
        body: String,
    },
    /// The body passed `--max-response-size`; asking again would only repeat that.
    TooLarge { limit: u64 },
    /// The server's TLS certificate did not verify.
    Untrusted(String),
    /// No answer can come, now or after `--resume`: a URL whose scheme is not http or
    /// https, a redirect loop or chain past the limit, a host name that does not exist.
    Unreachable(String),
    /// The body arrived whole but does not decode from its `Content-Encoding`.
    Undecodable(String),
    /// A GraphQL response with errors that are not a rate limit.
    Graphql(String),
    /// A redirect to another origin, not followed without `--trust-next-origin`.
    Redirected {
        status: u16,
        /// Where it pointed (redacted).
        to: String,
    },
}

impl Failure {
    pub fn describe(&self) -> String {
        match self {
            Failure::Transport(what)
            | Failure::Refused { what, .. }
            | Failure::Untrusted(what)
            | Failure::Unreachable(what)
            | Failure::Undecodable(what)
            | Failure::Graphql(what) => what.clone(),
            Failure::Status {
                status,
                rate_limited: true,
                ..
            } => format!("HTTP {status} (rate limited)"),
            Failure::Status { status, .. } => format!("HTTP {status}"),
            Failure::TooLarge { limit } => {
                format!("the response is larger than --max-response-size ({limit} bytes)")
            }
            Failure::Redirected { status, to } => {
                format!("HTTP {status}: a redirect to another origin ({to})")
            }
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } | Failure::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short, stable name for what went wrong, to count failures by: the status code, or
    /// the kind of transport error (`timed out`, `connection failed`, ...).
    pub fn cause(&self) -> String {
        match self {
            Failure::Status { status, .. } | Failure::Redirected { status, .. } => {
                status.to_string()
            }
            Failure::Transport(what)
            | Failure::Refused { what, .. }
            | Failure::Unreachable(what) => what.split(':').next().unwrap_or(what).to_string(),
            Failure::TooLarge { .. } => "too large".into(),
            Failure::Undecodable(_) => "undecodable".into(),
            Failure::Graphql(_) => "graphql error".into(),
            Failure::Untrusted(_) => "certificate".into(),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retry(Duration),
    /// Retrying cannot help (the status is permanent).
    Stop,
    /// Every attempt the policy allows has been made.
    Exhausted,
    /// Retrying might help, but the policy does not allow it; the reason says why.
    GiveUp(String),
}

/// The backoff before retry `retry` (1-based): `min(cap, base × 2^(retry−1))`, jittered.
pub fn backoff(policy: &Policy, retry: u32, rng: &mut impl Rng) -> Duration {
    let exp = 2f64.powi(retry.saturating_sub(1).min(1000) as i32);
    let d = (policy.base.as_secs_f64() * exp).min(policy.cap.as_secs_f64());
    let secs = match policy.jitter {
        Jitter::None => d,
        Jitter::Equal => rng.random_range(d / 2.0..=d),
        Jitter::Full => rng.random_range(0.0..=d),
    };
    Duration::from_secs_f64(secs)
}

/// Parses `Retry-After` as delta-seconds or an HTTP-date.
///
/// A date in the past comes back as zero, like `Retry-After: 0`: both mean "no particular
/// wait", which the caller turns into the normal backoff rather than an instant retry.
/// An absurd wait, however many digits it has, comes back as [`LONGEST`], still far past
/// any `--retry-max-wait`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        // Delta-seconds too large for any integer still ask for a wait, the longest.
        Err(_) if digits => LONGEST,
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(LONGEST))
}

/// Decides what follows failed attempt number `attempt` (1-based; attempt 1 is the first
/// request, so retry `attempt` comes next).
pub fn decide(policy: &Policy, failure: &Failure, attempt: u32, rng: &mut impl Rng) -> Decision {
    if !policy.may_retry(failure) {
        return Decision::Stop;
    }
    let retry_after = match failure {
        Failure::Status { retry_after, .. } => *retry_after,
        _ => None,
    };
    if attempt > policy.retries {
        return Decision::Exhausted;
    }
    if let Some(asked) = retry_after.filter(|d| !d.is_zero()) {
        if asked > policy.max_wait {
            return Decision::GiveUp(format!(
                "server asked to wait {} ({}), longer than --retry-max-wait {}",
                human(asked),
                failure.describe(),
                human(policy.max_wait)
            ));
        }
        // Honour the server's wait exactly, plus a little spread so a crowd of clients
        // told the same instant does not return in lockstep.
        let spread = rng.random_range(0.0..=(asked.as_secs_f64() / 10.0).min(1.0));
        return Decision::Retry(asked + Duration::from_secs_f64(spread));
    }
    Decision::Retry(backoff(policy, attempt, rng).min(policy.max_wait))
}

/// Why a request ended after its last allowed attempt, `elapsed` after its first began.
pub fn exhausted(failure: &Failure, attempts: u32, elapsed: Duration) -> String {
    let attempts = counted(attempts.into(), "attempt", "attempts");
    match failure {
        Failure::Refused { addr, .. } => format!(
            "connection to {addr} refused after {attempts} over {}",
            human(elapsed)
        ),
        _ => format!(
            "gave up after {attempts} over {}; last failure: {}",
            human(elapsed),
            failure.describe()
        ),
    }
}

/// Runs `attempt` until it succeeds or the policy says stop, sleeping between tries; a
/// wait that would pass the deadline is not started. An attempt that returns an outer
/// `Err` ends the run at once (it could not even be sent, e.g. the deadline came first).
///
/// `what` names the request in log lines and errors (already redacted).
pub async fn run<T, F, Fut>(
    policy: &Policy,
    deadline: &Deadline,
    what: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, Failure>, Error>>,
{
    let tries = policy.retries + 1;
    let started = tokio::time::Instant::now();
    for n in 1.. {
        let failure = match attempt().await? {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let decision = decide(policy, &failure, n, &mut rand::rng());
        match decision {
            Decision::Retry(wait) => {
                let failed = format!("{} (attempt {n} of {tries})", failure.describe());
                deadline
                    .allows(tokio::time::Instant::now(), wait)
                    .map_err(|reason| {
                        Error::GaveUp(format!(
                            "{what}: {failed}; gave up rather than wait {} before retrying: {reason}",
                            human(wait)
                        ))
                    })?;
                log_retry(&failure, what, &failed, n, wait);
                tokio::time::sleep(wait).await;
            }
            Decision::GiveUp(reason) => return Err(Error::GaveUp(format!("{what}: {reason}"))),
            Decision::Exhausted => {
                let reason = exhausted(&failure, n, started.elapsed());
                return Err(Error::GaveUp(format!("{what}: {reason}")));
            }
            Decision::Stop => return Err(stopped(failure, what)),
        }
    }
    unreachable!("the loop returns")
}

/// The warning before a retry: what failed, and how long until the next attempt.
fn log_retry(failure: &Failure, what: &str, failed: &str, attempt: u32, wait: Duration) {
    let asked = match failure {
        Failure::Status {
            retry_after: Some(asked),
            ..
        } if !asked.is_zero() => format!(" as the server asked ({})", human(*asked)),
        _ => String::new(),
    };
    warn!(
        url = what,
        attempt,
        wait_ms = wait.as_millis() as u64,
        status = failure.status(),
        cause = failure.cause(),
        "{what}: {failed}; retrying in {}{asked}",
        human(wait)
    );
}

/// The error a failure that is not worth retrying ends the run with.
fn stopped(failure: Failure, what: &str) -> Error {
    let url = what.to_string();
    match failure {
        Failure::Status { status, body, .. } => Error::Permanent { url, status, body },
        Failure::Redirected { status, to } => Error::Permanent {
            url,
            status,
            body: format!(
                "redirected to another origin ({to}), which is followed only with \
                 --trust-next-origin"
            ),
        },
        Failure::Untrusted(why) => Error::Untrusted { url, why },
        Failure::Unreachable(why) => Error::Unreachable { url, why },
        Failure::Undecodable(why) => Error::Undecodable { url, why },
        other => Error::BadResponse(format!("{what}: {}", other.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy(jitter: Jitter) -> Policy {
        Policy {
            retries: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter,
            retry_on: vec![408, 425, 429, 500, 502, 503, 504],
            max_wait: Duration::from_secs(300),
        }
    }

    fn status(status: u16, retry_after: Option<u64>) -> Failure {
        Failure::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            rate_limited: false,
            body: String::new(),
        }
    }

    #[test]
    fn no_jitter_doubles_from_base_until_the_cap() {
        let p = policy(Jitter::None);
        let mut rng = StdRng::seed_from_u64(1);
        let waits: Vec<u64> = (1..=7)
            .map(|k| backoff(&p, k, &mut rng).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn equal_jitter_stays_within_half_to_full() {
        let p = policy(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(7);
        for k in 1..=8 {
            let d = (2f64.powi(k as i32 - 1)).min(30.0);
            for _ in 0..200 {
                let w = backoff(&p, k, &mut rng).as_secs_f64();
                assert!(
                    w >= d / 2.0 - 1e-9 && w <= d + 1e-9,
                    "retry {k}: {w} not in [{}, {d}]",
                    d / 2.0
                );
            }
        }
    }

    #[test]
    fn full_jitter_stays_within_zero_to_full_and_spreads() {
        let p = policy(Jitter::Full);
        let mut rng = StdRng::seed_from_u64(42);
        let waits: Vec<f64> = (0..500)
            .map(|_| backoff(&p, 4, &mut rng).as_secs_f64())
            .collect();
        assert!(waits.iter().all(|w| (0.0..=8.0).contains(w)));
        assert!(
            waits.iter().any(|w| *w < 2.0),
            "full jitter should reach low waits"
        );
        assert!(
            waits.iter().any(|w| *w > 6.0),
            "full jitter should reach high waits"
        );
    }

    #[test]
    fn jittered_waits_grow_on_average() {
        let p = policy(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(3);
        let mean = |k| {
            (0..300)
                .map(|_| backoff(&p, k, &mut rng).as_secs_f64())
                .sum::<f64>()
                / 300.0
        };
        let means: Vec<f64> = (1..=5).map(mean).collect();
        assert!(means.windows(2).all(|w| w[1] > w[0] * 1.5), "{means:?}");
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = policy(Jitter::None);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(backoff(&p, u32::MAX, &mut rng), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        for absurd in [
            u64::MAX.to_string(),
            "18446744073709551616".into(),
            "9".repeat(40),
        ] {
            assert_eq!(parse_retry_after(&absurd, now), Some(LONGEST), "{absurd}");
        }
    }

    #[test]
    fn permanent_statuses_stop_at_once() {
        let p = policy(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(0);
        for code in [400, 401, 403, 404, 410, 422, 501] {
            assert_eq!(
                decide(&p, &status(code, None), 1, &mut rng),
                Decision::Stop,
                "{code}"
            );
        }
        let mut p = p;
        p.retry_on.push(302);
        let elsewhere = Failure::Redirected {
            status: 302,
            to: "http://other.test/".into(),
        };
        assert_eq!(decide(&p, &elsewhere, 1, &mut rng), Decision::Stop);
        let nowhere = Failure::Unreachable("a redirect loop".into());
        assert_eq!(decide(&p, &nowhere, 1, &mut rng), Decision::Stop);
    }

    #[test]
    fn transient_failures_retry_until_attempts_run_out() {
        let p = policy(Jitter::None);
        let mut rng = StdRng::seed_from_u64(0);
        let refused = Failure::Transport("connection refused".into());
        assert_eq!(
            decide(&p, &refused, 1, &mut rng),
            Decision::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            decide(&p, &status(503, None), 3, &mut rng),
            Decision::Retry(Duration::from_secs(4))
        );
        assert_eq!(
            decide(&p, &status(503, None), 6, &mut rng),
            Decision::Exhausted
        );
    }

    #[test]
    fn running_out_of_attempts_says_how_many_over_how_long_and_names_a_refusing_address() {
        let refused = Failure::Refused {
            addr: "127.0.0.1:9".into(),
            what: "connection failed: Connection refused (os error 111)".into(),
        };
        assert_eq!(
            exhausted(&refused, 6, Duration::from_millis(3200)),
            "connection to 127.0.0.1:9 refused after 6 attempts over 3.2s"
        );
        assert_eq!(
            exhausted(&status(503, None), 1, Duration::from_millis(20)),
            "gave up after 1 attempt over 20ms; last failure: HTTP 503"
        );
    }

    #[test]
    fn retry_after_is_never_undercut() {
        let p = policy(Jitter::Full);
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..100 {
            let Decision::Retry(w) = decide(&p, &status(429, Some(7)), 1, &mut rng) else {
                panic!("429 must retry")
            };
            assert!(
                w >= Duration::from_secs(7) && w <= Duration::from_secs(8),
                "{w:?}"
            );
        }
    }

    #[test]
    fn zero_retry_after_falls_back_to_backoff() {
        let p = policy(Jitter::None);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            decide(&p, &status(429, Some(0)), 2, &mut rng),
            Decision::Retry(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_past_the_cap_gives_up_and_says_how_long() {
        let p = policy(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(0);
        let Decision::GiveUp(msg) = decide(&p, &status(503, Some(3600)), 1, &mut rng) else {
            panic!("must give up")
        };
        assert!(msg.contains("server asked to wait 1h0m"), "{msg}");
    }

    #[test]
    fn backoff_never_exceeds_max_wait() {
        let mut p = policy(Jitter::None);
        p.max_wait = Duration::from_secs(3);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            decide(&p, &status(500, None), 5, &mut rng),
            Decision::Retry(Duration::from_secs(3))
        );
    }
    #[test]
    fn a_rate_limited_refusal_is_retried_after_the_wait_it_asked_for() {
        let p = policy(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(0);
        let github = Failure::Status {
            status: 403,
            retry_after: Some(Duration::from_secs(60)),
            rate_limited: true,
            body: "secondary rate limit".into(),
        };
        let Decision::Retry(w) = decide(&p, &github, 1, &mut rng) else {
            panic!("a rate-limited 403 must retry")
        };
        assert!(w >= Duration::from_secs(60), "{w:?}");
        assert_eq!(github.describe(), "HTTP 403 (rate limited)");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_wait_past_the_deadline_is_not_started() {
        let p = policy(Jitter::None);
        let start = tokio::time::Instant::now();
        let deadline = Deadline::new(start, Some(Duration::from_millis(2500)));
        let mut attempts = 0;
        let result: Result<(), Error> = run(&p, &deadline, "GET /x", || {
            attempts += 1;
            async { Ok(Err(status(503, None))) }
        })
        .await;
        // Waits of 1 s and 2 s: the second would end at 3 s, past the 2.5 s deadline.
        assert_eq!(attempts, 2);
        assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(1));
        let Err(Error::GaveUp(msg)) = result else {
            panic!("must give up")
        };
        assert_eq!(
            msg,
            "GET /x: HTTP 503 (attempt 2 of 6); gave up rather than wait 2.0s before \
             retrying: that would pass --max-time 2.5s (1.5s left)"
        );
    }
}
