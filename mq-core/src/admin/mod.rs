//! Operations on queues for operators, the CLI and tests: queue statistics (one consistent
//! snapshot) and stream counters, waiting until a queue is idle, pausing and resuming a queue
//! ([`pause`](Admin::pause), [`resume`](Admin::resume)), pending entries, live workers
//! and the dead-letter stream ([`dead_list`](Admin::dead_list), [`dead_show`](Admin::dead_show),
//! [`dead_replay`](Admin::dead_replay), [`dead_replay_all`](Admin::dead_replay_all),
//! [`dead_purge`](Admin::dead_purge)), each entry a [`DeadLetter`] with typed accessors.

use std::{sync::LazyLock, time::Duration};

use redis::{aio::ConnectionLike, Script, Value};

use crate::{
    config::TlsOptions,
    envelope::{field, PackedTask},
    error::{Error, Result},
    redis::{conn, keys, keys::QueueKeys, scripts},
    task::Task,
};

mod overview;

use overview::Depth;
pub use overview::{QueueOverview, QueueSample};

/// `SCAN` calls per node at most in [`Admin::unique_stats`] and [`Admin::key_slots`]: 100 (of
/// `COUNT 1000` each, so about 100,000 keys looked at per node). On a larger keyspace their
/// counts are partial, and say so.
pub const SCAN_MAX_CALLS: usize = 100;

/// Dead entries replayed per script call by [`Admin::dead_replay_all`]: 500.
const REPLAY_BATCH: usize = 500;

/// Separates a stream's name from its priority level in [`Admin`]'s internal stream names.
const LEVEL_MARK: char = '@';

/// How often [`Admin::wait_idle`] reads the queue's sizes: every 50 ms.
pub const WAIT_IDLE_POLL: Duration = Duration::from_millis(50);

/// How often a worker reads the pause flags of its queues (one round trip for all of them):
/// every 250 ms. A pause or resume takes effect within this plus a round trip.
pub const PAUSE_POLL: Duration = Duration::from_millis(250);

/// Administrative access to mq's queues: sizes, idleness, pending entries, workers and dead
/// letters. Cheap to clone (one multiplexed connection).
///
/// ```no_run
/// use std::time::Duration;
///
/// use mq_core::{Admin, Task};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Task)]
/// #[task(queue = "emails")]
/// struct SendEmail {
///     to: String,
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = Admin::connect("redis://127.0.0.1/").await?;
///
/// let stats = admin.stats("emails").await?;
/// println!("{} ready, {} in flight, {} delayed, {} dead",
///     stats.backlog, stats.pending, stats.delayed, stats.dead);
///
/// // Wait (at most a minute) until every task has run: nothing ready, in flight or delayed.
/// let idle = admin.wait_idle("emails", Duration::from_secs(60)).await?;
/// println!("idle: {idle}");
///
/// // Look at the dead letters, decode them back into tasks and replay those worth another go.
/// let mut retry = Vec::new();
/// for dead in admin.dead_list("emails", 100).await? {
///     println!("{} {:?} failed {:?} times: {}", dead.dead_id(), dead.name(),
///         dead.attempts(), dead.error().unwrap_or("?"));
///     if let Ok(task) = dead.decode::<SendEmail>() {
///         if task.to.ends_with("@example.com") {
///             retry.push(dead.dead_id().to_owned());
///         }
///     }
/// }
/// let report = admin.dead_replay("emails", &retry).await?;
/// println!("replayed {}, skipped {:?}", report.replayed, report.skipped);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    pub(crate) conn: conn::Conn,
    pub(crate) prefix: String,
    pub(crate) group: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Sizes of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue name.
    pub queue: String,
    /// Entries in the stream (ready + in flight).
    pub length: u64,
    /// Entries delivered to a worker and not acked yet (in flight).
    pub pending: u64,
    /// Ready entries not yet delivered: `length - pending`.
    pub backlog: u64,
    /// Scheduled and retrying tasks.
    pub delayed: u64,
    /// Dead-lettered tasks.
    pub dead: u64,
    /// Consumers in the group.
    pub consumers: u64,
    /// Whether the queue is paused ([`Admin::pause`]): workers start none of its tasks.
    pub paused: bool,
}

impl QueueStats {
    /// Whether the queue is idle: nothing in the stream (no task ready, none in flight: a
    /// finished task's entry is deleted when its ack reaches Redis) and nothing delayed (no
    /// scheduled task, no retry waiting for its backoff). Dead letters do not count: they
    /// wait for an operator, not for a worker.
    pub fn is_idle(&self) -> bool {
        self.length == 0 && self.pending == 0 && self.delayed == 0
    }
}

/// Monotonic counters of a queue's stream, for rates: sample twice and divide the deltas by
/// the time between the samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamInfo {
    /// The queue name.
    pub queue: String,
    /// Entries in the stream now (`XLEN`).
    pub length: u64,
    /// Entries ever added to the stream (`entries-added` of `XINFO STREAM`): new tasks,
    /// promoted delayed tasks and retries, replayed dead letters. `None` before Redis 7.0.
    pub entries_added: Option<u64>,
    /// Entries that left the stream: `entries_added - length` (acked, retried or
    /// dead-lettered; done entries are deleted). `None` before Redis 7.0.
    pub entries_removed: Option<u64>,
    /// Entries delivered to the consumer group (`entries-read` of `XINFO GROUPS`); `None`
    /// without the group or before Redis 7.0.
    pub entries_read: Option<u64>,
}

/// One entry of a queue's pending entries list: delivered to a consumer, not acked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The stream entry id.
    pub entry_id: String,
    /// The consumer that holds it.
    pub consumer: String,
    /// Milliseconds since it was delivered or its lease was last renewed.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The task id (`id` field), if the entry is still in the stream.
    pub task_id: Option<String>,
    /// The task name (`name` field), if the entry is still in the stream.
    pub task_name: Option<String>,
}

/// A cron schedule as its workers recorded it in `{prefix}:{queue}:cron` (see
/// [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule)); [`Admin::schedules`] lists
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// The schedule's name.
    pub name: String,
    /// The queue its task goes to.
    pub queue: String,
    /// Its cron expression.
    pub expression: String,
    /// The time zone its ticks are computed in (`UTC` by default).
    pub timezone: String,
    /// The last tick enqueued, unix ms (`None` before the first).
    pub last: Option<u64>,
    /// The next tick, unix ms.
    pub next: Option<u64>,
}

/// A worker registered in `{prefix}:workers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its consumer name.
    pub consumer: String,
    /// Whether its heartbeat key `{prefix}:worker:{consumer}` exists. A registered worker
    /// without one died without unregistering (e.g. SIGKILL).
    pub live: bool,
    /// The queues it handles.
    pub queues: Vec<String>,
    /// Its global in-flight limit.
    pub concurrency: Option<u64>,
    /// When it started, unix ms.
    pub started_at: Option<u64>,
    /// When it last wrote its heartbeat, unix ms (the heartbeat key's value).
    pub last_beat: Option<u64>,
    /// Milliseconds until its heartbeat key expires.
    pub heartbeat_ttl_ms: Option<u64>,
    /// The registration as stored (`queues=a,b concurrency=64 started_at=...`).
    pub description: String,
}

