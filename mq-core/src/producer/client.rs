//! [`Producer`]: the struct every file of the producer adds methods to, its payload cap (and
//! the envelope it checks) and its key prefix.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use crate::{
    envelope::Envelope,
    error::Result,
    redis::conn::Conn,
    task::{Priority, Task},
};

use super::{durability::Durability, envelope::new_envelope};

/// Enqueues tasks. Cheap to clone; clones share one multiplexed connection, so concurrent
/// `enqueue` calls from many tokio tasks are pipelined together.
///
/// Every enqueue method refuses a task whose MessagePack payload is larger than
/// [`max_payload`](Self::max_payload) ([`DEFAULT_MAX_PAYLOAD`] unless set with
/// [`with_max_payload`](Self::with_max_payload)) with [`Error::PayloadTooLarge`] before
/// writing it, so one bad producer cannot fill Redis with huge entries.
///
/// # Examples
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, mq_core::Task)]
/// # struct EmbedText { product_id: u64, text: String }
/// # async fn run() -> mq_core::Result<()> {
/// let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
/// let id = producer.enqueue(EmbedText { product_id: 7, text: "red shoe".into() }).await?;
/// println!("enqueued {id}");
/// # Ok(()) }
/// ```
///
/// [`DEFAULT_MAX_PAYLOAD`]: super::DEFAULT_MAX_PAYLOAD
/// [`Error::PayloadTooLarge`]: crate::Error::PayloadTooLarge
#[derive(Clone)]
pub struct Producer {
    pub(super) conn: Conn,
    pub(super) prefix: String,
    pub(super) max_payload: usize,
    pub(super) durability: Option<Durability>,
    /// The server's `(major, minor)` version read at connect, if it could be.
    pub(super) server_version: Option<(u32, u32)>,
    /// Round-robin counter for tasks of partitioned queues without a partition key.
    pub(super) next_partition: Arc<AtomicU64>,
    /// Partition counts set on the builder, by queue.
    pub(super) partitions: Arc<HashMap<String, u16>>,
    /// Enqueues of unique tasks this producer (and its clones) saw refused as duplicates.
    pub(super) duplicates: Arc<AtomicU64>,
    /// The priority level of every task this producer enqueues (see
    /// [`with_priority`](Producer::with_priority)); `None`: each type's default.
    pub(super) priority: Option<Priority>,
    /// The queues this producer (or a clone) has added to the queue registry
    /// `{prefix}:queues`: each is added with the first write to it, in the same round trip.
    pub(super) registered: Arc<Mutex<HashSet<String>>>,
    /// Whether the user's permissions for tracked task types ([`acl::PRODUCER_TRACKED`]) were
    /// checked (once, before the first tracked task).
    ///
    /// [`acl::PRODUCER_TRACKED`]: crate::redis::acl::PRODUCER_TRACKED
    pub(super) tracked_checked: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("prefix", &self.prefix)
            .field("max_payload", &self.max_payload)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Sets the largest MessagePack payload (in bytes) this producer enqueues; larger tasks
    /// are refused with [`Error::PayloadTooLarge`]. Default [`DEFAULT_MAX_PAYLOAD`]. Redis
    /// itself takes up to its `proto-max-bulk-len` (512 MB by default), so raise it with care.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let producer = mq_core::Producer::connect("redis://127.0.0.1/")
    ///     .await?
    ///     .with_max_payload(8 * 1024 * 1024);
    /// assert_eq!(producer.max_payload(), 8 * 1024 * 1024);
    /// # Ok(()) }
    /// ```
    ///
    /// [`DEFAULT_MAX_PAYLOAD`]: super::DEFAULT_MAX_PAYLOAD
    /// [`Error::PayloadTooLarge`]: crate::Error::PayloadTooLarge
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The largest payload this producer enqueues, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The envelope of a new task, its payload checked against the cap.
    pub(super) fn envelope<T: Task>(
        &self,
        task: &T,
        now: u64,
        traceparent: Option<&str>,
    ) -> Result<Envelope> {
        self.level::<T>()?;
        new_envelope(task, now, traceparent, self.max_payload)
    }
}
