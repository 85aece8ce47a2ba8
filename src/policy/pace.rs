//! How fast requests may start: `--rate` and `--delay`, for the whole run.
//!
//! [`Pacer`] is a pure state machine over instants, shared by every in-flight request
//! through [`crate::policy::gate`], so the limits hold for the run and not per worker.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use crate::policy::deadline::later;

/// At most `count` request starts per `per` (`--rate 10/m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The shortest gap between two request starts.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `N`, `N/s`, `N/m` or `N/h` (also `/sec`, `/min`, `/hour`); a bare N is per second.
    fn from_str(s: &str) -> Result<Self, String> {
        let (count, unit) = s.trim().split_once('/').unwrap_or((s.trim(), "s"));
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}`: the count must be a whole number above 0"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => {
                return Err(format!("`{s}`: unknown unit `{other}` (use /s, /m or /h)"));
            }
        };
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// The pacing flags, validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pacing {
    /// `--rate`: a floor on the gap between request starts.
    pub rate: Option<Rate>,
    /// `--delay`: a quiet pause after each request starts and after each one ends.
    pub delay: Duration,
}

/// Decides when requests may start under [`Pacing`].
///
/// `--delay` is the classic `sleep` between requests: sequentially, the next request
/// starts `delay` after the previous one ended. With several requests in flight it also
/// spaces their starts, so concurrency never turns a requested pause into a burst.
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    delay: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(pacing: Pacing) -> Self {
        let interval = pacing.rate.map_or(Duration::ZERO, |r| r.interval());
        Pacer {
            gap: interval.max(pacing.delay),
            delay: pacing.delay,
            next: None,
        }
    }

    /// Starts a request at `now` if pacing allows, or says when it may. Spacing counts from
    /// the actual starts, so a late start never lets the next one come sooner.
    pub fn start(&mut self, now: Instant) -> Result<(), Instant> {
        match self.next {
            Some(next) if next > now => Err(next),
            _ => {
                self.next = Some(later(now, self.gap));
                Ok(())
            }
        }
    }

    /// A request ended at `now`.
    pub fn finished(&mut self, now: Instant) {
        if !self.delay.is_zero() {
            let after = later(now, self.delay);
            self.next = Some(self.next.map_or(after, |next| next.max(after)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_give_intervals() {
        let rate = |s: &str| s.parse::<Rate>().map(|r| r.interval());
        assert_eq!(rate("20/s"), Ok(Duration::from_millis(50)));
        assert_eq!(rate("10/m"), Ok(Duration::from_secs(6)));
        assert_eq!(rate("3600/h"), Ok(Duration::from_secs(1)));
        assert_eq!(rate("4"), Ok(Duration::from_millis(250)));
        assert_eq!(rate(" 2 / min "), Ok(Duration::from_secs(30)));
        assert!(rate("0/s").is_err());
        assert!(rate("-1/s").is_err());
        assert!(rate("1.5/s").is_err());
        assert!(rate("5/d").unwrap_err().contains("unknown unit"));
        assert_eq!("10/m".parse::<Rate>().unwrap().to_string(), "10/m");
    }

    #[test]
    fn without_pacing_every_start_is_now() {
        let mut pacer = Pacer::new(Pacing::default());
        let t = Instant::now();
        assert_eq!(pacer.start(t), Ok(()));
        assert_eq!(pacer.start(t), Ok(()));
        pacer.finished(t);
        assert_eq!(pacer.start(t), Ok(()));
    }

    #[test]
    fn a_rate_spaces_starts_by_its_interval_from_the_actual_start() {
        let mut pacer = Pacer::new(Pacing {
            rate: Some("20/s".parse().unwrap()),
            delay: Duration::ZERO,
        });
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(pacer.start(t), Ok(()));
        assert_eq!(pacer.start(t), Err(t + ms(50)));
        assert_eq!(pacer.start(t + ms(49)), Err(t + ms(50)));
        // A start that came late pushes the next one back with it.
        assert_eq!(pacer.start(t + ms(60)), Ok(()));
        assert_eq!(pacer.start(t + ms(100)), Err(t + ms(110)));
        // Idle time is not banked: after a pause, starts are still spaced.
        let late = t + Duration::from_secs(5);
        assert_eq!(pacer.start(late), Ok(()));
        assert_eq!(pacer.start(late), Err(late + ms(50)));
    }

    #[test]
    fn a_delay_counts_from_the_end_of_the_previous_request() {
        let mut pacer = Pacer::new(Pacing {
            rate: None,
            delay: Duration::from_millis(500),
        });
        let t = Instant::now();
        assert_eq!(pacer.start(t), Ok(()));
        let ended = t + Duration::from_secs(2);
        pacer.finished(ended);
        assert_eq!(pacer.start(ended), Err(ended + Duration::from_millis(500)));
    }

    #[test]
    fn a_delay_also_spaces_concurrent_starts() {
        let mut pacer = Pacer::new(Pacing {
            rate: Some("100/s".parse().unwrap()),
            delay: Duration::from_millis(200),
        });
        let t = Instant::now();
        assert_eq!(pacer.start(t), Ok(()));
        assert_eq!(pacer.start(t), Err(t + Duration::from_millis(200)));
    }
}
