//! Ctrl-C and SIGTERM. A run stops at its next wait; everything it fetched before is
//! already synced to its partial file, so stopping loses nothing.

/// Resolves when the user or the system asks the run to stop.
pub async fn requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                () = ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    ctrl_c().await;
}

async fn ctrl_c() {
    // Without a handler, Ctrl-C keeps its default effect; it must not read as a request.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
