//! The run-wide gate every attempt passes before it goes out, and reports back to after.
//!
//! Pacing, the API's rate-limit quota, a `Retry-After` and the circuit breaker are facts
//! about the whole run, not about one request: the gate keeps them in one place shared by every in-flight
//! request and turns them into waits, each bounded by `--retry-max-wait` and `--max-time`.
//! Waiting here never uses up a request's retries: only attempts that go out count.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::policy::breaker::{self, Breaker, Change};
use crate::policy::deadline::{Deadline, later};
use crate::policy::pace::{Pacer, Pacing};
use crate::policy::ratelimit::Quota;
use crate::report::units::human;

pub struct Gate {
    state: Mutex<State>,
    /// Wakes the requests waiting for a probe's outcome.
    probed: Notify,
    max_wait: Duration,
    deadline: Deadline,
}

struct State {
    pacer: Pacer,
    breaker: Breaker,
    /// The server asked the whole client to pause (`Retry-After`): nothing goes out
    /// before `until`.
    hold: Option<Hold>,
    /// What the latest response said is left of the API's quota, less the requests
    /// started since (and those still in flight then): no more may start before `until`.
    budget: Option<Budget>,
    /// Attempts admitted and not yet recorded.
    in_flight: u64,
    /// The circuit opened (or opened again) and no attempt has waited for it yet. Said
    /// when one does, so a run that ends first does not announce a wait that never
    /// happens.
    opened: Option<Change>,
}

struct Hold {
    until: Instant,
    /// Completes "waiting 2s …" in messages.
    why: String,
}

struct Budget {
    left: u64,
    until: Instant,
    /// The header it came from, for messages.
    source: String,
    /// The pause until `until` has been logged.
    announced: bool,
}

/// What keeps an attempt from going out now.
#[derive(Debug, PartialEq)]
enum Wait {
    /// Until then. `why` completes "waiting 2s …" in messages; `capped` waits (imposed by
    /// the server or the breaker) are bounded by `--retry-max-wait`, pacing waits (the
    /// user's own choice) only by `--max-time`.
    Until {
        until: Instant,
        why: String,
        capped: bool,
    },
    /// Until the probe in flight has an outcome.
    Probe,
}

impl State {
    /// Lets an attempt go out at `now`, or says what it waits for: the longer of an open
    /// circuit and a hold, then the pacing slot. `Ok((true, _))`: the attempt is the probe.
    fn admit(&mut self, now: Instant) -> Result<(bool, Option<Change>), Wait> {
        let hold = self.hold.as_ref().filter(|h| h.until > now);
        match self.breaker.blocked(now) {
            Some(breaker::Blocked::Probe) => return Err(Wait::Probe),
            Some(breaker::Blocked::Until(until)) if hold.is_none_or(|h| until >= h.until) => {
                self.announce_opened();
                return Err(Wait::Until {
                    until,
                    why: "for the circuit breaker's cool-down".into(),
                    capped: true,
                });
            }
            _ => {}
        }
        if let Some(hold) = hold {
            return Err(Wait::Until {
                until: hold.until,
                why: hold.why.clone(),
                capped: true,
            });
        }
        let budget = self.budget.as_mut().filter(|b| b.until > now);
        if let Some(spent) = budget.as_ref().filter(|b| b.left == 0) {
            return Err(Wait::Until {
                until: spent.until,
                why: format!("for the rate limit to reset ({})", spent.source),
                capped: true,
            });
        }
        self.pacer.start(now).map_err(|until| Wait::Until {
            until,
            why: "for the next --rate/--delay slot".into(),
            capped: false,
        })?;
        if let Some(budget) = budget {
            budget.left -= 1;
        }
        self.in_flight += 1;
        // Not blocked, so the breaker admits.
        let (probe, change) = self.breaker.admit(now).unwrap_or((false, None));
        if probe {
            self.announce_opened();
        }
        Ok((probe, change))
    }

    /// Logs that the circuit opened, once an attempt meets the open circuit: waits for
    /// it, or goes out as the probe after it.
    fn announce_opened(&mut self) {
        if let Some(change) = self.opened.take() {
            log(change);
        }
    }