impl WorkerInfo {
    /// Parses a registration value (`key=value` pairs separated by spaces; unknown keys are
    /// kept in [`description`](Self::description) only).
    pub fn parse(consumer: &str, description: &str) -> Self {
        let mut info = WorkerInfo {
            consumer: consumer.to_owned(),
            live: false,
            queues: Vec::new(),
            concurrency: None,
            started_at: None,
            last_beat: None,
            heartbeat_ttl_ms: None,
            description: description.to_owned(),
        };
        for part in description.split_whitespace() {
            match part.split_once('=') {
                Some(("queues", v)) => {
                    info.queues = v
                        .split(',')
                        .filter(|q| !q.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                Some(("concurrency", v)) => info.concurrency = v.parse().ok(),
                Some(("started_at", v)) => info.started_at = v.parse().ok(),
                _ => {}
            }
        }
        info
    }
}

/// One entry of a queue's dead stream, with typed accessors for the fields mq writes.
///
/// The dead stream holds three kinds of entries (docs/wire-format.md):
/// - a task a worker gave up on (retries exhausted, a permanent error, an entry it could not
///   handle): the task's own fields plus [`error`](Self::error),
///   [`failed_at`](Self::failed_at), [`worker`](Self::worker) and
///   [`attempts`](Self::attempts);
/// - a task the reclaimer found delivered too often without finishing ("abandoned"): the same,
///   plus [`deliveries`](Self::deliveries);
/// - a delayed member the promoter could not decode: only [`raw`](Self::raw) (its bytes),
///   `error` and `failed_at`; it is not a task and has no id, name or payload.
///
/// Text accessors return `None` when the field is absent or not UTF-8, number accessors when
/// it is absent or not a decimal number; [`get`](Self::get) and [`fields`](Self::fields) give
/// the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    dead_id: String,
    fields: Vec<(String, Vec<u8>)>,
    queue: Option<String>,
}

/// The former name of [`DeadLetter`].
#[deprecated(note = "renamed to `DeadLetter`")]
pub type DeadTask = DeadLetter;

/// Why [`DeadLetter::decode`] could not give back the task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The entry has no `name` or no `payload`: it is not a task (e.g. the promoter's entry for
    /// an undecodable delayed member, which holds only `raw`, `error` and `failed_at`).
    #[error("dead letter {dead_id} is not a task (no name or payload)")]
    NotATask {
        /// The dead-stream id.
        dead_id: String,
    },
    /// The entry is a task of another type.
    #[error("dead letter {dead_id} is a {found:?} task, not {expected:?}")]
    WrongTask {
        /// The dead-stream id.
        dead_id: String,
        /// The name asked for ([`Task::NAME`]).
        expected: &'static str,
        /// The entry's `name` (lossy UTF-8).
        found: String,
    },
    /// The payload is not a MessagePack encoding of the task type.
    #[error("cannot decode the payload of dead letter {dead_id} as {task:?}")]
    Payload {
        /// The dead-stream id.
        dead_id: String,
        /// The task name.
        task: &'static str,
        /// The deserializer's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
}

impl DeadLetter {
    /// A dead letter from its dead-stream id and its fields in stored order (what
    /// [`Admin::dead_list`] builds from `XRANGE`).
    pub fn new(dead_id: impl Into<String>, fields: Vec<(String, Vec<u8>)>) -> Self {
        Self {
            dead_id: dead_id.into(),
            fields,
            queue: None,
        }
    }

    /// The same dead letter, read from the dead stream of `queue`: a queue's, a partition's
    /// (`hot#2`) or a priority level's (`q@high`, `hot#2@low`) name.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The dead stream it was read from, as a name that [`Admin::dead_show`],
    /// [`Admin::dead_replay`] and `mq dead` take: the queue's own name, or for a partitioned or
    /// prioritized queue the partition and/or level (`hot#2`, `q@high`, `hot#2@low`). `None` for
    /// one built with [`new`](Self::new) alone.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// Its id in the dead stream: give it to [`Admin::dead_show`] or [`Admin::dead_replay`].
    pub fn dead_id(&self) -> &str {
        &self.dead_id
    }

    /// All fields of the entry, in stored order, as raw bytes.
    pub fn fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }

