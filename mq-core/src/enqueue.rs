//! [`Enqueue`]: what code that enqueues tasks needs of a producer, so that tests can pass a
//! [`TestProducer`](crate::testing::TestProducer) where production passes a
//! [`Producer`].

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use crate::{error::Result, producer::Producer, task::Task};

/// Enqueues tasks: implemented by [`Producer`] (Redis) and by
/// [`TestProducer`](crate::testing::TestProducer) (records them, no Redis). Write code that
/// enqueues against `&impl Enqueue` to test it without Redis; each method does what the
/// [`Producer`] method of the same name does.
///
/// # Examples
///
/// ```
/// use mq_core::{Enqueue, Task};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, Task)]
/// struct Welcome { user: u64 }
///
/// async fn sign_up(queue: &impl Enqueue, user: u64) -> mq_core::Result<()> {
///     queue.enqueue(Welcome { user }).await?;
///     Ok(())
/// }
/// ```
pub trait Enqueue: Send + Sync {
    /// Enqueues one task and returns its id (see [`Producer::enqueue`]).
    fn enqueue<T: Task>(&self, task: T) -> impl Future<Output = Result<String>> + Send;

    /// Enqueues a task to run after `delay` (see [`Producer::enqueue_in`]).
    fn enqueue_in<T: Task>(
        &self,
        delay: Duration,
        task: T,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Enqueues a task to run at `at` (see [`Producer::enqueue_at`]).
    fn enqueue_at<T: Task>(
        &self,
        at: SystemTime,
        task: T,
    ) -> impl Future<Output = Result<String>> + Send;
}

impl Enqueue for Producer {
    fn enqueue<T: Task>(&self, task: T) -> impl Future<Output = Result<String>> + Send {
        Producer::enqueue(self, task)
    }

    fn enqueue_in<T: Task>(
        &self,
        delay: Duration,
        task: T,
    ) -> impl Future<Output = Result<String>> + Send {
        Producer::enqueue_in(self, delay, task)
    }

    fn enqueue_at<T: Task>(
        &self,
        at: SystemTime,
        task: T,
    ) -> impl Future<Output = Result<String>> + Send {
        Producer::enqueue_at(self, at, task)
    }
}
