//! One task of a queue: cancelling it, and reading its progress, status, events and result
//! ([`Admin::cancel`], [`Admin::progress`], [`Admin::status`], [`Admin::events`],
//! [`Admin::result`]), through [`control`](crate::control) as producers do.

use super::client::Admin;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

impl Admin {
    /// Cancels task `id` of `queue` (a queue's name, or a partition's): a queued or delayed
    /// task is removed and never runs; a running one is signalled through its
    /// [`TaskContext::cancelled`](crate::TaskContext::cancelled) within one lease-renewal
    /// interval and settled as cancelled, never retried. An unknown or finished id is
    /// [`CancelOutcome::NotFound`](crate::CancelOutcome::NotFound), not an error. The queue's
    /// stream must have this admin's consumer group (the one its workers use): if it has
    /// another, the call fails with `NOGROUP` and changes nothing (a running task is never taken
    /// for a queued one). Looks through
    /// the queue's stream and delayed set in chunks of
    /// [`CANCEL_SCAN_CHUNK`](crate::control::CANCEL_SCAN_CHUNK) (one script call each): its cost
    /// grows with the queue's backlog, and nothing is spent while nothing is cancelled.
    ///
    /// ```no_run
    /// # async fn demo(id: &str) -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// match admin.cancel("embeddings", id).await? {
    ///     mq_core::CancelOutcome::Running { consumer } => println!("signalled on {consumer}"),
    ///     other => println!("{other}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`] (`NOGROUP`: the workers use
    /// another group; `BUSY`: [`CANCEL_MAX_MARKS`](crate::control::CANCEL_MAX_MARKS) running
    /// tasks of the queue are being cancelled already).
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<crate::CancelOutcome> {
        crate::control::cancel(&self.conn, &self.prefix, Some(&self.group), queue, id).await
    }

    /// The last progress task `id` of `queue` reported with
    /// [`TaskContext::progress`](crate::TaskContext::progress), as JSON; `None` if it reported
    /// none (yet) or its record expired (an hour after the last report).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Decode`] if the stored value is not
    /// JSON, [`Error::Redis`].
    pub async fn progress(&self, queue: &str, id: &str) -> Result<Option<serde_json::Value>> {
        crate::control::progress(&self.conn, &self.prefix, queue, id).await
    }

    /// The status of tracked task `id` of `queue`, as
    /// [`Producer::status`](crate::Producer::status) reads it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn status(&self, queue: &str, id: &str) -> Result<crate::TaskStatus> {
        crate::control::status(&self.conn, &self.prefix, queue, id).await
    }

    /// The next events of `queue`'s event stream(s) after `cursor` (which this advances), at
    /// most `count` per stream; with `block`, waits up to that long when there are none (see
    /// `mq events --follow`). Only task types with [`TaskOptions::events`](crate::TaskOptions::events)
    /// write events.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn events(
        &self,
        queue: &str,
        cursor: &mut crate::EventCursor,
        count: usize,
        block: Option<std::time::Duration>,
    ) -> Result<Vec<crate::TaskEvent>> {
        crate::control::events(&self.conn, &self.prefix, queue, cursor, count, block).await
    }

    /// The events of task `id` of `stream` (a queue's or partition's stream name) among the
    /// newest [`TASK_EVENTS_WINDOW`](crate::control::TASK_EVENTS_WINDOW) events of that stream,
    /// oldest first, in one `XREVRANGE`; the flag is `true` when the window held the whole
    /// event stream (so these are all of the task's events still kept), `false` when older
    /// ones may lie beyond it. Empty for task types without
    /// [`TaskOptions::events`](crate::TaskOptions::events).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad stream name, [`Error::Redis`].
    pub async fn task_events(
        &self,
        stream: &str,
        id: &str,
    ) -> Result<(Vec<crate::TaskEvent>, bool)> {
        crate::redis::keys::validate_queue_or_partition(stream).map_err(crate::Error::Config)?;
        crate::control::task_events(&self.conn, &self.prefix, stream, id).await
    }

    /// The stored result (JSON) of tracked task `id` of `queue`, as
    /// [`Producer::result`](crate::Producer::result) reads it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Decode`] if the stored value is not
    /// JSON, [`Error::Redis`].
    pub async fn result(&self, queue: &str, id: &str) -> Result<Option<serde_json::Value>> {
        crate::control::result(&self.conn, &self.prefix, queue, id).await
    }
}
