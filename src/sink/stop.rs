//! A stop flag that blocking work checks, and a writer that heeds it: how Ctrl-C reaches a
//! final write running on a thread of its own (`engine::interrupt` sets the flag).

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether a stop was requested: what work on a blocking thread checks, since only the
/// runtime sees a signal arrive, and it cannot run while its thread is busy writing.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Sets the flag: the signal listener is the one place a stop is requested.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Fails once a stop is requested. Not `ErrorKind::Interrupted`, which `write_all` and
    /// `io::copy` take as "try again".
    pub fn check(&self) -> io::Result<()> {
        match self.is_set() {
            true => Err(io::Error::other("interrupted")),
            false => Ok(()),
        }
    }
}

/// A writer that fails once a stop is requested, checked before each block it is handed,
/// so a long write on a blocking thread ends within a block of the request.
pub struct Stoppable<W> {
    inner: W,
    stop: Stop,
    /// A pause before each block: `--test-final-write-pause`, for the tests only.
    pause: Duration,
}

impl<W> Stoppable<W> {
    pub fn new(inner: W, stop: Stop, pause: Duration) -> Self {
        Stoppable { inner, stop, pause }
    }

    /// What comes before each block: the test pause, then a check of the stop flag.
    pub fn ready(&self) -> io::Result<()> {
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        self.stop.check()
    }

    /// The writer beneath, for a copy that calls [`Stoppable::ready`] before each of its
    /// chunks itself: going through this one would hide the file from `io::copy`.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ready()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stoppable_writer_refuses_the_block_after_a_stop() {
        let stop = Stop::default();
        let mut out = Stoppable::new(Vec::new(), stop.clone(), Duration::ZERO);
        out.write_all(b"before ").unwrap();
        stop.0.store(true, Ordering::SeqCst);
        let err = out.write_all(b"after").unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::Interrupted, "not retried");
        assert_eq!(out.inner, b"before ");
    }
}
