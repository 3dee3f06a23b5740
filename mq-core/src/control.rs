//! Task control: cancelling a task by its id ([`Producer::cancel`](crate::Producer::cancel),
//! [`Admin::cancel`](crate::Admin::cancel), `mq cancel QUEUE ID`).
//!
//! A queued task (an entry not yet delivered) is deleted from its stream and a scheduled or
//! retrying one removed from the delayed set, each in the script that finds it: it never runs.
//! A running task's id goes into the hash `{prefix}:{queue}:cancel`; the lease renewal of the
//! worker that runs it reports it there (only while that hash exists), and the worker fires
//! the task's [`TaskContext::cancelled`](crate::TaskContext::cancelled) and settles it as
//! cancelled. Nothing is written or read per task while nothing is being cancelled.

use std::time::Duration;

use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys, keys::QueueKeys, scripts},
};

/// Entries or delayed members one cancel script call looks at: 1,000 (about a millisecond of
/// Redis time), so that cancelling in a long queue never blocks Redis for long.
pub const CANCEL_SCAN_CHUNK: usize = 1_000;

/// Expiry of a queue's cancel hash, refreshed at each cancellation of a running task: 24 h. Its
/// fields are removed as their tasks are settled; the expiry only clears the ids of tasks whose
/// entries vanished otherwise (e.g. dead-lettered as abandoned).
pub const CANCEL_TTL: Duration = Duration::from_secs(24 * 3600);

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
/// stream of the queue, then in its delayed set, twice over (a task that moved between the
/// stream and the delayed set while the first pass looked elsewhere is found by the second).
pub(crate) async fn cancel(
    conn: &Conn,
    prefix: &str,
    group: &str,
    queue: &str,
    id: &str,
) -> Result<CancelOutcome> {
    let streams = streams(conn, prefix, queue).await?;
    for _pass in 0..2 {
        for stream in &streams {
            let keys = QueueKeys::new(prefix, stream);
            for place in ["s", "d"] {
                let mut cursor = if place == "s" { "-" } else { "0" }.to_owned();
                loop {
                    let (what, detail): (String, String) = scripts::CANCEL
                        .key(&keys.stream)
                        .key(&keys.delayed)
                        .key(&keys.cancel)
                        .arg(group)
                        .arg(id)
                        .arg(&keys.unique)
                        .arg(place)
                        .arg(&cursor)
                        .arg(CANCEL_SCAN_CHUNK)
                        .arg(CANCEL_TTL.as_millis() as u64)
                        .invoke_async(&mut conn.clone())
                        .await
                        .map_err(Error::redis("cancel"))?;
                    match what.as_str() {
                        "queued" => return Ok(CancelOutcome::Queued),
                        "delayed" => return Ok(CancelOutcome::Delayed),
                        "running" => return Ok(CancelOutcome::Running { consumer: detail }),
                        "next" => cursor = detail,
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(CancelOutcome::NotFound)
}
