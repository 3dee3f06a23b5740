//! The fetcher: one per queue. It keeps a bounded buffer of fetched entries (at most the
//! queue's in-flight limit, [`MAX_FETCH_BATCH`] at most) and one read in flight to refill it,
//! while it hands buffered entries to dispatcher tasks as permits free up. So the next read
//! travels while handlers run: drain speed depends neither on the concurrency landing on a
//! lucky batch size nor, as much, on the round trip to Redis (entries in the pipe are the
//! buffer plus the running tasks, about twice the limit).
//!
//! Buffered entries are delivered to this consumer: they are tracked (their leases renewed)
//! like running ones, and handed back at once, uncounted, at shutdown. The buffer never holds
//! more than one in-flight limit's worth, so a worker does not hoard a queue that others could
//! drain. Reads hold no permits: when the queue is empty the fetcher blocks on `XREADGROUP ...
//! BLOCK` without taking capacity that other queues of the process could use.
//!
//! While its queue is paused (see `pause.rs`) it sends no read and dispatches nothing; a read
//! already in flight lands in the buffer, which waits (leased) for the resume.
//!
//! The fetchers of a prioritized queue (one per level) and of queues put in order have a
//! [`Seat`] in an [arbiter](super::arbiter): they report their state and ask it before each
//! read and before taking permits. A plain queue's fetcher has none and never asks. Each level
//! buffers up to the queue's limit, so a prioritized queue may have up to three limits' worth
//! buffered here (all levels read when weighted; a strict level held back by a higher one
//! keeps what it fetched before).
//!
//! At shutdown it stops at once, a blocking read included (`CLIENT UNBLOCK`), and hands back
//! what it fetched but did not start ([`release`](super::release)).

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use crate::redis::conn::Conn;
use redis::Value;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::state::{sleep_or_cancel, QueueState, Shared};
use super::{arbiter::Seat, dispatcher, permits::Permits, reclaimer};
use crate::retry::error_backoff;
use crate::{
    config::MAX_FETCH_BATCH,
    envelope::{parse_read_reply, RawEntry},
    redis::conn,
};

/// How long a shutdown waits for the reply of a blocking read that `CLIENT UNBLOCK` found no
/// longer blocked: a reply already sent arrives within a round trip.
const UNBLOCKED_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) struct Fetcher {
    pub(super) shared: Arc<Shared>,
    pub(super) queue: Arc<QueueState>,
    pub(super) conn: Conn,
    pub(super) ack_tx: mpsc::Sender<super::acker::Ack>,
    pub(super) tracker: TaskTracker,
    pub(super) token: CancellationToken,
    /// Cancelled when running tasks are to be aborted (grace period over).
    pub(super) abort: CancellationToken,
    /// Most entries buffered plus being read: the queue's in-flight limit.
    pub(super) prefetch: usize,
    /// This fetcher's place in its queue's (or queue group's) order; `None` for a plain queue.
    pub(super) seat: Option<Seat>,
}

/// What the fetcher's one Redis request in flight is doing.
enum Pending {
    /// A read (`block`: a blocking read on an empty queue), sent at `sent`.
    Read { block: bool, sent: Instant },
    /// A reclaim of stalled entries of dead workers.
    Reclaim { asked: usize },
}

type Request = Pin<Box<dyn Future<Output = redis::RedisResult<Vec<RawEntry>>> + Send>>;

/// The fetcher's window: how many entries it keeps buffered or being read. At least the
/// queue's in-flight limit; more when tasks finish faster than one read per round trip can
/// bring them (fast tasks, a distant Redis): then two round trips' worth of the measured
/// dispatch rate (the bandwidth-delay product, doubled because a read starts when the buffer
/// is half empty). Slow tasks never grow it, so a worker holds at most its limit plus what it
/// would start within two round trips: nothing that idle workers elsewhere could run sooner.
struct Window {
    /// Tasks dispatched per second, smoothed over [`WINDOW_SAMPLE`] samples.
    rate: f64,
    since: Instant,
    count: usize,
    /// Round trip of a non-blocking read, seconds, smoothed.
    rtt: f64,
}

/// How often the dispatch rate is sampled: 50 ms.
const WINDOW_SAMPLE: std::time::Duration = std::time::Duration::from_millis(50);

impl Window {
    fn new() -> Self {
        Window {
            rate: 0.0,
            since: Instant::now(),
            count: 0,
            rtt: 0.0,
        }
    }

