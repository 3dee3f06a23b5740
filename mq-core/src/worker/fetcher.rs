//! The fetcher: one per queue. It takes as many permits as are free (at most
//! [`MAX_FETCH_BATCH`]), reads that many new entries with one `XREADGROUP`, and hands each to a
//! dispatcher task together with its permit. Permits it could not use go back at once.
//!
//! When the queue is empty it blocks on `XREADGROUP ... COUNT 1 BLOCK` holding no permit, so
//! an idle queue holds no capacity that other queues of the process could use; an entry that
//! arrives waits (with its lease renewed) for a permit before it runs.
//!
//! At shutdown it stops at once, a blocking read included: the read is dropped, and the
//! worker hands back whatever this consumer was delivered but did not start
//! ([`release`](super::release)).

use std::{sync::Arc, time::Instant};

use redis::{aio::ConnectionManager, Value};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    dispatcher, error_backoff, permits::Permits, reclaimer, sleep_or_cancel, QueueState, Shared,
};
use crate::{
    config::MAX_FETCH_BATCH,
    envelope::{parse_read_reply, RawEntry},
    redis::conn,
};

pub(super) struct Fetcher {
    pub(super) shared: Arc<Shared>,
    pub(super) queue: Arc<QueueState>,
    pub(super) conn: ConnectionManager,
    pub(super) ack_tx: mpsc::Sender<String>,
    pub(super) tracker: TaskTracker,
    pub(super) token: CancellationToken,
    /// Cancelled when running tasks are to be aborted (grace period over).
    pub(super) abort: CancellationToken,
}

impl Fetcher {
    pub(super) async fn run(self) {
        let health_part = format!("fetch {}", self.queue.queue);
        // The fetch connection's `CLIENT ID`, for unblocking its read at shutdown; asked for
        // before the first blocking read and again after any error (a reconnect changes it).
        let mut client_id: Option<i64> = None;
        let mut idle = false;
        let mut failures = 0u32;
        let reclaim_every = self.shared.config.reclaim_interval();
        let mut last_reclaim = Instant::now();
        loop {
            let reclaim_due = last_reclaim.elapsed() >= reclaim_every;
            if idle && !reclaim_due {
                // The queue is empty: block for one entry without holding any capacity, so an
                // idle queue takes nothing from busy ones. At shutdown the read is dropped:
                // an entry it may still deliver is handed back when the worker stops.
                if client_id.is_none() {
                    client_id = redis::cmd("CLIENT")
                        .arg("ID")
                        .query_async(&mut self.conn.clone())
                        .await
                        .ok();
                }
                let read = self.read(1, true);
                tokio::pin!(read);
                let read = tokio::select! {
                    biased;
                    r = &mut read => r,
                    _ = self.token.cancelled() => {
                        self.stop_blocking_read(client_id, read).await;
                        break;
                    }
                };
                let entries = match read {
                    Ok(entries) => entries,
                    Err(e) => {
                        client_id = None;
                        match self.read_failed(e, &health_part, &mut failures).await {
                            true => continue,
                            false => break,
                        }
                    }
                };
                failures = 0;
                self.shared.health.ok(&health_part);
                if entries.is_empty() {
                    continue;
                }
                idle = false;
                // Renew its lease while it waits for a permit.
                for (id, _) in &entries {
                    self.queue.track(id);
                }
                let permits = tokio::select! {
                    biased;
                    _ = self.token.cancelled() => None,
                    p = self.acquire(entries.len()) => p,
                };
                match permits {
                    Some(p) => self.dispatch(entries, p),
                    None => {
                        // Shutting down before it started: hand it back, uncounted.
                        self.queue.untrack(entries.iter().map(|(id, _)| id));
                        self.hand_back(entries).await;
                        break;
                    }
                }
                continue;
            }
            let permits = tokio::select! {
                biased;
                _ = self.token.cancelled() => break,
                p = self.acquire(MAX_FETCH_BATCH) => match p { Some(p) => p, None => break },
            };
            if reclaim_due {
                last_reclaim = Instant::now();
                let mut conn = self.conn.clone();
                match reclaimer::reclaim(&self.shared, &self.queue, &mut conn, permits.len()).await
                {
                    Ok(mut entries) if !entries.is_empty() => {
                        let claimed = entries.len();
                        // The script only renews our own entries, but an entry of ours taken
                        // over meanwhile by a worker that died too may still run here.
                        entries.retain(|(id, _)| !self.queue.is_tracked(id));
                        if claimed == permits.len() {
                            // Probably more stalled entries behind these: they are the oldest
                            // tasks of the queue, so take them before new ones.
                            last_reclaim = last_reclaim
                                .checked_sub(reclaim_every)
                                .unwrap_or(last_reclaim);
                        }
                        self.dispatch(entries, permits);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        client_id = None;
                        self.shared.metrics.redis_error("reclaim");
                        tracing::warn!(queue = %self.queue.queue, error = %e, "reclaim failed");
                    }
                }
            }
            match self.read(permits.len(), false).await {
                Ok(entries) => {
                    failures = 0;
                    self.shared.health.ok(&health_part);
                    tracing::trace!(queue = %self.queue.queue, read = entries.len(), asked = permits.len(), "read");
                    idle = entries.is_empty();
                    self.dispatch(entries, permits);
                }
                Err(e) => {
                    drop(permits);
                    if !self.read_failed(e, &health_part, &mut failures).await {
                        break;
                    }
                }
            }
        }
        tracing::debug!(queue = %self.queue.queue, "fetcher stopped");
    }