    /// The raw value of a field, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &v[..])
    }

    /// The value of a field as text (lossy UTF-8), if present: for fields without an
    /// accessor of their own, such as ones another producer added.
    pub fn field(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    fn number<N: std::str::FromStr>(&self, name: &str) -> Option<N> {
        self.text(name).and_then(|v| v.parse().ok())
    }

    /// The `t` field of a v2 entry, decoded; `None` for v1 entries (and a malformed `t`).
    fn packed(&self) -> Option<PackedTask<'_>> {
        self.get(field::TASK)
            .and_then(|t| PackedTask::decode(t).ok())
    }

    /// The task id (`id` of v1 entries, in `t` of v2 ones); `None` for the promoter's `raw`
    /// entries.
    pub fn task_id(&self) -> Option<&str> {
        match self.packed() {
            Some(t) => Some(t.id),
            None => self.text(field::ID),
        }
    }

    /// The task name (`name` of v1 entries, in `t` of v2 ones),
    /// [`Task::NAME`] of its type.
    pub fn name(&self) -> Option<&str> {
        match self.packed() {
            Some(t) => Some(t.name),
            None => self.text(field::NAME),
        }
    }

    /// Why the task died (`error`): the handler's error, the reason it could not be handled,
    /// `abandoned: delivered N times ...`, or why a delayed member could not be decoded.
    pub fn error(&self) -> Option<&str> {
        self.text("error")
    }

    /// How many times the task ran (`attempts`).
    pub fn attempts(&self) -> Option<u32> {
        self.number("attempts")
    }

    /// When it died (`failed_at`), unix ms.
    pub fn failed_at(&self) -> Option<u64> {
        self.number("failed_at")
    }

    /// When the task was first enqueued (`enqueued_at` of v1 entries, in `t` of v2 ones),
    /// unix ms.
    pub fn enqueued_at(&self) -> Option<u64> {
        match self.packed() {
            Some(t) => Some(t.enqueued_at),
            None => self.number(field::ENQUEUED_AT),
        }
    }

    /// The consumer name of the worker that dead-lettered it (`worker`).
    pub fn worker(&self) -> Option<&str> {
        self.text("worker")
    }

    /// How many times it was delivered (`deliveries`): set only on tasks the reclaimer
    /// dead-lettered as abandoned.
    pub fn deliveries(&self) -> Option<u64> {
        self.number("deliveries")
    }

    /// The bytes of a delayed member the promoter could not decode (`raw`): set only on such
    /// entries, which are not tasks.
    pub fn raw(&self) -> Option<&[u8]> {
        self.get("raw")
    }

    /// The raw MessagePack payload (`payload` of v1 entries, in `t` of v2 ones), if the entry
    /// has one.
    pub fn payload(&self) -> Option<&[u8]> {
        match self.packed() {
            Some(t) => Some(t.payload),
            None => self.get(field::PAYLOAD),
        }
    }

    /// The fields in stored order as v1 names and text, for display: a v2 `t` becomes `id`,
    /// `name`, `enqueued_at`, `payload` (raw MessagePack) and `traceparent` (if set), an `r`
    /// becomes `attempt` and `last_error` (if set); a `t` or `r` that does not decode stays
    /// as it is.
    pub fn task_fields(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.fields.len() + 5);
        for (k, v) in &self.fields {
            match k.as_str() {
                field::TASK => match PackedTask::decode(v) {
                    Ok(t) => {
                        out.push((field::ID.into(), t.id.into()));
                        out.push((field::NAME.into(), t.name.into()));
                        out.push((field::ENQUEUED_AT.into(), t.enqueued_at.to_string().into()));
                        out.push((field::PAYLOAD.into(), t.payload.to_vec()));
                        if let Some(tp) = t.traceparent {
                            out.push((field::TRACEPARENT.into(), tp.into()));
                        }
                    }
                    Err(_) => out.push((k.clone(), v.clone())),
                },
                field::RETRY => match crate::envelope::decode_retry(v) {
                    Ok((attempt, last_error)) => {
                        out.push((field::ATTEMPT.into(), attempt.to_string().into()));
                        if let Some(e) = last_error {
                            out.push(("last_error".into(), e.into()));
                        }
                    }
                    Err(_) => out.push((k.clone(), v.clone())),
                },
                _ => out.push((k.clone(), v.clone())),
            }
        }
        out
    }

    /// The payload decoded to JSON for display (`None` without a payload; an error string
    /// value if it is not valid MessagePack).
    pub fn payload_json(&self) -> Option<serde_json::Value> {
        self.payload().map(payload_to_json)
    }

    /// Decodes the dead task back into its type `T`, as a worker would: the entry's `name`
    /// must be `T::NAME`, and its payload is decoded from MessagePack.
    ///
    /// ```
    /// use mq_core::{admin::{DeadLetter, DecodeError}, Task};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize, Task)]
    /// #[task(queue = "emails")]
    /// struct SendEmail {
    ///     to: String,
    /// }
    ///
    /// #[derive(Debug, Serialize, Deserialize, Task)]
    /// #[task(queue = "emails")]
    /// struct SendSms {
    ///     to: String,
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // What `Admin::dead_list` returns for a task a worker gave up on:
    /// let payload = rmp_serde::to_vec_named(&SendEmail { to: "a@example.com".into() })?;
    /// let dead = DeadLetter::new("1764000000123-0", vec![
    ///     ("id".into(), b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ".to_vec()),
    ///     ("name".into(), b"SendEmail".to_vec()),
    ///     ("payload".into(), payload),
    ///     ("error".into(), b"mailbox full".to_vec()),
    ///     ("attempts".into(), b"4".to_vec()),
    /// ]);
    /// let task: SendEmail = dead.decode()?;
    /// assert_eq!(task, SendEmail { to: "a@example.com".into() });
    /// assert_eq!(dead.attempts(), Some(4));
    ///
    /// // Another task type is refused by name, before its payload is read.
    /// assert!(matches!(dead.decode::<SendSms>(), Err(DecodeError::WrongTask { .. })));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError::NotATask`] without a name or payload, [`DecodeError::WrongTask`] if the
    /// name is another task's, [`DecodeError::Payload`] if the payload does not decode as `T`.
    pub fn decode<T: Task>(&self) -> Result<T, DecodeError> {
        let name = match self.packed() {
            Some(t) => Some(t.name.as_bytes()),
            None => self.get(field::NAME),
        };
        let (Some(name), Some(payload)) = (name, self.payload()) else {
            return Err(DecodeError::NotATask {
                dead_id: self.dead_id.clone(),
            });
        };
        if name != T::NAME.as_bytes() {
            return Err(DecodeError::WrongTask {
                dead_id: self.dead_id.clone(),
                expected: T::NAME,
                found: String::from_utf8_lossy(name).into_owned(),
            });
        }
        rmp_serde::from_slice(payload).map_err(|source| DecodeError::Payload {
            dead_id: self.dead_id.clone(),
            task: T::NAME,
            source,
        })
    }
}

/// The [unique](crate::Task::unique_key) keys of one queue, from [`Admin::unique_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UniqueStats {
    /// Unique keys held: by a live task (queued, delayed, running or retrying) or, for a task
    /// type with [`unique_for`](crate::TaskOptions::unique_for), by a finished one within its
    /// window.
    pub held: u64,
    /// Enqueues refused as duplicates since the queue's counter was created (all producers).
    pub duplicates: u64,
    /// Whether the count of held keys is partial: the keyspace was larger than
    /// [`SCAN_MAX_CALLS`] `SCAN` calls cover, so `held` is a lower bound.
    pub partial: bool,
}

/// The per-key concurrency slots in use for one task type and key, from
/// [`Admin::key_slots`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlots {
    /// `<task>:<key>`: the task type's name and the [concurrency
    /// key](crate::Task::concurrency_key) (the suffix of its slots key).
    pub name: String,
    /// Slots held: tasks of this key running now (or whose worker died less than a lease
    /// ago).
    pub running: u64,
}

/// The per-key concurrency slots in use in one queue, from [`Admin::key_slots`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySlotsReport {
    /// One row per task type and key with a slot in use, most slots first.
    pub keys: Vec<KeySlots>,
    /// Whether the list is partial: the keyspace was larger than [`SCAN_MAX_CALLS`] `SCAN`
    /// calls cover, so keys may be missing.
    pub partial: bool,
}

/// What [`Admin::dead_replay`] or [`Admin::dead_replay_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead tasks moved back to the work stream.
    pub replayed: usize,
    /// Ids of dead entries left in the dead stream because they are not tasks (no `id`,
    /// `name`, `payload` or `enqueued_at`, e.g. the promoter's `raw` entries), oldest first.
    pub skipped: Vec<String>,
    /// Ids of dead [unique](crate::Task::unique_key) tasks left in the dead stream because
    /// another live task holds their unique key by now (replaying them would run two tasks
    /// with one key), oldest first. Replay them once that task is done.
    pub duplicates: Vec<String>,
}

/// Decodes a MessagePack payload into JSON for display; invalid bytes give a JSON string that
/// says so.
pub fn payload_to_json(payload: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(payload).unwrap_or_else(|e| {
        serde_json::Value::String(format!(
            "<undecodable MessagePack ({} bytes): {e}>",
            payload.len()
        ))
    })
}

