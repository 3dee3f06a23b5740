//! Waiting until a queue is idle ([`Admin::wait_idle`]), and whether it exists
//! ([`Admin::exists`]).

use std::time::Duration;

use super::client::Admin;
#[cfg(doc)]
use super::stats::QueueStats;
use crate::error::{Error, Result};

/// How often [`Admin::wait_idle`] reads the queue's sizes: every 50 ms.
pub const WAIT_IDLE_POLL: Duration = Duration::from_millis(50);

impl Admin {
    /// Waits until `queue` is idle ([`QueueStats::is_idle`]): its stream is empty (nothing
    /// ready, nothing in flight, every ack flushed) and nothing is delayed, counting scheduled
    /// tasks and retries waiting for their backoff. Dead letters do not count. Reads a
    /// [`stats`](Self::stats) snapshot every [`WAIT_IDLE_POLL`] (50 ms).
    ///
    /// Returns `true` as soon as a snapshot shows the queue idle (at once if it is idle or
    /// does not exist), `false` if it is still busy after `timeout`. Idle is a moment, not a
    /// promise: a task enqueued afterwards makes the queue busy again, and a task scheduled
    /// far ahead keeps it busy until it has run. Tasks in flight on a worker that died keep
    /// it busy until another worker reclaims and finishes them.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] if a snapshot cannot be read.
    pub async fn wait_idle(&self, queue: &str, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.stats(queue).await?.is_idle() {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(WAIT_IDLE_POLL.min(deadline - now)).await;
        }
    }

    /// Whether `queue` exists, i.e. has a stream (created by the first enqueue or the first
    /// worker).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn exists(&self, queue: &str) -> Result<bool> {
        for p in self.streams(queue).await? {
            let found: bool = redis::cmd("EXISTS")
                .arg(self.keys(&p).stream)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(Error::redis("EXISTS"))?;
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
