//! Runs one task: decodes the entry, calls its handler under the task's timeout with panics
//! caught, and ends the entry in exactly one place: acked, retried or snoozed (Lua: ack +
//! delete + schedule) or dead-lettered (Lua: copy to `dead` + ack + delete). A task type with
//! a rate limit first takes a token (the retry script with the limit's state): with none free
//! the entry is rescheduled for its reserved slot instead of starting, not as an attempt. A task
//! type with per-key concurrency first takes a slot of its concurrency key the same way (the
//! retry script in slot mode); its ack, retry and dead letter free the slot in their script.
//! A task whose cancellation the lease thread signalled while it ran is settled as cancelled
//! (the cancelled script: ack + delete, never retried nor dead-lettered).

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::state::{QueueState, Registered, Shared};
use super::{acker::Ack, permits::Permits};
use crate::retry::error_backoff;
use crate::{
    envelope::{field, now_ms, Envelope, RawEntry},
    handler::{panic_message, TaskContext, TaskError},
    redis::scripts,
    task::TaskOptions,
};

/// Attempts to record a retry or dead letter before giving up (then the entry stays pending
/// and is redelivered): 5.
pub(super) const SETTLE_ATTEMPTS: u32 = 5;
/// How often a failed attempt whose blocking work still runs checks whether it ended: 20 ms.
const BLOCKING_CHECK: Duration = Duration::from_millis(20);

pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) queue: Arc<QueueState>,
    pub(super) entry: RawEntry,
    pub(super) ack_tx: mpsc::Sender<Ack>,
    /// Held until the task is settled (and blocking work it started ends): this is the
    /// in-flight limit.
    pub(super) permits: Arc<Permits>,
    /// Cancelled when running tasks are to be aborted (grace period over).
    pub(super) abort: tokio_util::sync::CancellationToken,
    /// The slots key of the concurrency slot this task holds (per-key concurrency only), set
    /// once it took the slot: the scripts that settle the entry free it.
    pub(super) slot: Option<String>,
}

/// How an attempt ended.
enum Outcome {
    /// Succeeded, with the result (JSON) of a tracked task.
    Done(Option<String>),
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

