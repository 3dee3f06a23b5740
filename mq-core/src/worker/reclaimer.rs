//! Reclaim: taking over tasks whose worker died. Every fetcher, in every worker, runs the
//! reclaim script every [`reclaim_interval`](crate::WorkerConfig::reclaim_interval) with as
//! many free permits as it has: `XPENDING ... IDLE` finds entries idle past the reclaim
//! timeout (their lease was not renewed), oldest first, `XCLAIM` takes them, and those
//! delivered more than `max_deliveries` times are dead-lettered as abandoned. The claimed
//! entries then run like fetched ones. No lock is needed: the script is atomic.
//!
//! Also here: the reaper, which removes consumers idle for long with nothing pending.

use std::sync::Arc;

use crate::redis::conn::Conn;
use redis::Value;
use tokio_util::sync::CancellationToken;

use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::{
    envelope::{parse_entries, RawEntry},
    error::Error,
    redis::scripts,
};

/// Claims up to `count` entries of stalled or dead workers for this consumer, oldest first,
/// and returns those to run.
///
/// Entries of this consumer itself that are idle past the timeout are only renewed by the
/// script (no delivery counted, never abandoned): those this process tracks are running here,
/// their renewal just lagged. The others were left by an earlier process with the same consumer
/// name (or handed back): a second script call claims them like any other entry, counting the
/// delivery, so a task that crashes a worker restarted under a fixed name is still abandoned.
pub(super) async fn reclaim(
    shared: &Shared,
    queue: &QueueState,
    conn: &mut Conn,
    count: usize,
) -> redis::RedisResult<Vec<RawEntry>> {
    let first = call(shared, queue, conn, count, &[]).await?;
    let orphans: Vec<String> = first
        .own
        .into_iter()
        .filter(|id| !queue.is_tracked(id))
        .collect();
    let mut entries = first.run;
    let (mut abandoned, mut deleted) = (first.abandoned, first.deleted);
    if !orphans.is_empty() {
        let second = call(shared, queue, conn, count, &orphans).await?;
        entries.extend(second.run);
        abandoned += second.abandoned;
        deleted += second.deleted;
    }
    queue.metrics.reclaimed.inc_by(entries.len() as u64);
    queue.metrics.unknown.dead.inc_by(abandoned);
    if !entries.is_empty() || abandoned > 0 || deleted > 0 {
        tracing::info!(
            queue = %queue.queue,
            reclaimed = entries.len(),
            abandoned,
            deleted,
            "took over tasks of a stalled or dead worker"
        );
    }
    Ok(entries)
}

/// What one reclaim script call did.
struct Reclaimed {
    /// Entries claimed to run.
    run: Vec<RawEntry>,
    /// Entries dead-lettered as abandoned.
    abandoned: u64,
    /// Pending entries dropped because their stream entry was deleted.
    deleted: u64,
    /// This consumer's own idle entries, renewed only.
    own: Vec<String>,
}

/// Runs the reclaim script: with no `own_ids`, over every entry idle past the timeout; else
/// over these entries of this consumer, which the caller does not run.
async fn call(
    shared: &Shared,
    queue: &QueueState,
    conn: &mut Conn,
    count: usize,
    own_ids: &[String],
) -> redis::RedisResult<Reclaimed> {
    let mut invocation = scripts::RECLAIM.prepare_invoke();
    invocation
        .key(&queue.keys.stream)
        .key(&queue.keys.dead)
        .key(&queue.keys.cancel)
        .arg(&shared.config.group)
        .arg(&shared.config.consumer)
        .arg(shared.config.reclaim_timeout.as_millis() as u64)
        .arg(count)
        .arg(shared.config.max_deliveries)
        .arg(shared.config.dead_letter_max_len)
        .arg(&queue.keys.unique)
        .arg(own_ids);
    let (run, abandoned, deleted, own, trimmed): (Value, u64, u64, Vec<String>, u64) =
        invocation.invoke_async(conn).await?;
    queue.metrics.dead_trimmed.inc_by(trimmed);
    Ok(Reclaimed {
        run: parse_entries(run),
        abandoned,
        deleted,
        own,
    })
}

/// Every [`reap_interval`](crate::WorkerConfig::reap_interval), removes consumers idle past the consumer idle timeout that have
/// nothing pending (checked in the same script: their entries are never dropped).
pub(super) async fn reap_loop(
    shared: Arc<Shared>,
    queue: Arc<QueueState>,
    token: CancellationToken,
) {
    while sleep_or_cancel(shared.config.reap_interval(), &token).await {
        let r = async {
            let mut conn = shared.pool.get().await?;
            let r = scripts::REAP_CONSUMERS
                .key(&queue.keys.stream)
                .arg(&shared.config.group)
                .arg(shared.config.consumer_idle_timeout.as_millis() as u64)
                .invoke_async::<u64>(&mut conn)
                .await;
            r.map_err(|e| {
                crate::redis::transient::discard_if_readonly(conn, &e);
                Error::redis("reap consumers")(e)
            })
        }
        .await;
        match r {
            Ok(0) => {}
            Ok(n) => tracing::info!(queue = %queue.queue, removed = n, "removed idle consumers"),
            Err(e) => {
                shared.metrics.redis_error("reap");
                tracing::warn!(queue = %queue.queue, error = %e, "reaping consumers failed");
            }
        }
    }
}

/// Removes this worker's own consumer from `queue`'s group if it has nothing pending (graceful
/// shutdown). Returns whether it was removed.
pub(super) async fn remove_self(shared: &Shared, queue: &QueueState) -> redis::RedisResult<bool> {
    let removed: u64 = scripts::REAP_CONSUMERS
        .key(&queue.keys.stream)
        .arg(&shared.config.group)
        .arg(-1)
        .arg(&shared.config.consumer)
        .invoke_async(&mut shared.data.clone())
        .await?;
    Ok(removed > 0)
}
