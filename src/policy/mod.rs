//! When to send and when to give up: retry and backoff, pacing, rate limits, the circuit
//! breaker and the run's deadline, all decided here and nowhere else.

pub mod breaker;
pub mod deadline;
pub mod gate;
pub mod pace;
pub mod ratelimit;
pub mod retry;

use std::time::Duration;

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
