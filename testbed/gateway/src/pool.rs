//! The bounded worker pool in front of one function: `workers` calls run at
//! once, up to `queue_capacity` more wait (FIFO) for at most `queue_timeout`,
//! and anything beyond is turned away at once. This is what makes a high
//! enough rate really overload the gateway: latency grows while the queue
//! fills, then calls fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("queue full")]
    QueueFull,
    #[error("timed out waiting for a worker")]
    QueueTimeout,
}

#[derive(Debug)]
pub struct Pool {
    workers: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_capacity: usize,
    queue_timeout: Duration,
}

impl Pool {
    pub fn new(workers: usize, queue_capacity: usize, queue_timeout: Duration) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            queue_capacity,
            queue_timeout,
        }
    }

    /// Calls waiting for a worker right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a worker. The permit is owned so that it can travel into
    /// the blocking task: the worker stays busy until the work is done even
    /// if the caller has gone away.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        if let Ok(permit) = Arc::clone(&self.workers).try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = LeaveQueue(&self.waiting);
        if queued >= self.queue_capacity {
            return Err(Rejected::QueueFull);
        }
        match tokio::time::timeout(
            self.queue_timeout,
            Arc::clone(&self.workers).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout anyway.
            Ok(Err(_)) | Err(_) => Err(Rejected::QueueTimeout),
        }
    }
}

/// Decrements the waiting count however the wait ends (including the
/// caller's future being dropped).
struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_workers_then_queues_then_refuses() {
        let pool = Arc::new(Pool::new(2, 1, Duration::from_secs(30)));
        let a = pool.admit().await.unwrap();
        let _b = pool.admit().await.unwrap();
        assert_eq!(pool.waiting(), 0);

        let queued = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.admit().await.map(|_| ()) }
        });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.admit().await.unwrap_err(), Rejected::QueueFull);
        assert_eq!(pool.waiting(), 1);

        drop(a);
        assert_eq!(queued.await.unwrap(), Ok(()));
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_too_long_times_out() {
        let pool = Pool::new(1, 4, Duration::from_millis(500));
        let _busy = pool.admit().await.unwrap();
        assert_eq!(pool.admit().await.unwrap_err(), Rejected::QueueTimeout);
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let pool = Pool::new(1, 1, Duration::from_secs(30));
        let _busy = pool.admit().await.unwrap();
        {
            let wait = pool.admit();
            tokio::pin!(wait);
            assert!(futures_poll_once(wait.as_mut()).await.is_none());
            assert_eq!(pool.waiting(), 1);
        }
        assert_eq!(pool.waiting(), 0);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            () = std::future::ready(()) => None,
        }
    }
}