    /// Plans with the quota a response reported. Requests still in flight were counted
    /// by the server only if they arrived first, so they are taken off what is left: a
    /// run never starts more than the API allows, at the price of sometimes waiting for
    /// a reset it did not need. True when the quota is used up and that is news (not yet
    /// logged for this reset).
    ///
    /// The reset is always the latest response's: an earlier response's reset belongs to
    /// a window the server may have moved on from, and waiting for it because a later
    /// response said the quota is spent would wait for neither response's reset.
    fn budget(&mut self, now: Instant, quota: Quota) -> bool {
        let reported = quota.remaining.saturating_sub(self.in_flight);
        let until = later(now, quota.reset);
        let same_window = self
            .budget
            .as_ref()
            .filter(|b| b.until > now && same_reset(b.until, until));
        // Responses arrive out of order: within one window, a stale report (more left, as
        // counted before other requests got in) must not raise what is left.
        let (left, announced) = match same_window {
            Some(b) => (b.left.min(reported), b.announced),
            None => (reported, false),
        };
        let announce = left == 0 && !announced;
        self.budget = Some(Budget {
            left,
            until,
            source: quota.source,
            announced: announced || announce,
        });
        announce
    }

    /// Holds every request until `until`, unless a longer hold is already on. True when no
    /// hold was on before, so the caller logs a pause once rather than per response.
    fn hold(&mut self, now: Instant, until: Instant, why: String) -> bool {
        match &mut self.hold {
            Some(hold) if hold.until > now => {
                if until > hold.until {
                    *hold = Hold { until, why };
                }
                false
            }
            none => {
                *none = Some(Hold { until, why });
                true
            }
        }
    }
}

/// Whether two resets are the same one, reported by two responses: a reset in whole
/// seconds reads a second less from a response sent a moment later.
fn same_reset(a: Instant, b: Instant) -> bool {
    a.max(b) - a.min(b) <= Duration::from_secs(1)
}

/// Permission for one attempt, to hand back through [`Gate::record`]. Dropped unrecorded
/// (its request was cancelled), it stops counting as in flight and frees the probe slot
/// it may hold.
pub struct Pass<'a> {
    gate: &'a Gate,
    probe: bool,
    recorded: bool,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let mut state = self.gate.lock();
        state.in_flight -= 1;
        if self.probe {
            state.breaker.abandon_probe(Instant::now());
            drop(state);
            self.gate.probed.notify_waiters();
        }
    }
}

