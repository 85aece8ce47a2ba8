//! When to send and when to give up: retry and backoff, pacing, rate limits, the circuit
//! breaker and the run's deadline, all decided here and nowhere else.

pub mod breaker;
pub mod deadline;
pub mod gate;
pub mod pace;
pub mod ratelimit;
pub mod retry;
