//! The [`Worker`] at work: starts one fetcher, acker, promoter and waker per stream, the
//! reclaimer, lease thread, pause watcher, sampler, cron and metrics server, and stops them in
//! order at shutdown (grace period, ack flush, release of what is left).

use std::{sync::Arc, time::Duration};

use crate::redis::conn::Conn;
use tokio::task::JoinSet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    error::{self, Error, Result},
    health::Health,
    metrics::Metrics,
    redis::{conn, keys::QueueKeys},
};

use super::state::{sleep_or_cancel, QueueState, Shared};
use super::{
    acker, arbiter, cron, fetcher, heartbeat, lease, pause, promoter, reclaimer, release, sampler,
    waker,
};

/// How often [`Worker::run_until_idle`] checks whether its queues are idle: 50 ms.
pub const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long the ackers get to flush after the grace period: 10 s.
const ACK_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the background loops (promoters, reapers, sampler, metrics server, lease thread)
/// get to stop at shutdown before they are abandoned: 3 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) struct QueueRuntime {
    pub(super) state: Arc<QueueState>,
    /// The fetcher's own connection: a blocking read must not hold up other commands.
    pub(super) fetch: Conn,
    /// The queue's in-flight limit in this process: the fetcher buffers at most that many.
    pub(super) prefetch: usize,
    /// The fetcher's place in its arbiter, if its queue is prioritized or ordered.
    pub(super) seat: Option<arbiter::Seat>,
}

