//! [`Producer`]: enqueue tasks, one at a time, pipelined in batches, or delayed.

mod durability;
mod envelope;

pub use durability::Durability;
pub use envelope::DEFAULT_MAX_PAYLOAD;

pub(crate) use envelope::{new_envelope, push_entry_fields};

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::redis::conn::Conn;
use futures::StreamExt;

use crate::{
    config::TlsOptions,
    envelope::{new_task_id, now_ms, Envelope},
    error::{Error, Result},
    redis::{acl, conn, keys, keys::QueueKeys, scripts},
    task::{Priority, Task},
    trace::current_traceparent,
};

use durability::{send, Shortfall};
use envelope::{check_payload, xadd};

/// Commands per pipeline in [`Producer::enqueue_many`]: 1,000.
pub const ENQUEUE_BATCH: usize = 1_000;
/// Pipelines of one `enqueue_many` call in flight at once: 4.
pub const ENQUEUE_PIPELINES_IN_FLIGHT: usize = 4;
/// Longest wait of a durable producer ([`Producer::durable`]) for its replicas: 5 s. A `WAIT`
/// blocks the producer's connection on the server, and every reply must come within the
/// connection's 10 s response timeout, concurrent enqueues queued behind the wait included.
pub const MAX_DURABLE_TIMEOUT: Duration = Duration::from_secs(5);

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
    conn: Conn,
    prefix: String,
    max_payload: usize,
    durability: Option<Durability>,
    /// The server's `(major, minor)` version read at connect, if it could be.
    server_version: Option<(u32, u32)>,
    /// Round-robin counter for tasks of partitioned queues without a partition key.
    next_partition: Arc<AtomicU64>,
    /// Partition counts set on the builder, by queue.
    partitions: Arc<HashMap<String, u16>>,
    /// Enqueues of unique tasks this producer (and its clones) saw refused as duplicates.
    duplicates: Arc<AtomicU64>,
    /// The priority level of every task this producer enqueues (see
    /// [`with_priority`](Producer::with_priority)); `None`: each type's default.
    priority: Option<Priority>,
    /// The queues this producer (or a clone) has added to the queue registry
    /// `{prefix}:queues`: each is added with the first write to it, in the same round trip.
    registered: Arc<Mutex<HashSet<String>>>,
    /// Whether the user's permissions for tracked task types ([`acl::PRODUCER_TRACKED`]) were
    /// checked (once, before the first tracked task).
    tracked_checked: Arc<std::sync::atomic::AtomicBool>,
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

/// Settings of a [`Producer`] beyond the URL: `Producer::builder(url).prefix("app").connect()`.
pub struct ProducerBuilder {
    url: String,
    prefix: String,
    allow_eviction: bool,
    max_payload: usize,
    tls: TlsOptions,
    partitions: HashMap<String, u16>,
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

