//! Delayed tasks: [`Producer::enqueue_in`], [`Producer::enqueue_at`] and their batches,
//! through the queue's `delayed` set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    envelope::{now_ms, Envelope},
    error::Result,
    redis::{keys::QueueKeys, scripts},
    task::Task,
    trace::current_traceparent,
};

use super::{client::Producer, tracked::record_enqueue};

impl Producer {
    /// Enqueues a task to run after `delay` (measured by the Redis server's clock) and returns
    /// its id. The task waits in the queue's `delayed` set; if it is now the earliest there,
    /// the workers' promoters are woken (Pub/Sub) and move it to the stream when it is due,
    /// within a few milliseconds. One script call (and, for a [durable](Self::durable)
    /// producer, a `WAIT` in the same round trip).
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
    /// # struct Remind { user: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// use std::time::Duration;
    /// producer.enqueue_in(Duration::from_secs(15 * 60), Remind { user: 7 }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in<T: Task>(&self, delay: Duration, task: T) -> Result<String> {
        self.schedule_one(Due::In(delay), task).await
    }

    /// Enqueues a task to run at `at` (a wall-clock time; compared with the Redis server's
    /// clock) and returns its id. Times in the past run as soon as a promoter sees them. As
    /// [`enqueue_in`](Self::enqueue_in) otherwise.
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
    /// # struct Remind { user: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// use std::time::{Duration, SystemTime};
    /// let tomorrow = SystemTime::now() + Duration::from_secs(24 * 3600);
    /// producer.enqueue_at(tomorrow, Remind { user: 7 }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_at<T: Task>(&self, at: SystemTime, task: T) -> Result<String> {
        self.schedule_one(Due::At(at), task).await
    }

    /// Enqueues many tasks to run after `delay` (each measured from its own arrival at Redis),
    /// pipelined like [`enqueue_many`](Self::enqueue_many), and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn enqueue_many_in<T: Task>(
        &self,
        delay: Duration,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        self.schedule_many(Due::In(delay), tasks).await
    }

    /// Enqueues many tasks to run at `at`, pipelined like [`enqueue_many`](Self::enqueue_many),
    /// and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn enqueue_many_at<T: Task>(
        &self,
        at: SystemTime,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        self.schedule_many(Due::At(at), tasks).await
    }

    /// Schedules one task: one script call, loaded and sent again if Redis does not have it.
    async fn schedule_one<T: Task>(&self, due: Due, task: T) -> Result<String> {
        self.check_tracked::<T>().await?;
        let env = self.envelope(&task, now_ms(), current_traceparent().as_deref())?;
        if env.unique.is_some() {
            let outcome = self.submit_unique(&task, env, Some(due)).await?;
            return Ok(outcome.into_id());
        }
        let keys = self
            .partition_keys::<T>()
            .swap_remove(self.partition_of(&task));
        self.schedule_env(due, &keys, env).await
    }

    /// Enqueues a task given by queue, task name and MessagePack payload, as
    /// [`enqueue_raw`](Self::enqueue_raw) does, to run after `delay` as
    /// [`enqueue_in`](Self::enqueue_in) does. One script call.
    ///
    /// # Errors
    ///
    /// As [`enqueue_raw`](Self::enqueue_raw).
    pub async fn enqueue_raw_in(
        &self,
        delay: Duration,
        queue: &str,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<String> {
        let env = self.raw_envelope(queue, name, payload)?;
        let keys = self.raw_keys(queue);
        self.schedule_env(Due::In(delay), &keys, env).await
    }

    /// Sends the schedule script for `env` (not unique) into `keys`' delayed set.
    pub(super) async fn schedule_env(
        &self,
        due: Due,
        keys: &QueueKeys,
        env: Envelope,
    ) -> Result<String> {
        let member = env.to_delayed_member();
        let mut inv = scripts::SCHEDULE.prepare_invoke();
        due.schedule_args(&mut inv, keys, &member);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&inv).ignore();
        if env.track.is_some() || env.events {
            record_enqueue(&mut pipe, keys, &env, Some(due.unix_ms()));
        }
        let sent = self.send_registering(&keys.queue, pipe.clone(), 0).await;
        let sent = match sent {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_script(&scripts::SCHEDULE, "schedule").await?;
                self.send_registering(&keys.queue, pipe, 0).await
            }
            sent => sent,
        };
        match self.checked(sent.map(|(_, s)| s), "schedule").await? {
            None => Ok(env.id),
            Some(short) => Err(short.into_error(vec![env.id])),
        }
    }

    /// Schedules tasks with one schedule script call each, [`ENQUEUE_BATCH`] per pipeline and
    /// [`ENQUEUE_PIPELINES_IN_FLIGHT`] pipelines in flight. The script is loaded first (one
    /// round trip) because a pipelined `EVALSHA` does not load it by itself.
    ///
    /// [`ENQUEUE_BATCH`]: super::ENQUEUE_BATCH
    /// [`ENQUEUE_PIPELINES_IN_FLIGHT`]: super::ENQUEUE_PIPELINES_IN_FLIGHT
    async fn schedule_many<T: Task>(
        &self,
        due: Due,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        let mut tasks = tasks.into_iter().peekable();
        if tasks.peek().is_some() {
            self.load_script(&scripts::SCHEDULE, "schedule").await?;
        }
        self.add_many(tasks, Some(due)).await.map(|(ids, _)| ids)
    }
}

/// Unix milliseconds of `at` (0 before the epoch).
pub(super) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When scheduled tasks are due.
#[derive(Clone, Copy)]
pub(super) enum Due {
    /// After a delay, by the server clock.
    In(Duration),
    /// At a wall-clock time.
    At(SystemTime),
}

impl Due {
    /// The due time in unix ms (by this host's clock for a delay).
    pub(super) fn unix_ms(self) -> u64 {
        match self {
            Due::In(d) => now_ms() + d.as_millis() as u64,
            Due::At(at) => at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The keys and arguments of `lua/schedule.lua` for `member`.
    pub(super) fn schedule_args(
        self,
        inv: &mut redis::ScriptInvocation<'_>,
        keys: &QueueKeys,
        member: &[u8],
    ) {
        inv.key(&keys.delayed);
        match self {
            Due::In(d) => inv.arg(d.as_millis() as u64).arg(0),
            Due::At(at) => inv.arg("-").arg(
                at.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            ),
        };
        inv.arg(member).arg(&keys.wake);
    }
}