    /// Ends a blocking read at shutdown without losing what it may deliver: `CLIENT UNBLOCK`
    /// (from another connection) makes it return at once, empty or with an entry delivered
    /// just before; such an entry is handed back uncounted. Without a client id (or with an
    /// ACL user lacking `CLIENT UNBLOCK`) the read is dropped, and an entry it still delivers
    /// waits for the worker's final sweep.
    async fn stop_blocking_read(
        &self,
        client_id: Option<i64>,
        read: std::pin::Pin<
            &mut impl std::future::Future<Output = redis::RedisResult<Vec<RawEntry>>>,
        >,
    ) {
        let Some(id) = client_id else { return };
        let unblocked: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async(&mut self.shared.data.clone())
            .await;
        if let Err(e) = unblocked {
            tracing::debug!(queue = %self.queue.queue, error = %e, "CLIENT UNBLOCK failed; dropping the blocking read");
            return;
        }
        if let Ok(Ok(entries)) = tokio::time::timeout(conn::COMMAND_TIMEOUT, read).await {
            self.hand_back(entries).await;
        }
    }

    /// Hands entries this worker fetched but never started back to the group, uncounted.
    async fn hand_back(&self, entries: Vec<RawEntry>) {
        if entries.is_empty() {
            return;
        }
        let ids: Vec<String> = entries.into_iter().map(|(id, _)| id).collect();
        if let Err(e) = super::release::release(&self.shared, &self.queue, &ids, true).await {
            tracing::warn!(queue = %self.queue.queue, entries = ?ids, error = %crate::error::chain(&e), "cannot hand back entries fetched but not started; they are reclaimed after the reclaim timeout");
        }
    }

    /// Logs and counts a failed read, recreates a vanished group and backs off. Returns
    /// `false` if the worker is shutting down.
    async fn read_failed(&self, e: redis::RedisError, part: &str, failures: &mut u32) -> bool {
        self.shared.metrics.redis_error("fetch");
        self.shared.health.failed(part, &e.to_string());
        conn::reconnect_if_readonly(&self.conn, &e).await;
        let delay = error_backoff(*failures);
        *failures += 1;
        tracing::warn!(queue = %self.queue.queue, error = %e, retry_in = ?delay, "fetch failed");
        if e.code() == Some("NOGROUP") {
            // The stream or group vanished: FLUSHALL, a Redis restarted without persistence,
            // or eviction (refused at build, unless allowed). Tasks in it are gone: say so,
            // then create them again.
            tracing::error!(queue = %self.queue.queue, stream = %self.queue.keys.stream, "the stream or its consumer group vanished (FLUSHALL, restart without persistence, eviction?): tasks it held are lost; recreating it");
            let r = conn::ensure_group(
                &mut self.conn.clone(),
                &self.queue.keys.stream,
                &self.shared.config.group,
            )
            .await;
            if let Err(e) = r {
                tracing::warn!(queue = %self.queue.queue, error = %crate::error::chain(&e), "cannot recreate consumer group");
            }
        }
        sleep_or_cancel(delay, &self.token).await
    }

    /// Waits for one permit of each kind, then takes up to `want - 1` more without waiting.
    /// When the queue is busy (`want > 1`) it first yields once, so that handlers finishing in
    /// the same scheduler tick free their permits and the next read asks for a batch.
    async fn acquire(&self, want: usize) -> Option<Permits> {
        let mut queue = match &self.queue.limit {
            Some(s) => Some(s.clone().acquire_owned().await.ok()?),
            None => None,
        };
        let global_sem = &self.shared.global;
        let mut global = global_sem.clone().acquire_owned().await.ok()?;
        if want > 1 {
            tokio::task::yield_now().await;
        }
        let mut extra = (want - 1).min(global_sem.available_permits());
        if let Some(s) = &self.queue.limit {
            extra = extra.min(s.available_permits());
        }
        if extra > 0 {
            if let Ok(g) = global_sem.clone().try_acquire_many_owned(extra as u32) {
                match (&self.queue.limit, &mut queue) {
                    (Some(s), Some(q)) => {
                        if let Ok(more) = s.clone().try_acquire_many_owned(extra as u32) {
                            q.merge(more);
                            global.merge(g);
                        }
                    }
                    _ => global.merge(g),
                }
            }
        }
        Some(Permits { global, queue })
    }

    async fn read(&self, count: usize, block: bool) -> redis::RedisResult<Vec<RawEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.shared.config.group)
            .arg(&self.shared.config.consumer)
            .arg("COUNT")
            .arg(count);
        if block {
            cmd.arg("BLOCK")
                .arg(self.shared.config.block_timeout.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.queue.keys.stream).arg(">");
        let reply: Value = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(parse_read_reply(reply))
    }

    fn dispatch(&self, mut entries: Vec<RawEntry>, mut permits: Permits) {
        // The last entry takes the remaining permits (trimmed to one each); spare ones go back.
        let Some(last) = entries.pop() else {
            return;
        };
        for entry in entries {
            match permits.take_one() {
                Some(p) => self.spawn(entry, p),
                None => {
                    // Redis never returns more than COUNT entries; should it, the extra entry
                    // stays pending and is redelivered.
                    tracing::error!(queue = %self.queue.queue, entry = %entry.0, "read returned more entries than asked for");
                }
            }
        }
        self.spawn(last, permits.trim_to_one());
    }

    fn spawn(&self, entry: RawEntry, permits: Permits) {
        self.queue.track(&entry.0);
        let job = dispatcher::Job {
            shared: self.shared.clone(),
            queue: self.queue.clone(),
            entry,
            ack_tx: self.ack_tx.clone(),
            permits: Arc::new(permits),
            abort: self.abort.clone(),
        };
        self.tracker.spawn(job.run());
    }
}
