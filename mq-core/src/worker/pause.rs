//! Pause and resume on the worker's side: every [`PAUSE_POLL`] one round trip reads the pause
//! flag (`{prefix}:{queue}:paused`, see [`Admin::pause`](crate::Admin::pause)) of each queue of
//! the worker, sets [`QueueState::paused`] and wakes the queue's fetchers when it changed.
//! A paused queue's fetcher starts nothing and reads nothing (see `fetcher.rs`); its promoter,
//! reclaimer and acker go on. Nothing is read per task: a queue that is never paused costs
//! this one background read, not a round trip on the task path.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
};

use tokio_util::sync::CancellationToken;

use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::{
    admin::PAUSE_POLL,
    error::{Error, Result},
};

/// Reads the pause flags every [`PAUSE_POLL`] until `stop` is cancelled. Keeps the last known
/// state while Redis cannot be reached.
pub(super) async fn run(
    shared: Arc<Shared>,
    queues: Vec<Arc<QueueState>>,
    stop: CancellationToken,
) {
    while sleep_or_cancel(PAUSE_POLL, &stop).await {
        if let Err(e) = refresh(&shared, &queues).await {
            shared.metrics.redis_error("pause");
            tracing::debug!(error = %crate::error::chain(&e), "cannot read the pause flags");
        }
    }
}

/// Reads every queue's pause flag (one round trip; concurrent commands on a cluster) and
/// applies it.
///
/// # Errors
///
/// [`Error::Redis`].
pub(super) async fn refresh(shared: &Shared, queues: &[Arc<QueueState>]) -> Result<()> {
    // The partitions of a queue share one flag: read each flag once.
    let mut flags: Vec<&str> = queues.iter().map(|q| q.keys.paused.as_str()).collect();
    flags.sort_unstable();
    flags.dedup();
    let cmds = flags
        .iter()
        .map(|k| redis::cmd("EXISTS").arg(*k).clone())
        .collect();
    let replies = shared
        .data
        .query_all(cmds)
        .await
        .map_err(Error::redis("EXISTS paused"))?;
    let paused: HashMap<&str, bool> = flags
        .iter()
        .zip(replies)
        .map(|(k, v)| (*k, matches!(v, redis::Value::Int(n) if n > 0)))
        .collect();
    for q in queues {
        let now = paused.get(q.keys.paused.as_str()).copied().unwrap_or(false);
        if q.paused.swap(now, Ordering::SeqCst) != now {
            q.pause_changed.notify_one();
            if q.keys.level == crate::Priority::Normal
                && (q.keys.queue == *q.queue || q.keys.queue.ends_with("#0"))
            {
                tracing::info!(queue = %q.queue, paused = now, "{}", if now { "queue paused" } else { "queue resumed" });
            }
        }
        shared
            .metrics
            .paused
            .with_label_values(&[&*q.queue])
            .set(i64::from(now));
    }
    Ok(())
}
