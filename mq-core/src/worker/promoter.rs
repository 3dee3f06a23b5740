//! The promoter: one per queue in every worker. On a timer it runs the promote script, which
//! moves due members of the `delayed` set into the stream and removes them in the same script,
//! so however many workers run it, each delayed task is promoted once.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{error_backoff, sleep_or_cancel, QueueState, Shared};
use crate::{
    config::{PROMOTE_BATCH, PROMOTE_MAX_BYTES},
    error::Error,
    redis::scripts,
};

pub(super) async fn run(shared: Arc<Shared>, queue: Arc<QueueState>, token: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.promote_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0u32;
    let health_part = format!("promote {}", queue.queue);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match promote_due(&shared, &queue).await {
            Ok(moved) => {
                failures = 0;
                shared.health.ok(&health_part);
                if moved > 0 {
                    tracing::debug!(queue = %queue.queue, moved, "promoted delayed tasks");
                }
            }
            Err(e) => {
                shared.metrics.redis_error("promote");
                shared.health.failed(&health_part, &crate::error::chain(&e));
                let delay = error_backoff(failures);
                failures += 1;
                tracing::warn!(queue = %queue.queue, error = %crate::error::chain(&e), retry_in = ?delay, "promote failed");
                if !sleep_or_cancel(delay, &token).await {
                    return;
                }
            }
        }
    }
}

/// Promotes every due task, calling the script until it says none is left due; each call moves
/// at most [`PROMOTE_BATCH`] members and stops after [`PROMOTE_MAX_BYTES`] of them. Returns
/// how many moved.
pub(crate) async fn promote_due(shared: &Shared, queue: &QueueState) -> Result<usize, Error> {
    let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
    let keys = &queue.keys;
    let mut total = 0;
    loop {
        let r: redis::RedisResult<(usize, u8, u64)> = scripts::PROMOTE
            .key(&keys.delayed)
            .key(&keys.stream)
            .key(&keys.dead)
            .arg(PROMOTE_BATCH)
            .arg(PROMOTE_MAX_BYTES)
            .arg(shared.config.dead_letter_max_len)
            .invoke_async(&mut conn)
            .await;
        let (moved, more, trimmed) = match r {
            Ok(v) => v,
            Err(e) => {
                crate::redis::conn::discard_if_readonly(conn, &e);
                return Err(Error::redis("promote")(e));
            }
        };
        total += moved;
        queue.metrics.dead_trimmed.inc_by(trimmed);
        if more == 0 {
            return Ok(total);
        }
    }
}