    /// Spreads `queue`'s tasks over `partitions` streams, overriding the task's `partitions`
    /// (1 to [`MAX_PARTITIONS`](crate::task::MAX_PARTITIONS); the workers must use the same
    /// number, see [`WorkerBuilder::queue_partitions`](crate::WorkerBuilder::queue_partitions)).
    pub fn partitions(mut self, queue: &str, partitions: u16) -> Self {
        self.partitions.insert(queue.to_owned(), partitions);
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
        if let Some((q, n)) = self
            .partitions
            .iter()
            .find(|(_, n)| !(1..=crate::task::MAX_PARTITIONS).contains(*n))
        {
            return Err(Error::Config(format!(
                "partitions for {q} is {n}; it must be 1 to {}",
                crate::task::MAX_PARTITIONS
            )));
        }
        let endpoint = conn::Endpoint::open(&self.url, &self.tls)?;
        let mut conn = conn::managed(&endpoint, conn::COMMAND_TIMEOUT).await?;
        if !self.allow_eviction {
            conn::check_eviction_policy(&mut conn).await?;
        }
        acl::check_producer(&mut conn, &self.prefix).await?;
        let server_version = conn::server_version(&mut conn).await;
        Ok(Producer {
            conn,
            prefix: self.prefix,
            max_payload: self.max_payload,
            durability: None,
            server_version,
            next_partition: Arc::default(),
            partitions: Arc::new(self.partitions),
            duplicates: Arc::default(),
            priority: None,
            registered: Arc::default(),
            tracked_checked: Arc::default(),
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
            partitions: HashMap::new(),
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
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The level of `T`'s tasks from this producer: its own, or the type's default.
    fn level<T: Task>(&self) -> Result<Priority> {
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

    /// The largest payload this producer enqueues, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Makes every enqueue wait until `replicas` replicas have received its writes, or
    /// `timeout` has passed: each enqueue round trip (one task, or one pipeline of
    /// [`ENQUEUE_BATCH`] tasks) carries a `WAIT replicas timeout` after its writes, in the same
    /// pipeline, so it costs the wait and no extra round trip. When fewer replicas confirm in
    /// time, the call returns [`Error::NotDurable`]: the tasks ARE enqueued on the primary but
    /// may be lost in a failover. `replicas == 0` turns it off (no `WAIT` is sent, the
    /// default).
    ///
    /// Without it, an enqueue returns once the primary has the task; Redis replicates
    /// asynchronously, so a primary that fails in the next moments (typically under a
    /// millisecond, longer when a replica lags) takes the task with it when a replica is
    /// promoted. Even with it, a replica holds the task in memory only, and `WAIT` does not
    /// stop a failover from promoting a replica that missed it (Redis docs: `WAIT` makes
    /// loss unlikely, not impossible); see [`durable_aof`](Self::durable_aof) for fsync.
    ///
    /// A `WAIT` blocks the producer's connection on the server until it returns: concurrent
    /// enqueues on one producer (and its clones) take turns, each paying a replica round trip.
    /// For throughput, enqueue in batches ([`enqueue_many`](Self::enqueue_many): one wait per
    /// batch) or use several producers.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `timeout` is zero (to Redis, wait forever) or over
    /// [`MAX_DURABLE_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Charge { order: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// use std::time::Duration;
    /// let producer = mq_core::Producer::connect("redis://primary:6379/")
    ///     .await?
    ///     .durable(1, Duration::from_millis(500))?;
    /// match producer.enqueue(Charge { order: 7 }).await {
    ///     Ok(id) => println!("{id} is on the primary and a replica"),
    ///     Err(mq_core::Error::NotDurable { ids, .. }) => {
    ///         // Enqueued, but a failover now could lose it: retry (a duplicate is possible),
    ///         // or alert and go on.
    ///         eprintln!("{ids:?} not replicated in time");
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn durable(mut self, replicas: u32, timeout: Duration) -> Result<Self> {
        check_durable_timeout(timeout)?;
        self.durability = (replicas > 0).then_some(Durability::Replicas { replicas, timeout });
        Ok(self)
    }

    /// As [`durable`](Self::durable), with `WAITAOF` (Redis 7.2+) instead of `WAIT`: every
    /// enqueue waits until its writes are fsynced to the primary's append-only file (if
    /// `local`) and to the AOF of `replicas` replicas, or `timeout` has passed, and returns
    /// [`Error::NotDurable`] if they were not. Survives a power loss of the primary (with
    /// `local`) or of all but the confirming replicas, where [`durable`](Self::durable) only
    /// says the replicas have the writes in memory. Needs `appendonly yes` on the servers
    /// that must fsync (Redis answers an error otherwise). `durable_aof(false, 0, ..)` turns
    /// durability off.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server (its version read at connect) is older than 7.2 or
    /// its version could not be read, or for a timeout as in [`durable`](Self::durable).
    pub fn durable_aof(mut self, local: bool, replicas: u32, timeout: Duration) -> Result<Self> {
        check_durable_timeout(timeout)?;
        match self.server_version {
            Some(v) if v >= (7, 2) => {}
            Some((major, minor)) => {
                return Err(Error::Config(format!(
                    "durable_aof needs WAITAOF (Redis 7.2+); the server is {major}.{minor}: use \
                     durable(replicas, timeout) (WAIT) instead"
                )))
            }
            None => {
                return Err(Error::Config(
                    "durable_aof needs WAITAOF (Redis 7.2+), and the server's version could not \
                     be read from `INFO server`: allow the user `INFO`, or use durable(..)"
                        .into(),
                ))
            }
        }
        self.durability = (local || replicas > 0).then_some(Durability::Aof {
            local,
            replicas,
            timeout,
        });
        Ok(self)
    }

    /// What this producer waits for after each enqueue, if anything.
    pub fn durability(&self) -> Option<Durability> {
        self.durability
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `T`'s queue (of its first partition if it has
    /// [`partitions`](crate::TaskOptions::partitions)).
    pub fn keys<T: Task>(&self) -> QueueKeys {
        self.partition_keys::<T>().swap_remove(0)
    }

    /// The number of partitions of `T`'s queue.
    fn partition_count<T: Task>(&self) -> u16 {
        if self.partitions.is_empty() {
            return T::OPTIONS.partitions;
        }
        self.partitions
            .get(T::QUEUE)
            .copied()
            .unwrap_or(T::OPTIONS.partitions)
    }

    /// The keys of each partition of `T`'s queue (one for an unpartitioned queue).
    /// At the level of `T`'s tasks (checked by [`envelope`](Self::envelope) first).
    fn partition_keys<T: Task>(&self) -> Vec<QueueKeys> {
        let parts = QueueKeys::partitions(&self.prefix, T::QUEUE, self.partition_count::<T>());
        match self.level::<T>().unwrap_or_default() {
            Priority::Normal => parts,
            level => parts.iter().map(|k| k.level(level)).collect(),
        }
    }

    /// The partition `task` goes to: by its [partition key](Task::partition_key), or
    /// round-robin; 0 for an unpartitioned queue.
    fn partition_of<T: Task>(&self, task: &T) -> usize {
        let n = self.partition_count::<T>();
        if n <= 1 {
            return 0;
        }
        usize::from(match task.partition_key() {
            Some(key) => keys::partition_of(&key, n),
            None => (self.next_partition.fetch_add(1, Ordering::Relaxed) % u64::from(n)) as u16,
        })
    }

    /// The stream `task` goes to.
    fn stream_of<T: Task>(&self, task: &T) -> String {
        let stream = if self.partition_count::<T>() <= 1 {
            stream_key(&self.prefix, T::QUEUE)
        } else {
            let i = self.partition_of(task) as u16;
            stream_key(&self.prefix, &keys::partition_name(T::QUEUE, i))
        };
        match self.level::<T>().unwrap_or_default() {
            Priority::Normal => stream,
            level => format!("{stream}:{level}"),
        }
    }

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

    /// Enqueues of unique tasks refused as duplicates by this producer and its clones so far
    /// (the count of every producer of a queue is in Redis: [`Admin::unique_stats`](crate::Admin::unique_stats)).
    pub fn duplicates_refused(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Enqueues one unique task (`env.unique` is set), now (`due` is `None`) or delayed: one
    /// `enqueue_unique.lua` call, loaded and sent again if Redis does not have it.
    ///
    /// The future does not hold `task` (only its partition's keys), so it is `Send` for any
    /// task type, `Sync` or not.
    fn submit_unique<T: Task>(
        &self,
        task: &T,
        env: Envelope,
        due: Option<Due>,
    ) -> impl std::future::Future<Output = Result<Enqueued>> + Send + '_ {
        let keys = self
            .partition_keys::<T>()
            .swap_remove(self.partition_of(task));
        async move {
            let inv = unique_invocation(&keys, &env, due);
            let mut pipe = redis::pipe();
            pipe.invoke_script(&inv);
            let sent = self.send_registering(&keys.queue, pipe.clone(), 1).await;
            let sent = match sent {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.load_script(&scripts::ENQUEUE_UNIQUE, "enqueue")
                        .await?;
                    self.send_registering(&keys.queue, pipe, 1).await
                }
                sent => sent,
            };
            let (replies, short) = sent
                .map_err(Error::redis("enqueue"))
                .or_else_readonly(&self.conn)
                .await?;
            let outcome = replies
                .first()
                .map(|r| self.unique_outcome(r, &env.id))
                .transpose()?
                .unwrap_or(Enqueued::Added(env.id));
            match short {
                None => Ok(outcome),
                Some(short) => Err(short.into_error(vec![outcome.into_id()])),
            }
        }
    }

    /// The outcome of one `enqueue_unique.lua` reply, `{1, id}` or `{0, live id}`, counted.
    fn unique_outcome(&self, reply: &redis::Value, id: &str) -> Result<Enqueued> {
        use redis::Value::{Array, BulkString, Int};
        match reply {
            Array(v) => match v.as_slice() {
                [Int(1), _] => return Ok(Enqueued::Added(id.to_owned())),
                [Int(0), BulkString(live)] => {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                    return Ok(Enqueued::Duplicate(
                        String::from_utf8_lossy(live).into_owned(),
                    ));
                }
                _ => {}
            },
            redis::Value::ServerError(e) => {
                let e: redis::RedisError = e.clone().into();
                return Err(Error::redis("enqueue")(e));
            }
            _ => {}
        }
        Err(Error::redis("enqueue")(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply to enqueue_unique.lua",
            format!("{reply:?}"),
        ))))
    }

    /// Enqueues many tasks with pipelined `XADD`s (one round trip per [`ENQUEUE_BATCH`] tasks)
    /// and returns their ids in order. A [durable](Self::durable) producer ends each pipeline
    /// with one `WAIT`.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue). On a Redis error, or a task that cannot be encoded or is
    /// too large, the batches of [`ENQUEUE_BATCH`] tasks before it may have been enqueued
    /// (not the failing task's own batch). After a batch whose `WAIT` falls short, no further
    /// task is taken from `tasks` (the pipelines already built, of other partitions of a
    /// partitioned queue, are still sent), and [`Error::NotDurable`] lists the ids of every
    /// task written (a prefix of `tasks`; the rest were not enqueued).
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
    ///
    /// A [unique](Task::unique_key) task whose key is held is not added and its place holds
    /// the live task's id ([`submit_many`](Self::submit_many) says which were duplicates).
    /// Unique tasks cost one script call each in the same pipelines (and, once per call, a
    /// round trip to load the script).
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        self.add_many(tasks, None).await.map(|(ids, _)| ids)
    }

    /// Enqueues many tasks like [`enqueue_many`](Self::enqueue_many) and returns one
    /// [`Enqueued`] per task, in order: [`Enqueued::Duplicate`] for each
    /// [unique](Task::unique_key) task whose key was held (by a live task, or by an earlier
    /// task of the same call).
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn submit_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<Enqueued>> {
        let (ids, duplicates) = self.add_many(tasks, None).await?;
        Ok(outcomes(ids, duplicates))
    }

    /// Enqueues many tasks now (`due` is `None`) or delayed: `XADD`s (or schedule script calls)
    /// for plain tasks and `enqueue_unique.lua` calls for unique ones, in pipelines. Returns the
    /// ids and the indexes of the duplicates among them.
    async fn add_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
        due: Option<Due>,
    ) -> Result<(Vec<String>, Vec<usize>)> {
        let op = if due.is_some() { "schedule" } else { "XADD" };
        self.check_tracked::<T>().await?;
        self.send_batches(tasks, op, |pipe, env, keys| {
            if env.unique.is_some() {
                pipe.invoke_script(&unique_invocation(keys, env, due));
                return true;
            }
            match due {
                None => {
                    pipe.add_command(xadd(&keys.stream, env)).ignore();
                }
                Some(due) => {
                    let member = env.to_delayed_member();
                    let mut inv = scripts::SCHEDULE.prepare_invoke();
                    due.schedule_args(&mut inv, keys, &member);
                    pipe.invoke_script(&inv).ignore();
                }
            }
            if env.track.is_some() || env.events {
                record_enqueue(pipe, keys, env, due.map(Due::unix_ms));
            }
            false
        })
        .await
    }

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
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
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
            unique: None,
            rate_key: None,
            rate_slot: None,
            concurrency_key: None,
            track: None,
            events: false,
        };
        let stream = match self.priority {
            None | Some(Priority::Normal) => stream_key(&self.prefix, queue),
            Some(level) => QueueKeys::new(&self.prefix, queue).level(level).stream,
        };
        let mut pipe = redis::pipe();
        pipe.add_command(xadd(&stream, &env)).ignore();
        self.send_one(queue, pipe, "XADD", env.id).await
    }

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
        let member = env.to_delayed_member();
        let mut inv = scripts::SCHEDULE.prepare_invoke();
        due.schedule_args(&mut inv, &keys, &member);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&inv).ignore();
        if env.track.is_some() || env.events {
            record_enqueue(&mut pipe, &keys, &env, Some(due.unix_ms()));
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

    /// Before the first task of a tracked type (`result_ttl`, `events`), checks once that the
    /// user may write task hashes and event streams ([`acl::PRODUCER_TRACKED`], not part of
    /// the plain producer role): one round trip per producer, never for plain tasks, so that a
    /// missing permission fails before the `XADD`, not after it.
    async fn check_tracked<T: Task>(&self) -> Result<()> {
        if (T::OPTIONS.result_ttl.is_none() && !T::OPTIONS.events)
            || self.tracked_checked.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        acl::check(
            &mut self.conn.clone(),
            "producer of tracked tasks",
            acl::PRODUCER_TRACKED,
            &self.prefix,
            "",
            &[acl::PRODUCER_CHECK_QUEUE],
        )
        .await?;
        self.tracked_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Loads a script (`op` names it in errors).
    async fn load_script(&self, script: &redis::Script, op: &'static str) -> Result<()> {
        let _: String = script
            .prepare_invoke()
            .load_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await?;
        Ok(())
    }

    /// Sends one task's pipeline `pipe` for `queue` (see [`send`]) and returns its id.
    async fn send_one(
        &self,
        queue: &str,
        pipe: redis::Pipeline,
        op: &'static str,
        id: String,
    ) -> Result<String> {
        let sent = self.send_registering(queue, pipe, 0).await;
        match self.checked(sent.map(|(_, s)| s), op).await? {
            None => Ok(id),
            Some(short) => Err(short.into_error(vec![id])),
        }
    }

    /// [`send`], adding `queue` (its base name, for a partition) to the queue registry
    /// `{prefix}:queues` the first time this producer or a clone writes to it: one `SADD` at
    /// the end of the same pipeline on one server, sent concurrently on a cluster (the
    /// registry lies in another slot, and a cluster pipeline stays in one), so no extra round
    /// trip either way, and nothing at all once the queue is registered.
    async fn send_registering(
        &self,
        queue: &str,
        mut pipe: redis::Pipeline,
        kept: usize,
    ) -> redis::RedisResult<(Vec<redis::Value>, Option<Shortfall>)> {
        let queue = keys::base_queue(queue);
        let known = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(queue);
        if known {
            return send(pipe, self.conn.clone(), self.durability, kept).await;
        }
        let mut sadd = redis::cmd("SADD");
        sadd.arg(keys::queues_key(&self.prefix)).arg(queue);
        let sent = match &self.conn {
            Conn::Single(_) => {
                pipe.add_command(sadd).ignore();
                send(pipe, self.conn.clone(), self.durability, kept).await
            }
            Conn::Cluster(_) => {
                let mut conn = self.conn.clone();
                let (sent, added) = futures::future::join(
                    send(pipe, self.conn.clone(), self.durability, kept),
                    sadd.query_async::<()>(&mut conn),
                )
                .await;
                if let Err(e) = added {
                    // The tasks are written; the next write to the queue tries again.
                    tracing::warn!(queue, error = %e, "cannot add the queue to the queue registry");
                    return sent;
                }
                sent
            }
        };
        if sent.is_ok() {
            self.registered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(queue.to_owned());
        }
        sent
    }

    /// The outcome of [`send`] as an mq error ([`Error::Redis`], after a reconnect on
    /// `READONLY`), or how far the confirmation fell short, if it did.
    async fn checked(
        &self,
        sent: redis::RedisResult<Option<Shortfall>>,
        op: &'static str,
    ) -> Result<Option<Shortfall>> {
        sent.map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await
    }

    /// Encodes `tasks` and sends them in pipelines of [`ENQUEUE_BATCH`] commands (`add` puts
    /// one task's command for the keys of its partition in a pipeline and returns whether its
    /// reply is kept: only a unique task's is, an `enqueue_unique.lua` reply), each followed
    /// by the durability wait if any. Each pipeline holds tasks of one partition (one slot of a
    /// cluster). Pipelines are sent as soon as they are full, a few in flight at once, so
    /// building overlaps sending and memory stays bounded however many tasks there are. After
    /// a pipeline that was not confirmed, no new one is sent. Returns the ids, a duplicate's
    /// replaced by the live task's, and the indexes of the duplicates.
    async fn send_batches<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
        op: &'static str,
        mut add: impl FnMut(&mut redis::Pipeline, &Envelope, &QueueKeys) -> bool,
    ) -> Result<(Vec<String>, Vec<usize>)> {
        let now = now_ms();
        let traceparent = current_traceparent();
        let parts = self.partition_keys::<T>();
        // Per partition: the pipeline being filled, the indexes (in `ids`) of its tasks and of
        // those whose reply it keeps.
        let mut pipes: Vec<(redis::Pipeline, Vec<usize>, Vec<usize>)> = parts
            .iter()
            .map(|_| (redis::pipe(), Vec::new(), Vec::new()))
            .collect();
        let mut ids = Vec::new();
        let mut duplicates = Vec::new();
        let mut unique_loaded = false;
        let mut short: Option<Shortfall> = None;
        let mut in_flight = futures::stream::FuturesOrdered::new();
        // A `WAIT` holds the connection on the server until it returns: with several durable
        // pipelines in flight the later ones would queue behind the earlier waits and could
        // outlast the response timeout. Durable batches go one at a time.
        let max_in_flight = if self.durability.is_some() {
            1
        } else {
            ENQUEUE_PIPELINES_IN_FLIGHT
        };
        let mut tasks = tasks.into_iter().peekable();
        loop {
            let task = if short.is_none() { tasks.next() } else { None };
            let full = match &task {
                Some(task) => {
                    let env = self.envelope(task, now, traceparent.as_deref())?;
                    let p = self.partition_of(task);
                    if add(&mut pipes[p].0, &env, &parts[p]) {
                        // A pipelined `EVALSHA` does not load its script: load it once first.
                        if !unique_loaded {
                            self.load_script(&scripts::ENQUEUE_UNIQUE, op).await?;
                            unique_loaded = true;
                        }
                        pipes[p].2.push(ids.len());
                    }
                    pipes[p].1.push(ids.len());
                    ids.push(env.id);
                    (pipes[p].1.len() >= ENQUEUE_BATCH).then_some(p)
                }
                None => None,
            };
            // Full pipelines go now; at the end (also after a shortfall, which ends the
            // reading of tasks), every non-empty one: so the tasks written are exactly those
            // taken from `tasks`, a prefix of it.
            let ready: Vec<usize> = match (full, &task) {
                (Some(p), _) => vec![p],
                (None, Some(_)) => Vec::new(),
                (None, None) => (0..pipes.len())
                    .filter(|&p| !pipes[p].1.is_empty())
                    .collect(),
            };
            for p in ready {
                let (pipe, _, kept) = std::mem::take(&mut pipes[p]);
                let queue = &parts[p].queue;
                in_flight.push_back(async move {
                    let sent = self.send_registering(queue, pipe, kept.len()).await;
                    (kept, sent)
                });
                if in_flight.len() >= max_in_flight {
                    if let Some((kept, sent)) = in_flight.next().await {
                        let s = self.settled(sent, op, &kept, &mut ids, &mut duplicates);
                        short = Shortfall::worst(short, s.await?);
                    }
                }
            }
            if task.is_none() {
                break;
            }
        }
        while let Some((kept, sent)) = in_flight.next().await {
            let s = self.settled(sent, op, &kept, &mut ids, &mut duplicates);
            short = Shortfall::worst(short, s.await?);
        }
        match short {
            None => Ok((ids, duplicates)),
            Some(short) => Err(short.into_error(ids)),
        }
    }

    /// Checks one sent pipeline of [`send_batches`](Self::send_batches) and applies its kept
    /// replies (of the tasks at indexes `kept`): a duplicate's id becomes the live task's.
    async fn settled(
        &self,
        sent: redis::RedisResult<(Vec<redis::Value>, Option<Shortfall>)>,
        op: &'static str,
        kept: &[usize],
        ids: &mut [String],
        duplicates: &mut Vec<usize>,
    ) -> Result<Option<Shortfall>> {
        let (replies, short) = sent
            .map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await?;
        for (&i, reply) in kept.iter().zip(&replies) {
            if let Enqueued::Duplicate(live) = self.unique_outcome(reply, &ids[i])? {
                ids[i] = live;
                duplicates.push(i);
            }
        }
        Ok(short)
    }

    /// The envelope of a new task, its payload checked against the cap.
    fn envelope<T: Task>(&self, task: &T, now: u64, traceparent: Option<&str>) -> Result<Envelope> {
        self.level::<T>()?;
        new_envelope(task, now, traceparent, self.max_payload)
    }

    /// [`Error::PayloadTooLarge`] if `payload` is over the cap.
    fn check_payload(&self, task: &str, payload: &[u8]) -> Result<()> {
        check_payload(task, payload, self.max_payload)
    }
}

