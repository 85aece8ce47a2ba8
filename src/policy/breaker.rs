//! The circuit breaker: after N consecutive failed attempts, send nothing for a cool-down,
//! then let a single probe decide whether to resume.
//!
//! One [`Breaker`] is shared by every in-flight request of a run (through
//! [`crate::policy::gate`]), so a struggling server gets a pause from the whole client, not from
//! one worker. It is a pure state machine over instants.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::report::units::human;

/// `--breaker N --breaker-cooldown SECS`; `--breaker 0` means no breaker at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Consecutive failed attempts that open the circuit.
    pub threshold: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cool-down is over and one probe is out; everyone else waits for its outcome.
    Probing,
}

/// Why an attempt may not go out yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The circuit is open until then.
    Until(Instant),
    /// A probe is out; wait for its outcome.
    Probe,
}

/// A state change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened { failures: u32, cooldown: Duration },
    Probing,
    Closed,
    Reopened { cooldown: Duration },
}

impl Change {
    /// Opening is a warning; the rest is the circuit recovering.
    pub fn is_warning(&self) -> bool {
        matches!(self, Change::Opened { .. } | Change::Reopened { .. })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Opened { failures, cooldown } => write!(
                f,
                "circuit open for {} after {failures} consecutive failures",
                human(*cooldown)
            ),
            Change::Probing => write!(f, "circuit half-open: sending one probe request"),
            Change::Closed => write!(f, "circuit closed: the probe succeeded"),
            Change::Reopened { cooldown } => write!(
                f,
                "circuit open again for {}: the probe failed",
                human(*cooldown)
            ),
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    settings: Option<Settings>,
    state: State,
}

impl Breaker {
    /// `None` builds a breaker that never opens.
    pub fn new(settings: Option<Settings>) -> Self {
        Breaker {
            settings,
            state: State::Closed { failures: 0 },
        }
    }

    /// Whether an attempt would have to wait, without claiming anything.
    pub fn blocked(&self, now: Instant) -> Option<Blocked> {
        match self.state {
            State::Closed { .. } => None,
            State::Open { until } if now < until => Some(Blocked::Until(until)),
            State::Open { .. } => None,
            State::Probing => Some(Blocked::Probe),
        }
    }

    /// Lets an attempt go out at `now`, or says why not. `Ok(true)` means the attempt is
    /// the probe: its outcome alone decides whether the circuit closes.
    pub fn admit(&mut self, now: Instant) -> Result<(bool, Option<Change>), Blocked> {
        if let Some(blocked) = self.blocked(now) {
            return Err(blocked);
        }
        if let State::Open { .. } = self.state {
            self.state = State::Probing;
            return Ok((true, Some(Change::Probing)));
        }
        Ok((false, None))
    }

    /// Records how an admitted attempt ended. Outcomes of attempts that went out before
    /// the circuit opened do not move it while it is open or probing: only the probe does.
    pub fn record(&mut self, success: bool, probe: bool, now: Instant) -> Option<Change> {
        let settings = self.settings?;
        let cooldown = settings.cooldown;
        let opened = State::Open {
            until: now + cooldown,
        };
        let (state, change) = match (self.state, success, probe) {
            (State::Probing, true, true) => (State::Closed { failures: 0 }, Some(Change::Closed)),
            (State::Probing, false, true) => (opened, Some(Change::Reopened { cooldown })),
            (State::Closed { .. }, true, _) => (State::Closed { failures: 0 }, None),
            (State::Closed { failures }, false, _) => {
                let failures = failures + 1;
                if failures >= settings.threshold {
                    (opened, Some(Change::Opened { failures, cooldown }))
                } else {
                    (State::Closed { failures }, None)
                }
            }
            (state, _, _) => (state, None),
        };
        self.state = state;
        change
    }

    /// The probe ended without an outcome (its request was cancelled): let the next
    /// attempt probe instead, so nobody waits for an answer that will never come.
    pub fn abandon_probe(&mut self, now: Instant) {
        if self.state == State::Probing {
            self.state = State::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(Some(Settings {
            threshold: 3,
            cooldown: Duration::from_secs(30),
        }))
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let mut b = breaker();
        let t = Instant::now();
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.record(true, false, t), None, "a success resets the count");
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.admit(t), Ok((false, None)));
        let change = b.record(false, false, t).unwrap();
        assert_eq!(
            change,
            Change::Opened {
                failures: 3,
                cooldown: Duration::from_secs(30)
            }
        );
        assert_eq!(
            change.to_string(),
            "circuit open for 30.0s after 3 consecutive failures"
        );
        let until = t + Duration::from_secs(30);
        assert_eq!(b.blocked(t), Some(Blocked::Until(until)));
        assert_eq!(
            b.admit(until - Duration::from_millis(1)),
            Err(Blocked::Until(until))
        );
    }

    #[test]
    fn after_the_cooldown_exactly_one_probe_goes_out_and_its_success_closes() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let later = t + Duration::from_secs(30);
        assert_eq!(b.blocked(later), None);
        assert_eq!(b.admit(later), Ok((true, Some(Change::Probing))));
        assert_eq!(b.admit(later), Err(Blocked::Probe));
        // A straggler sent before the circuit opened does not decide anything.
        assert_eq!(b.record(true, false, later), None);
        assert_eq!(b.admit(later), Err(Blocked::Probe));
        assert_eq!(b.record(true, true, later), Some(Change::Closed));
        assert_eq!(b.admit(later), Ok((false, None)));
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cooldown() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let probe_at = t + Duration::from_secs(31);
        assert!(b.admit(probe_at).unwrap().0);
        assert_eq!(
            b.record(false, true, probe_at),
            Some(Change::Reopened {
                cooldown: Duration::from_secs(30)
            })
        );
        assert_eq!(
            b.blocked(probe_at),
            Some(Blocked::Until(probe_at + Duration::from_secs(30)))
        );
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_attempt_probe() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let later = t + Duration::from_secs(30);
        assert!(b.admit(later).unwrap().0);
        b.abandon_probe(later);
        assert_eq!(b.admit(later), Ok((true, Some(Change::Probing))));
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let mut b = Breaker::new(None);
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.record(false, false, t), None);
        }
        assert_eq!(b.admit(t), Ok((false, None)));
    }
}
