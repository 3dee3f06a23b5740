//! The [`Task`] trait that `#[derive(Task)]` implements, and per-type [`TaskOptions`].

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::retry::Backoff;

/// A unit of work that can be enqueued by a [`Producer`](crate::Producer) and handled by a
/// [`Worker`](crate::Worker).
///
/// Implement it with `#[derive(Task)]`; the payload is the MessagePack encoding of the value
/// (`rmp-serde`, named fields).
///
/// # Examples
///
/// ```
/// use mq_core::Task;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(queue = "images", max_retries = 5, timeout = "2m", backoff = "exponential(1s, 10m)")]
/// struct EmbedImage {
///     product_id: u64,
///     url: String,
/// }
///
/// assert_eq!(EmbedImage::QUEUE, "images");
/// assert_eq!(EmbedImage::NAME, "EmbedImage");
/// assert_eq!(EmbedImage::OPTIONS.max_retries, 5);
/// ```
pub trait Task: Serialize + DeserializeOwned + Send + 'static {
    /// The task type name written in each stream entry's `name` field (default: the type name).
    const NAME: &'static str;
    /// The queue the task is enqueued into (default: the type name in snake_case).
    const QUEUE: &'static str;
    /// Retries, timeout, backoff, concurrency and partitions for this task type.
    const OPTIONS: TaskOptions;

    /// The key that picks this task's partition when its queue is partitioned
    /// ([`TaskOptions::partitions`] > 1): tasks with the same key go to the same partition and
    /// run in enqueue order relative to each other (as far as the queue's concurrency allows).
    /// `None` (the default) spreads tasks round-robin. The derive implements it for
    /// `#[task(partition_by = "field")]` as the field's `to_string()`.
    fn partition_key(&self) -> Option<String> {
        None
    }

    /// The task's uniqueness key: while a task of this type with the same key is queued,
    /// delayed, running or retrying, enqueueing another returns the live task's id instead
    /// of adding one. `None` (the default) means not unique. The derive implements it for
    /// `#[task(unique = "field")]` (several fields: their `to_string()`s joined by `:`).
    fn unique_key(&self) -> Option<String> {
        None
    }

    /// The key whose own rate limit ([`TaskOptions::rate`]) this task counts against; `None`
    /// (the default) with a `rate` set means one limit for the whole queue. The derive
    /// implements it for `#[task(rate_key = "field")]`.
    fn rate_key(&self) -> Option<String> {
        None
    }

    /// The key whose running tasks [`TaskOptions::key_concurrency`] limits. The derive
    /// implements it for `#[task(concurrency_key = "field")]`.
    fn concurrency_key(&self) -> Option<String> {
        None
    }
}

/// A rate: `count` tasks per `per`, e.g. `100/s` (see [`TaskOptions::rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tasks per period (at least 1).
    pub count: u32,
    /// The period (over zero).
    pub per: Duration,
}

impl Rate {
    /// `count` tasks per `per`.
    pub const fn new(count: u32, per: Duration) -> Self {
        Self { count, per }
    }

    /// The spacing between two tasks at this rate (`per / count`).
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

/// Default number of retries after the first attempt: 3.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default handler timeout: 30 minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default backoff: exponential from 1 s, capped at 10 min.
pub const DEFAULT_BACKOFF: Backoff = Backoff::Exponential {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(600),
};

/// How the runtime treats one task type.
///
/// Build it with struct update syntax from [`TaskOptions::DEFAULT`], which is what the derive
/// generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskOptions {
    /// Retries after the first attempt before the task is dead-lettered. Default:
    /// [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// Maximum run time of one attempt; `None` means no limit. Default: [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// Delay before each retry. Default: [`DEFAULT_BACKOFF`].
    pub backoff: Backoff,
    /// Per-queue in-flight limit in each worker process; `None` means only the worker's global
    /// limit applies. Default: `None`.
    pub concurrency: Option<usize>,
    /// Keep a [unique](Task::unique_key) task's key this long after the task succeeded (a
    /// de-duplication window); `None` releases it at once. Default: `None`.
    pub unique_for: Option<Duration>,
    /// At most this many tasks of this type start per period, across all workers (per
    /// [`rate_key`](Task::rate_key) value if the task has one); `None` means no limit. A task
    /// over its limit waits without counting an attempt. Default: `None`.
    pub rate: Option<Rate>,
    /// At most this many tasks with one [`concurrency_key`](Task::concurrency_key) value run
    /// at once across all workers; `None` means no limit. Default: `None`.
    pub key_concurrency: Option<u32>,
    /// Number of streams the queue is spread over, `{queue#0}`..`{queue#N-1}`, each its own
    /// hash tag and so its own slot of a Redis Cluster (1 to [`MAX_PARTITIONS`]). Every task
    /// type of one queue must agree. Default: 1 (one stream, `{queue}`).
    pub partitions: u16,
    /// `Some(level)` makes the task type *prioritized*: its tasks go to the stream of their
    /// [`Priority`] level (`level` unless the producer asks for another, see
    /// [`Producer::with_priority`](crate::Producer::with_priority)) and its workers read the
    /// queue's three level streams, higher levels first. `None` (the default): every task goes
    /// to the queue's one stream, as [`Priority::Normal`].
    pub priority: Option<Priority>,
    /// `Some(ttl)` makes the task type *tracked*: its status (queued, scheduled, running,
    /// retrying, succeeded, failed, cancelled) and its handler's result are kept in the hash
    /// `{prefix}:{queue}:task:<id>` for `ttl` after each change, readable with
    /// [`Producer::status`](crate::Producer::status), [`Producer::result`](crate::Producer::result)
    /// and [`Producer::wait`](crate::Producer::wait). `None` (the default): nothing is kept.
    pub result_ttl: Option<Duration>,
    /// `true`: each state change of a task of this type is appended to the queue's event
    /// stream `{prefix}:{queue}:events` (see `mq events`). Default: `false`.
    pub events: bool,
}

/// The priority level of a task within its queue. Each level of a queue has its own stream,
/// delayed set and dead letters (see [`QueueKeys::level`](crate::redis::keys::QueueKeys::level));
/// [`Normal`](Priority::Normal) uses the queue's plain keys, so a queue without priorities
/// is exactly a queue of Normal tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Started before Normal and Low tasks of the queue.
    High,
    /// The default level.
    #[default]
    Normal,
    /// Started after High and Normal tasks of the queue.
    Low,
}

impl Priority {
    /// Every level, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// `high`, `normal` or `low`: the suffix of the level's keys and its name in metrics and
    /// the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The level's index in [`Priority::ALL`]: 0 for High.
    pub const fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(format!("priority {s:?} must be high, normal or low")),
        }
    }
}

/// The most partitions a queue may have: 1024.
pub const MAX_PARTITIONS: u16 = 1024;

impl TaskOptions {
    /// The defaults listed on each field.
    pub const DEFAULT: TaskOptions = TaskOptions {
        max_retries: DEFAULT_MAX_RETRIES,
        timeout: Some(DEFAULT_TIMEOUT),
        backoff: DEFAULT_BACKOFF,
        concurrency: None,
        unique_for: None,
        rate: None,
        key_concurrency: None,
        partitions: 1,
        priority: None,
        result_ttl: None,
        events: false,
    };
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}
