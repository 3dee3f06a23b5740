//! Task control: cancelling a task by its id ([`Producer::cancel`](crate::Producer::cancel),
//! [`Admin::cancel`](crate::Admin::cancel), `mq cancel QUEUE ID`), and the progress a running
//! task reports ([`TaskContext::progress`](crate::TaskContext::progress), read with
//! [`Producer::progress`](crate::Producer::progress), [`Admin::progress`](crate::Admin::progress),
//! `mq status QUEUE ID`).
//!
//! A queued task (an entry not yet delivered) is deleted from its stream and a scheduled or
//! retrying one removed from the delayed set, each in the script that finds it: it never runs.
//! A running task's id goes into the hash `{prefix}:{queue}:cancel`; the lease renewal of the
//! worker that runs it reports it there (only while that hash exists), and the worker fires
//! the task's [`TaskContext::cancelled`](crate::TaskContext::cancelled) and settles it as
//! cancelled. Nothing is written or read per task while nothing is being cancelled.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys, keys::QueueKeys, scripts},
};

/// Entries or delayed members one cancel script call looks at: 1,000 (about a millisecond of
/// Redis time), so that cancelling in a long queue never blocks Redis for long.
pub const CANCEL_SCAN_CHUNK: usize = 1_000;

/// Age after which a cancellation mark of a running task is stale, and expiry of a queue's
/// cancel hash (refreshed at each cancellation of a running task): 24 h. Marks are removed by
/// the scripts that end their tasks (ack of a unique or tracked task, dead letter, cancelled,
/// abandoned); the mark of a plain task that succeeded before its worker saw it stays until
/// it is this old and a later cancellation's sample (20 marks) finds it. A mark names its
/// entry, so it never cancels another run of the same task.
pub const CANCEL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The most cancellation marks of running tasks a queue's cancel hash holds: 10,000. A
/// cancellation of a running task beyond it fails (`BUSY`) rather than growing the hash.
pub const CANCEL_MAX_MARKS: u64 = 10_000;

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

/// The streams a task of `queue` may be in: its partitions (from `{prefix}:partitions`) and,
/// for a partitioned queue, the queue's own stream; for a partition's name, that partition.
pub(crate) async fn streams(conn: &Conn, prefix: &str, queue: &str) -> Result<Vec<String>> {
    keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
    if keys::base_queue(queue) != queue {
        return Ok(vec![queue.to_owned()]);
    }
    let n: Option<u16> = redis::cmd("HGET")
        .arg(keys::partitions_key(prefix))
        .arg(queue)
        .query_async(&mut conn.clone())
        .await
        .map_err(Error::redis("HGET partitions"))?;
    let mut names: Vec<String> = match n {
        Some(n) if n > 1 => (0..n).map(|i| keys::partition_name(queue, i)).collect(),
        _ => Vec::new(),
    };
    names.push(queue.to_owned());
    Ok(names)
}

