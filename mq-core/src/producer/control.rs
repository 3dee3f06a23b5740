//! Control of enqueued tasks through a producer's connection: cancel, progress, status,
//! result, wait (see [`crate::control`]).

use std::time::Duration;

use crate::error::{Error, Result};

use super::client::Producer;

impl Producer {
    /// Cancels task `id` of `queue`, as [`Admin::cancel`](crate::Admin::cancel) does, with the
    /// consumer group the queue's workers use (the stream's one group, read by the script):
    /// a queued or delayed task never runs, a running one is signalled and settled as
    /// cancelled, an unknown or finished id is
    /// [`CancelOutcome::NotFound`](crate::CancelOutcome::NotFound).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "texts")]
    /// # struct EmbedText { product_id: u64 }
    /// # async fn run() -> mq_core::Result<()> {
    /// let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// let id = producer.enqueue(EmbedText { product_id: 7 }).await?;
    /// println!("{}", producer.cancel("texts", &id).await?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`]: `NOPERM` under an ACL user
    /// with the `mq-producer` role, since cancelling needs the `mq-admin` role's rights
    /// (README "ACL users").
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<crate::CancelOutcome> {
        crate::control::cancel(&self.conn, &self.prefix, None, queue, id).await
    }

    /// The last progress task `id` of `queue` reported with
    /// [`TaskContext::progress`](crate::TaskContext::progress), decoded as `V`; `None` if it
    /// reported none (yet) or its record expired (an hour after the last report).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Decode`] if the stored value does not
    /// decode as `V`, [`Error::Redis`].
    pub async fn progress<V: serde::de::DeserializeOwned>(
        &self,
        queue: &str,
        id: &str,
    ) -> Result<Option<V>> {
        match crate::control::progress(&self.conn, &self.prefix, queue, id).await? {
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::Decode(format!("the progress of task {id}: {e}"))),
            None => Ok(None),
        }
    }

    /// The status of task `id` of `queue` (see [`TaskStatus`](crate::TaskStatus)), kept only
    /// for tracked task types ([`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl)):
    /// [`TaskStatus::Unknown`](crate::TaskStatus::Unknown) for an untracked task, an unknown
    /// id, or a status older than its ttl.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn status(&self, queue: &str, id: &str) -> Result<crate::TaskStatus> {
        crate::control::status(&self.conn, &self.prefix, queue, id).await
    }

    /// The result a tracked task's handler returned, decoded from its JSON as `V`; `None`
    /// while it has not succeeded, for an untracked task, or once its status expired.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Decode`] if the stored value does not
    /// decode as `V`, [`Error::Redis`].
    pub async fn result<V: serde::de::DeserializeOwned>(
        &self,
        queue: &str,
        id: &str,
    ) -> Result<Option<V>> {
        crate::control::result(&self.conn, &self.prefix, queue, id).await
    }

    /// Waits for tracked task `id` to finish and returns its result: polls its status (one
    /// `HGETALL` per poll, every 10 ms at first, backing off to every 500 ms), for at most
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimeout`] when `timeout` passed first (also for an id with no status:
    /// unknown, untracked or expired, which is polled on, since a unique task's status starts
    /// when it runs); [`Error::TaskFailed`] when the task was dead-lettered or cancelled;
    /// [`Error::Decode`], [`Error::Redis`] as [`result`](Self::result).
    pub async fn wait<V: serde::de::DeserializeOwned>(
        &self,
        queue: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<V> {
        crate::control::wait(&self.conn, &self.prefix, queue, id, timeout).await
    }
}
