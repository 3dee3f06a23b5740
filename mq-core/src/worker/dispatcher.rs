//! Runs one task: decodes the entry, calls its handler under the task's timeout with panics
//! caught, and ends the entry in exactly one place: acked, retried (Lua: ack + delete +
//! schedule) or dead-lettered (Lua: copy to `dead` + ack + delete).

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{error_backoff, permits::Permits, QueueState, Shared};
use crate::{
    envelope::{now_ms, Envelope, RawEntry},
    handler::{panic_message, TaskContext, TaskError},
    redis::scripts,
    task::TaskOptions,
};

/// Attempts to record a retry or dead letter before giving up (then the entry stays pending
/// and is redelivered): 5.
const SETTLE_ATTEMPTS: u32 = 5;

pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) queue: Arc<QueueState>,
    pub(super) entry: RawEntry,
    pub(super) ack_tx: mpsc::Sender<String>,
    /// Held until the task is settled (and blocking work it started ends): this is the
    /// in-flight limit.
    pub(super) permits: Arc<Permits>,
    /// Cancelled when running tasks are to be aborted (grace period over).
    pub(super) abort: tokio_util::sync::CancellationToken,
}

/// How an attempt ended.
enum Outcome {
    Done,
    Failed(TaskError),
    /// Not a task this worker can run: dead-letter at once, no retries.
    Invalid(String),
    /// Aborted at shutdown (grace period over): hand the entry back, unsettled.
    Aborted,
}

