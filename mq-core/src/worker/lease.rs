//! The lease thread: an OS thread with its own single-threaded runtime and Redis connection
//! that renews the leases of in-flight tasks (renew script: `XCLAIM ... JUSTID` of the entries
//! this consumer still owns) and refreshes the worker's heartbeat. The same script reports the
//! running tasks whose cancellation was asked for (only while some task of the queue is being
//! cancelled), and this thread fires their `TaskContext`'s cancellation token.
//!
//! A lease is the idle time of the task's entry in the group's pending list; another worker's
//! reclaimer takes an entry over only once it is idle past the reclaim timeout. Renewing every
//! third of that timeout from a thread that handlers cannot block keeps a CPU-bound handler,
//! or one running for hours, from being run twice while its worker lives.

use std::{sync::Arc, thread::JoinHandle, time::Instant};

use crate::redis::conn::Conn;
use tokio_util::sync::CancellationToken;

use super::heartbeat;
use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::retry::error_backoff;
use crate::{
    config::HEARTBEAT_INTERVAL,
    error::{Error, Result},
    redis::{conn, scripts},
};

/// Ids per renew script call: 256.
const RENEW_CHUNK: usize = 256;
/// Longest wait for unregistering at shutdown: 2 s.
const UNREGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the lease thread; it runs until `stop` is cancelled, then unregisters the worker.
pub(super) fn spawn(
    shared: Arc<Shared>,
    queues: Vec<Arc<QueueState>>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the lease runtime: {e}")))?;
    std::thread::Builder::new()
        .name("mq-lease".into())
        .spawn(move || rt.block_on(run(shared, queues, stop)))
        .map_err(|e| Error::Config(format!("cannot start the lease thread: {e}")))
}

async fn run(shared: Arc<Shared>, queues: Vec<Arc<QueueState>>, stop: CancellationToken) {
    let mut failures = 0u32;
    let conn = loop {
        match conn::managed(&shared.endpoint, conn::COMMAND_TIMEOUT).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "lease thread cannot connect");
                if !sleep_or_cancel(error_backoff(failures), &stop).await {
                    return;
                }
                failures += 1;
            }
        }
    };
    let renew_every = shared.config.lease_renew_interval();
    let mut last_beat = Instant::now();
    loop {
        if !sleep_or_cancel(renew_every.min(HEARTBEAT_INTERVAL), &stop).await {
            break;
        }
        // All queues (and partitions) at once, each bounded by the renewal interval: on a
        // cluster, a queue whose primary is down must not hold up the renewals of queues on
        // healthy primaries until their leases expire and their tasks run twice.
        let renewals = queues.iter().map(|q| {
            let (shared, mut conn) = (&shared, conn.clone());
            async move {
                let r = tokio::time::timeout(renew_every, renew(shared, q, &mut conn)).await;
                (q, r)
            }
        });
        for (q, r) in futures::future::join_all(renewals).await {
            let part = format!("renew {}", q.label());
            let e = match r {
                Ok(Ok(())) => {
                    shared.health.ok(&part);
                    continue;
                }
                Ok(Err(e)) => {
                    if let Some(re) = e.redis_error() {
                        crate::redis::transient::reconnect_if_readonly(&conn, re).await;
                    }
                    crate::error::chain(&e)
                }
                Err(_) => format!("no answer within {renew_every:?}"),
            };
            shared.metrics.redis_error("renew");
            shared.health.failed(&part, &e);
            tracing::warn!(queue = %q.keys.queue, error = %e, "lease renewal failed");
        }
        if last_beat.elapsed() >= HEARTBEAT_INTERVAL {
            last_beat = Instant::now();
            // Bounded too: the registry's primary being down must not delay renewals.
            let e = match tokio::time::timeout(renew_every, heartbeat::beat(&shared, &conn)).await {
                Ok(Ok(())) => {
                    shared.health.ok("heartbeat");
                    continue;
                }
                Ok(Err(e)) => {
                    if let Some(re) = e.redis_error() {
                        crate::redis::transient::reconnect_if_readonly(&conn, re).await;
                    }
                    crate::error::chain(&e)
                }
                Err(_) => format!("no answer within {renew_every:?}"),
            };
            shared.metrics.redis_error("heartbeat");
            shared.health.failed("heartbeat", &e);
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
    let unregistered =
        tokio::time::timeout(UNREGISTER_TIMEOUT, heartbeat::unregister(&shared, &conn)).await;
    if !matches!(unregistered, Ok(Ok(()))) {
        tracing::warn!("cannot unregister worker; its heartbeat expires by itself");
    }
}

/// Renews the leases of one queue's in-flight entries; forgets entries no longer ours.
async fn renew(shared: &Shared, queue: &QueueState, conn: &mut Conn) -> Result<()> {
    let ids = queue.in_flight_ids();
    for chunk in ids.chunks(RENEW_CHUNK) {
        let (lost, cancelled): (Vec<String>, Vec<String>) = scripts::RENEW
            .key(&queue.keys.stream)
            .key(&queue.keys.cancel)
            .arg(&shared.config.group)
            .arg(&shared.config.consumer)
            .arg(chunk)
            .invoke_async(conn)
            .await
            .map_err(Error::redis("renew leases"))?;
        if !lost.is_empty() {
            // Acked meanwhile (normal when a task just finished) or taken over by another
            // worker after this one stalled longer than the reclaim timeout.
            tracing::debug!(queue = %queue.queue, lost = lost.len(), "leases not renewed: entries no longer owned");
            queue.untrack(&lost);
        }
        if !cancelled.is_empty() {
            tracing::info!(queue = %queue.queue, cancelled = cancelled.len(), "cancellation of running tasks signalled");
            queue.signal_cancelled(&cancelled);
        }
    }
    renew_slots(shared, queue, conn).await
}

/// Extends the concurrency slots of the queue's running tasks with per-key concurrency to the
/// reclaim timeout from now, as their leases were: a round trip only while such tasks run.
async fn renew_slots(shared: &Shared, queue: &QueueState, conn: &mut Conn) -> Result<()> {
    let slots: Vec<(String, String)> = super::state::lock(&queue.slots)
        .iter()
        .map(|(id, key)| (id.clone(), key.clone()))
        .collect();
    let lease_ms = shared.config.reclaim_timeout.as_millis() as u64;
    for chunk in slots.chunks(RENEW_CHUNK) {
        let mut inv = scripts::RENEW_SLOTS.prepare_invoke();
        inv.key(&queue.keys.stream)
            .arg(&shared.config.group)
            .arg(&shared.config.consumer)
            .arg(lease_ms);
        for (id, key) in chunk {
            inv.arg(id).arg(key);
        }
        let _: u64 = inv
            .invoke_async(conn)
            .await
            .map_err(Error::redis("renew concurrency slots"))?;
    }
    Ok(())
}
