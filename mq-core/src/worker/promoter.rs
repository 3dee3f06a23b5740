//! The promoter: one per queue in every worker. It runs the promote script, which moves due
//! members of the `delayed` set into the stream and removes them in the same script (so
//! however many workers run it, each delayed task is promoted once), and which says when the
//! earliest member left is due. The promoter sleeps until then, at most
//! [`promote_interval`](crate::WorkerConfig::promote_interval), and wakes earlier when a
//! producer or a retry makes an earlier task the first one (the [`waker`](super::waker)
//! hears it on the queue's wake channel). So delayed tasks and retries start within
//! milliseconds of their due time without polling Redis harder.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::retry::error_backoff;
use crate::{
    config::{PROMOTE_BATCH, PROMOTE_MAX_BYTES},
    error::Error,
    redis::scripts,
};

pub(super) async fn run(shared: Arc<Shared>, queue: Arc<QueueState>, token: CancellationToken) {
    let max_sleep = shared.config.promote_interval;
    let mut failures = 0u32;
    let health_part = format!("promote {}", queue.queue);
    let mut sleep = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
        match promote_due(&shared, &queue).await {
            Ok((moved, due_in)) => {
                failures = 0;
                shared.health.ok(&health_part);
                if moved > 0 {
                    tracing::debug!(queue = %queue.queue, moved, "promoted delayed tasks");
                }
                sleep = due_in.map_or(max_sleep, |d| d.min(max_sleep));
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
                sleep = Duration::ZERO;
            }
        }
    }
}

/// Promotes every due task, calling the script until it says none is left due; each call moves
/// at most [`PROMOTE_BATCH`] members and stops after [`PROMOTE_MAX_BYTES`] of them. Returns
/// how many moved and when the earliest member left is due (`None`: the set is empty).
pub(crate) async fn promote_due(
    shared: &Shared,
    queue: &QueueState,
) -> Result<(usize, Option<Duration>), Error> {
    let mut conn = shared.pool.get().await?;
    let keys = &queue.keys;
    let mut total = 0;
    loop {
        let r: redis::RedisResult<(usize, u8, u64, i64)> = scripts::PROMOTE
            .key(&keys.delayed)
            .key(&keys.stream)
            .key(&keys.dead)
            .key(&keys.cancel)
            .arg(PROMOTE_BATCH)
            .arg(PROMOTE_MAX_BYTES)
            .arg(shared.config.dead_letter_max_len)
            .arg(&keys.unique)
            .invoke_async(&mut conn)
            .await;
        let (moved, more, trimmed, due_in) = match r {
            Ok(v) => v,
            Err(e) => {
                crate::redis::transient::discard_if_readonly(conn, &e);
                return Err(Error::redis("promote")(e));
            }
        };
        total += moved;
        queue.metrics.dead_trimmed.inc_by(trimmed);
        if more == 0 {
            let due_in = u64::try_from(due_in).ok().map(Duration::from_millis);
            return Ok((total, due_in));
        }
    }
}