/// A built worker, ready to [`run`](Self::run).
pub struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) queues: Vec<QueueRuntime>,
    /// The cron schedules this worker runs.
    pub(super) schedules: Vec<Arc<cron::Planned>>,
    pub(super) token: CancellationToken,
    pub(super) abort: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.shared.config.consumer
    }

    /// This worker's metrics (also served at `/metrics` with
    /// [`WorkerBuilder::metrics_addr`](crate::WorkerBuilder::metrics_addr)).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// This worker's health, as `GET /healthz` reports it.
    pub fn health(&self) -> Arc<Health> {
        self.shared.health.clone()
    }

    /// The token that stops this worker when cancelled (see [`run`](Self::run)). Take it
    /// before `run` consumes the worker; cancelling it again, or after `run` returned, does
    /// nothing.
    ///
    /// # Examples
    ///
    /// Stop the worker from elsewhere in the program, here after an hour:
    ///
    /// ```no_run
    /// # use mq_core::{Task, TaskContext, TaskError, Worker};
    /// # #[derive(serde::Serialize, serde::Deserialize, Task)]
    /// # struct Ping;
    /// # async fn ping(_task: Ping, _ctx: TaskContext) -> Result<(), TaskError> { Ok(()) }
    /// # async fn demo() -> mq_core::Result<()> {
    /// let worker = Worker::builder("redis://127.0.0.1/").handle(ping).build().await?;
    /// let stop = worker.shutdown_token();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    ///     stop.cancel(); // graceful: in-flight tasks get the grace period
    /// });
    /// worker.run().await
    /// # }
    /// ```
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The token that ends the grace period at once when cancelled during a shutdown: running
    /// tasks are aborted and handed back (see [`run`](Self::run)). Cancelled earlier, it takes
    /// effect when the shutdown begins (no grace period). A second SIGINT or SIGTERM in
    /// [`run_until_signal`](Self::run_until_signal) cancels it.
    pub fn abort_token(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully; a second signal during the
    /// drain aborts the tasks still running (see [`run`](Self::run)).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until_signal(self) -> Result<()> {
        let (token, abort) = (self.token.clone(), self.abort.clone());
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: draining (a second signal stops at once)");
            token.cancel();
            wait_for_signal().await;
            tracing::warn!("second shutdown signal: aborting the tasks still running");
            abort.cancel();
        });
        let r = self.run().await;
        signals.abort();
        r
    }

    /// Runs until every queue of this worker is idle, then shuts down gracefully: for batch
    /// jobs, scripts and tests that enqueue, process and stop. Idle means, in one consistent
    /// snapshot per queue ([`QueueStats::is_idle`](crate::admin::QueueStats::is_idle)): no
    /// entry in the stream (so nothing ready, nothing running and every ack flushed), and
    /// nothing delayed or waiting for a retry. Dead letters do not count. Checked every
    /// [`IDLE_POLL`]; a queue that is empty when the worker starts stops it at once, so enqueue
    /// first. The shutdown token and signals still work as with [`run`](Self::run).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # use mq_core::{Producer, TaskContext, TaskError, Worker};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Email { to: String }
    /// async fn send(email: Email, _ctx: TaskContext) -> Result<(), TaskError> {
    ///     println!("sending to {}", email.to);
    ///     Ok(())
    /// }
    /// # async fn job() -> mq_core::Result<()> {
    /// let producer = Producer::connect("redis://127.0.0.1/").await?;
    /// producer.enqueue_many((0..100).map(|i| Email { to: format!("user{i}@example.com") })).await?;
    /// Worker::builder("redis://127.0.0.1/")
    ///     .handle(send)
    ///     .build()
    ///     .await?
    ///     .run_until_idle() // returns once all 100 are done (or dead-lettered)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until_idle(self) -> Result<()> {
        let (shared, token) = (self.shared.clone(), self.token.clone());
        let keys: Vec<QueueKeys> = self.queues.iter().map(|q| q.state.keys.clone()).collect();
        let watcher = tokio::spawn(async move {
            let mut conn = shared.data.clone();
            while sleep_or_cancel(IDLE_POLL, &token).await {
                let mut idle = true;
                for k in &keys {
                    match crate::admin::snapshot(&mut conn, k, &shared.config.group).await {
                        Ok(s) if s.is_idle() => {}
                        Ok(_) => idle = false,
                        Err(e) => {
                            tracing::debug!(queue = %k.queue, error = %error::chain(&e), "idle check failed");
                            idle = false;
                        }
                    }
                    if !idle {
                        break;
                    }
                }
                if idle {
                    tracing::info!("every queue is idle: stopping");
                    token.cancel();
                }
            }
        });
        let r = self.run().await;
        watcher.abort();
        r
    }

    /// Runs until the [`shutdown_token`](Self::shutdown_token) is cancelled, then stops
    /// fetching at once, lets in-flight tasks finish within the grace period and flushes their
    /// acks. Tasks still running when the grace period ends (or when the
    /// [`abort_token`](Self::abort_token) is cancelled) are aborted: their handler futures are
    /// dropped and their entries handed back to the group, so another worker runs them at its
    /// next reclaim instead of after the reclaim timeout. Entries fetched but not started are
    /// handed back the same way, without counting that delivery. Work started with
    /// [`TaskContext::blocking`](crate::TaskContext::blocking) cannot be stopped: it runs to
    /// its end and its result is dropped.
    ///
    /// Redis being unreachable never ends `run`: every part retries with backoff and
    /// `/healthz` reports the failures.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] if tasks were aborted; [`Error::Config`] if the metrics
    /// address cannot be bound or a thread cannot be started.
    ///
    /// # Examples
    ///
    /// A worker that stops on its own signal (here Ctrl-C, as
    /// [`run_until_signal`](Self::run_until_signal) does for SIGINT and SIGTERM):
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mq_core::{Task, TaskContext, TaskError, Worker};
    /// # #[derive(serde::Serialize, serde::Deserialize, Task)]
    /// # struct Resize { id: u64 }
    ///
    /// async fn resize(task: Resize, _ctx: TaskContext) -> Result<(), TaskError> {
    ///     println!("resizing {}", task.id);
    ///     Ok(())
    /// }
    ///
    /// # async fn demo() -> mq_core::Result<()> {
    /// let worker = Worker::builder("redis://127.0.0.1/")
    ///     .handle(resize)
    ///     .grace_period(Duration::from_secs(10))
    ///     .build()
    ///     .await?;
    /// let stop = worker.shutdown_token();
    /// tokio::spawn(async move {
    ///     let _ = tokio::signal::ctrl_c().await;
    ///     stop.cancel();
    /// });
    /// match worker.run().await {
    ///     Ok(()) => println!("drained"),
    ///     Err(mq_core::Error::ShutdownTimeout { in_flight, .. }) => {
    ///         eprintln!("{in_flight} tasks handed back to other workers");
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run(self) -> Result<()> {
        let Worker {
            shared,
            queues,
            schedules,
            token,
            abort,
        } = self;
        let lease_stop = CancellationToken::new();
        // Bind the metrics port first: if that fails nothing else has started.
        let metrics_server = match shared.config.metrics_addr {
            Some(addr) => Some(
                crate::metrics::serve(
                    addr,
                    shared.metrics.clone(),
                    shared.health.clone(),
                    lease_stop.clone(),
                )
                .await?,
            ),
            None => None,
        };
        if let Err(e) = heartbeat::register(&shared).await {
            // Not fatal: the lease thread writes the heartbeat again every few seconds.
            shared.metrics.redis_error("heartbeat");
            shared.health.failed("heartbeat", &error::chain(&e));
            tracing::warn!(error = %error::chain(&e), "cannot register the worker yet; retrying with the heartbeat");
        }
        // Leases and heartbeats live on a thread of their own, so handlers that hog the
        // runtime's threads cannot starve them; they stop only after the acks are flushed.
        let states: Vec<Arc<QueueState>> = queues.iter().map(|q| q.state.clone()).collect();
        let lease_thread = match lease::spawn(shared.clone(), states.clone(), lease_stop.clone()) {
            Ok(t) => t,
            Err(e) => {
                lease_stop.cancel();
                return Err(e);
            }
        };
        let waker = tokio::spawn(waker::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        let sampler = tokio::spawn(sampler::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        // A worker started on a paused queue starts none of its tasks: read the flags before
        // the fetchers start, then every PAUSE_POLL.
        match tokio::time::timeout(conn::COMMAND_TIMEOUT, pause::refresh(&shared, &states)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.metrics.redis_error("pause");
                tracing::warn!(error = %error::chain(&e), "cannot read the pause flags yet; retrying every {:?}", crate::admin::PAUSE_POLL);
            }
            Err(_) => tracing::warn!("reading the pause flags timed out; retrying"),
        }
        let pause_watch = tokio::spawn(pause::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        let tracker = TaskTracker::new();
        let ack_stop = CancellationToken::new();
        // What running tasks watch: cancelled only once the shutdown began and the grace period
        // is over (or the abort token is cancelled then), never before.
        let hard_stop = CancellationToken::new();
        let mut fetchers = JoinSet::new();
        let mut ackers = JoinSet::new();
        let mut promoters = JoinSet::new();
        for plan in schedules {
            promoters.spawn(cron::run(shared.clone(), plan, token.clone()));
        }
        for q in queues {
            let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(crate::config::MAX_ACK_BATCH * 2);
            ackers.spawn(acker::run(
                shared.clone(),
                q.state.clone(),
                ack_rx,
                ack_stop.clone(),
            ));
            promoters.spawn(promoter::run(
                shared.clone(),
                q.state.clone(),
                token.clone(),
            ));
            promoters.spawn(reclaimer::reap_loop(
                shared.clone(),
                q.state.clone(),
                token.clone(),
            ));
            let fetcher = fetcher::Fetcher {
                shared: shared.clone(),
                queue: q.state,
                conn: q.fetch,
                ack_tx,
                tracker: tracker.clone(),
                token: token.clone(),
                abort: hard_stop.clone(),
                prefetch: q.prefetch,
                seat: q.seat,
            };
            fetchers.spawn(watch_fetcher(fetcher, shared.clone(), token.clone()));
        }

        token.cancelled().await;
        // Fetchers stop at once (a blocking read is ended with CLIENT UNBLOCK) and hand back
        // what they fetched but did not start; anything else is handed back below.
        if !join_all_within(&mut fetchers, STOP_TIMEOUT).await {
            tracing::warn!("a fetcher did not stop in time; abandoned");
        }
        tracker.close();
        let grace = shared.config.grace_period;
        let drained = tokio::select! {
            r = tokio::time::timeout(grace, tracker.wait()) => r.is_ok(),
            _ = abort.cancelled() => tracker.is_empty(),
        };
        let mut aborted = 0;
        if !drained {
            aborted = tracker.len();
            tracing::warn!(
                running = aborted,
                ?grace,
                "grace period over: aborting the tasks still running and handing them back"
            );
            hard_stop.cancel();
            if tokio::time::timeout(STOP_TIMEOUT, tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("aborted tasks did not end in time");
            }
        }
        ack_stop.cancel();
        if !join_all_within(&mut ackers, ACK_FLUSH_TIMEOUT).await {
            tracing::warn!("acks not flushed in time; those tasks stay pending and run again");
        }
        for q in &states {
            match tokio::time::timeout(STOP_TIMEOUT, release::release_stranded(&shared, q)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(queue = %q.queue, released = n, "handed back entries fetched but not run")
                }
                Ok(Err(e)) => {
                    tracing::warn!(queue = %q.queue, error = %error::chain(&e), "cannot hand back entries fetched but not run; they are reclaimed after the reclaim timeout")
                }
                Err(_) => {
                    tracing::warn!(queue = %q.queue, "handing back entries fetched but not run timed out; they are reclaimed after the reclaim timeout")
                }
            }
            // Leave the group if nothing is pending for this consumer (checked in the script),
            // so graceful restarts do not pile up consumers; otherwise the reaper removes it
            // later, once others took over what it holds.
            let left = tokio::time::timeout(STOP_TIMEOUT, reclaimer::remove_self(&shared, q)).await;
            if !matches!(left, Ok(Ok(_))) {
                tracing::debug!(queue = %q.queue, "could not leave the consumer group; the reaper removes this consumer later");
            }
        }
        lease_stop.cancel();
        if !join_all_within(&mut promoters, STOP_TIMEOUT).await {
            tracing::warn!("promoter or reaper did not stop in time; abandoned");
        }
        let mut rest = JoinSet::new();
        rest.spawn(async move {
            let _ = sampler.await;
            let _ = waker.await;
            let _ = pause_watch.await;
        });
        if let Some(server) = metrics_server {
            rest.spawn(async move {
                let _ = server.await;
            });
        }
        rest.spawn(async move {
            if tokio::task::spawn_blocking(move || lease_thread.join())
                .await
                .is_err()
            {
                tracing::warn!("lease thread ended abnormally");
            }
        });
        if !join_all_within(&mut rest, STOP_TIMEOUT).await {
            tracing::warn!(
                "sampler, metrics server or lease thread did not stop in time; abandoned"
            );
        }
        if drained {
            tracing::info!("worker stopped");
            Ok(())
        } else {
            Err(Error::ShutdownTimeout {
                in_flight: aborted,
                grace,
            })
        }
    }
}

/// Runs a fetcher; if it ends (or panics) while the worker is not shutting down, the worker is
/// reported unhealthy: its queue is no longer read.
async fn watch_fetcher(fetcher: fetcher::Fetcher, shared: Arc<Shared>, token: CancellationToken) {
    use futures::FutureExt;
    let queue = fetcher.queue.queue.clone();
    let r = std::panic::AssertUnwindSafe(fetcher.run())
        .catch_unwind()
        .await;
    if !token.is_cancelled() {
        let why = match r {
            Ok(()) => "ended".to_owned(),
            Err(p) => format!("panicked: {}", crate::handler::panic_message(&*p)),
        };
        tracing::error!(%queue, %why, "fetcher stopped while the worker runs; this queue is no longer read");
        shared.health.fatal(&format!("fetcher {queue}"), &why);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the worker");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for every task of `set` for at most `limit`, then aborts the rest. Returns whether all
/// ended in time.
async fn join_all_within(set: &mut JoinSet<()>, limit: Duration) -> bool {
    let done = tokio::time::timeout(limit, async { while set.join_next().await.is_some() {} })
        .await
        .is_ok();
    if !done {
        set.abort_all();
    }
    done
}
