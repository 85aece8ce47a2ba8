//! What an API's rate-limit headers say about when the next request may go out.
//!
//! Three families are read, first match wins: the IETF draft's structured
//! `RateLimit: "default";r=0;t=55` (and its older `limit=…, remaining=…, reset=…`
//! dictionary form), the draft's `RateLimit-Remaining`/`RateLimit-Reset`, and the de-facto
//! `X-RateLimit-Remaining`/`X-RateLimit-Reset` (also spelled `X-Rate-Limit-…`). What is
//! left of the quota until its reset is how many more requests may start before it; once
//! it is used up, the next request waits for the reset instead of collecting a 429.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::policy::deadline::LONGEST;

/// Resets at or above this are Unix times (GitHub), below it delays in seconds: no API
/// asks for a wait of 31 years, and no clock reads earlier than 2001.
const EPOCH_SECONDS: f64 = 1e9;
/// Resets at or above this are Unix times in milliseconds.
const EPOCH_MILLIS: f64 = 1e12;

/// The separate remaining/reset header pairs, in the order they are trusted.
/// Header names match in any case; these spellings are the ones logged.
const PAIRS: [(&str, &str); 3] = [
    ("RateLimit-Remaining", "RateLimit-Reset"),
    ("X-RateLimit-Remaining", "X-RateLimit-Reset"),
    ("X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"),
];

/// What is left of the API's quota, and how long until it resets.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Requests that may still start before the reset.
    pub remaining: u64,
    /// From the response's point of view.
    pub reset: Duration,
    /// The header that said so, for the log (`X-RateLimit-Remaining: 0`).
    pub source: String,
}

impl Quota {
    /// The wait before any further request, when nothing is left.
    pub fn exhausted(&self) -> Option<Duration> {
        (self.remaining == 0).then_some(self.reset)
    }
}

/// The quota as a response reported it; the reset may be missing.
#[derive(Debug, Clone, PartialEq)]
struct Reported {
    remaining: u64,
    reset: Option<Duration>,
    source: String,
}

/// The quota a response reports, when it says both what is left and when that resets.
/// Without a (future) reset there is nothing to plan with: the server's 429 and
/// `Retry-After` remain the backstop.
pub fn quota(headers: &HeaderMap, now: SystemTime) -> Option<Quota> {
    let reported = reported(headers, now)?;
    let reset = reported.reset.filter(|reset| !reset.is_zero())?;
    Some(Quota {
        remaining: reported.remaining,
        reset: reset.min(LONGEST),
        source: reported.source,
    })
}

/// Whether an error status is really a rate limit: a 403 that carries `Retry-After` or a
/// used-up quota (GitHub's secondary limits) is handled like a 429, not as a refusal.
pub fn is_rate_limit(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> bool {
    status == StatusCode::FORBIDDEN
        && (headers.contains_key(RETRY_AFTER)
            || reported(headers, now).is_some_and(|q| q.remaining == 0))
}

fn reported(headers: &HeaderMap, now: SystemTime) -> Option<Reported> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(field) = text("ratelimit").and_then(structured) {
        return Some(field);
    }
    PAIRS.iter().find_map(|(remaining, reset)| {
        let count = text(remaining)?.trim().parse().ok()?;
        Some(Reported {
            remaining: count,
            reset: text(reset).and_then(|r| parse_reset(r, now)),
            source: format!("{remaining}: {count}"),
        })
    })
}

/// The structured `RateLimit` field. In the current draft it is a list of policies, each
/// `"name";r=REMAINING;t=SECONDS`; the most constraining one counts (an exhausted policy
/// with the longest reset). Older drafts sent a dictionary `limit=…, remaining=…, reset=…`.
fn structured(value: &str) -> Option<Reported> {
    let int = |item: Option<&sfv::BareItem>| -> Option<u64> {
        item?
            .as_integer()
            .and_then(|i| u64::try_from(i64::from(i)).ok())
    };
    if let Ok(list) = sfv::Parser::new(value).parse::<sfv::List>() {
        let policies = list.iter().filter_map(|entry| {
            let sfv::ListEntry::Item(item) = entry else {
                return None;
            };
            let remaining = int(item.params.get("r"))?;
            let reset = int(item.params.get("t")).map(Duration::from_secs);
            Some((remaining, reset))
        });
        let tightest =
            policies.min_by_key(|(remaining, reset)| (*remaining, std::cmp::Reverse(*reset)));
        if let Some((remaining, reset)) = tightest {
            return Some(Reported {
                remaining,
                reset,
                source: format!("RateLimit: r={remaining}"),
            });
        }
    }
    let dict = sfv::Parser::new(value).parse::<sfv::Dictionary>().ok()?;
    let member = |key: &str| match dict.get(key) {
        Some(sfv::ListEntry::Item(item)) => int(Some(&item.bare_item)),
        _ => None,
    };
    let remaining = member("remaining")?;
    Some(Reported {
        remaining,
        reset: member("reset").map(Duration::from_secs),
        source: format!("RateLimit: remaining={remaining}"),
    })
}