/// Cancels task `id` of `queue` (see [`CancelOutcome`]): looks for it chunk by chunk in each
/// stream of the queue (each partition and priority level), then in its delayed set, twice over (a task that moved between the
/// stream and the delayed set while the first pass looked elsewhere is found by the second).
/// `group` is the consumer group the caller expects the workers to use (an error if the
/// stream has no such group), or `None` for the stream's own (an mq stream has one).
pub(crate) async fn cancel(
    conn: &Conn,
    prefix: &str,
    group: Option<&str>,
    queue: &str,
    id: &str,
) -> Result<CancelOutcome> {
    let streams = streams(conn, prefix, queue).await?;
    for _pass in 0..2 {
        // Every priority level of each stream (a queue without levels has no High or Low
        // stream: the script finds nothing there).
        let levels = streams
            .iter()
            .flat_map(|s| crate::Priority::ALL.map(|l| QueueKeys::new(prefix, s).level(l)));
        for keys in levels {
            for place in ["s", "d"] {
                // The cursor: the last entry id or delayed member (binary) looked at, and
                // that member's score.
                let mut cursor: Vec<u8> = if place == "s" {
                    b"-".to_vec()
                } else {
                    Vec::new()
                };
                let mut score: Vec<u8> = Vec::new();
                loop {
                    let reply: Vec<Vec<u8>> = scripts::CANCEL
                        .key(&keys.stream)
                        .key(&keys.delayed)
                        .key(&keys.cancel)
                        .arg(group.unwrap_or(""))
                        .arg(id)
                        .arg(&keys.unique)
                        .arg(place)
                        .arg(&cursor)
                        .arg(CANCEL_SCAN_CHUNK)
                        .arg(CANCEL_TTL.as_millis() as u64)
                        .arg(&score)
                        .arg(CANCEL_MAX_MARKS)
                        .arg(&keys.rate)
                        .invoke_async(&mut conn.clone())
                        .await
                        .map_err(Error::redis("cancel"))?;
                    let mut reply = reply.into_iter();
                    let what = reply.next().unwrap_or_default();
                    let detail = reply.next().unwrap_or_default();
                    match what.as_slice() {
                        b"queued" => return Ok(CancelOutcome::Queued),
                        b"delayed" => return Ok(CancelOutcome::Delayed),
                        b"running" => {
                            let consumer = String::from_utf8_lossy(&detail).into_owned();
                            return Ok(CancelOutcome::Running { consumer });
                        }
                        b"next" => {
                            cursor = detail;
                            score = reply.next().unwrap_or_default();
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(CancelOutcome::NotFound)
}

/// Least time between two progress writes of one task: 1 s. Reports in between are kept (the
/// last one wins) and written when the second is over, and at the latest when the task ends.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Expiry of a task's hash `{prefix}:{queue}:task:<id>`, refreshed at each progress write: 1 h.
pub const PROGRESS_TTL: Duration = Duration::from_secs(3600);

/// The progress reports of one running task, throttled to one write per [`PROGRESS_EVERY`].
pub(crate) struct Progress {
    conn: Conn,
    /// `{prefix}:{queue}:task:<id>`.
    key: String,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    /// When the last write was sent.
    last_write: Option<Instant>,
    /// A report not written yet (JSON).
    pending: Option<String>,
    /// Whether a delayed write of `pending` is scheduled.
    scheduled: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("key", &self.key).finish()
    }
}

impl Progress {
    pub(crate) fn new(conn: Conn, key: String) -> Arc<Self> {
        Arc::new(Progress {
            conn,
            key,
            state: Mutex::new(ProgressState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `json` as the task's progress: written now if the last write is older than
    /// [`PROGRESS_EVERY`], else kept and written when that second is over.
    pub(crate) async fn report(self: &Arc<Self>, json: String) {
        let now = Instant::now();
        // `Ok(json)`: write now; `Err(Some(due))`: schedule a write at `due`; `Err(None)`: one is
        // scheduled already.
        let decision = {
            let mut s = self.lock();
            match s.last_write {
                Some(t) if now.duration_since(t) < PROGRESS_EVERY => {
                    s.pending = Some(json);
                    if s.scheduled {
                        Err(None)
                    } else {
                        s.scheduled = true;
                        Err(Some(t + PROGRESS_EVERY))
                    }
                }
                _ => {
                    s.last_write = Some(now);
                    s.pending = None;
                    Ok(json)
                }
            }
        };
        let due = match decision {
            Ok(json) => return self.write(json).await,
            Err(None) => return,
            Err(Some(due)) => due,
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let json = {
                let mut s = me.lock();
                s.scheduled = false;
                let json = s.pending.take();
                if json.is_some() {
                    s.last_write = Some(Instant::now());
                }
                json
            };
            if let Some(json) = json {
                me.write(json).await;
            }
        });
    }

    /// Writes the report still kept, if any (the task ended).
    pub(crate) async fn flush(&self) {
        let json = self.lock().pending.take();
        if let Some(json) = json {
            self.write(json).await;
        }
    }

    async fn write(&self, json: String) {
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("HSET")
            .arg(&self.key)
            .arg("progress")
            .arg(json)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.key)
            .arg(PROGRESS_TTL.as_millis() as u64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = r {
            tracing::warn!(key = %self.key, error = %e, "cannot store a task's progress");
        }
    }
}

/// The last progress task `id` of `queue` reported (see
/// [`TaskContext::progress`](crate::TaskContext::progress)), as JSON: `None` if it reported
/// none (yet), or its hash expired.
pub(crate) async fn progress(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<Option<serde_json::Value>> {
    for stream in streams(conn, prefix, queue).await? {
        let key = format!("{}{id}", QueueKeys::new(prefix, &stream).task);
        let json: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("progress")
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("HGET progress"))?;
        if let Some(json) = json {
            let value = serde_json::from_str(&json)
                .map_err(|e| Error::Decode(format!("the progress in {key}: {e}")))?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Cap of a queue's event stream `{prefix}:{queue}:events` (`XADD ... MAXLEN ~`): 10,000
/// events (whole macro nodes are trimmed, so it may hold a few more). The same number is
/// `MQ_EVENTS_MAXLEN` in `lua/status.lua`.
pub const EVENTS_MAXLEN: u64 = 10_000;

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
    fn from_hash(h: &std::collections::HashMap<String, String>) -> Self {
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

/// The status hash of task `id` of `queue` (in the first partition that has one), as a map;
/// empty if none.
async fn task_hash(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<std::collections::HashMap<String, String>> {
    for stream in streams(conn, prefix, queue).await? {
        let key = format!("{}{id}", QueueKeys::new(prefix, &stream).task);
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("HGETALL task"))?;
        if h.contains_key("status") {
            return Ok(h);
        }
    }
    Ok(Default::default())
}

/// The status of task `id` of `queue` (see [`TaskStatus`]).
pub(crate) async fn status(conn: &Conn, prefix: &str, queue: &str, id: &str) -> Result<TaskStatus> {
    Ok(TaskStatus::from_hash(
        &task_hash(conn, prefix, queue, id).await?,
    ))
}

fn decode_result<V: serde::de::DeserializeOwned>(
    h: &std::collections::HashMap<String, String>,
    id: &str,
) -> Result<Option<V>> {
    match h.get("result") {
        Some(json) => serde_json::from_str(json)
            .map(Some)
            .map_err(|e| Error::Decode(format!("the result of task {id}: {e}"))),
        None => Ok(None),
    }
}

/// The stored result of task `id` of `queue`, decoded as `V`.
pub(crate) async fn result<V: serde::de::DeserializeOwned>(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<Option<V>> {
    decode_result(&task_hash(conn, prefix, queue, id).await?, id)
}

/// First and last pause between two polls of [`wait`]: 10 ms, doubling up to 500 ms.
const WAIT_POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(500));

/// Polls the status of task `id` until it finished or `timeout` passed (see
/// [`Producer::wait`](crate::Producer::wait)).
pub(crate) async fn wait<V: serde::de::DeserializeOwned>(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
    timeout: Duration,
) -> Result<V> {
    let deadline = Instant::now() + timeout;
    let mut pause = WAIT_POLL.0;
    loop {
        let h = task_hash(conn, prefix, queue, id).await?;
        let status = TaskStatus::from_hash(&h);
        match status {
            TaskStatus::Succeeded { .. } => {
                // A handler returning `()` stores `null`; a missing result decodes from null too.
                return match decode_result(&h, id)? {
                    Some(v) => Ok(v),
                    None => serde_json::from_value(serde_json::Value::Null)
                        .map_err(|e| Error::Decode(format!("the result of task {id}: {e}"))),
                };
            }
            // `Unknown` is polled on: the status of a unique task starts at `running`, and that
            // of a task queued longer than its ttl is gone until it starts.
            TaskStatus::Failed { .. } | TaskStatus::Cancelled => {
                return Err(Error::TaskFailed {
                    id: id.to_owned(),
                    status,
                })
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::WaitTimeout {
                id: id.to_owned(),
                timeout,
                status,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(WAIT_POLL.1);
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
    positions: Vec<(String, String)>,
}

/// One stream of an `XREAD` reply: its key and its entries `(id, [(field, value)])`.
type XreadStream = (String, Vec<(String, Vec<(String, String)>)>);

/// The events after `cursor` in every event stream of `queue`, at most `count` per stream,
/// oldest first per stream; `block`: with one stream, wait up to that long for one (`XREAD
/// BLOCK`), with several, read each without blocking and sleep that long when none came.
pub(crate) async fn events(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    cursor: &mut EventCursor,
    count: usize,
    block: Option<Duration>,
) -> Result<Vec<TaskEvent>> {
    if cursor.positions.is_empty() {
        cursor.positions = streams(conn, prefix, queue)
            .await?
            .iter()
            .map(|s| (QueueKeys::new(prefix, s).events, "0-0".to_owned()))
            .collect();
    }
    let single = cursor.positions.len() == 1;
    let mut out = Vec::new();
    for (key, last) in &mut cursor.positions {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let (Some(b), true) = (block, single) {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&*key).arg(&*last);
        let reply: Option<Vec<XreadStream>> = cmd
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("XREAD events"))?;
        for (_, entries) in reply.unwrap_or_default() {
            for (entry_id, fields) in entries {
                let mut id = String::new();
                let mut event = String::new();
                let mut details = Vec::new();
                for (k, v) in fields {
                    match k.as_str() {
                        "id" => id = v,
                        "event" => event = v,
                        _ => details.push((k, v)),
                    }
                }
                *last = entry_id.clone();
                out.push(TaskEvent {
                    entry_id,
                    id,
                    event,
                    details,
                });
            }
        }
    }
    if let (Some(b), false, true) = (block, single, out.is_empty()) {
        tokio::time::sleep(b).await;
    }
    Ok(out)
}
