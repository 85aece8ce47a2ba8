//! Ctrl-C and SIGTERM, listened for from the start of a run to its end. Fetching stops at
//! its next wait, the final write at its next block; everything fetched before is already
//! in the partial file, so stopping loses nothing and `--resume` carries on.

use std::future::{Future, pending};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Listens for a request to stop for as long as it lives.
pub struct Interrupt {
    stop: Stop,
    woken: Arc<Notify>,
    listener: JoinHandle<()>,
}

/// Whether a stop was requested: what work on a blocking thread checks, since only the
/// runtime sees a signal arrive, and it cannot run while its thread is busy writing.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Interrupt {
    /// Starts listening. The handlers are installed here, not when the runtime first gets
    /// to the listener: a signal in between would otherwise end the process at once, and
    /// leave a half-written temporary file behind.
    pub fn listen() -> Self {
        let (stop, woken) = (Stop::default(), Arc::new(Notify::new()));
        let signalled = signals();
        let (flag, wake) = (stop.clone(), Arc::clone(&woken));
        let listener = tokio::spawn(async move {
            signalled.await;
            flag.0.store(true, Ordering::SeqCst);
            wake.notify_waiters();
        });
        Interrupt {
            stop,
            woken,
            listener,
        }
    }

    /// Resolves once a stop is requested (at once if it already was).
    pub async fn requested(&self) {
        loop {
            // Made before the flag is read: a request in between still wakes it.
            let woken = self.woken.notified();
            if self.stop.is_set() {
                return;
            }
            woken.await;
        }
    }

    /// The flag, for work that cannot await [`Interrupt::requested`].
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Stop {
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
}

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        self.stop.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Ctrl-C or SIGTERM, whichever comes first. A signal whose handler the system refused
/// keeps its default effect, and never reads as a request.
#[cfg(unix)]
fn signals() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn first(signal: Option<Signal>) {
        let Some(mut signal) = signal else {
            return pending().await;
        };
        if signal.recv().await.is_none() {
            pending::<()>().await;
        }
    }
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = first(interrupt) => {}
            () = first(terminate) => {}
        }
    }
}

#[cfg(not(unix))]
fn signals() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            pending::<()>().await;
        }
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