/// For a tracked task (entry field `tr` or `ev`): appends to `pipe` the writes of its first
/// state, `queued` (or `scheduled` with its due time, unix ms) in its status hash with the
/// hash's ttl, and the event `enqueued` (or `scheduled`), in the enqueue's own pipeline. A plain
/// task adds nothing.
fn record_enqueue(pipe: &mut redis::Pipeline, keys: &QueueKeys, env: &Envelope, due: Option<u64>) {
    let (status, event) = match due {
        None => ("queued", "enqueued"),
        Some(_) => ("scheduled", "scheduled"),
    };
    let due = due.map(|d| d.to_string());
    if let Some(ttl) = env.track {
        let key = format!("{}{}", keys.task, env.id);
        let cmd = pipe.cmd("HSET").arg(&key).arg("status").arg(status);
        if let Some(due) = &due {
            cmd.arg("due").arg(due);
        }
        cmd.ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
    }
    if env.events {
        let cmd = pipe
            .cmd("XADD")
            .arg(&keys.events)
            .arg("MAXLEN")
            .arg("~")
            .arg(crate::control::EVENTS_MAXLEN)
            .arg("*")
            .arg("id")
            .arg(&env.id)
            .arg("event")
            .arg(event);
        if let Some(due) = &due {
            cmd.arg("due").arg(due);
        }
        cmd.ignore();
    }
}

