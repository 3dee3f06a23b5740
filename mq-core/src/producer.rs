//! [`Producer`]: enqueue tasks, one at a time, pipelined in batches, or delayed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use redis::aio::ConnectionManager;

use crate::{
    config::TlsOptions,
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
/// Default cap on one task's MessagePack payload: 1 MiB. Ten thousand times a typical task
/// (ids, a URL, a text: ~100 bytes), room for a document's text or a thumbnail, and small
/// enough that a worker's fetch (up to 512 entries) or its in-flight tasks stay in the hundreds
/// of MiB. Larger data belongs in an object store, with its key in the task. Change it with
/// [`Producer::with_max_payload`].
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

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
#[derive(Clone)]
pub struct Producer {
    conn: ConnectionManager,
    prefix: String,
    max_payload: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("prefix", &self.prefix)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Producer`] beyond the URL: `Producer::builder(url).prefix("app").connect()`.
pub struct ProducerBuilder {
    url: String,
    prefix: String,
    allow_eviction: bool,
    max_payload: usize,
    tls: TlsOptions,
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("url", &conn::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("allow_eviction", &self.allow_eviction)
            .field("max_payload", &self.max_payload)
            .field("tls", &self.tls)
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

    /// Largest MessagePack payload accepted, in bytes (see [`Producer::with_max_payload`]).
    /// Default: [`DEFAULT_MAX_PAYLOAD`].
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// TLS settings for a `rediss://` URL: a CA file, and a client certificate and key for
    /// mutual TLS (see [`TlsOptions`]; [`TlsOptions::from_env`] reads them from `MQ_TLS_CA`,
    /// `MQ_TLS_CERT`, `MQ_TLS_KEY`). Default: none (a `rediss://` URL trusts the system's
    /// roots).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Connects and checks that Redis does not evict keys.
    ///
    /// # Errors
    ///
    /// As [`Producer::connect`]; [`Error::Config`] for an unreadable or empty PEM file or TLS
    /// settings with a `redis://` URL, [`Error::Tls`] for a certificate the server or the
    /// client does not accept.
    pub async fn connect(self) -> Result<Producer> {
        let client = conn::client(&self.url, &self.tls)?;
        let mut conn = conn::managed(&client, conn::COMMAND_TIMEOUT).await?;
        if !self.allow_eviction {
            conn::check_eviction_policy(&mut conn).await?;
        }
        Ok(Producer {
            conn,
            prefix: self.prefix,
            max_payload: self.max_payload,
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
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let producer = mq_core::Producer::builder("redis://127.0.0.1/")
    ///     .prefix("shop") // workers use `.prefix("shop")` too
    ///     .max_payload(4 * 1024 * 1024)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(url: &str) -> ProducerBuilder {
        ProducerBuilder {
            url: url.to_owned(),
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            allow_eviction: false,
            max_payload: DEFAULT_MAX_PAYLOAD,
            tls: TlsOptions::default(),
        }
    }

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

    /// The keys of `T`'s queue.
    pub fn keys<T: Task>(&self) -> QueueKeys {
        QueueKeys::new(&self.prefix, T::QUEUE)
    }

    /// Enqueues one task and returns its id. One `XADD`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the task cannot be serialized, [`Error::PayloadTooLarge`] if its
    /// payload is over [`max_payload`](Self::max_payload) (nothing is written),
    /// [`Error::Redis`] if the `XADD` failed: then the task was not enqueued (or, on a
    /// timeout, maybe was).
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<String> {
        let env = self.envelope(&task, now_ms(), current_traceparent().as_deref())?;
        let cmd = xadd(&stream_key(&self.prefix, T::QUEUE), &env);
        let _: () = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XADD"))
            .or_else_readonly(&self.conn)
            .await?;
        Ok(env.id)
    }

    /// Enqueues many tasks with pipelined `XADD`s (one round trip per [`ENQUEUE_BATCH`] tasks)
    /// and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue). On a Redis error, or a task that cannot be encoded or is
    /// too large, the batches of [`ENQUEUE_BATCH`] tasks before it may have been enqueued
    /// (not the failing task's own batch).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Remind { user: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// let ids = producer.enqueue_many((1..=10_000).map(|user| Remind { user })).await?;
    /// assert_eq!(ids.len(), 10_000);
    /// # Ok(()) }
    /// ```
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
                let env = self.envelope(&task, now, traceparent.as_deref())?;
                pipe.add_command(xadd(&stream, &env)).ignore();
                ids.push(env.id);
            }
            let mut conn = self.conn.clone();
            in_flight.push_back(async move { pipe.query_async::<()>(&mut conn).await });
            if in_flight.len() >= ENQUEUE_PIPELINES_IN_FLIGHT {
                if let Some(r) = in_flight.next().await {
                    r.map_err(Error::redis("XADD"))
                        .or_else_readonly(&self.conn)
                        .await?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            r.map_err(Error::redis("XADD"))
                .or_else_readonly(&self.conn)
                .await?;
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
    /// [`Error::PayloadTooLarge`] if `payload` is over [`max_payload`](Self::max_payload),
    /// [`Error::Redis`] if the `XADD` failed.
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
        keys::validate_queue_name(queue).map_err(Error::Config)?;
        if name.is_empty() {
            return Err(Error::Config("task name must not be empty".into()));
        }
        self.check_payload(name, &payload)?;
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
            .map_err(Error::redis("XADD"))
            .or_else_readonly(&self.conn)
            .await?;
        Ok(env.id)
    }

    /// Enqueues a task to run after `delay` (measured by the Redis server's clock) and returns
    /// its id. The task waits in the queue's `delayed` set; if it is now the earliest there,
    /// the workers' promoters are woken (Pub/Sub) and move it to the stream when it is due,
    /// within a few milliseconds. One script call.
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

    /// Schedules one task: one script call (loaded on first use by `invoke_async`).
    async fn schedule_one<T: Task>(&self, due: Due, task: T) -> Result<String> {
        let env = self.envelope(&task, now_ms(), current_traceparent().as_deref())?;
        let keys = self.keys::<T>();
        let member = env.to_delayed_member();
        let mut inv = scripts::SCHEDULE.prepare_invoke();
        due.schedule_args(&mut inv, &keys, &member);
        let _: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("schedule"))
            .or_else_readonly(&self.conn)
            .await?;
        Ok(env.id)
    }

    /// Schedules tasks with one schedule script call each, [`ENQUEUE_BATCH`] per pipeline and
    /// [`ENQUEUE_PIPELINES_IN_FLIGHT`] pipelines in flight. The script is loaded first (one
    /// round trip) because a pipelined `EVALSHA` does not load it by itself.
    async fn schedule_many<T: Task>(
        &self,
        due: Due,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        let keys = self.keys::<T>();
        let now = now_ms();
        let traceparent = current_traceparent();
        let mut tasks = tasks.into_iter().peekable();
        let mut ids = Vec::new();
        let mut loaded = false;
        let mut in_flight = futures::stream::FuturesOrdered::new();
        while tasks.peek().is_some() {
            let mut pipe = redis::pipe();
            for task in tasks.by_ref().take(ENQUEUE_BATCH) {
                let env = self.envelope(&task, now, traceparent.as_deref())?;
                let member = env.to_delayed_member();
                let mut inv = scripts::SCHEDULE.prepare_invoke();
                due.schedule_args(&mut inv, &keys, &member);
                pipe.invoke_script(&inv).ignore();
                ids.push(env.id);
            }
            if !loaded {
                loaded = true;
                let _: String = scripts::SCHEDULE
                    .prepare_invoke()
                    .load_async(&mut self.conn.clone())
                    .await
                    .map_err(Error::redis("schedule"))
                    .or_else_readonly(&self.conn)
                    .await?;
            }
            let mut conn = self.conn.clone();
            in_flight.push_back(async move { pipe.query_async::<()>(&mut conn).await });
            if in_flight.len() >= ENQUEUE_PIPELINES_IN_FLIGHT {
                if let Some(r) = in_flight.next().await {
                    r.map_err(Error::redis("schedule"))
                        .or_else_readonly(&self.conn)
                        .await?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            r.map_err(Error::redis("schedule"))
                .or_else_readonly(&self.conn)
                .await?;
        }
        Ok(ids)
    }

    /// The envelope of a new task, its payload checked against the cap.
    fn envelope<T: Task>(&self, task: &T, now: u64, traceparent: Option<&str>) -> Result<Envelope> {
        let payload = rmp_serde::to_vec_named(task).map_err(|source| Error::Encode {
            task: T::NAME,
            source,
        })?;
        self.check_payload(T::NAME, &payload)?;
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

    /// [`Error::PayloadTooLarge`] if `payload` is over the cap.
    fn check_payload(&self, task: &str, payload: &[u8]) -> Result<()> {
        if payload.len() > self.max_payload {
            return Err(Error::PayloadTooLarge {
                task: task.to_owned(),
                size: payload.len(),
                limit: self.max_payload,
            });
        }
        Ok(())
    }
}

fn stream_key(prefix: &str, queue: &str) -> String {
    QueueKeys::new(prefix, queue).stream
}

fn xadd(stream: &str, env: &Envelope) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    env.write_fields(&mut cmd);
    cmd
}

/// Closes the connection on `READONLY` (a failover behind the same address) so that the next
/// call reconnects to the new primary; the error is returned unchanged.
trait ReconnectOnReadonly<T> {
    async fn or_else_readonly(self, conn: &ConnectionManager) -> Result<T>;
}

impl<T> ReconnectOnReadonly<T> for Result<T> {
    async fn or_else_readonly(self, conn: &ConnectionManager) -> Result<T> {
        if let Err(Error::Redis { source, .. }) = &self {
            conn::reconnect_if_readonly(conn, source).await;
        }
        self
    }
}

/// When scheduled tasks are due.
#[derive(Clone, Copy)]
enum Due {
    /// After a delay, by the server clock.
    In(Duration),
    /// At a wall-clock time.
    At(SystemTime),
}

impl Due {
    /// The keys and arguments of `lua/schedule.lua` for `member`.
    fn schedule_args(self, inv: &mut redis::ScriptInvocation<'_>, keys: &QueueKeys, member: &[u8]) {
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
