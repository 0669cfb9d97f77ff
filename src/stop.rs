//! The stop request: SIGINT/SIGTERM or the stop file appearing. Cloned
//! into every place that waits, so a stop interrupts sleeps, Prometheus
//! queries and k6 runs alike.
//!
//! It sits at the crate root, not in the campaign, so that the layers the
//! campaign drives (the k6 runner, the metrics clients) wait on the same
//! [`Stop`] without depending on the campaign. It only carries the
//! request; what a stop means is for each waiter to decide.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

/// How often the stop file is looked for.
const STOP_FILE_POLL: Duration = Duration::from_millis(250);

/// A receiver side of the stop request.
#[derive(Debug, Clone)]
pub struct Stop {
    rx: watch::Receiver<bool>,
}

/// The sender side: whoever may ask the campaign to stop.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: watch::Sender<bool>,
}

impl Stop {
    pub fn new() -> (StopHandle, Stop) {
        let (tx, rx) = watch::channel(false);
        (StopHandle { tx }, Stop { rx })
    }

    /// A stop nobody can request (its handle is gone at once): for work
    /// that runs to its end.
    pub fn never() -> Stop {
        Stop::new().1
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once a stop was requested (at once if it already was).
    pub(crate) async fn stopped(&self) {
        let mut rx = self.rx.clone();
        // An error means every sender is gone: no stop can come any more.
        if rx.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleeps for `duration`; returns `false` when woken by a stop.
    pub(crate) async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.stopped() => false,
        }
    }
}

impl StopHandle {
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Watches SIGINT, SIGTERM and, when given, the stop file; requests a
    /// stop on the first of them. Runs until the process ends.
    pub(crate) fn watch(self, stop_file: Option<PathBuf>) {
        let handle = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            handle.stop();
        });
        if let Some(path) = stop_file {
            tokio::spawn(async move {
                loop {
                    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                        self.stop();
                        return;
                    }
                    tokio::time::sleep(STOP_FILE_POLL).await;
                }
            });
        }
    }
}

/// Returns at SIGINT or SIGTERM (ctrl-c only where those cannot be
/// watched): what stops a `run`, and a `serve` with its job.
#[cfg(unix)]
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            // Without signal handlers only ctrl-c is left.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
pub(crate) async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_wakes_a_sleep() {
        let (handle, stop) = Stop::new();
        let sleeper = stop.clone();
        let task = tokio::spawn(async move { sleeper.sleep(Duration::from_secs(3600)).await });
        handle.stop();
        assert!(!task.await.unwrap());
        assert!(stop.is_stopped());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_completes_without_stop() {
        let (_handle, stop) = Stop::new();
        assert!(stop.sleep(Duration::from_secs(5)).await);
        assert!(!stop.is_stopped());
    }

    #[tokio::test(start_paused = true)]
    async fn never_is_never_stopped() {
        let stop = Stop::never();
        assert!(stop.sleep(Duration::from_secs(3600)).await);
        assert!(!stop.is_stopped());
    }

    #[tokio::test]
    async fn stop_file_requests_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("STOP");
        let (handle, stop) = Stop::new();
        handle.watch(Some(path.clone()));
        assert!(!stop.is_stopped());
        std::fs::write(&path, b"").unwrap();
        tokio::time::timeout(Duration::from_secs(5), stop.stopped())
            .await
            .unwrap();
    }
}
