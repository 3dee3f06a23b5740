//! Priority levels: a producer's level for every task ([`Producer::with_priority`]), checked
//! against the task type's.

use crate::{
    error::{Error, Result},
    task::{Priority, Task},
};

use super::client::Producer;

impl Producer {
    /// Enqueues every task at priority level `priority` instead of its type's default (the
    /// derive's `priority`). Only a prioritized task type (one with `#[task(priority = ..)]`,
    /// whose workers read the levels) takes a level other than Normal: enqueuing another
    /// fails with [`Error::NotPrioritized`] and writes nothing. Each level has its own stream
    /// (see [`QueueKeys::level`]), so this costs nothing per task; clone the producer for a
    /// one-off (a clone shares the connection).
    ///
    /// [`enqueue_raw`](Self::enqueue_raw) writes to the level's stream of the queue named,
    /// unchecked: its workers must read the levels
    /// ([`WorkerBuilder::queue_priorities`](crate::WorkerBuilder::queue_priorities)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize, mq_core::Task)]
    /// #[task(priority = "normal")]
    /// struct Embed { product_id: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// use mq_core::Priority;
    /// let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// producer.enqueue(Embed { product_id: 1 }).await?; // Normal, the type's default
    /// let urgent = producer.clone().with_priority(Priority::High);
    /// urgent.enqueue(Embed { product_id: 2 }).await?; // starts before Normal tasks
    /// # Ok(()) }
    /// ```
    ///
    /// [`QueueKeys::level`]: crate::redis::keys::QueueKeys::level
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The level of `T`'s tasks from this producer: its own, or the type's default.
    pub(super) fn level<T: Task>(&self) -> Result<Priority> {
        match (self.priority, T::OPTIONS.priority) {
            (Some(p), Some(_)) => Ok(p),
            (None, default) => Ok(default.unwrap_or_default()),
            (Some(Priority::Normal), None) => Ok(Priority::Normal),
            (Some(priority), None) => Err(Error::NotPrioritized {
                task: T::NAME,
                queue: T::QUEUE,
                priority,
            }),
        }
    }
}