impl Admin {
    /// Connects with the default prefix and group (`mq`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL, [`Error::Redis`] if Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, keys::DEFAULT_PREFIX, keys::DEFAULT_GROUP).await
    }

    /// Connects with a prefix and group of your own.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, prefix: &str, group: &str) -> Result<Self> {
        Self::connect_with_tls(url, prefix, group, &TlsOptions::default()).await
    }

    /// Connects with a prefix and group of your own and TLS settings for a `rediss://` URL
    /// (a CA file, a client certificate and key for mutual TLS).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let tls = mq_core::TlsOptions::ca_file("/etc/mq/ca.pem");
    /// let admin = mq_core::Admin::connect_with_tls("rediss://redis:6380/", "mq", "mq", &tls).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`Error::Config`] for an unreadable or empty PEM file or
    /// TLS settings with a `redis://` URL, [`Error::Tls`] for a certificate the server or the
    /// client does not accept.
    pub async fn connect_with_tls(
        url: &str,
        prefix: &str,
        group: &str,
        tls: &TlsOptions,
    ) -> Result<Self> {
        Self::with_endpoint(&conn::Endpoint::open(url, tls)?, prefix, group).await
    }

    /// Connects to `endpoint` (a worker's, with its TLS settings).
    pub(crate) async fn with_endpoint(
        endpoint: &conn::Endpoint,
        prefix: &str,
        group: &str,
    ) -> Result<Self> {
        Ok(Self {
            conn: conn::managed(endpoint, conn::COMMAND_TIMEOUT).await?,
            prefix: prefix.to_owned(),
            group: group.to_owned(),
        })
    }

    /// The keys of a stream named by [`streams`](Self::streams): a queue, a partition, or
    /// either at a priority level (`q@high`, `q#2@low`).
    pub(crate) fn keys(&self, queue: &str) -> QueueKeys {
        if let Some((q, level)) = queue.rsplit_once(LEVEL_MARK) {
            if let Ok(level) = level.parse::<crate::Priority>() {
                return QueueKeys::new(&self.prefix, q).level(level);
            }
        }
        QueueKeys::new(&self.prefix, queue)
    }

    /// The names of `queue`'s partitions (`hot#0`, `hot#1`, ...), or `[queue]` for a queue
    /// that is not partitioned or for a partition's own name. The count comes from
    /// `{prefix}:partitions`, which the workers of a partitioned queue write.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn partitions(&self, queue: &str) -> Result<Vec<String>> {
        if keys::base_queue(queue) != queue {
            return Ok(vec![queue.to_owned()]);
        }
        let n: Option<u16> = redis::cmd("HGET")
            .arg(keys::partitions_key(&self.prefix))
            .arg(queue)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGET partitions"))?;
        Ok(match n {
            Some(n) if n > 1 => (0..n).map(|i| keys::partition_name(queue, i)).collect(),
            _ => vec![queue.to_owned()],
        })
    }

    /// Every stream of `queue`: its partitions and, for a partitioned queue, the queue's own
    /// stream too (the workers read it: see README "Partitioned queues").
    /// For a queue with [priority levels](crate::Priority) (its High or Low stream exists:
    /// its workers create them), each of those at each level, highest first, named
    /// `q@high`, `q@normal`, `q@low` (`@` is not allowed in queue names); for a level's name
    /// (`q@high`), that level of each.
    async fn streams(&self, queue: &str) -> Result<Vec<String>> {
        let (name, level) = match queue.rsplit_once(LEVEL_MARK) {
            Some((name, level)) => (name, Some(level)),
            None => (queue, None),
        };
        let mut streams = self.partitions(name).await?;
        if streams.len() > 1 || streams[0] != name {
            streams.push(name.to_owned());
        }
        let levels: Vec<String> = match level {
            Some(level) => vec![level.to_owned()],
            None if self.levels(name).await?.is_empty() => return Ok(streams),
            None => crate::Priority::ALL.iter().map(|l| l.to_string()).collect(),
        };
        Ok(streams
            .iter()
            .flat_map(|s| levels.iter().map(move |l| format!("{s}{LEVEL_MARK}{l}")))
            .collect())
    }

    /// The names of `queue`'s [priority levels](crate::Priority), highest first: `q@high`,
    /// `q@normal` and `q@low`, each usable as a queue name in [`stats`](Self::stats),
    /// [`pending`](Self::pending) and the `dead_*` calls to see one level alone (every call
    /// given `q` itself covers all its levels). Empty for a queue without levels: one whose
    /// High and Low streams do not exist (its workers create them, as do producers
    /// enqueuing at those levels). One `EXISTS`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn levels(&self, queue: &str) -> Result<Vec<String>> {
        let own = self.keys(keys::base_queue(queue));
        let found: u32 = redis::cmd("EXISTS")
            .arg(own.level(crate::Priority::High).stream)
            .arg(own.level(crate::Priority::Low).stream)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("EXISTS"))?;
        Ok(if found == 0 {
            Vec::new()
        } else {
            crate::Priority::ALL
                .iter()
                .map(|l| format!("{queue}{LEVEL_MARK}{l}"))
                .collect()
        })
    }

    /// Names of the queues in the queue registry `{prefix}:queues`, sorted: every queue a
    /// worker of this prefix served or scheduled tasks to, and every queue a [`Producer`]
    /// wrote to (a partitioned queue once, by its own name). One `SMEMBERS`, whatever the
    /// size of the keyspace. A queue written only by producers of another language that do not
    /// add it to the registry (docs/wire-format.md) is listed once one of its workers ran.
    ///
    /// [`Producer`]: crate::Producer
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::queues_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("SMEMBERS queues"))?;
        names.sort();
        Ok(names)
    }

    /// Every cron schedule recorded under the prefix, by queue then name: the schedules
    /// hashes `{prefix}:{queue}:cron` of the queues in the registry ([`queues`](Self::queues);
    /// a worker adds its schedules' queues when it starts). Two round trips: `SMEMBERS`, then
    /// one `HGETALL` per queue, pipelined.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let queues = self.queues().await?;
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = queues
            .iter()
            .map(|q| redis::cmd("HGETALL").arg(self.keys(q).cron).clone())
            .collect();
        let replies = self
            .conn
            .query_all(cmds)
            .await
            .map_err(Error::redis("HGETALL"))?;
        let mut out = Vec::new();
        for (queue, reply) in queues.iter().zip(replies) {
            let fields: Vec<(String, String)> = redis::FromRedisValue::from_redis_value(reply)
                .map_err(|e| Error::redis("HGETALL")(e.into()))?;
            out.extend(schedule_infos(queue, fields));
        }
        out.sort_by(|a, b| (&a.queue, &a.name).cmp(&(&b.queue, &b.name)));
        Ok(out)
    }

    /// Sizes of `queue` as one consistent snapshot: every count is read in one transaction
    /// (`MULTI` of plain reads: `XINFO STREAM`, `XINFO GROUPS`, `ZCARD`, `XLEN`, and `EXISTS`
    /// of the pause flag), so a task moving between the stream, the delayed set and the dead
    /// stream meanwhile is counted exactly once (a task being promoted is never missing from
    /// both `length` and `delayed`). Two round trips: the queue's partition count and
    /// priority streams (`HGET`, `EXISTS`), then the snapshot. For a partitioned queue: the
    /// sum of its partitions and of its own stream (one transaction per slot on a cluster,
    /// read concurrently, each consistent; `consumers` is the largest count of one stream),
    /// and `stats("hot#2")` gives one partition's. No script: the read-only ACL role needs no
    /// `EVAL`. [`overview`](Self::overview) reads many queues at once.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let parts = self.streams(queue).await?;
        let mut units: Vec<Vec<redis::Cmd>> = parts
            .iter()
            .map(|p| overview::stream_reads(&self.keys(p), Depth::Full))
            .collect();
        // The pause flag, in the same transaction on one server.
        units.push(vec![redis::cmd("EXISTS")
            .arg(self.keys(queue).paused)
            .clone()]);
        let mut replies = self.read_units(units).await?;
        let paused = replies
            .pop()
            .and_then(|r| r.into_iter().next())
            .is_some_and(|r| matches!(r, Ok(Value::Int(1))));
        let mut total = QueueSample::default();
        total.stats.queue = queue.to_owned();
        for (p, r) in parts.iter().zip(replies) {
            let s = overview::parse_stream(p, &self.group, Depth::Full, &mut r.into_iter());
            overview::add(&mut total, &s);
        }
        total.stats.paused = paused;
        Ok(total.stats)
    }

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

    /// Pauses `queue`: every worker stops starting its tasks within [`PAUSE_POLL`] (250 ms)
    /// plus a round trip, until [`resume`](Self::resume). Tasks already running finish; entries
    /// a worker had fetched but not started stay with it (leased) and start first on resume,
    /// or are handed back if it shuts down. Producers still enqueue and delayed tasks and
    /// retries still move to the stream when due: they wait there. Durable: the flag is the
    /// key `{prefix}:{queue}:paused`, so it holds across worker restarts (a worker started on
    /// a paused queue starts nothing) until resumed. For a partitioned queue the one flag
    /// pauses every partition, including partitions added later. Pausing a paused queue, or a
    /// queue that does not exist yet, is allowed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// admin.pause("embeddings").await?; // deploy the new model meanwhile
    /// assert!(admin.is_paused("embeddings").await?);
    /// admin.resume("embeddings").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name or a partition's name (`hot#2`: partitions are
    /// paused together, with their queue), [`Error::Redis`].
    pub async fn pause(&self, queue: &str) -> Result<()> {
        let key = self.paused_key(queue)?;
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(Error::redis("SET paused"))
    }

    /// Resumes a paused `queue` (see [`pause`](Self::pause)): workers start its tasks again
    /// within [`PAUSE_POLL`] plus a round trip. Resuming a queue that is not paused is allowed.
    ///
    /// # Errors
    ///
    /// As [`pause`](Self::pause).
    pub async fn resume(&self, queue: &str) -> Result<()> {
        let key = self.paused_key(queue)?;
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(Error::redis("DEL paused"))
    }

    /// Whether `queue` is paused (see [`pause`](Self::pause)); for a partition's name, whether
    /// its queue is.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn is_paused(&self, queue: &str) -> Result<bool> {
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
        self.is_paused_unchecked(queue).await
    }

    async fn is_paused_unchecked(&self, queue: &str) -> Result<bool> {
        redis::cmd("EXISTS")
            .arg(self.keys(queue).paused)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("EXISTS paused"))
    }

    /// The pause flag of `queue`, refusing bad names and partitions.
    fn paused_key(&self, queue: &str) -> Result<String> {
        keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
        if keys::base_queue(queue) != queue {
            return Err(Error::Config(format!(
                "{queue:?} is a partition: the partitions of a queue are paused and resumed \
                 together, with their queue {:?}",
                keys::base_queue(queue)
            )));
        }
        Ok(self.keys(queue).paused)
    }

    /// The unique keys held in `queue` (all its partitions) and the enqueues refused as
    /// duplicates. Counting the keys walks the keyspace of the node(s) holding the queue with
    /// `SCAN MATCH {prefix}:{queue}:unique:*` (1,000 keys per call), at most
    /// [`SCAN_MAX_CALLS`] calls per node and stream: on a larger keyspace the count is a lower
    /// bound and [`UniqueStats::partial`] says so. Meant for an operator's `mq stats --keys`,
    /// not for polling; [`overview`](Self::overview) reads the duplicates counter without
    /// scanning. The duplicates counter is one `GET`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn unique_stats(&self, queue: &str) -> Result<UniqueStats> {
        let mut total = UniqueStats::default();
        let mut seen = std::collections::HashSet::new();
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            // The levels of a queue share its unique keys and counter.
            if !seen.insert(k.unique.clone()) {
                continue;
            }
            let mut conn = self.conn.clone();
            let (held, complete) = conn
                .scan_keys(&format!("{}*", k.unique), "string", SCAN_MAX_CALLS)
                .await
                .map_err(Error::redis("SCAN"))?;
            total.partial |= !complete;
            let duplicates: Option<u64> = redis::cmd("GET")
                .arg(&k.duplicates)
                .query_async(&mut conn)
                .await
                .map_err(Error::redis("GET"))?;
            total.held += held.len() as u64;
            total.duplicates += duplicates.unwrap_or(0);
        }
        Ok(total)
    }

    /// The per-key concurrency slots in use in `queue` (task types with
    /// [`key_concurrency`](crate::TaskOptions::key_concurrency)): one row per task type and
    /// key with at least one unexpired slot, most slots first. A slot is a running task's lease
    /// in `{prefix}:{queue}:slots:<task>:<key>`; a dead worker's slots stop counting when their
    /// lease expires (by the server clock). Like [`unique_stats`](Self::unique_stats) this
    /// scans the keyspace (`SCAN ... MATCH`), at most [`SCAN_MAX_CALLS`] calls per node and
    /// stream, so it is meant for operators, not hot loops; [`KeySlotsReport::partial`] says
    /// whether a cap cut the walk short (then some keys may be missing).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn key_slots(&self, queue: &str) -> Result<KeySlotsReport> {
        let mut rows: Vec<KeySlots> = Vec::new();
        let mut partial = false;
        let mut seen = std::collections::HashSet::new();
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            // The levels of a queue share its slots.
            if !seen.insert(k.slots.clone()) {
                continue;
            }
            let mut conn = self.conn.clone();
            let prefix = format!("{}:", k.slots);
            let (found, complete) = conn
                .scan_keys(&format!("{prefix}*"), "zset", SCAN_MAX_CALLS)
                .await
                .map_err(Error::redis("SCAN"))?;
            partial |= !complete;
            for key in found {
                // The slot's lease expiry is the member's score (unix ms, server clock).
                let (secs, micros): (u64, u64) = conn
                    .query_at(&key, &redis::cmd("TIME"))
                    .await
                    .map_err(Error::redis("TIME"))?;
                let now_ms = secs * 1000 + micros / 1000;
                let running: u64 = redis::cmd("ZCOUNT")
                    .arg(&key)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::redis("ZCOUNT"))?;
                if running == 0 {
                    continue;
                }
                let name = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
                match rows.iter_mut().find(|r| r.name == name) {
                    Some(r) => r.running += running,
                    None => rows.push(KeySlots { name, running }),
                }
            }
        }
        rows.sort_by(|a, b| b.running.cmp(&a.running).then_with(|| a.name.cmp(&b.name)));
        Ok(KeySlotsReport {
            keys: rows,
            partial,
        })
    }

    /// Waits until `queue` is idle ([`QueueStats::is_idle`]): its stream is empty (nothing
    /// ready, nothing in flight, every ack flushed) and nothing is delayed, counting scheduled
    /// tasks and retries waiting for their backoff. Dead letters do not count. Reads a
    /// [`stats`](Self::stats) snapshot every [`WAIT_IDLE_POLL`] (50 ms).
    ///
    /// Returns `true` as soon as a snapshot shows the queue idle (at once if it is idle or
    /// does not exist), `false` if it is still busy after `timeout`. Idle is a moment, not a
    /// promise: a task enqueued afterwards makes the queue busy again, and a task scheduled
    /// far ahead keeps it busy until it has run. Tasks in flight on a worker that died keep
    /// it busy until another worker reclaims and finishes them.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] if a snapshot cannot be read.
    pub async fn wait_idle(&self, queue: &str, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.stats(queue).await?.is_idle() {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(WAIT_IDLE_POLL.min(deadline - now)).await;
        }
    }

    /// Whether `queue` exists, i.e. has a stream (created by the first enqueue or the first
    /// worker).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn exists(&self, queue: &str) -> Result<bool> {
        for p in self.streams(queue).await? {
            let found: bool = redis::cmd("EXISTS")
                .arg(self.keys(&p).stream)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(Error::redis("EXISTS"))?;
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The counters of `queue`'s stream (`XINFO STREAM` and `XINFO GROUPS` in one
    /// transaction, after the partition count); `None` if the stream does not exist. For a
    /// partitioned queue, the sums of its streams' counters (a counter is `None` if any
    /// existing stream lacks it).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn stream_info(&self, queue: &str) -> Result<Option<StreamInfo>> {
        let parts = self.streams(queue).await?;
        let mut total = QueueSample::default();
        total.stats.queue = queue.to_owned();
        for s in self.read_streams(&parts, Depth::Full).await? {
            overview::add(&mut total, &s);
        }
        Ok(total.info)
    }

    /// Up to `count` entries of `queue`'s pending entries list (delivered, not acked), oldest
    /// first, with the task id and name of each (`XPENDING` extended form, then one pipelined
    /// `XRANGE` per entry). Empty if the queue or its consumer group does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn pending(&self, queue: &str, count: usize) -> Result<Vec<PendingEntry>> {
        let mut all = Vec::new();
        for p in self.streams(queue).await? {
            if all.len() >= count {
                break;
            }
            all.extend(self.pending_of(&p, count - all.len()).await?);
        }
        Ok(all)
    }

    /// [`pending`](Self::pending) of one stream.
    async fn pending_of(&self, queue: &str, count: usize) -> Result<Vec<PendingEntry>> {
        let k = self.keys(queue);
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&k.stream)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut conn)
            .await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(Error::redis("XPENDING")(e)),
        };
        let Value::Array(rows) = reply else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let Value::Array(row) = row else { continue };
            let mut it = row.into_iter();
            if let (Some(id), Some(consumer), Some(Value::Int(idle)), Some(Value::Int(n))) =
                (it.next(), it.next(), it.next(), it.next())
            {
                if let (Some(entry_id), Some(consumer)) = (text(id), text(consumer)) {
                    entries.push(PendingEntry {
                        entry_id,
                        consumer,
                        idle_ms: idle.max(0) as u64,
                        deliveries: n.max(0) as u64,
                        task_id: None,
                        task_name: None,
                    });
                }
            }
        }
        if entries.is_empty() {
            return Ok(entries);
        }
        let mut pipe = redis::pipe();
        for e in &entries {
            pipe.cmd("XRANGE")
                .arg(&k.stream)
                .arg(&e.entry_id)
                .arg(&e.entry_id);
        }
        let found: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("XRANGE"))?;
        for (e, reply) in entries.iter_mut().zip(found) {
            if let Some((_, fields)) = crate::envelope::parse_entries(reply).into_iter().next() {
                for (key, v) in flat_map(Value::Array(fields)) {
                    match (key.as_str(), v) {
                        (field::TASK, Value::BulkString(t)) => {
                            if let Ok(t) = PackedTask::decode(&t) {
                                e.task_id = Some(t.id.to_owned());
                                e.task_name = Some(t.name.to_owned());
                            }
                        }
                        (field::ID, v) if e.task_id.is_none() => e.task_id = text(v),
                        (field::NAME, v) if e.task_name.is_none() => e.task_name = text(v),
                        _ => {}
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Every worker registered in `{prefix}:workers`, sorted by consumer name, each with
    /// [`live`](WorkerInfo::live) telling whether its heartbeat key still exists. Two round
    /// trips.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut conn = self.conn.clone();
        let registered: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(keys::workers_key(&self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("HGETALL"))?;
        let mut workers: Vec<WorkerInfo> = registered
            .iter()
            .map(|(consumer, desc)| WorkerInfo::parse(consumer, desc))
            .collect();
        workers.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        if workers.is_empty() {
            return Ok(workers);
        }
        let mut cmds = Vec::new();
        for w in &workers {
            let key = keys::worker_key(&self.prefix, &w.consumer);
            cmds.push(redis::cmd("GET").arg(&key).clone());
            cmds.push(redis::cmd("PTTL").arg(&key).clone());
        }
        let replies = self
            .conn
            .query_all(cmds)
            .await
            .map_err(Error::redis("heartbeats"))?;
        let beats: Vec<(Option<String>, i64)> =
            redis::FromRedisValue::from_redis_value(Value::Array(replies))
                .map_err(|e| Error::redis("heartbeats")(e.into()))?;
        for (w, (beat, ttl)) in workers.iter_mut().zip(beats) {
            // PTTL: -2 no key, -1 no expiry.
            w.live = ttl != -2;
            w.heartbeat_ttl_ms = u64::try_from(ttl).ok();
            w.last_beat = beat.and_then(|b| b.parse().ok());
        }
        Ok(workers)
    }

    /// Up to `count` entries of `queue`'s dead stream, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_list(&self, queue: &str, count: usize) -> Result<Vec<DeadLetter>> {
        self.dead_range(queue, "-", "+", count).await
    }

    /// One entry of `queue`'s dead stream by its id, `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_show(&self, queue: &str, dead_id: &str) -> Result<Option<DeadLetter>> {
        Ok(self.dead_range(queue, dead_id, dead_id, 1).await?.pop())
    }

    /// Up to `count` dead letters of `queue` (of each partition in turn) from `start` to `end`.
    async fn dead_range(
        &self,
        queue: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let mut all = Vec::new();
        for p in self.streams(queue).await? {
            if all.len() >= count {
                break;
            }
            all.extend(
                self.dead_range_of(&p, start, end, count - all.len())
                    .await?,
            );
        }
        Ok(all)
    }

    /// [`dead_range`](Self::dead_range) of one stream.
    async fn dead_range_of(
        &self,
        queue: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(self.keys(queue).dead)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XRANGE"))?;
        Ok(crate::envelope::parse_entries(reply)
            .into_iter()
            .map(|(dead_id, fields)| {
                let fields = flat_map(Value::Array(fields))
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::BulkString(b) => (k, b),
                        other => (k, format!("{other:?}").into_bytes()),
                    })
                    .collect();
                DeadLetter::new(dead_id, fields).with_queue(queue)
            })
            .collect())
    }

    /// Moves the given dead tasks back to the work stream with attempt 0 (atomically per
    /// call). Dead entries that are not tasks (they lack `id`, `name`, `payload` or
    /// `enqueued_at`, like the promoter's `raw` entries for undecodable delayed members) would
    /// only die again: they stay dead and are reported in [`ReplayReport::skipped`]. A
    /// [unique](crate::Task::unique_key) task takes its unique key again in the same script;
    /// if another live task holds it by now, the dead task stays dead and is reported in
    /// [`ReplayReport::duplicates`]. Ids not found are in no count.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_replay(&self, queue: &str, dead_ids: &[String]) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        if dead_ids.is_empty() {
            return Ok(report);
        }
        // Each partition replays the ids it has and ignores the others.
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            let (replayed, skipped, duplicates): (usize, Vec<String>, Vec<String>) =
                scripts::REPLAY
                    .key(&k.dead)
                    .key(&k.stream)
                    .key(&k.unique)
                    .arg(dead_ids)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(Error::redis("replay"))?;
            report.replayed += replayed;
            report.skipped.extend(skipped);
            report.duplicates.extend(duplicates);
        }
        Ok(report)
    }

    /// Replays every task that is dead when the call starts, as
    /// [`dead_replay`](Self::dead_replay) does,
    /// 500 per script call: it walks the dead stream up to the newest entry it
    /// saw at the start, so tasks that die again meanwhile (a permanent error, an unknown
    /// name) are not replayed a second time and the call always ends.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; tasks replayed before the error stay replayed.
    pub async fn dead_replay_all(&self, queue: &str) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        for p in self.streams(queue).await? {
            let done = self.dead_replay_all_of(&p).await?;
            report.replayed += done.replayed;
            report.skipped.extend(done.skipped);
            report.duplicates.extend(done.duplicates);
        }
        Ok(report)
    }

    /// [`dead_replay_all`](Self::dead_replay_all) of one stream.
    async fn dead_replay_all_of(&self, queue: &str) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        let newest = self.dead_newest_id(queue).await?;
        let Some(end) = newest else {
            return Ok(report);
        };
        let mut start = "-".to_owned();
        loop {
            let batch = self
                .dead_range_of(queue, &start, &end, REPLAY_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(report);
            };
            // Exclusive start: skipped entries stay in the stream and must not be read again.
            start = format!("({}", last.dead_id());
            let full = batch.len() == REPLAY_BATCH;
            let ids: Vec<String> = batch.into_iter().map(|d| d.dead_id).collect();
            let done = self.dead_replay(queue, &ids).await?;
            report.replayed += done.replayed;
            report.skipped.extend(done.skipped);
            report.duplicates.extend(done.duplicates);
            if !full {
                return Ok(report);
            }
        }
    }

    /// The id of the newest entry of `queue`'s dead stream, if any.
    async fn dead_newest_id(&self, queue: &str) -> Result<Option<String>> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(self.keys(queue).dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XREVRANGE"))?;
        Ok(crate::envelope::parse_entries(reply)
            .into_iter()
            .next()
            .map(|(id, _)| id))
    }

    /// Deletes every dead task of `queue`; returns how many there were. One small script
    /// (`XLEN`, then `UNLINK`) rather than a `MULTI`: Redis refuses every command queued in a
    /// transaction once it is over `maxmemory`, but runs a script whose first write is a
    /// deletion, so purging works when it is needed most.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_purge(&self, queue: &str) -> Result<u64> {
        let mut purged = 0;
        for p in self.streams(queue).await? {
            purged += PURGE
                .key(self.keys(&p).dead)
                .invoke_async::<u64>(&mut self.conn.clone())
                .await
                .map_err(Error::redis("purge"))?;
        }
        Ok(purged)
    }

    /// The former name of [`dead_replay`](Self::dead_replay).
    ///
    /// # Errors
    ///
    /// As [`dead_replay`](Self::dead_replay).
    #[deprecated(note = "renamed to `dead_replay`")]
    pub async fn replay(&self, queue: &str, dead_ids: &[String]) -> Result<ReplayReport> {
        self.dead_replay(queue, dead_ids).await
    }

    /// The former name of [`dead_replay_all`](Self::dead_replay_all).
    ///
    /// # Errors
    ///
    /// As [`dead_replay_all`](Self::dead_replay_all).
    #[deprecated(note = "renamed to `dead_replay_all`")]
    pub async fn replay_all(&self, queue: &str) -> Result<ReplayReport> {
        self.dead_replay_all(queue).await
    }

    /// The former name of [`dead_purge`](Self::dead_purge).
    ///
    /// # Errors
    ///
    /// As [`dead_purge`](Self::dead_purge).
    #[deprecated(note = "renamed to `dead_purge`")]
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        self.dead_purge(queue).await
    }
}