    fn dispatched(&mut self, n: usize) {
        self.count += n;
        let elapsed = self.since.elapsed();
        if elapsed >= WINDOW_SAMPLE {
            let sample = self.count as f64 / elapsed.as_secs_f64();
            self.rate = 0.5 * self.rate + 0.5 * sample;
            self.count = 0;
            self.since = Instant::now();
        }
    }

    /// Forgets the measured rate (the queue ran dry).
    fn reset(&mut self) {
        self.rate = 0.0;
        self.count = 0;
        self.since = Instant::now();
    }

    fn round_trip(&mut self, rtt: std::time::Duration) {
        let s = rtt.as_secs_f64();
        self.rtt = if self.rtt == 0.0 {
            s
        } else {
            0.8 * self.rtt + 0.2 * s
        };
    }

    /// Entries to keep buffered or being read: at least `base`, at most [`MAX_FETCH_BATCH`].
    fn cap(&self, base: usize) -> usize {
        let bdp = (2.0 * self.rate * self.rtt).ceil() as usize;
        base.max(bdp).clamp(1, MAX_FETCH_BATCH)
    }
}

impl Fetcher {
    pub(super) async fn run(self) {
        let health_part = format!("fetch {}", self.queue.label());
        // The fetch connection's `CLIENT ID`, for unblocking its read at shutdown; asked for
        // before each blocking read.
        let mut client_id: Option<i64> = None;
        let base = self.prefetch.clamp(1, MAX_FETCH_BATCH);
        let mut window = Window::new();
        let mut buffer: VecDeque<RawEntry> = VecDeque::with_capacity(base);
        let mut request: Option<(Pending, Request)> = None;
        let mut idle = false;
        let mut failures = 0u32;
        let reclaim_every = self.shared.config.reclaim_interval();
        let mut last_reclaim = Instant::now();
        // Completes when the pause watcher flips `paused`; kept across iterations (registered
        // once, not per loop).
        let mut pause_changed = std::pin::pin!(self.queue.pause_changed.notified());
        // Completes when the arbiter's seats change (never without a seat).
        let never = tokio::sync::Notify::new();
        let order = self.seat.as_ref().map_or(&never, Seat::changed);
        let mut order_changed = std::pin::pin!(order.notified());
        // The last read failed: counts as exhausted for the arbiter.
        let mut failing = false;
        loop {
            // A paused queue reads nothing new and dispatches nothing: what is buffered stays
            // leased here and starts first on resume (or is handed back at shutdown).
            let paused = self.queue.paused.load(Ordering::Relaxed);
            // Ordered fetchers read and start only when the arbiter lets them.
            let (may_read, may_start) = match &self.seat {
                None => (true, true),
                Some(seat) => {
                    seat.report(paused || failing || (idle && buffer.is_empty()));
                    (seat.may_read(), seat.may_start())
                }
            };
            // Refill once the buffer is down to half, so that reads stay large (a read per freed
            // permit would cost a round trip per task). After an empty read, read again only
            // once the buffer is empty (then blocking): a non-blocking read of an empty queue
            // next to waiting entries would spin.
            // A queue starved by another queue of the process (which holds the global permits)
            // buffers only what can start soon: its running tasks plus the free permits, at
            // least 1 so that a freed permit finds an entry; not a window's worth that an idle
            // worker elsewhere could run. A queue that holds its share gets the full window.
            // Entries tracked but not buffered were dispatched: they hold this queue's permits.
            let dispatched = self.queue.tracked_len().saturating_sub(buffer.len());
            let can_start = dispatched + self.shared.global.available_permits();
            let cap = if can_start >= base {
                window.cap(base)
            } else {
                can_start.max(1)
            };
            if !paused
                && may_read
                && request.is_none()
                && buffer.len() <= cap / 2
                && (!idle || buffer.is_empty())
            {
                let room = cap - buffer.len();
                if last_reclaim.elapsed() >= reclaim_every {
                    last_reclaim = Instant::now();
                    request = Some((Pending::Reclaim { asked: room }, self.reclaim(room)));
                } else {
                    // Block only when there is nothing else to do.
                    let block = idle && buffer.is_empty();
                    if block {
                        // Asked before every blocking read (the idle path only): a silent
                        // reconnect, or on a cluster a MOVED to another node, changes it.
                        // On a cluster: the id of the connection to the queue's node.
                        client_id = self
                            .conn
                            .clone()
                            .query_at(&self.queue.keys.stream, redis::cmd("CLIENT").arg("ID"))
                            .await
                            .ok();
                    }
                    let sent = Instant::now();
                    request = Some((Pending::Read { block, sent }, self.read(room, block)));
                }
            }
            tokio::select! {
                biased;
                _ = self.token.cancelled() => {
                    match request.take() {
                        Some((Pending::Read { block: true, .. }, read)) => {
                            self.stop_blocking_read(client_id, read).await;
                        }
                        // A non-blocking read or a reclaim answers within a round trip: take
                        // what it delivers and hand it back with the rest, uncounted.
                        Some((_, pending)) => {
                            if let Ok(Ok(entries)) =
                                tokio::time::timeout(conn::COMMAND_TIMEOUT, pending).await
                            {
                                self.buffer(&mut buffer, entries);
                            }
                        }
                        None => {}
                    }
                    let rest: Vec<RawEntry> = buffer.drain(..).collect();
                    self.queue.untrack(rest.iter().map(|(id, _)| id));
                    self.hand_back(rest).await;
                    break;
                }
                _ = pause_changed.as_mut() => {
                    pause_changed.set(self.queue.pause_changed.notified());
                }
                // Watched only while the arbiter holds this seat back: a seat that may start
                // re-checks after taking its permits, and does not drop a wait for permits
                // (and its place in the semaphores' queues) at every change of the others.
                _ = order_changed.as_mut(), if self.seat.is_some() && !may_start => {
                    order_changed.set(order.notified());
                }
                r = async { request.as_mut().map(|(_, f)| f) .expect("guarded").await }, if request.is_some() => {
                    let Some((what, _)) = request.take() else { continue };
                    match (what, r) {
                        (Pending::Read { block, sent }, Ok(entries)) => {
                            if !block {
                                window.round_trip(sent.elapsed());
                            }
                            failures = 0;
                            failing = false;
                            self.shared.health.ok(&health_part);
                            idle = entries.is_empty();
                            if idle {
                                // The queue ran dry: the next burst starts from the limit, not
                                // from the last burst's rate.
                                window.reset();
                            }
                            self.buffer(&mut buffer, entries);
                        }
                        (Pending::Reclaim { asked }, Ok(entries)) => {
                            if entries.len() == asked {
                                // Probably more stalled entries behind these: they are the
                                // oldest tasks of the queue, so take them before new ones.
                                last_reclaim =
                                    last_reclaim.checked_sub(reclaim_every).unwrap_or(last_reclaim);
                            }
                            // The script only renews our own entries, but an entry of ours
                            // taken over meanwhile by a worker that died too may still run here.
                            let entries =
                                entries.into_iter().filter(|(id, _)| !self.queue.is_tracked(id)).collect();
                            self.buffer(&mut buffer, entries);
                        }
                        (Pending::Read { .. }, Err(e)) => {
                            client_id = None;
                            failing = true;
                            if let Some(seat) = &self.seat {
                                // Others need not wait out the backoff.
                                seat.report(true);
                            }
                            if !self.read_failed(e, &health_part, &mut failures).await {
                                let rest: Vec<RawEntry> = buffer.drain(..).collect();
                                self.queue.untrack(rest.iter().map(|(id, _)| id));
                                self.hand_back(rest).await;
                                break;
                            }
                        }
                        (Pending::Reclaim { .. }, Err(e)) => {
                            client_id = None;
                            self.shared.metrics.redis_error("reclaim");
                            tracing::warn!(queue = %self.queue.queue, error = %e, "reclaim failed");
                        }
                    }
                }
                p = self.acquire(buffer.len()), if !paused && may_start && !buffer.is_empty() => {
                    let Some(permits) = p else { break };
                    if self.queue.paused.load(Ordering::Relaxed)
                        || self.seat.as_ref().is_some_and(|s| !s.may_start())
                    {
                        // Paused, or a higher level became ready, while waiting for permits:
                        // give them back.
                        continue;
                    }
                    let n = permits.len().min(buffer.len());
                    window.dispatched(n);
                    if let Some(seat) = &self.seat {
                        seat.started(n);
                    }
                    // An entry whose lease renewal found it owned by another worker meanwhile
                    // (this one stalled past the reclaim timeout) runs there, not here.
                    let entries: Vec<RawEntry> = buffer
                        .drain(..n)
                        .filter(|(id, _)| self.queue.is_tracked(id))
                        .collect();
                    self.dispatch(entries, permits);
                }
            }
        }
        tracing::debug!(queue = %self.queue.queue, "fetcher stopped");
    }

