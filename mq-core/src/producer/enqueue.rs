//! Enqueuing one task now: [`Producer::enqueue`], [`Producer::submit`],
//! [`Producer::enqueue_raw`].

use crate::{
    envelope::{now_ms, Envelope},
    error::{Error, Result},
    redis::{keys, keys::QueueKeys},
    task::{Priority, Task},
    trace::current_traceparent,
};

use super::{
    client::Producer, envelope::xadd, partition::stream_key, tracked::record_enqueue,
    unique::Enqueued,
};

impl Producer {
    /// Enqueues one task and returns its id. One `XADD` (and, for a [durable](Self::durable)
    /// producer, a `WAIT` in the same round trip).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the task cannot be serialized, [`Error::PayloadTooLarge`] if its
    /// payload is over [`max_payload`](Self::max_payload) (nothing is written),
    /// [`Error::Redis`] if the `XADD` failed: then the task was not enqueued (or, on a
    /// timeout, maybe was). [`Error::NotDurable`] if the producer is durable and too few
    /// replicas confirmed in time: the task is enqueued on the primary.
    ///
    /// A [unique](Task::unique_key) task whose key is held by a live task (queued, delayed,
    /// running or retrying, or within its [`unique_for`](crate::TaskOptions::unique_for)) is
    /// not added: the id returned is the live task's. [`submit`](Self::submit) tells the two
    /// apart.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<String> {
        self.check_tracked::<T>().await?;
        let env = self.envelope(&task, now_ms(), current_traceparent().as_deref())?;
        if env.unique.is_some() {
            return self
                .submit_unique(&task, env, None)
                .await
                .map(Enqueued::into_id);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(xadd(&self.stream_of(&task), &env))
            .ignore();
        if env.track.is_some() || env.events {
            let keys = self
                .partition_keys::<T>()
                .swap_remove(self.partition_of(&task));
            record_enqueue(&mut pipe, &keys, &env, None);
        }
        self.send_one(T::QUEUE, pipe, "XADD", env.id).await
    }

    /// Enqueues one task like [`enqueue`](Self::enqueue) and says whether it was added or, for
    /// a [unique](Task::unique_key) task whose key is held, refused as a duplicate of the live
    /// task (whose id [`Enqueued::Duplicate`] carries). A plain task is one `XADD`; a unique
    /// task one script call that checks and takes its key atomically with the `XADD`.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Embed { product_id: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// use mq_core::Enqueued;
    /// match producer.submit(Embed { product_id: 7 }).await? {
    ///     Enqueued::Added(id) => println!("enqueued {id}"),
    ///     Enqueued::Duplicate(id) => println!("product 7 is already queued or running as {id}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn submit<T: Task>(&self, task: T) -> Result<Enqueued> {
        self.check_tracked::<T>().await?;
        let env = self.envelope(&task, now_ms(), current_traceparent().as_deref())?;
        if env.unique.is_some() {
            return self.submit_unique(&task, env, None).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(xadd(&self.stream_of(&task), &env))
            .ignore();
        if env.track.is_some() || env.events {
            let keys = self
                .partition_keys::<T>()
                .swap_remove(self.partition_of(&task));
            record_enqueue(&mut pipe, &keys, &env, None);
        }
        self.send_one(T::QUEUE, pipe, "XADD", env.id)
            .await
            .map(Enqueued::Added)
    }

    /// Enqueues a task given by queue, task name and an already encoded MessagePack payload
    /// (for tools and other languages' bridges; the CLI's `mq enqueue` uses it) and returns its
    /// id. One `XADD`, like [`enqueue`](Self::enqueue).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `queue` is not a valid queue name or `name` is empty,
    /// [`Error::PayloadTooLarge`] if `payload` is over [`max_payload`](Self::max_payload),
    /// [`Error::Redis`] if the `XADD` failed, [`Error::NotDurable`] as in
    /// [`enqueue`](Self::enqueue).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// // MessagePack of `{"user": 7}`, as `rmp_serde::to_vec_named` writes it.
    /// let payload = vec![0x81, 0xa4, b'u', b's', b'e', b'r', 0x07];
    /// let id = producer.enqueue_raw("remind", "Remind", payload).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_raw(&self, queue: &str, name: &str, payload: Vec<u8>) -> Result<String> {
        let env = self.raw_envelope(queue, name, payload)?;
        let stream = match self.priority {
            None | Some(Priority::Normal) => stream_key(&self.prefix, queue),
            Some(level) => QueueKeys::new(&self.prefix, queue).level(level).stream,
        };
        let mut pipe = redis::pipe();
        pipe.add_command(xadd(&stream, &env)).ignore();
        self.send_one(queue, pipe, "XADD", env.id).await
    }

    /// The envelope of a raw task, its queue name, task name and payload size checked.
    pub(super) fn raw_envelope(
        &self,
        queue: &str,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<Envelope> {
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
        super::envelope::raw_envelope(name, payload, now_ms(), self.max_payload)
    }
}