    /// Every path but a plain task's success (dead letters, retries, cancels, admission,
    /// tracked starts, unique acks) awaits a boxed future: those hold Redis script calls of
    /// several KB, and stored inline they made every task's future 4 KB, built and moved for
    /// each task (mq-bench drain: ~50k tasks/s inline, ~113k/s boxed, the same run; see
    /// README "Performance"). Keep new cold paths boxed too.
    async fn run_inner(mut self) {
        let m = &self.queue.metrics;
        m.in_flight.inc();
        let _in_flight = InFlightGuard(&m.in_flight);
        let (entry_id, fields) = std::mem::take(&mut self.entry);
        // For the log line of an entry that does not parse: what it says it is, if anything.
        let raw = Ident {
            id: raw_field(&fields, field::ID),
            name: raw_field(&fields, field::NAME),
            unique: raw_field(&fields, "u"),
            attempts: 1,
            valid: false,
        };
        let env = match Envelope::from_fields(fields) {
            Ok(env) => env,
            Err(e) => {
                Box::pin(self.dead(&entry_id, &raw, &format!("malformed entry: {e}"))).await;
                return;
            }
        };
        // A flow parent whose children failed under the `all` policy: dead, never run.
        if let Some(f) = env.flow.as_deref().filter(|f| f.blocked) {
            return Box::pin(self.dead(&entry_id, &Ident::of(&env), &f.blocked_reason())).await;
        }
        let Some(handler) = self.queue.handler(&env.name) else {
            let reason = format!("unknown task name {:?}", env.name);
            Box::pin(self.dead(&entry_id, &Ident::of(&env), &reason)).await;
            return;
        };
        let tm = m.task(&env.name);
        let options = handler.options();
        let cancel = tokio_util::sync::CancellationToken::new();
        // Cancelled before it started (see `QueueState::running`): the token starts fired.
        let _running = Registered::new(
            &self.queue,
            &entry_id,
            |q| &q.running,
            |before| {
                if before.is_some_and(|t| t.is_cancelled()) {
                    cancel.cancel();
                }
                cancel.clone()
            },
        );
        // Cancelled while it waited to start (buffered, or waiting for a slot or token): it
        // never runs, and takes no slot or token.
        if cancel.is_cancelled() {
            return Box::pin(self.cancelled(&entry_id, &env)).await;
        }
        // Only task types with per-key concurrency pay this round trip. The slot is taken
        // before the rate token: a task waiting for a slot takes no token.
        let _slot_guard;
        if let Some(limit) = options.key_concurrency {
            let key = self
                .queue
                .keys
                .slots_key(&env.name, env.concurrency_key.as_deref());
            if !Box::pin(self.take_slot(&entry_id, &env, limit, &key)).await {
                return;
            }
            _slot_guard = Registered::new(&self.queue, &entry_id, |q| &q.slots, |_| key.clone());
            self.slot = Some(key);
        }
        // Only rate-limited task types pay this round trip; an entry rescheduled for the slot
        // it reserved under this limit holds its token already (one reserved under another
        // interval, before the limit changed, takes a token again).
        if let Some(rate) = options.rate {
            let interval = self.rate_interval(rate, &env);
            let holds = matches!(env.rate_slot, Some(i) if i == interval || i == 1);
            if !holds && !Box::pin(self.take_rate_token(&entry_id, &env, interval)).await {
                return;
            }
        }
        // Cancelled while it waited for its slot or token.
        if cancel.is_cancelled() {
            return Box::pin(self.cancelled(&entry_id, &env)).await;
        }
        let progress = crate::control::Progress::new(
            self.shared.data.clone(),
            format!("{}{}", self.queue.keys.task, env.id),
        );
        let result = env
            .track
            .map(|_| Arc::new(crate::handler::ResultSlot::default()));
        let ctx = TaskContext {
            result: result.clone(),
            cancel: cancel.clone(),
            progress: Some(progress.clone()),
            id: env.id.clone(),
            entry_id: entry_id.clone(),
            queue: self.queue.queue.clone(),
            attempt: env.attempt,
            max_retries: options.max_retries,
            enqueued_at: env.enqueued_at,
            last_error: env.error.clone(),
            permit: Some(self.permits.clone()),
            flow: env
                .flow
                .as_deref()
                .filter(|f| !f.children.is_empty())
                .map(|f| Arc::new(f.clone())),
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
        // Only tracked task types pay this round trip.
        if env.track.is_some() || env.events {
            Box::pin(self.record_start(&env)).await;
        }
        let started = Instant::now();
        // Decoding runs user code (Deserialize impls) too: guard it like the handler.
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler.call(&env.name, &env.payload, ctx)
        })) {
            Ok(Err(e)) => Outcome::Invalid(e.0),
            Ok(Ok(fut)) => tokio::select! {
                biased;
                o = run_guarded(fut, options.timeout, result.as_deref()).instrument(span) => o,
                _ = self.abort.cancelled() => Outcome::Aborted,
            },
            Err(panic) => Outcome::Failed(TaskError::retry(format!(
                "payload decoding panicked: {}",
                panic_message(&*panic)
            ))),
        };
        tm.duration.observe(started.elapsed().as_secs_f64());
        // The last progress reported within the last second (nothing for tasks that report none).
        progress.flush().await;
        // A failed attempt (a timeout above all) may leave work it started with `ctx.blocking`
        // running: its retry or dead letter would free the key slot and let the retry run
        // beside it. Settle only once that work has ended; meanwhile the lease and the slot
        // are renewed as for a running task.
        let outcome = match outcome {
            Outcome::Failed(e) if !Box::pin(self.blocking_work_ended(&entry_id, &env)).await => {
                drop(e);
                Outcome::Aborted
            }
            other => other,
        };
        if cancel.is_cancelled() && !matches!(outcome, Outcome::Invalid(_)) {
            return Box::pin(self.cancelled(&entry_id, &env)).await;
        }
        match outcome {
            Outcome::Done(result)
                if env.unique.is_some()
                    || self.slot.is_some()
                    || env.track.is_some()
                    || env.events =>
            {
                tm.success.inc();
                Box::pin(self.ack_unique(&entry_id, &env, &options, result.as_deref())).await;
            }
            Outcome::Done(_) => {
                tm.success.inc();
                // Untracked once flushed (a flow child's or run task's by its batch script).
                let ack = Ack {
                    id: entry_id,
                    report: env.flow.as_deref().is_some_and(|f| f.reports()),
                };
                if let Err(e) = self.ack_tx.send(ack).await {
                    self.queue.untrack([&e.0.id]);
                }
            }
            Outcome::Invalid(reason) => {
                Box::pin(self.dead(&entry_id, &Ident::of(&env), &reason)).await
            }
            Outcome::Aborted => Box::pin(self.aborted(&entry_id, &env)).await,
            Outcome::Failed(err) => Box::pin(self.failed(&entry_id, env, &options, err)).await,
        }
    }

    /// Waits until work the attempt started with [`TaskContext::blocking`] has ended: it holds
    /// a clone of the permits (so does a clone of the task's context kept past the handler).
    /// Checked every [`BLOCKING_CHECK`], a local count, no Redis. `false` if the running tasks
    /// were aborted (shutdown) first.
    async fn blocking_work_ended(&self, entry_id: &str, env: &Envelope) -> bool {
        if Arc::strong_count(&self.permits) == 1 {
            return true;
        }
        tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, task = %env.name, "attempt failed while its blocking work still runs: its retry and its key slot wait for that work to end");
        while Arc::strong_count(&self.permits) > 1 {
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => return false,
                _ = tokio::time::sleep(BLOCKING_CHECK) => {}
            }
        }
        true
    }

    /// Hands back the entry of a task aborted at shutdown, so another worker runs it at once.
    /// Untracked first, so that no lease renewal resets its idle time afterwards. If work the
    /// task started with `ctx.blocking` is still running (it holds a clone of the permits), it
    /// is not handed back: it stays pending until the reclaim timeout, which lets that work end
    /// before another copy starts.
    async fn aborted(&self, entry_id: &str, env: &Envelope) {
        self.queue.untrack([&entry_id.to_owned()]);
        if Arc::strong_count(&self.permits) > 1 {
            tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, task = %env.name, "task aborted at shutdown while its blocking work still runs; it is reclaimed after the reclaim timeout");
            return;
        }
        tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, task = %env.name, "task aborted at shutdown; handing it back to the group");
        let released = super::release::release(
            &self.shared,
            &self.queue,
            std::slice::from_ref(&entry_id.to_owned()),
            false,
        )
        .await;
        if let Err(e) = released {
            tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = %env.id, error = %crate::error::chain(&e), "cannot hand back an aborted task; it is reclaimed after the reclaim timeout");
        }
    }

    /// Reschedules a snoozed task after `delay` as the same attempt (no retry counted, never
    /// dead-lettered for it): the retry script with the entry's attempt unchanged. A task of a
    /// rate-limited type keeps the token it started with (its member holds the slot): a snooze
    /// is not a start of its own, so a task that snoozes again and again takes one token, not
    /// one per run, and never pushes the other tasks' slots out.
    async fn snooze(&self, entry_id: &str, env: Envelope, options: &TaskOptions, delay: Duration) {
        tracing::info!(queue = %self.queue.queue, task = %env.name, id = %env.id, attempt = env.attempt, snooze = ?delay, "task snoozed");
        let (task, task_id) = (env.name.clone(), env.id.clone());
        let next = Envelope {
            rate_slot: options.rate.map(|rate| self.rate_interval(rate, &env)),
            ..env
        };
        let member = next.to_delayed_member();
        let track = (&next, "scheduled", "snoozed");
        if self
            .reschedule("snooze", entry_id, &task_id, delay, &member, track)
            .await
        {
            self.queue.metrics.task(&task).snoozed.inc();
        }
    }

    /// Acks and deletes the entry and schedules `member` after `delay`, in one script.
    async fn reschedule(
        &self,
        what: &'static str,
        entry_id: &str,
        task_id: &str,
        delay: Duration,
        member: &[u8],
        (env, status, error): (&Envelope, &str, &str),
    ) -> bool {
        let run = env.flow.as_deref().and_then(|f| f.run.as_deref());
        let keys = &self.queue.keys;
        self.settle(what, entry_id, Some(task_id), || {
            let mut inv = scripts::RETRY.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.delayed)
                .arg(&self.shared.config.group)
                .arg(entry_id)
                .arg(delay.as_millis() as u64)
                .arg(member)
                .arg(&self.shared.config.consumer)
                .arg(&keys.wake)
                .arg(0)
                .arg(self.slot.as_deref().unwrap_or(""));
            // A tracked task's new status (and a run's count of failed attempts), in the same
            // script.
            if env.track.is_some() || env.events || run.is_some() {
                inv.arg("")
                    .arg("")
                    .arg(&keys.unique)
                    .arg(&env.id)
                    .arg(env.track.map(|t| t.to_string()).unwrap_or_default())
                    .arg(if env.events { "1" } else { "" })
                    .arg(status)
                    .arg(error)
                    .arg(run.unwrap_or(""));
            }
            inv
        })
        .await
    }

    async fn failed(&self, entry_id: &str, env: Envelope, options: &TaskOptions, err: TaskError) {
        if let TaskError::Snooze(delay) = err {
            return self.snooze(entry_id, env, options, delay).await;
        }
        let delay = match after_failure(&err, env.attempt, options, rand::random()) {
            Ok(delay) => delay,
            Err(reason) => {
                self.dead(entry_id, &Ident::of(&env), &reason).await;
                return;
            }
        };
        tracing::info!(queue = %self.queue.queue, task = %env.name, id = %env.id, attempt = env.attempt, error = %err, retry_in = ?delay, "task failed: retrying");
        let (task, task_id) = (env.name.clone(), env.id.clone());
        let next = Envelope {
            attempt: env.attempt.saturating_add(1),
            error: Some(err.reason().to_owned()),
            // The next attempt takes a rate token again.
            rate_slot: None,
            ..env
        };
        let member = next.to_delayed_member();
        let error = next.error.as_deref().unwrap_or("");
        let track = (&next, "retrying", error);
        if self
            .reschedule("retry", entry_id, &task_id, delay, &member, track)
            .await
        {
            self.queue.metrics.task(&task).retry.inc();
        }
    }

    /// Records the start of a tracked task's attempt (status `running`, event `started`): one
    /// script call; a failure is logged, never fails the task.
    async fn record_start(&self, env: &Envelope) {
        let keys = &self.queue.keys;
        let r: redis::RedisResult<i64> = scripts::STARTED
            .key(&keys.stream)
            .arg(&keys.unique)
            .arg(&env.id)
            .arg(env.track.map(|t| t.to_string()).unwrap_or_default())
            .arg(if env.events { "1" } else { "" })
            .arg(&self.shared.config.consumer)
            .arg(env.attempt)
            .invoke_async(&mut self.shared.data.clone())
            .await;
        if let Err(e) = r {
            tracing::warn!(queue = %self.queue.queue, id = %env.id, error = %e, "cannot record a tracked task's start");
        }
    }

    /// Acks a unique or tracked task's entry and releases its key (or keeps it for the task's
    /// `unique_for`), and frees its concurrency slot if it holds one, in one script, instead of
    /// the acker's batched `XDEL` + `XACK`: only unique tasks and tasks with per-key
    /// concurrency pay for it.
    async fn ack_unique(
        &self,
        entry_id: &str,
        env: &Envelope,
        options: &TaskOptions,
        result: Option<&str>,
    ) {
        let keys = &self.queue.keys;
        let keep_ms = options.unique_for.map_or(0, |d| d.as_millis() as u64);
        self.settle("ack", entry_id, Some(&env.id), || {
            let mut inv = scripts::ACK_UNIQUE.prepare_invoke();
            inv.key(&keys.stream)
                .key(keys.task_keys(Some(&env.id), env.unique.as_deref()))
                .key(self.slot.as_slice())
                .arg(&self.shared.config.group)
                .arg(&self.shared.config.consumer)
                .arg(&keys.unique)
                .arg(entry_id)
                .arg(keep_ms)
                .arg(self.slot.as_deref().unwrap_or(""))
                .arg(result.unwrap_or(""))
                .arg(&env.id);
            inv
        })
        .await;
    }

    /// Settles a task whose cancellation reached it while it ran, whatever its handler
    /// returned: acked and deleted, its unique key released, its slot freed and its id removed
    /// from the cancel hash, in one script. Never retried nor dead-lettered.
    async fn cancelled(&self, entry_id: &str, env: &Envelope) {
        tracing::info!(queue = %self.queue.queue, task = %env.name, id = %env.id, attempt = env.attempt, "task cancelled");
        let keys = &self.queue.keys;
        let applied = self
            .settle("cancel", entry_id, Some(&env.id), || {
                let mut inv = scripts::CANCELLED.prepare_invoke();
                inv.key(&keys.stream)
                    .key(&keys.cancel)
                    .key(keys.task_keys(Some(&env.id), env.unique.as_deref()))
                    .key(self.slot.as_slice())
                    .arg(&self.shared.config.group)
                    .arg(&self.shared.config.consumer)
                    .arg(&keys.unique)
                    .arg(entry_id)
                    .arg(&env.id)
                    .arg(self.slot.as_deref().unwrap_or(""));
                inv
            })
            .await;
        if applied {
            self.queue.metrics.task(&env.name).cancelled.inc();
        }
    }

    async fn dead(&self, entry_id: &str, who: &Ident, reason: &str) {
        tracing::warn!(queue = %self.queue.queue, entry = %entry_id, id = who.id.as_deref(), task = who.name.as_deref(), %reason, "dead-lettered");
        // Entries that are not a valid task count as `unknown`, whatever name they carry.
        let task = match (&who.name, who.valid) {
            (Some(name), true) => name.as_str(),
            _ => "unknown",
        };
        let keys = &self.queue.keys;
        let failed_at = now_ms();
        let applied = self
            .settle("dead-letter", entry_id, who.id.as_deref(), || {
                let mut inv = scripts::DEAD.prepare_invoke();
                inv.key(&keys.stream)
                    .key(&keys.dead)
                    .key(keys.task_keys(who.id.as_deref(), who.unique.as_deref()))
                    .key(self.slot.as_slice());
                inv.arg(&self.shared.config.group)
                    .arg(entry_id)
                    .arg(&self.shared.config.consumer)
                    .arg(self.shared.config.dead_letter_max_len)
                    .arg(&keys.unique)
                    .arg(who.id.as_deref().unwrap_or(""))
                    .arg(self.slot.as_deref().unwrap_or(""))
                    .arg("error")
                    .arg(reason)
                    .arg("failed_at")
                    .arg(failed_at)
                    .arg("worker")
                    .arg(&self.shared.config.consumer)
                    .arg("attempts")
                    .arg(who.attempts);
                inv
            })
            .await;
        if applied {
            self.queue.metrics.task(task).dead.inc();
        }
    }

    /// Runs a retry or dead-letter script for `entry_id` (of task `task_id`, when known),
    /// retrying on Redis errors a few times, then stops renewing the entry's lease. Returns
    /// whether the script moved the entry (it does not when another worker owns the entry by
    /// now, or when it failed: then the entry stays pending and runs again).
    async fn settle<'a>(
        &self,
        what: &'static str,
        entry_id: &str,
        task_id: Option<&str>,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> bool {
        let applied = self.try_settle(what, entry_id, task_id, invocation).await;
        self.queue.untrack([&entry_id.to_owned()]);
        applied
    }

    async fn try_settle<'a>(
        &self,
        what: &'static str,
        entry_id: &str,
        task_id: Option<&str>,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> bool {
        let queue = &self.queue.queue;
        // The scripts reply {applied, dead entries trimmed}.
        match self
            .script_reply(what, what, entry_id, task_id, invocation)
            .await
        {
            Some((1, trimmed)) => {
                self.queue.metrics.dead_trimmed.inc_by(trimmed);
                true
            }
            Some(_) => {
                tracing::warn!(%queue, entry = %entry_id, id = task_id, "{what} skipped: the entry is no longer pending for this worker (taken over after its lease lapsed)");
                false
            }
            None => false,
        }
    }

    /// Runs a script of this entry (`what` in logs, `metric` in the Redis error count) until
    /// Redis answers, retrying errors with backoff at most [`SETTLE_ATTEMPTS`] times: its
    /// reply `(status, value)`, or `None` if every attempt failed (then the entry stays
    /// pending and runs again). A script that fails changes nothing (each checks its writes
    /// first).
    pub(super) async fn script_reply<'a>(
        &self,
        what: &str,
        metric: &'static str,
        entry_id: &str,
        task_id: Option<&str>,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> Option<(u8, u64)> {
        let queue = &self.queue.queue;
        for failure in 0..SETTLE_ATTEMPTS {
            let r: redis::RedisResult<(u8, u64)> = invocation()
                .invoke_async(&mut self.shared.data.clone())
                .await;
            match r {
                Ok(reply) => return Some(reply),
                Err(e) => {
                    self.shared.metrics.redis_error(metric);
                    crate::redis::transient::reconnect_if_readonly(&self.shared.data, &e).await;
                    if failure + 1 == SETTLE_ATTEMPTS {
                        break;
                    }
                    let delay = error_backoff(failure);
                    tracing::warn!(%queue, entry = %entry_id, id = task_id, error = %e, retry_in = ?delay, "{what} failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::error!(%queue, entry = %entry_id, id = task_id, "{what} failed {SETTLE_ATTEMPTS} times; the entry stays pending and will run again");
        None
    }
}

/// What an entry is, for log lines, metrics and the dead entry's `attempts`.
struct Ident {
    /// Task id, when the entry has one.
    id: Option<String>,
    /// Task name, when the entry has one.
    name: Option<String>,
    /// The unique key (entry field `u`), when the entry has one.
    unique: Option<String>,
    /// Runs so far, this one included.
    attempts: u32,
    /// Whether the entry parsed as a task.
    valid: bool,
}

impl Ident {
    fn of(env: &Envelope) -> Self {
        Ident {
            id: Some(env.id.clone()),
            name: Some(env.name.clone()),
            unique: env.unique.clone(),
            attempts: env.attempt.saturating_add(1),
            valid: true,
        }
    }
}

/// The value of field `name` in a raw `[field, value, ...]` list, if present.
fn raw_field(fields: &[redis::Value], name: &str) -> Option<String> {
    fields.chunks_exact(2).find_map(|kv| match kv {
        [redis::Value::BulkString(k), redis::Value::BulkString(v)] if k == name.as_bytes() => {
            Some(String::from_utf8_lossy(v).into_owned())
        }
        _ => None,
    })
}

/// What follows a failed attempt number `attempt` (not a snooze): `Ok(delay)` before the retry
/// (`unit`, a random number in `[0, 1)`, jitters an exponential backoff), or `Err(reason)` to
/// dead-letter the task with.
pub(crate) fn after_failure(
    err: &TaskError,
    attempt: u32,
    options: &TaskOptions,
    unit: f64,
) -> Result<Duration, String> {
    match err {
        TaskError::Permanent(r) => Err(format!("permanent failure: {r}")),
        _ if attempt >= options.max_retries => Err(format!("retries exhausted: {}", err.reason())),
        TaskError::RetryAfter(d, _) | TaskError::Snooze(d) => Ok(*d),
        TaskError::Retry(_) => Ok(options.backoff.jittered(attempt, unit)),
    }
}

/// Awaits a handler future with the timeout, turning panics and timeouts into retryable errors.
async fn run_guarded(
    fut: futures::future::BoxFuture<'_, Result<(), TaskError>>,
    timeout: Option<Duration>,
    result: Option<&crate::handler::ResultSlot>,
) -> Outcome {
    match guarded(fut, timeout).await {
        Ok(()) => Outcome::Done(result.and_then(|r| r.take())),
        Err(e) => Outcome::Failed(e),
    }
}

/// Awaits a handler future with the timeout, a panic or a timeout becoming a retryable error.
pub(crate) async fn guarded<V>(
    fut: futures::future::BoxFuture<'_, Result<V, TaskError>>,
    timeout: Option<Duration>,
) -> Result<V, TaskError> {
    let guarded = AssertUnwindSafe(fut).catch_unwind();
    let result = match timeout {
        Some(t) => match tokio::time::timeout(t, guarded).await {
            Ok(r) => r,
            Err(_) => return Err(TaskError::retry(format!("timed out after {t:?}"))),
        },
        None => guarded.await,
    };
    match result {
        Ok(r) => r,
        Err(panic) => Err(TaskError::retry(format!(
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
