//! `--max-time`: when the run must be over, and whether a wait still fits before then.
//!
//! A wait that would end past the deadline is never started: the run gives up at once
//! (exit 4) and says which wait it refused, instead of sleeping only to fail later.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::report::units::human;

/// The longest duration apifetch works with: 100 years of 365.25 days, as `100y` reads.
/// Flags and server headers are bounded by it where they are read, so a duration added to
/// an instant cannot overflow.
pub const LONGEST: Duration = Duration::from_secs(3_155_760_000);

/// `now + by`, saturating: an absurd duration that slipped past [`LONGEST`] means "never"
/// in practice, not a panic in the middle of a run.
pub fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or_else(|| now + LONGEST)
}

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The instant the run must end by, and the `--max-time` it came from.
    end: Option<(Instant, Duration)>,
}

impl Deadline {
    /// The run started at `start`; `None` means no limit.
    pub fn new(start: Instant, max_time: Option<Duration>) -> Self {
        Deadline {
            end: max_time.map(|limit| (later(start, limit), limit)),
        }
    }

    /// Whether a wait of `wait` from `now` ends in time; if not, the reason, worded to
    /// follow "gave up rather than wait …".
    pub fn allows(&self, now: Instant, wait: Duration) -> Result<(), String> {
        match self.end {
            Some((end, limit)) if later(now, wait) > end => Err(format!(
                "that would pass --max-time {} ({} left)",
                human(limit),
                human(end.saturating_duration_since(now))
            )),
            _ => Ok(()),
        }
    }

    /// Runs `work`, giving up when the deadline passes first (a request in flight at the
    /// deadline is abandoned).
    pub async fn bound<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some((end, limit)) = self.end else {
            return work.await;
        };
        tokio::time::timeout_at(end, work)
            .await
            .unwrap_or_else(|_| {
                Err(Error::GaveUp(format!(
                    "{what}: --max-time {} reached before the request finished",
                    human(limit)
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_that_end_by_the_deadline_are_allowed() {
        let t = Instant::now();
        let d = Deadline::new(t, Some(Duration::from_secs(10)));
        let later = t + Duration::from_secs(4);
        assert_eq!(d.allows(later, Duration::from_secs(6)), Ok(()));
        let err = d.allows(later, Duration::from_secs(7)).unwrap_err();
        assert_eq!(err, "that would pass --max-time 10.0s (6.0s left)");
        assert_eq!(
            Deadline::new(t, None).allows(t, Duration::from_secs(1_000_000)),
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn work_still_running_at_the_deadline_gives_up() {
        let d = Deadline::new(Instant::now(), Some(Duration::from_secs(2)));
        let slow = d.bound("GET /x", async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        });
        let err = slow.await.unwrap_err();
        assert!(
            matches!(&err, Error::GaveUp(m) if m.contains("--max-time 2.0s")),
            "{err}"
        );
        let fast = d.bound("GET /x", async { Ok(7) });
        assert_eq!(fast.await.unwrap(), 7);
    }
}