impl Job {
    /// Runs the task and settles its entry. Should anything panic outside the handler's own
    /// guard, the entry is untracked, so its lease lapses and another worker retries it.
    pub(super) async fn run(self) {
        let (queue, entry_id) = (self.queue.clone(), self.entry.0.clone());
        if AssertUnwindSafe(self.run_inner())
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(queue = %queue.queue, entry = %entry_id, "task runner panicked; the entry will be reclaimed");
            queue.untrack([&entry_id]);
        }
    }

    async fn run_inner(mut self) {
        let m = &self.queue.metrics;
        m.in_flight.inc();
        let _in_flight = InFlightGuard(&m.in_flight);
        let (entry_id, fields) = std::mem::take(&mut self.entry);
        let env = match Envelope::from_fields(fields) {
            Ok(env) => env,
            Err(e) => {
                self.dead(&entry_id, None, &format!("malformed entry: {e}"))
                    .await;
                return;
            }
        };
        let Some(handler) = self.queue.handlers.get(&env.name).cloned() else {
            let reason = format!("unknown task name {:?}", env.name);
            self.dead(&entry_id, Some(&env), &reason).await;
            return;
        };
        let tm = m.task(&env.name);
        let options = handler.options();
        let ctx = TaskContext {
            id: env.id.clone(),
            entry_id: entry_id.clone(),
            queue: self.queue.queue.clone(),
            attempt: env.attempt,
            max_retries: options.max_retries,
            enqueued_at: env.enqueued_at,
            last_error: env.error.clone(),
            permit: Some(self.permits.clone()),
        };
        let span = tracing::info_span!(
            "task",
            queue = %self.queue.queue,
            task = %env.name,
            id = %env.id,
            attempt = env.attempt,
            traceparent = env.traceparent.as_deref(),
        );
        crate::trace::link_parent(&span, env.traceparent.as_deref());
        m.wait.observe(wait_seconds(&entry_id));
        tm.started.inc();
        let started = Instant::now();
        // Decoding runs user code (Deserialize impls) too: guard it like the handler.
        let outcome =
            match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(&env.payload, ctx))) {
                Ok(Err(e)) => Outcome::Invalid(e.0),
                Ok(Ok(fut)) => tokio::select! {
                    o = run_guarded(fut, options.timeout).instrument(span) => o,
                    _ = self.abort.cancelled() => Outcome::Aborted,
                },
                Err(panic) => Outcome::Failed(TaskError::retry(format!(
                    "payload decoding panicked: {}",
                    panic_message(&*panic)
                ))),
            };
        tm.duration.observe(started.elapsed().as_secs_f64());
        match outcome {
            Outcome::Done => {
                tm.success.inc();
                // The acker untracks the id once the ack is flushed. It is gone only after the
                // grace period; the entry then stays pending and runs again elsewhere.
                if let Err(e) = self.ack_tx.send(entry_id).await {
                    self.queue.untrack([&e.0]);
                }
            }
            Outcome::Invalid(reason) => self.dead(&entry_id, Some(&env), &reason).await,
            Outcome::Aborted => {
                tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, task = %env.name, "task aborted at shutdown; handing it back to the group");
                let released = super::release::release(
                    &self.shared,
                    &self.queue,
                    std::slice::from_ref(&entry_id),
                    false,
                )
                .await;
                if let Err(e) = released {
                    tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, error = %crate::error::chain(&e), "cannot hand back an aborted task; it is reclaimed after the reclaim timeout");
                }
                self.queue.untrack([&entry_id]);
            }
            Outcome::Failed(err) => self.failed(&entry_id, env, &options, err).await,
        }
    }

    async fn failed(&self, entry_id: &str, env: Envelope, options: &TaskOptions, err: TaskError) {
        let exhausted = env.attempt >= options.max_retries;
        let delay = match &err {
            TaskError::Permanent(_) => None,
            _ if exhausted => None,
            TaskError::RetryAfter(d, _) => Some(*d),
            TaskError::Retry(_) => Some(options.backoff.jittered(env.attempt, rand::random())),
        };
        let Some(delay) = delay else {
            let reason = match &err {
                TaskError::Permanent(r) => format!("permanent failure: {r}"),
                _ => format!("retries exhausted: {}", err.reason()),
            };
            self.dead(entry_id, Some(&env), &reason).await;
            return;
        };
        tracing::info!(queue = %self.queue.queue, task = %env.name, id = %env.id, attempt = env.attempt, error = %err, retry_in = ?delay, "task failed: retrying");
        let task = env.name.clone();
        let next = Envelope {
            attempt: env.attempt.saturating_add(1),
            error: Some(err.reason().to_owned()),
            ..env
        };
        let member = next.to_delayed_member();
        let keys = &self.queue.keys;
        let applied = self
            .settle("retry", entry_id, || {
                let mut inv = scripts::RETRY.prepare_invoke();
                inv.key(&keys.stream)
                    .key(&keys.delayed)
                    .arg(&self.shared.config.group)
                    .arg(entry_id)
                    .arg(delay.as_millis() as u64)
                    .arg(&member[..])
                    .arg(&self.shared.config.consumer);
                inv
            })
            .await;
        if applied {
            self.queue.metrics.task(&task).retry.inc();
        }
    }

    async fn dead(&self, entry_id: &str, env: Option<&Envelope>, reason: &str) {
        tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = env.map(|e| e.id.as_str()), %reason, "dead-lettered");
        let task = env.map_or("unknown", |e| e.name.as_str());
        let attempts = env.map_or(1, |e| e.attempt.saturating_add(1));
        let keys = &self.queue.keys;
        let failed_at = now_ms();
        let applied = self
            .settle("dead-letter", entry_id, || {
                let mut inv = scripts::DEAD.prepare_invoke();
                inv.key(&keys.stream)
                    .key(&keys.dead)
                    .arg(&self.shared.config.group)
                    .arg(entry_id)
                    .arg(&self.shared.config.consumer)
                    .arg("error")
                    .arg(reason)
                    .arg("failed_at")
                    .arg(failed_at)
                    .arg("worker")
                    .arg(&self.shared.config.consumer)
                    .arg("attempts")
                    .arg(attempts);
                inv
            })
            .await;
        if applied {
            self.queue.metrics.task(task).dead.inc();
        }
    }

    /// Runs a retry or dead-letter script for `entry_id`, retrying on Redis errors a few
    /// times, then stops renewing the entry's lease. Returns whether the script moved the
    /// entry (it does not when another worker owns the entry by now).
    async fn settle<'a>(
        &self,
        what: &'static str,
        entry_id: &str,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> bool {
        let applied = self.try_settle(what, invocation).await;
        self.queue.untrack([&entry_id.to_owned()]);
        applied
    }

    async fn try_settle<'a>(
        &self,
        what: &'static str,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> bool {
        for failure in 0..SETTLE_ATTEMPTS {
            let r: redis::RedisResult<i64> = invocation()
                .invoke_async(&mut self.shared.data.clone())
                .await;
            match r {
                Ok(1) => return true,
                Ok(_) => {
                    tracing::warn!(queue = %self.queue.queue, "{what} skipped: the entry is no longer pending for this worker (taken over after its lease lapsed)");
                    return false;
                }
                Err(e) => {
                    self.shared.metrics.redis_error(what);
                    crate::redis::conn::reconnect_if_readonly(&self.shared.data, &e).await;
                    let delay = error_backoff(failure);
                    tracing::warn!(queue = %self.queue.queue, error = %e, retry_in = ?delay, "{what} failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::error!(queue = %self.queue.queue, "{what} failed {SETTLE_ATTEMPTS} times; the entry stays pending and will run again");
        false
    }
}

/// Awaits a handler future with the timeout, turning panics and timeouts into retryable errors.
async fn run_guarded(
    fut: futures::future::BoxFuture<'_, Result<(), TaskError>>,
    timeout: Option<Duration>,
) -> Outcome {
    let guarded = AssertUnwindSafe(fut).catch_unwind();
    let result = match timeout {
        Some(t) => match tokio::time::timeout(t, guarded).await {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(TaskError::retry(format!("timed out after {t:?}"))),
        },
        None => guarded.await,
    };
    match result {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(e)) => Outcome::Failed(e),
        Err(panic) => Outcome::Failed(TaskError::retry(format!(
            "handler panicked: {}",
            panic_message(&*panic)
        ))),
    }
}

/// Seconds since the entry entered the stream, from the unix-ms part of its id (the Redis
/// server's clock): the time the task waited for a worker, whether it was enqueued, promoted
/// from the delayed set or scheduled for a retry.
fn wait_seconds(entry_id: &str) -> f64 {
    let added = entry_id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(0);
    now_ms().saturating_sub(added) as f64 / 1000.0
}

/// Decrements the in-flight gauge when the task is settled, however it ends.
struct InFlightGuard<'a>(&'a prometheus::IntGauge);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
