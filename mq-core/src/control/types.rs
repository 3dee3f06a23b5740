//! The plain types of task control: what a cancel found ([`CancelOutcome`]), what became of
//! a tracked task ([`TaskStatus`]), one event of it ([`TaskEvent`]) and where reading events
//! got to ([`EventCursor`]).

/// What [`Producer::cancel`](crate::Producer::cancel) / [`Admin::cancel`](crate::Admin::cancel)
/// did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was waiting in the queue: its entry was deleted; it never runs.
    Queued,
    /// The task was scheduled (`enqueue_in`) or waiting for a retry: removed from the delayed
    /// set; it never runs (again).
    Delayed,
    /// The task is running on worker `consumer`: its handler's
    /// [`TaskContext::cancelled`](crate::TaskContext::cancelled) fires within one lease-renewal
    /// interval, and the task is then settled as cancelled (never retried nor dead-lettered).
    Running {
        /// The consumer (worker) that holds the task.
        consumer: String,
    },
    /// No such task in the queue: an unknown id, or a task that already finished
    /// (succeeded, dead-lettered, cancelled).
    NotFound,
}

impl std::fmt::Display for CancelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CancelOutcome::Queued => f.write_str("cancelled: removed from the queue before it ran"),
            CancelOutcome::Delayed => f.write_str("cancelled: removed from the delayed set"),
            CancelOutcome::Running { consumer } => write!(
                f,
                "running on {consumer}: cancellation signalled (seen at its next lease renewal)"
            ),
            CancelOutcome::NotFound => f.write_str("not found: unknown id or already finished"),
        }
    }
}

/// What became of a tracked task ([`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl)),
/// from its status hash `{prefix}:{queue}:task:<id>`. Times are unix ms (server clock, but for
/// the due time of a task scheduled by the producer: its host's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Waiting in its queue's stream.
    Queued,
    /// Scheduled (`enqueue_in`, `enqueue_at`, or snoozed) for `due`; stays so until a worker
    /// starts it.
    Scheduled {
        /// When it is due.
        due: u64,
    },
    /// Running on worker `consumer`.
    Running {
        /// The consumer (worker) running it.
        consumer: String,
        /// The attempt, 0 for the first run.
        attempt: u32,
        /// When the attempt started.
        since: u64,
    },
    /// An attempt failed; the next is due at `due` (until a worker starts it).
    Retrying {
        /// When the next attempt is due.
        due: u64,
        /// The error of the failed attempt.
        error: String,
    },
    /// Its handler succeeded (its result, if any: [`Producer::result`](crate::Producer::result)).
    Succeeded {
        /// When it finished.
        finished: u64,
    },
    /// Dead-lettered.
    Failed {
        /// The dead-letter reason.
        reason: String,
    },
    /// Cancelled.
    Cancelled,
    /// Nothing kept: an unknown id, a task type that is not tracked, or a status older than its
    /// ttl.
    Unknown,
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskStatus::Queued => f.write_str("queued"),
            TaskStatus::Scheduled { due } => write!(f, "scheduled (due {due})"),
            TaskStatus::Running {
                consumer,
                attempt,
                since,
            } => write!(
                f,
                "running on {consumer} (attempt {attempt}, since {since})"
            ),
            TaskStatus::Retrying { due, error } => write!(f, "retrying at {due} after: {error}"),
            TaskStatus::Succeeded { finished } => write!(f, "succeeded (at {finished})"),
            TaskStatus::Failed { reason } => write!(f, "failed: {reason}"),
            TaskStatus::Cancelled => f.write_str("cancelled"),
            TaskStatus::Unknown => f.write_str("unknown (not tracked, or expired)"),
        }
    }
}

impl TaskStatus {
    /// Whether the task ended (succeeded, failed, cancelled).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded { .. } | TaskStatus::Failed { .. } | TaskStatus::Cancelled
        )
    }

    /// The status a status hash's fields say.
    pub(super) fn from_hash(h: &std::collections::HashMap<String, String>) -> Self {
        let get = |k: &str| h.get(k).cloned().unwrap_or_default();
        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        match h.get("status").map(String::as_str) {
            Some("queued") => TaskStatus::Queued,
            Some("scheduled") => TaskStatus::Scheduled { due: num("due") },
            Some("running") => TaskStatus::Running {
                consumer: get("consumer"),
                attempt: num("attempt") as u32,
                since: num("since"),
            },
            Some("retrying") => TaskStatus::Retrying {
                due: num("due"),
                error: get("error"),
            },
            Some("succeeded") => TaskStatus::Succeeded {
                finished: num("finished"),
            },
            Some("failed") => TaskStatus::Failed {
                reason: get("reason"),
            },
            Some("cancelled") => TaskStatus::Cancelled,
            _ => TaskStatus::Unknown,
        }
    }
}

/// One state change of a task in a queue's event stream (task types with
/// [`TaskOptions::events`](crate::TaskOptions::events)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// The event's stream entry id (its unix-ms time first).
    pub entry_id: String,
    /// The task id.
    pub id: String,
    /// `enqueued`, `scheduled`, `started`, `retrying`, `snoozed`, `succeeded`, `dead`,
    /// `cancelled` or `reclaimed`.
    pub event: String,
    /// The event's details, in order: `consumer` and `attempt` (started), `due` and `error`
    /// (retrying), `reason` (dead), `finished`...
    pub details: Vec<(String, String)>,
}

/// Where reading a queue's event streams got to: one position per stream (a partitioned
/// queue has one event stream per partition). [`Default`] starts at the oldest event kept.
#[derive(Debug, Clone, Default)]
pub struct EventCursor {
    /// `(events key, last entry id read)`; empty until the first read.
    pub(super) positions: Vec<(String, String)>,
}