impl Gate {
    pub fn new(
        pacing: Pacing,
        breaker: Option<breaker::Settings>,
        max_wait: Duration,
        deadline: Deadline,
    ) -> Self {
        Gate {
            state: Mutex::new(State {
                pacer: Pacer::new(pacing),
                breaker: Breaker::new(breaker),
                hold: None,
                budget: None,
                in_flight: 0,
                opened: None,
            }),
            probed: Notify::new(),
            max_wait,
            deadline,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic: every update is a single assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until an attempt at `what` may go out, or gives up when a wait is too long.
    pub async fn admit(&self, what: &str) -> Result<Pass<'_>, Error> {
        loop {
            // Created before looking, so a probe outcome in between still wakes us.
            let probed = self.probed.notified();
            let now = Instant::now();
            let admitted = self.lock().admit(now);
            match admitted {
                Ok((probe, change)) => {
                    if let Some(change) = change {
                        log(change);
                    }
                    return Ok(Pass {
                        gate: self,
                        probe,
                        recorded: false,
                    });
                }
                Err(Wait::Until { until, why, capped }) => {
                    let wait = until - now;
                    self.check(now, wait, &why, capped)
                        .map_err(|reason| Error::GaveUp(format!("{what}: {reason}")))?;
                    debug!(
                        url = what,
                        wait_ms = wait.as_millis() as u64,
                        cause = why.as_str(),
                        "{what}: waiting {} {why}",
                        human(wait)
                    );
                    tokio::time::sleep_until(until).await;
                }
                Err(Wait::Probe) => probed.await,
            }
        }
    }

    /// Records how an admitted attempt ended: whether it succeeded, what its response
    /// said is left of the API's quota, and how long it asked to wait (`Retry-After`).
    /// Both bind every request of the run, not only the one that was told.
    pub fn record(
        &self,
        mut pass: Pass<'_>,
        success: bool,
        quota: Option<Quota>,
        retry_after: Option<Duration>,
    ) {
        let now = Instant::now();
        pass.recorded = true;
        let probe = pass.probe;
        let mut state = self.lock();
        state.in_flight -= 1;
        state.pacer.finished(now);
        if let Some(quota) = quota {
            let (source, reset) = (quota.source.clone(), quota.reset);
            let in_flight = state.in_flight;
            if state.budget(now, quota) {
                let also = match in_flight {
                    0 => String::new(),
                    n => format!(", {n} more requests in flight"),
                };
                info!(
                    "rate limit used up ({source}{also}): pausing requests for {} until it resets",
                    human(reset)
                );
            }
        }
        if let Some(wait) = retry_after.filter(|wait| !wait.is_zero()) {
            // The retry's own log line already tells the user; this holds the others back.
            if state.hold(now, later(now, wait), "for the server's Retry-After".into()) {
                debug!("Retry-After: pausing all requests for {}", human(wait));
            }
        }
        match state.breaker.record(success, probe, now) {
            Some(change) if change.is_warning() => state.opened = Some(change),
            Some(change) => log(change),
            None => {}
        }
        if probe {
            self.probed.notify_waiters();
        }
    }

    /// Refuses a wait that ends past the deadline, or, for waits the server or the breaker
    /// imposes (`capped`), one longer than `--retry-max-wait`. Pacing waits are the user's
    /// own choice and only meet the deadline.
    fn check(&self, now: Instant, wait: Duration, why: &str, capped: bool) -> Result<(), String> {
        let refused =
            |reason: String| format!("gave up rather than wait {} {why}: {reason}", human(wait));
        if capped && wait > self.max_wait {
            return Err(refused(format!(
                "that is longer than --retry-max-wait {}",
                human(self.max_wait)
            )));
        }
        self.deadline.allows(now, wait).map_err(refused)
    }
}

fn log(change: Change) {
    if change.is_warning() {
        warn!("{change}");
    } else {
        info!("{change}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(pacing: Pacing, breaker: Option<breaker::Settings>, max_time: Option<u64>) -> Gate {
        Gate::new(
            pacing,
            breaker,
            Duration::from_secs(300),
            Deadline::new(Instant::now(), max_time.map(Duration::from_secs)),
        )
    }

    fn quota(remaining: u64, reset_secs: u64) -> Option<Quota> {
        Some(Quota {
            remaining,
            reset: Duration::from_secs(reset_secs),
            source: format!("X-RateLimit-Remaining: {remaining}"),
        })
    }

    fn exhausted(secs: u64) -> Option<Quota> {
        quota(0, secs)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_count_against_what_is_left_of_the_quota() {
        let g = gate(Pacing::default(), None, None);
        let start = Instant::now();
        let a = g.admit("GET /a").await.unwrap();
        let b = g.admit("GET /b").await.unwrap();
        // Two left, but /b is still out and will use one of them.
        g.record(a, true, quota(2, 10), None);
        let c = g.admit("GET /c").await.unwrap();
        assert_eq!(Instant::now(), start, "one request still fits");
        g.record(b, true, None, None);
        g.record(c, true, None, None);
        g.admit("GET /d").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_report_does_not_raise_what_is_left_before_the_reset() {
        let g = gate(Pacing::default(), None, None);
        let start = Instant::now();
        let a = g.admit("GET /a").await.unwrap();
        let b = g.admit("GET /b").await.unwrap();
        // /b reached the server last but answers first.
        g.record(b, true, quota(0, 10), None);
        g.record(a, true, quota(1, 10), None);
        g.admit("GET /c").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_comes_from_the_latest_response_alone() {
        let g = gate(Pacing::default(), None, None);
        let start = Instant::now();
        let pass = g.admit("GET /1").await.unwrap();
        g.record(pass, true, quota(99, 60), None);
        let pass = g.admit("GET /2").await.unwrap();
        g.record(pass, true, quota(0, 1), None);
        let pass = g.admit("GET /3").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        // And the other way round: a later response's long reset is waited out in full.
        g.record(pass, true, quota(5, 1), None);
        let pass = g.admit("GET /4").await.unwrap();
        g.record(pass, true, quota(0, 30), None);
        g.admit("GET /5").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn a_used_up_quota_holds_the_next_attempt_until_the_reset() {
        let g = gate(Pacing::default(), None, None);
        let start = Instant::now();
        let pass = g.admit("GET /x").await.unwrap();
        g.record(pass, true, exhausted(5), None);
        let pass = g.admit("GET /x").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        g.record(pass, true, None, None);
        g.admit("GET /x").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_past_the_deadline_or_the_cap_gives_up_at_once() {
        let g = gate(Pacing::default(), None, Some(3));
        let start = Instant::now();
        let pass = g.admit("GET /x").await.unwrap();
        g.record(pass, true, exhausted(5), None);
        let Err(Error::GaveUp(msg)) = g.admit("GET /x").await else {
            panic!("must give up")
        };
        assert_eq!(Instant::now(), start, "gave up without waiting");
        assert_eq!(
            msg,
            "GET /x: gave up rather than wait 5.0s for the rate limit to reset \
             (X-RateLimit-Remaining: 0): that would pass --max-time 3.0s (3.0s left)"
        );
        let g = gate(Pacing::default(), None, None);
        let pass = g.admit("GET /x").await.unwrap();
        g.record(pass, true, exhausted(400), None);
        let Err(Error::GaveUp(msg)) = g.admit("GET /x").await else {
            panic!("must give up")
        };
        assert!(msg.ends_with("longer than --retry-max-wait 5m0s"), "{msg}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_holds_every_request_of_the_run() {
        let g = gate(Pacing::default(), None, None);
        let start = Instant::now();
        let told = g.admit("GET /a").await.unwrap();
        let other = g.admit("GET /b").await.unwrap();
        g.record(told, false, None, Some(Duration::from_secs(3)));
        g.record(other, true, None, None);
        g.admit("GET /b").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_spaces_attempts_across_concurrent_requests() {
        let g = gate(
            Pacing {
                rate: Some("2/s".parse().unwrap()),
                delay: Duration::ZERO,
            },
            None,
            None,
        );
        let start = Instant::now();
        let admitted = |g: &'static Gate| async move {
            let pass = g.admit("GET /x").await.unwrap();
            let at = Instant::now() - start;
            g.record(pass, true, None, None);
            at
        };
        let g: &'static Gate = Box::leak(Box::new(g));
        let (a, b, c) = tokio::join!(admitted(g), admitted(g), admitted(g));
        let mut starts = [a, b, c];
        starts.sort();
        assert_eq!(starts, [0, 500, 1000].map(Duration::from_millis));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_holds_everyone_and_lets_one_probe_through() {
        let g: &'static Gate = Box::leak(Box::new(gate(
            Pacing::default(),
            Some(breaker::Settings {
                threshold: 2,
                cooldown: Duration::from_secs(30),
            }),
            None,
        )));
        let start = Instant::now();
        for _ in 0..2 {
            let pass = g.admit("GET /x").await.unwrap();
            g.record(pass, false, None, None);
        }
        let probe = g.admit("GET /x").await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
        assert!(probe.probe);
        let waiter = tokio::spawn(async move {
            let pass = g.admit("GET /y").await.unwrap();
            (Instant::now() - start, pass.probe)
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !waiter.is_finished(),
            "nothing goes out while the probe is out"
        );
        g.record(probe, true, None, None);
        assert_eq!(
            waiter.await.unwrap(),
            (Duration::from_secs(32), false),
            "the probe's success lets the rest through"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooldown_longer_than_the_time_left_gives_up() {
        let g = gate(
            Pacing::default(),
            Some(breaker::Settings {
                threshold: 1,
                cooldown: Duration::from_secs(30),
            }),
            Some(10),
        );
        let pass = g.admit("GET /x").await.unwrap();
        g.record(pass, false, None, None);
        let Err(Error::GaveUp(msg)) = g.admit("GET /x").await else {
            panic!("must give up")
        };
        assert!(
            msg.contains("30.0s for the circuit breaker's cool-down: that would pass --max-time"),
            "{msg}"
        );
    }
}
