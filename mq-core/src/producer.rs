//! [`Producer`]: enqueue tasks, one at a time, pipelined in batches, or delayed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use redis::aio::ConnectionManager;

use crate::{
    envelope::{new_task_id, now_ms, Envelope},
    error::{Error, Result},
    redis::{conn, keys, keys::QueueKeys, scripts},
    task::Task,
    trace::current_traceparent,
};

/// Commands per pipeline in [`Producer::enqueue_many`]: 1,000.
pub const ENQUEUE_BATCH: usize = 1_000;
/// Pipelines of one `enqueue_many` call in flight at once: 4.
pub const ENQUEUE_PIPELINES_IN_FLIGHT: usize = 4;

/// Enqueues tasks. Cheap to clone; clones share one multiplexed connection, so concurrent
/// `enqueue` calls from many tokio tasks are pipelined together.
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
#[derive(Clone)]
pub struct Producer {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Producer`] beyond the URL: `Producer::builder(url).prefix("app").connect()`.
pub struct ProducerBuilder {
    url: String,
    prefix: String,
    allow_eviction: bool,
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("url", &conn::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("allow_eviction", &self.allow_eviction)
            .finish()
    }
}

impl ProducerBuilder {
    /// Key prefix (must match the workers'). Default: `mq`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Connects even if Redis's `maxmemory-policy` may evict keys. By default `connect`
    /// refuses an evicting Redis: it drops streams and delayed sets, and the tasks in them.
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Connects and checks that Redis does not evict keys.
    ///
    /// # Errors
    ///
    /// As [`Producer::connect`].
    pub async fn connect(self) -> Result<Producer> {
        let client = conn::client(&self.url)?;
        let mut conn = conn::managed(&client, conn::COMMAND_TIMEOUT).await?;
        if !self.allow_eviction {
            conn::check_eviction_policy(&mut conn).await?;
        }
        Ok(Producer {
            conn,
            prefix: self.prefix,
        })
    }
}

impl Producer {
    /// Connects to Redis at `url` with the default key prefix (`mq`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or a Redis whose `maxmemory-policy` may evict keys
    /// (see [`ProducerBuilder::allow_eviction`]), [`Error::Redis`] if Redis cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, keys::DEFAULT_PREFIX).await
    }

    /// Connects with a key prefix of your own (must match the workers').
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        Self::builder(url).prefix(prefix).connect().await
    }

    /// A [`ProducerBuilder`] for settings beyond the URL.
    pub fn builder(url: &str) -> ProducerBuilder {
        ProducerBuilder {
            url: url.to_owned(),
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            allow_eviction: false,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `T`'s queue.
    pub fn keys<T: Task>(&self) -> QueueKeys {
        QueueKeys::new(&self.prefix, T::QUEUE)
    }

    /// Enqueues one task and returns its id. One `XADD`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the task cannot be serialized, [`Error::Redis`] if the `XADD`
    /// failed: then the task was not enqueued (or, on a timeout, maybe was).
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<String> {
        let env = envelope(&task, now_ms(), current_traceparent().as_deref())?;
        let cmd = xadd(&stream_key(&self.prefix, T::QUEUE), &env);
        let _: () = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XADD"))?;
        Ok(env.id)
    }

    /// Enqueues many tasks with pipelined `XADD`s (one round trip per [`ENQUEUE_BATCH`] tasks)
    /// and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue). On a Redis error some batches may have been enqueued.
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        let stream = stream_key(&self.prefix, T::QUEUE);
        let now = now_ms();
        let traceparent = current_traceparent();
        let mut ids = Vec::new();
        // Pipelines are sent as soon as they are built, a few in flight at once, so building
        // overlaps sending and memory stays bounded however many tasks there are.
        let mut in_flight = futures::stream::FuturesOrdered::new();
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let mut pipe = redis::pipe();
            for task in tasks.by_ref().take(ENQUEUE_BATCH) {
                let env = envelope(&task, now, traceparent.as_deref())?;
                pipe.add_command(xadd(&stream, &env)).ignore();
                ids.push(env.id);
            }
            let mut conn = self.conn.clone();
            in_flight.push_back(async move { pipe.query_async::<()>(&mut conn).await });
            if in_flight.len() >= ENQUEUE_PIPELINES_IN_FLIGHT {
                if let Some(r) = in_flight.next().await {
                    r.map_err(Error::redis("XADD"))?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            r.map_err(Error::redis("XADD"))?;
        }
        Ok(ids)
    }

    /// Enqueues a task given by queue, task name and an already encoded MessagePack payload
    /// (for tools and other languages' bridges; the CLI's `mq enqueue` uses it) and returns its
    /// id. One `XADD`, like [`enqueue`](Self::enqueue).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `queue` is not a valid queue name or `name` is empty,
    /// [`Error::Redis`] if the `XADD` failed.
    pub async fn enqueue_raw(&self, queue: &str, name: &str, payload: Vec<u8>) -> Result<String> {
        keys::validate_queue_name(queue).map_err(Error::Config)?;
        if name.is_empty() {
            return Err(Error::Config("task name must not be empty".into()));
        }
        let env = Envelope {
            id: new_task_id(),
            name: name.to_owned(),
            payload,
            attempt: 0,
            enqueued_at: now_ms(),
            traceparent: None,
            error: None,
        };
        let _: () = xadd(&stream_key(&self.prefix, queue), &env)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XADD"))?;
        Ok(env.id)
    }

    /// Enqueues a task to run after `delay` (measured by the Redis server's clock). The task
    /// waits in the queue's `delayed` set until a worker's promoter moves it to the stream.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue).
    pub async fn enqueue_in<T: Task>(&self, delay: Duration, task: T) -> Result<String> {
        let env = envelope(&task, now_ms(), current_traceparent().as_deref())?;
        let keys = self.keys::<T>();
        let _: i64 = scripts::SCHEDULE
            .key(&keys.delayed)
            .arg(delay.as_millis() as u64)
            .arg(env.to_delayed_member())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("schedule"))?;
        Ok(env.id)
    }

    /// Enqueues a task to run at `at` (a wall-clock time; compared with the Redis server's
    /// clock). Times in the past run as soon as a promoter sees them.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue).
    pub async fn enqueue_at<T: Task>(&self, at: SystemTime, task: T) -> Result<String> {
        let env = envelope(&task, now_ms(), current_traceparent().as_deref())?;
        let due = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _: i64 = redis::cmd("ZADD")
            .arg(&self.keys::<T>().delayed)
            .arg(due)
            .arg(env.to_delayed_member())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("ZADD"))?;
        Ok(env.id)
    }
}

fn stream_key(prefix: &str, queue: &str) -> String {
    QueueKeys::new(prefix, queue).stream
}

fn envelope<T: Task>(task: &T, now: u64, traceparent: Option<&str>) -> Result<Envelope> {
    let payload = rmp_serde::to_vec_named(task).map_err(|source| Error::Encode {
        task: T::NAME,
        source,
    })?;
    Ok(Envelope {
        id: new_task_id(),
        name: T::NAME.to_owned(),
        payload,
        attempt: 0,
        enqueued_at: now,
        traceparent: traceparent.map(str::to_owned),
        error: None,
    })
}

fn xadd(stream: &str, env: &Envelope) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    env.write_fields(&mut cmd);
    cmd
}
