//! Ctrl-C and SIGTERM, listened for from the start of a run to its end. Fetching stops at
//! its next wait, the final write at its next block; everything fetched before is already
//! in the partial file, so stopping loses nothing and `--resume` carries on.

use std::future::{Future, pending};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::sink::stop::Stop;

/// Listens for a request to stop for as long as it lives.
pub struct Interrupt {
    stop: Stop,
    woken: Arc<Notify>,
    listener: JoinHandle<()>,
}

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
            flag.request();
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
