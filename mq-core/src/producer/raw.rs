//! Tasks whose type is known only at run time ([`RawTask`]): what other languages' bridges
//! (mq-python) and tools enqueue, with the options a `#[derive(Task)]` type gives statically.

use std::time::Duration;

use crate::{
    envelope::Envelope,
    error::{Error, Result},
    redis::keys::QueueKeys,
    task::Priority,
};

use super::{
    client::Producer, delayed::Due, envelope::xadd, tracked::record_enqueue, unique::Enqueued,
};

/// A task given by queue, task name and an encoded MessagePack payload, with the options that
/// a `#[derive(Task)]` type would carry: a [unique key](Self::unique) and a
/// [result ttl](Self::result_ttl). Enqueued by [`Producer::submit_raw`] or, in a run, by
/// [`Run::enqueue_raw`](super::Run::enqueue_raw).
///
/// ```no_run
/// # async fn demo(producer: &mq_core::Producer) -> mq_core::Result<()> {
/// use mq_core::RawTask;
/// // MessagePack of `{"user": 7}`.
/// let payload = vec![0x81, 0xa4, b'u', b's', b'e', b'r', 0x07];
/// let task = RawTask::new("remind", "Remind", payload).unique("remind:7");
/// let outcome = producer.submit_raw(task, None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RawTask {
    pub(super) queue: String,
    pub(super) name: String,
    pub(super) payload: Vec<u8>,
    unique: Option<String>,
    result_ttl: Option<Duration>,
}

impl RawTask {
    /// A task for `queue` (a queue or one partition of it, `texts#3`) named `name` (the name
    /// a worker's handler is registered under), with `payload` as its MessagePack body.
    pub fn new(queue: impl Into<String>, name: impl Into<String>, payload: Vec<u8>) -> Self {
        Self {
            queue: queue.into(),
            name: name.into(),
            payload,
            unique: None,
            result_ttl: None,
        }
    }

    /// Makes the task unique under `key`, as [`Task::unique_key`](crate::Task::unique_key)
    /// does: while a task with the same key in the same queue is live, this one is not added.
    #[must_use]
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique = Some(key.into());
        self
    }

    /// Tracks the task as [`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl) does:
    /// its status (and its result, if its handler stores one) is kept for `ttl` after it ends.
    #[must_use]
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = Some(ttl);
        self
    }

    /// Whether the task is tracked (its producer then needs the tracked-producer ACL).
    pub(super) fn tracked(&self) -> bool {
        self.result_ttl.is_some()
    }

    /// Its envelope, checked as [`Producer::enqueue_raw`]'s is.
    pub(super) fn envelope(self, producer: &Producer) -> Result<Envelope> {
        if self.unique.as_deref() == Some("") {
            return Err(Error::Config(format!(
                "task {}: a unique key must not be empty",
                self.name
            )));
        }
        let mut env = producer.raw_envelope(&self.queue, &self.name, self.payload)?;
        env.unique = self.unique;
        env.track = self.result_ttl.map(|d| d.as_millis().max(1) as u64);
        Ok(env)
    }
}

impl Producer {
    /// Enqueues a [`RawTask`] now (`delay` is `None`) or after `delay`, and says whether it
    /// was added or, for a unique task whose key is held, refused as a duplicate of the live
    /// task. A plain task is one `XADD` (what [`enqueue_raw`](Self::enqueue_raw) sends), a
    /// delayed one one script call, a unique one the unique script, a tracked one adds its
    /// status write to the same round trip.
    ///
    /// # Errors
    ///
    /// As [`enqueue_raw`](Self::enqueue_raw); [`Error::Config`] for an empty unique key;
    /// for a tracked task, [`Error::Acl`](crate::Error) if the user lacks the tracked
    /// producer's permissions.
    pub async fn submit_raw(&self, task: RawTask, delay: Option<Duration>) -> Result<Enqueued> {
        let (tracked, queue) = (task.tracked(), task.queue.clone());
        let env = task.envelope(self)?;
        self.check_tracked_if(tracked).await?;
        let keys = self.raw_keys(&queue);
        let due = delay.map(Due::In);
        if env.unique.is_some() {
            return self.submit_unique_at(keys, env, due).await;
        }
        if let Some(due) = due {
            return self
                .schedule_env(due, &keys, env)
                .await
                .map(Enqueued::Added);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(xadd(&keys.stream, &env)).ignore();
        if env.track.is_some() {
            record_enqueue(&mut pipe, &keys, &env, None);
        }
        self.send_one(&queue, pipe, "XADD", env.id)
            .await
            .map(Enqueued::Added)
    }

    /// The keys of `queue` (or partition) at this producer's priority level.
    pub(super) fn raw_keys(&self, queue: &str) -> QueueKeys {
        let keys = QueueKeys::new(&self.prefix, queue);
        match self.priority {
            None | Some(Priority::Normal) => keys,
            Some(level) => keys.level(level),
        }
    }
}
