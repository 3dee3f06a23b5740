//! Reclaim: taking over tasks whose worker died. Every fetcher, in every worker, runs the
//! reclaim script every [`reclaim_interval`](crate::WorkerConfig::reclaim_interval) with as
//! many free permits as it has: `XPENDING ... IDLE` finds entries idle past the reclaim
//! timeout (their lease was not renewed), oldest first, `XCLAIM` takes them, and those
//! delivered more than `max_deliveries` times are dead-lettered as abandoned. The claimed
//! entries then run like fetched ones. No lock is needed: the script is atomic.
//!
//! Also here: the reaper, which removes consumers idle for long with nothing pending.

use std::sync::Arc;

use redis::{aio::ConnectionManager, Value};
use tokio_util::sync::CancellationToken;

use super::{sleep_or_cancel, QueueState, Shared};
use crate::{
    envelope::{parse_entries, RawEntry},
    error::Error,
    redis::scripts,
};

/// Claims up to `count` entries of stalled or dead workers for this consumer, oldest first.
pub(super) async fn reclaim(
    shared: &Shared,
    queue: &QueueState,
    conn: &mut ConnectionManager,
    count: usize,
) -> redis::RedisResult<Vec<RawEntry>> {
    let reply: Value = scripts::RECLAIM
        .key(&queue.keys.stream)
        .key(&queue.keys.dead)
        .arg(&shared.config.group)
        .arg(&shared.config.consumer)
        .arg(shared.config.reclaim_timeout.as_millis() as u64)
        .arg(count)
        .arg(shared.config.max_deliveries)
        .invoke_async(conn)
        .await?;
    let Value::Array(mut parts) = reply else {
        return Ok(Vec::new());
    };
    let (deleted, abandoned) = match (parts.pop(), parts.pop()) {
        (Some(Value::Int(d)), Some(Value::Int(a))) => (d, a),
        _ => (0, 0),
    };
    let entries = parts.pop().map(parse_entries).unwrap_or_default();
    queue.metrics.reclaimed.inc_by(entries.len() as u64);
    queue.metrics.unknown.dead.inc_by(abandoned.max(0) as u64);
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

/// Every [`reap_interval`](crate::WorkerConfig::reap_interval), removes consumers idle past the consumer idle timeout that have
/// nothing pending (checked in the same script: their entries are never dropped).
pub(super) async fn reap_loop(
    shared: Arc<Shared>,
    queue: Arc<QueueState>,
    token: CancellationToken,
) {
    while sleep_or_cancel(shared.config.reap_interval(), &token).await {
        let r = async {
            let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
            scripts::REAP_CONSUMERS
                .key(&queue.keys.stream)
                .arg(&shared.config.group)
                .arg(shared.config.consumer_idle_timeout.as_millis() as u64)
                .invoke_async::<u64>(&mut conn)
                .await
                .map_err(Error::redis("reap consumers"))
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