/// Reads the sizes of the queue of `keys` for consumer group `group` as one consistent
/// snapshot (`lua/stats.lua`, one round trip): [`Admin::stats`] and the worker share it.
/// `pending` and `consumers` are 0 when the stream or the group does not exist.
///
/// # Errors
///
/// [`Error::Redis`].
pub(crate) async fn snapshot<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    group: &str,
) -> Result<QueueStats> {
    let (length, pending, delayed, dead, consumers): (u64, u64, u64, u64, u64) = scripts::STATS
        .key(&keys.stream)
        .key(&keys.delayed)
        .key(&keys.dead)
        .arg(group)
        .invoke_async(conn)
        .await
        .map_err(Error::redis("stats"))?;
    Ok(QueueStats {
        queue: keys.queue.clone(),
        length,
        pending,
        backlog: length.saturating_sub(pending),
        delayed,
        dead,
        consumers,
        paused: false,
    })
}

/// Counts and deletes a dead stream: `XLEN` then `UNLINK`, atomically, runnable at `maxmemory`.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("local n = redis.call('XLEN', KEYS[1]) redis.call('UNLINK', KEYS[1]) return n")
});

/// A bulk or simple string reply as text.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// `[k1, v1, k2, v2, ...]` (or a RESP3 map) as (key, value) pairs with string keys.
pub(crate) fn flat_map(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match k {
                    Value::BulkString(k) => out.push((String::from_utf8_lossy(&k).into_owned(), v)),
                    Value::SimpleString(k) => out.push((k, v)),
                    _ => {}
                }
            }
            out
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(&k).into_owned(), v)),
                Value::SimpleString(k) => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The schedules of `queue` from its schedules hash's `<name>:<what>` fields.