/// A reset as delay seconds or a Unix time (seconds or milliseconds), told apart by size.
/// A reset already past is zero.
fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let n: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let since_epoch = |secs: f64| {
        let at = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)?;
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    };
    if n >= EPOCH_MILLIS {
        since_epoch(n / 1000.0)
    } else if n >= EPOCH_SECONDS {
        since_epoch(n)
    } else {
        Duration::try_from_secs_f64(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn wait(pairs: &[(&str, &str)]) -> Option<Duration> {
        quota(&headers(pairs), at()).and_then(|q| q.exhausted())
    }

    #[test]
    fn github_style_epoch_reset_is_a_time_and_small_values_are_delays() {
        let reset = (1_700_000_000 + 42).to_string();
        assert_eq!(
            wait(&[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", &reset)
            ]),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            wait(&[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        let millis = (1_700_000_000_000u64 + 2_500).to_string();
        assert_eq!(
            wait(&[
                ("X-Rate-Limit-Remaining", "0"),
                ("X-Rate-Limit-Reset", &millis)
            ]),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn no_wait_while_quota_remains_or_the_reset_is_unknown_or_past() {
        assert_eq!(
            wait(&[("X-RateLimit-Remaining", "3"), ("X-RateLimit-Reset", "10")]),
            None
        );
        assert_eq!(wait(&[("X-RateLimit-Remaining", "0")]), None);
        assert_eq!(
            wait(&[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1600000000")
            ]),
            None
        );
        assert_eq!(wait(&[("X-RateLimit-Remaining", "zero")]), None);
        assert_eq!(
            wait(&[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1e22")
            ]),
            None,
            "a time past what the clock can hold is no reset"
        );
        assert_eq!(
            wait(&[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1e16")
            ]),
            Some(LONGEST)
        );
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn ietf_draft_headers_are_read_and_named_in_the_source() {
        let q = quota(
            &headers(&[("RateLimit-Remaining", "4"), ("RateLimit-Reset", "7")]),
            at(),
        )
        .unwrap();
        assert_eq!(
            q,
            Quota {
                remaining: 4,
                reset: Duration::from_secs(7),
                source: "RateLimit-Remaining: 4".into()
            }
        );
        let q = quota(
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")]),
            at(),
        )
        .unwrap();
        assert_eq!(q.source, "X-RateLimit-Remaining: 0");
    }

    #[test]
    fn structured_field_takes_the_tightest_exhausted_policy() {
        assert_eq!(
            wait(&[("RateLimit", r#""default";r=0;t=55"#)]),
            Some(Duration::from_secs(55))
        );
        assert_eq!(
            wait(&[(
                "RateLimit",
                r#""burst";r=5;t=1, "daily";r=0;t=3600, "hourly";r=0;t=60"#
            )]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(wait(&[("RateLimit", r#""default";r=10;t=55"#)]), None);
        assert_eq!(
            wait(&[("RateLimit", "limit=100, remaining=0, reset=9")]),
            Some(Duration::from_secs(9))
        );
        assert_eq!(wait(&[("RateLimit", "((broken")]), None);
    }

    #[test]
    fn a_403_is_a_rate_limit_only_with_retry_after_or_a_used_up_quota() {
        let check = |status: u16, pairs: &[(&str, &str)]| {
            is_rate_limit(StatusCode::from_u16(status).unwrap(), &headers(pairs), at())
        };
        assert!(check(403, &[("Retry-After", "60")]));
        assert!(check(403, &[("X-RateLimit-Remaining", "0")]));
        assert!(!check(403, &[("X-RateLimit-Remaining", "12")]));
        assert!(!check(403, &[]));
        assert!(!check(404, &[("Retry-After", "60")]));
    }
}
