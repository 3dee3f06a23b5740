//! Pausing and resuming a queue ([`Admin::pause`], [`Admin::resume`], [`Admin::is_paused`]):
//! the flag `{prefix}:{queue}:paused`, which workers read every [`PAUSE_POLL`].

use std::time::Duration;

use super::client::Admin;
use crate::{
    error::{Error, Result},
    redis::keys,
};

/// How often a worker reads the pause flags of its queues (one round trip for all of them):
/// every 250 ms. A pause or resume takes effect within this plus a round trip.
pub const PAUSE_POLL: Duration = Duration::from_millis(250);

impl Admin {
    /// Pauses `queue`: every worker stops starting its tasks within [`PAUSE_POLL`] (250 ms)
    /// plus a round trip, until [`resume`](Self::resume). Tasks already running finish; entries
    /// a worker had fetched but not started stay with it (leased) and start first on resume,
    /// or are handed back if it shuts down. Producers still enqueue and delayed tasks and
    /// retries still move to the stream when due: they wait there. Durable: the flag is the
    /// key `{prefix}:{queue}:paused`, so it holds across worker restarts (a worker started on
    /// a paused queue starts nothing) until resumed. For a partitioned queue the one flag
    /// pauses every partition, including partitions added later. Pausing a paused queue, or a
    /// queue that does not exist yet, is allowed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// admin.pause("embeddings").await?; // deploy the new model meanwhile
    /// assert!(admin.is_paused("embeddings").await?);
    /// admin.resume("embeddings").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name or a partition's name (`hot#2`: partitions are
    /// paused together, with their queue), [`Error::Redis`].
    pub async fn pause(&self, queue: &str) -> Result<()> {
        let key = self.paused_key(queue)?;
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(Error::redis("SET paused"))
    }

    /// Resumes a paused `queue` (see [`pause`](Self::pause)): workers start its tasks again
    /// within [`PAUSE_POLL`] plus a round trip. Resuming a queue that is not paused is allowed.
    ///
    /// # Errors
    ///
    /// As [`pause`](Self::pause).
    pub async fn resume(&self, queue: &str) -> Result<()> {
        let key = self.paused_key(queue)?;
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(Error::redis("DEL paused"))
    }

    /// Whether `queue` is paused (see [`pause`](Self::pause)); for a partition's name, whether
    /// its queue is.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn is_paused(&self, queue: &str) -> Result<bool> {
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
        self.is_paused_unchecked(queue).await
    }

    async fn is_paused_unchecked(&self, queue: &str) -> Result<bool> {
        redis::cmd("EXISTS")
            .arg(self.keys(queue).paused)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("EXISTS paused"))
    }

    /// The pause flag of `queue`, refusing bad names and partitions.
    fn paused_key(&self, queue: &str) -> Result<String> {
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
        if keys::base_queue(queue) != queue {
            return Err(Error::Config(format!(
                "{queue:?} is a partition: the partitions of a queue are paused and resumed \
                 together, with their queue {:?}",
                keys::base_queue(queue)
            )));
        }
        Ok(self.keys(queue).paused)
    }
}