fn stream_key(prefix: &str, queue: &str) -> String {
    QueueKeys::new(prefix, queue).stream
}

fn check_durable_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > MAX_DURABLE_TIMEOUT {
        return Err(Error::Config(format!(
            "durable timeout {timeout:?} must be over zero (Redis reads 0 as wait forever) and \
             at most {MAX_DURABLE_TIMEOUT:?}"
        )));
    }
    Ok(())
}

/// What one enqueue did: the task was added, or (a [unique](Task::unique_key) task whose key
/// is held) refused as a duplicate of the live task. Returned by [`Producer::submit`] and
/// [`Producer::submit_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The task was added; its id.
    Added(String),
    /// Nothing was added: a task with the same unique key is queued, delayed, running or
    /// retrying (or finished within its [`unique_for`](crate::TaskOptions::unique_for)); that
    /// task's id.
    Duplicate(String),
}

impl Enqueued {
    /// The id of the task added, or of the live task for a duplicate.
    pub fn id(&self) -> &str {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// As [`id`](Self::id), by value.
    pub fn into_id(self) -> String {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// Whether the enqueue was refused as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Enqueued::Duplicate(_))
    }
}

/// One [`Enqueued`] per id, the ones at `duplicates` (indexes) refused.
fn outcomes(ids: Vec<String>, duplicates: Vec<usize>) -> Vec<Enqueued> {
    let mut out: Vec<Enqueued> = ids.into_iter().map(Enqueued::Added).collect();
    for i in duplicates {
        if let Some(e) = out.get_mut(i) {
            *e =
                Enqueued::Duplicate(std::mem::replace(e, Enqueued::Added(String::new())).into_id());
        }
    }
    out
}

/// The `enqueue_unique.lua` call of `env` (a unique task) for the keys of its partition: now
/// (`due` is `None`, an `XADD`) or delayed.
fn unique_invocation<'a>(
    keys: &QueueKeys,
    env: &Envelope,
    due: Option<Due>,
) -> redis::ScriptInvocation<'a> {
    let mut inv = scripts::ENQUEUE_UNIQUE.prepare_invoke();
    inv.key(keys.unique_key(env.unique.as_deref().unwrap_or_default()))
        .key(&keys.stream)
        .key(&keys.delayed)
        .key(&keys.duplicates)
        .arg(&env.id);
    match due {
        None => inv.arg("now").arg(0),
        Some(Due::In(d)) => inv.arg(d.as_millis() as u64).arg(0),
        Some(Due::At(at)) => inv.arg("-").arg(unix_ms(at)),
    };
    inv.arg(&keys.wake);
    match due {
        None => {
            inv.arg("");
            push_entry_fields(&mut inv, env);
        }
        Some(_) => {
            inv.arg(env.to_delayed_member());
        }
    }
    inv
}

/// Unix milliseconds of `at` (0 before the epoch).
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Closes the connection on `READONLY` (a failover behind the same address) so that the next
/// call reconnects to the new primary; the error is returned unchanged.
trait ReconnectOnReadonly<T> {
    async fn or_else_readonly(self, conn: &Conn) -> Result<T>;
}

impl<T> ReconnectOnReadonly<T> for Result<T> {
    async fn or_else_readonly(self, conn: &Conn) -> Result<T> {
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
    /// The due time in unix ms (by this host's clock for a delay).
    fn unix_ms(self) -> u64 {
        match self {
            Due::In(d) => now_ms() + d.as_millis() as u64,
            Due::At(at) => at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

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