    /// Adds fetched entries to the buffer; their leases are renewed from now on.
    fn buffer(&self, buffer: &mut VecDeque<RawEntry>, entries: Vec<RawEntry>) {
        for (id, _) in &entries {
            self.queue.track(id);
        }
        buffer.extend(entries);
    }

    /// A reclaim of up to `count` stalled entries, as a request of its own.
    fn reclaim(&self, count: usize) -> Request {
        let (shared, queue, mut conn) =
            (self.shared.clone(), self.queue.clone(), self.conn.clone());
        Box::pin(async move { reclaimer::reclaim(&shared, &queue, &mut conn, count).await })
    }

    /// Ends a blocking read at shutdown without losing what it may deliver: `CLIENT UNBLOCK`
    /// (from another connection) makes it return at once, empty or with an entry delivered
    /// just before; such an entry is handed back uncounted. When the read is not blocked any
    /// more it has most likely just returned, its reply not yet taken in (the shutdown won
    /// the race): that reply is awaited for [`UNBLOCKED_READ_WAIT`] and handed back uncounted
    /// too. Without a client id (or with an ACL user lacking `CLIENT UNBLOCK`), or when the
    /// reply does not come in that time (a silent reconnect changed the id), the read is
    /// dropped, and an entry it still delivers waits for the worker's final sweep (counted).
    async fn stop_blocking_read(&self, client_id: Option<i64>, read: Request) {
        let Some(id) = client_id else { return };
        let unblocked: redis::RedisResult<i64> = self
            .shared
            .data
            .clone()
            .query_at(
                &self.queue.keys.stream,
                redis::cmd("CLIENT").arg("UNBLOCK").arg(id),
            )
            .await;
        let wait = match unblocked {
            Ok(1) => conn::COMMAND_TIMEOUT,
            Ok(_) => UNBLOCKED_READ_WAIT,
            Err(e) => {
                tracing::debug!(queue = %self.queue.queue, error = %e, "CLIENT UNBLOCK failed; dropping the blocking read");
                return;
            }
        };
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(entries)) => self.hand_back(entries).await,
            Ok(Err(_)) => {}
            Err(_) => {
                tracing::debug!(queue = %self.queue.queue, "the blocking read did not answer at shutdown; dropping it");
            }
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
        crate::redis::transient::reconnect_if_readonly(&self.conn, &e).await;
        let delay = error_backoff(*failures);
        *failures += 1;
        tracing::warn!(queue = %self.queue.queue, error = %e, retry_in = ?delay, "fetch failed");
        if e.code() == Some("NOGROUP") {
            // The stream or group vanished: FLUSHALL, a Redis restarted without persistence,
            // or eviction (refused at build, unless allowed). Tasks in it are gone: say so,
            // then create them again.
            tracing::error!(queue = %self.queue.queue, stream = %self.queue.keys.stream, "the stream or its consumer group vanished (FLUSHALL, restart without persistence, eviction?): tasks it held are lost; recreating it");
            let r = crate::redis::server::ensure_group(
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
    /// With more wanted it first yields once, so that handlers finishing in the same scheduler
    /// tick free their permits and one wake-up dispatches several tasks.
    async fn acquire(&self, want: usize) -> Option<Permits> {
        let mut queue = match &self.queue.limit {
            Some(s) => Some(match s.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => return None,
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    // Held at the queue's own limit: the queues ordered after it may use the
                    // permits it cannot, until it gets one.
                    let _at_limit = self.seat.as_ref().map(Seat::at_limit);
                    s.clone().acquire_owned().await.ok()?
                }
            }),
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

    /// An `XREADGROUP` of up to `count` new entries, as a request of its own.
    fn read(&self, count: usize, block: bool) -> Request {
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
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let reply: Value = cmd.query_async(&mut conn).await?;
            Ok(parse_read_reply(reply))
        })
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
                    // Not reached: the caller passes at most as many entries as permits. Were
                    // it, the entry stays pending (tracked) and runs after the reclaim timeout.
                    self.queue.untrack([&entry.0]);
                    tracing::error!(queue = %self.queue.queue, entry = %entry.0, "more entries than permits to dispatch");
                }
            }
        }
        self.spawn(last, permits.trim_to_one());
    }

    /// Runs one (already tracked) entry.
    fn spawn(&self, entry: RawEntry, permits: Permits) {
        let job = dispatcher::Job {
            shared: self.shared.clone(),
            queue: self.queue.clone(),
            entry,
            ack_tx: self.ack_tx.clone(),
            permits: Arc::new(permits),
            abort: self.abort.clone(),
            slot: None,
        };
        self.tracker.spawn(job.run());
    }
}
