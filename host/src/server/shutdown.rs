//! Stopping `emwrite serve` without cutting requests: Cloud Run sends SIGTERM and kills the
//! process 10 s later.
//!
//! On SIGTERM or SIGINT the server stops accepting, tells every connection to finish its
//! current request and close ([`Shutdown::stopping`]), answers requests that still arrive with
//! 503, and waits up to `--shutdown-grace` for the open connections ([`Connections::drain`]).
//! What is still running then is dropped with its instance: an object being written is left
//! whole or absent (its temporary file is swept at the next start).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Whether the server is stopping, for connections to watch and requests to check.
#[derive(Clone, Debug)]
pub struct Shutdown {
    stopping: Arc<AtomicBool>,
    signal: watch::Sender<bool>,
}

impl Shutdown {
    /// A server that is not stopping.
    pub fn new() -> Self {
        Shutdown {
            stopping: Arc::new(AtomicBool::new(false)),
            signal: watch::Sender::new(false),
        }
    }

    /// Starts stopping: every connection is told at once.
    pub fn begin(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.signal.send_replace(true);
    }

    /// Whether stopping has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Resolves once stopping has begun.
    pub async fn stopping(&self) {
        let mut receiver = self.signal.subscribe();
        // `wait_for` fails only when the sender is gone, and `self` holds it.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

/// The open connections, at most `--max-connections`: each holds a permit while it is open, so
/// draining is waiting for every permit to come back.
#[derive(Clone, Debug)]
pub struct Connections {
    open: Arc<Semaphore>,
    max: u32,
}

impl Connections {
    /// Room for `max` connections at once.
    pub fn new(max: usize) -> Self {
        // Semaphore permits are counted in u32 for `acquire_many`; no server has more sockets.
        let max = u32::try_from(max)
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        Connections {
            open: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A permit for one more connection, or None when `max` are open.
    pub fn try_open(&self) -> Option<OwnedSemaphorePermit> {
        self.open.clone().try_acquire_owned().ok()
    }

    /// Waits until every connection has closed or `grace` has passed; returns how many were
    /// still open then.
    pub async fn drain(&self, grace: Duration) -> usize {
        match tokio::time::timeout(grace, self.open.acquire_many(self.max)).await {
            Ok(_all_closed) => 0,
            Err(_elapsed) => self.max as usize - self.open.available_permits(),
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM, which Cloud Run sends before it stops an instance.
pub async fn signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_reports_connections_still_open() {
        let connections = Connections::new(4);
        let open = connections.try_open().expect("room for one");
        assert_eq!(connections.drain(Duration::from_millis(10)).await, 1);
        drop(open);
        assert_eq!(connections.drain(Duration::from_millis(10)).await, 0);
    }

    #[tokio::test]
    async fn stopping_is_seen_by_waiters() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_stopping());
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.stopping().await }
        });
        shutdown.begin();
        waiter.await.expect("the waiter finishes");
        assert!(shutdown.is_stopping());
    }
}
