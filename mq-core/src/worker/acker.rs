//! The acker: one per queue. Handlers send the ids of finished entries; the acker deletes and
//! acks them in one round trip per flush: a plain pipeline `XDEL ids` then `XACK ids` (or one
//! `XACKDEL` on Redis 8.2+). It flushes as soon as it has ids and no flush is in flight, so
//! under load batches grow by themselves and when idle an ack costs no waiting. Entries that
//! report their end (flow children, tasks of a run: [`Ack::report`]) go in the same flush
//! through one `ack_report.lua` call for the batch, which acks each one still pending for this
//! consumer and reports it (a run's counters once per batch).
//!
//! Not `MULTI`: Redis refuses every command queued in a `MULTI` once used memory exceeds
//! `maxmemory`, while plain `XDEL` and `XACK` still run, so a full Redis keeps draining. Not a
//! Lua script either: measured by `mq-bench`, a script costs Redis 14-17 % more time per
//! acked entry than the same two commands. Atomicity is not needed because of the order: an
//! interruption between the two leaves a pending entry whose body is gone, which the next
//! flush acks, or another worker's reclaim (`XCLAIM` drops deleted entries) removes. The
//! other order could leave an acked entry that nothing would ever delete.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{QueueState, Shared};
use crate::config::MAX_ACK_BATCH;
use crate::retry::error_backoff;

/// Flush attempts after shutdown began before the acker gives up: 3.
const FLUSH_ATTEMPTS_AT_SHUTDOWN: u32 = 3;

/// A finished entry to ack.
#[derive(Debug)]
pub(super) struct Ack {
    /// Its stream entry id.
    pub(super) id: String,
    /// Whether its end is reported (a flow child, a task of a run): acked by the batch script.
    pub(super) report: bool,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    queue: Arc<QueueState>,
    mut rx: mpsc::Receiver<Ack>,
    stop: CancellationToken,
) {
    let mut ids = Vec::with_capacity(MAX_ACK_BATCH);
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut ids, MAX_ACK_BATCH) => n,
            _ = stop.cancelled() => {
                // Shutdown: take what is queued, flush it, stop.
                while ids.len() < MAX_ACK_BATCH * 4 {
                    match rx.try_recv() {
                        Ok(id) => ids.push(id),
                        Err(_) => break,
                    }
                }
                flush(&shared, &queue, &ids, &stop).await;
                queue.untrack(ids.iter().map(|a| &a.id));
                return;
            }
        };
        if n == 0 {
            return; // every sender is gone and nothing is left
        }
        // Under load more handlers finish within a scheduler tick: give them one, so a flush
        // carries a batch instead of a single id. When idle this costs a yield, not a timer.
        if ids.len() < MAX_ACK_BATCH {
            tokio::task::yield_now().await;
            while ids.len() < MAX_ACK_BATCH {
                match rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
        }
        flush(&shared, &queue, &ids, &stop).await;
        queue.untrack(ids.iter().map(|a| &a.id));
        ids.clear();
    }
}

/// Acks and deletes `ids`, retrying on Redis errors (with backoff) until it works or, once
/// shutdown began, a few attempts failed; un-acked entries stay pending and run again.
async fn flush(shared: &Shared, queue: &QueueState, acks: &[Ack], stop: &CancellationToken) {
    if acks.is_empty() {
        return;
    }
    let (report, plain): (Vec<&Ack>, Vec<&Ack>) = acks.iter().partition(|a| a.report);
    let ids: Vec<&String> = plain.iter().map(|a| &a.id).collect();
    let reports: Vec<&String> = report.iter().map(|a| &a.id).collect();
    let part = format!("ack {}", queue.label());
    let mut failures = 0u32;
    loop {
        let r = match ack(shared, queue, &ids).await {
            Ok(()) => ack_reports(shared, queue, &reports).await,
            e => e,
        };
        match r {
            Ok(()) => {
                shared.health.ok(&part);
                if failures > 0 {
                    tracing::info!(queue = %queue.queue, acked = acks.len(), "acks flushed after redis came back");
                }
                return;
            }
            Err(e) => {
                shared.metrics.redis_error("ack");
                shared.health.failed(&part, &e.to_string());
                crate::redis::transient::reconnect_if_readonly(&shared.data, &e).await;
                let delay = error_backoff(failures);
                failures += 1;
                tracing::warn!(queue = %queue.queue, error = %e, pending_acks = ids.len(), retry_in = ?delay, "ack flush failed");
                if stop.is_cancelled() && failures >= FLUSH_ATTEMPTS_AT_SHUTDOWN {
                    tracing::error!(queue = %queue.queue, lost_acks = acks.len(), "giving up on acks at shutdown; these tasks will run again");
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One `ack_report.lua` call per [`MAX_ACK_BATCH`] ids of entries that report their end.
async fn ack_reports(
    shared: &Shared,
    queue: &QueueState,
    ids: &[&String],
) -> redis::RedisResult<()> {
    for chunk in ids.chunks(MAX_ACK_BATCH) {
        let _: u64 = crate::redis::scripts::ACK_REPORT
            .key(&queue.keys.stream)
            .arg(&shared.config.group)
            .arg(&shared.config.consumer)
            .arg(&queue.keys.unique)
            .arg(chunk)
            .invoke_async(&mut shared.data.clone())
            .await?;
    }
    Ok(())
}

/// One round trip per [`MAX_ACK_BATCH`] ids: `XDEL` + `XACK` pipelined, or `XACKDEL` where
/// the server has it (Redis 8.2+, detected at build).
async fn ack(shared: &Shared, queue: &QueueState, ids: &[&String]) -> redis::RedisResult<()> {
    for chunk in ids.chunks(MAX_ACK_BATCH) {
        let mut conn = shared.data.clone();
        if shared.xackdel {
            let _: redis::Value = xackdel(&queue.keys.stream, &shared.config.group, chunk)
                .query_async(&mut conn)
                .await?;
        } else {
            let _: () = redis::pipe()
                .cmd("XDEL")
                .arg(&queue.keys.stream)
                .arg(chunk)
                .ignore()
                .cmd("XACK")
                .arg(&queue.keys.stream)
                .arg(&shared.config.group)
                .arg(chunk)
                .ignore()
                .query_async(&mut conn)
                .await?;
        }
    }
    Ok(())
}

/// `XACKDEL stream group KEEPREF IDS n id...` (Redis 8.2): acks and deletes in one command,
/// the same effect as the `XDEL` + `XACK` pipeline.
fn xackdel(stream: &str, group: &str, ids: &[&String]) -> redis::Cmd {
    let mut cmd = redis::cmd("XACKDEL");
    cmd.arg(stream)
        .arg(group)
        .arg("KEEPREF")
        .arg("IDS")
        .arg(ids.len())
        .arg(ids);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xackdel_names_every_id_after_their_count() {
        let ids = ["1-0".to_owned(), "2-5".to_owned()];
        let cmd = xackdel("mq:{q}:stream", "mq", &[&ids[0], &ids[1]]);
        let args: Vec<String> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<other>".to_owned(),
            })
            .collect();
        assert_eq!(
            args,
            [
                "XACKDEL",
                "mq:{q}:stream",
                "mq",
                "KEEPREF",
                "IDS",
                "2",
                "1-0",
                "2-5"
            ]
        );
    }
}