fn schedule_infos(queue: &str, fields: Vec<(String, String)>) -> Vec<ScheduleInfo> {
    let mut by_name: std::collections::BTreeMap<String, ScheduleInfo> = Default::default();
    for (field, value) in fields {
        let Some((name, what)) = field.rsplit_once(':') else {
            continue;
        };
        let info = by_name
            .entry(name.to_owned())
            .or_insert_with(|| ScheduleInfo {
                name: name.to_owned(),
                queue: queue.to_owned(),
                expression: String::new(),
                timezone: String::new(),
                last: None,
                next: None,
            });
        match what {
            "expr" => info.expression = value,
            "tz" => info.timezone = value,
            "last" => info.last = value.parse().ok(),
            "next" => info.next = value.parse().ok(),
            _ => {}
        }
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Email {
        to: String,
    }

    impl Task for Email {
        const NAME: &'static str = "Email";
        const QUEUE: &'static str = "emails";
        const OPTIONS: crate::TaskOptions = crate::TaskOptions::DEFAULT;
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Sms {
        to: String,
    }

    impl Task for Sms {
        const NAME: &'static str = "Sms";
        const QUEUE: &'static str = "emails";
        const OPTIONS: crate::TaskOptions = crate::TaskOptions::DEFAULT;
    }

    fn dead(fields: &[(&str, &[u8])]) -> DeadLetter {
        DeadLetter::new(
            "1764000000999-0",
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        )
    }

    fn email_payload() -> Vec<u8> {
        rmp_serde::to_vec_named(&Email {
            to: "a@example.com".into(),
        })
        .unwrap_or_default()
    }

    /// A task a worker dead-lettered (docs/wire-format.md): its own fields plus `error`,
    /// `failed_at`, `worker`, `attempts`.
    #[test]
    fn worker_dead_letter_accessors() {
        let payload = email_payload();
        let d = dead(&[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", b"Email"),
            ("payload", &payload),
            ("attempt", b"3"),
            ("enqueued_at", b"1764000000123"),
            ("custom", b"kept"),
            ("error", b"mailbox full"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-1-ab"),
            ("attempts", b"4"),
        ]);
        assert_eq!(d.dead_id(), "1764000000999-0");
        assert_eq!(d.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5YZ"));
        assert_eq!(d.name(), Some("Email"));
        assert_eq!(d.error(), Some("mailbox full"));
        assert_eq!(d.attempts(), Some(4));
        assert_eq!(d.failed_at(), Some(1_764_000_000_456));
        assert_eq!(d.enqueued_at(), Some(1_764_000_000_123));
        assert_eq!(d.worker(), Some("host-1-ab"));
        assert_eq!(d.deliveries(), None);
        assert_eq!(d.raw(), None);
        assert_eq!(d.payload(), Some(&payload[..]));
        assert_eq!(d.field("custom").as_deref(), Some("kept"));
        assert_eq!(d.get("custom"), Some(&b"kept"[..]));
        assert_eq!(d.fields().len(), 10);
        assert_eq!(d.fields()[0].0, "id");
        assert_eq!(
            d.payload_json(),
            Some(serde_json::json!({"to": "a@example.com"}))
        );
        assert_eq!(
            d.decode::<Email>().ok(),
            Some(Email {
                to: "a@example.com".into()
            })
        );
    }

    /// A v2 task a worker dead-lettered after a retry: `t` and `r` plus the dead-letter
    /// fields; the accessors read the task out of `t`.
    #[test]
    fn v2_dead_letter_accessors() {
        let payload = email_payload();
        let env = crate::envelope::Envelope {
            id: "01JD3ZK1Q7W9V3T1B0N2C4X5YZ".into(),
            name: "Email".into(),
            payload: payload.clone(),
            attempt: 1,
            enqueued_at: 1_764_000_000_123,
            traceparent: None,
            error: Some("timeout".into()),
            unique: None,
            rate_key: None,
            rate_slot: None,
            concurrency_key: None,
            track: None,
            events: false,
        };
        let (t, r) = (env.encode_task(), env.encode_retry().unwrap_or_default());
        let d = dead(&[
            ("t", &t),
            ("r", &r),
            ("error", b"mailbox full"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-1-ab"),
            ("attempts", b"2"),
        ]);
        assert_eq!(d.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5YZ"));
        assert_eq!(d.name(), Some("Email"));
        assert_eq!(d.enqueued_at(), Some(1_764_000_000_123));
        assert_eq!(d.payload(), Some(&payload[..]));
        assert_eq!(d.attempts(), Some(2));
        assert_eq!(d.error(), Some("mailbox full"));
        assert_eq!(
            d.payload_json(),
            Some(serde_json::json!({"to": "a@example.com"}))
        );
        assert!(d.decode::<Email>().is_ok());
        assert!(matches!(
            d.decode::<Sms>(),
            Err(DecodeError::WrongTask { found, .. }) if found == "Email"
        ));
        let shown: Vec<(String, String)> = d
            .task_fields()
            .into_iter()
            .filter(|(k, _)| k != "payload")
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let want = [
            ("id", "01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", "Email"),
            ("enqueued_at", "1764000000123"),
            ("attempt", "1"),
            ("last_error", "timeout"),
            ("error", "mailbox full"),
            ("failed_at", "1764000000456"),
            ("worker", "host-1-ab"),
            ("attempts", "2"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(shown, want);
        // A `t` that does not decode: not a task, shown as stored.
        let d = dead(&[("t", b"\xc1"), ("error", b"malformed entry")]);
        assert_eq!((d.task_id(), d.name(), d.payload()), (None, None, None));
        assert!(matches!(
            d.decode::<Email>(),
            Err(DecodeError::NotATask { .. })
        ));
        assert_eq!(d.task_fields()[0], ("t".to_owned(), b"\xc1".to_vec()));
    }

    /// A task the reclaimer dead-lettered as abandoned: also `deliveries`.
    #[test]
    fn abandoned_dead_letter_accessors() {
        let payload = email_payload();
        let d = dead(&[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", b"Email"),
            ("payload", &payload),
            ("attempt", b"0"),
            ("enqueued_at", b"1764000000123"),
            ("error", b"abandoned: delivered 3 times without finishing"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-2-cd"),
            ("deliveries", b"3"),
            ("attempts", b"0"),
        ]);
        assert_eq!(d.deliveries(), Some(3));
        assert_eq!(d.attempts(), Some(0));
        assert_eq!(d.worker(), Some("host-2-cd"));
        assert!(d.error().is_some_and(|e| e.starts_with("abandoned")));
        assert!(d.decode::<Email>().is_ok());
    }

    /// The promoter's entry for an undecodable delayed member: `raw`, `error`, `failed_at`
    /// only; not a task.
    #[test]
    fn raw_dead_letter_accessors() {
        let d = dead(&[
            ("raw", b"\xc1 not msgpack"),
            ("error", b"undecodable delayed member"),
            ("failed_at", b"1764000000456"),
        ]);
        assert_eq!(d.raw(), Some(&b"\xc1 not msgpack"[..]));
        assert_eq!(d.error(), Some("undecodable delayed member"));
        assert_eq!(d.failed_at(), Some(1_764_000_000_456));
        for none in [d.task_id(), d.name(), d.worker()] {
            assert_eq!(none, None);
        }
        assert_eq!((d.attempts(), d.deliveries()), (None, None));
        assert_eq!(d.payload(), None);
        assert!(matches!(
            d.decode::<Email>(),
            Err(DecodeError::NotATask { dead_id }) if dead_id == "1764000000999-0"
        ));
    }

    /// Malformed values read as absent, never as a wrong number.
    #[test]
    fn malformed_fields_read_as_none() {
        let d = dead(&[
            ("id", b"\xff\xfe"),
            ("attempts", b"-1"),
            ("failed_at", b"soon"),
            ("deliveries", b""),
        ]);
        assert_eq!(d.task_id(), None);
        assert_eq!(d.field("id").as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(
            (d.attempts(), d.failed_at(), d.deliveries()),
            (None, None, None)
        );
    }

    /// `decode` checks the name before the payload, and says which check failed.
    #[test]
    fn decode_reports_the_wrong_type_and_a_bad_payload() {
        let payload = email_payload();
        let d = dead(&[("name", b"Email"), ("payload", &payload)]);
        let err = d.decode::<Sms>().expect_err("an Email is not an Sms");
        assert!(
            matches!(&err, DecodeError::WrongTask { expected: "Sms", found, .. } if found == "Email"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "dead letter 1764000000999-0 is a \"Email\" task, not \"Sms\""
        );
        let d = dead(&[("name", b"Email"), ("payload", b"\xc1")]);
        let err = d.decode::<Email>().expect_err("not MessagePack");
        assert!(
            matches!(&err, DecodeError::Payload { task: "Email", .. }),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn worker_registration_is_parsed() {
        let w = WorkerInfo::parse(
            "host-1-ab",
            "queues=images,texts concurrency=64 started_at=1764000000123 extra=1",
        );
        assert_eq!(w.consumer, "host-1-ab");
        assert_eq!(w.queues, ["images", "texts"]);
        assert_eq!(w.concurrency, Some(64));
        assert_eq!(w.started_at, Some(1_764_000_000_123));
        assert!(!w.live);
        let w = WorkerInfo::parse("c", "garbage");
        assert!(w.queues.is_empty());
        assert_eq!(w.concurrency, None);
    }
}
