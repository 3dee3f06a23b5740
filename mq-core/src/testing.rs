//! Test helpers for code that uses mq, no Redis needed: run a handler on a task value and get
//! what the worker would do next ([`run`], [`run_with`], [`Outcome`]), build a
//! [`TaskContext`] with the attempt or id a test wants ([`TestContext`]), and record what code
//! under test enqueued ([`TestProducer`], which implements [`Enqueue`]).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use mq_core::testing::{self, Outcome, TestContext, TestProducer};
//! use mq_core::{Enqueue, Task, TaskContext, TaskError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, Task)]
//! #[task(queue = "emails", max_retries = 2, backoff = "fixed(30s)")]
//! struct SendEmail { to: String }
//!
//! #[derive(Debug, Serialize, Deserialize, Task)]
//! struct EmbedText { product_id: u64, text: String }
//!
//! async fn send_email(task: SendEmail, _ctx: TaskContext) -> Result<(), TaskError> {
//!     if !task.to.contains('@') {
//!         return Err(TaskError::permanent("no @ in the address"));
//!     }
//!     Err(TaskError::retry("smtp down"))
//! }
//!
//! // Code under test enqueues through `impl Enqueue`: a `Producer` in production.
//! async fn save_product(queue: &impl Enqueue, id: u64, text: &str) -> mq_core::Result<()> {
//!     queue.enqueue(EmbedText { product_id: id, text: text.into() }).await?;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // What the worker does after each attempt: retry with the task's backoff, dead-letter...
//! let mail = || SendEmail { to: "ann@example.com".into() };
//! assert_eq!(
//!     testing::run(&send_email, mail()).await,
//!     Outcome::Retry { delay: Duration::from_secs(30), error: "smtp down".into() }
//! );
//! let last_try = TestContext::new().attempt(2);
//! assert_eq!(
//!     testing::run_with(&send_email, mail(), last_try).await,
//!     Outcome::Dead { reason: "retries exhausted: smtp down".into() }
//! );
//! assert!(matches!(
//!     testing::run(&send_email, SendEmail { to: "nobody".into() }).await,
//!     Outcome::Dead { .. }
//! ));
//!
//! // What code under test enqueued.
//! let queue = TestProducer::new();
//! save_product(&queue, 7, "red shoe").await.unwrap();
//! queue.assert_enqueued::<EmbedText>(|t| t.product_id == 7 && t.text == "red shoe");
//! assert_eq!(queue.tasks::<EmbedText>().len(), 1);
//! # }
//! ```

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use crate::{
    enqueue::Enqueue,
    envelope::now_ms,
    error::Result,
    handler::{Handler, TaskContext, TaskError},
    producer::{new_envelope, DEFAULT_MAX_PAYLOAD},
    task::Task,
};

/// What the worker would do after running a task: the result of [`run`] and [`run_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned `Ok`: the task is acked.
    Succeeded,
    /// The attempt failed and will be retried after `delay`: a
    /// [`TaskError::RetryAfter`]'s delay, or the task's backoff for this attempt (for an
    /// exponential backoff the longest delay the worker picks; it picks 50-100 % of it). A
    /// panic or a timeout (the task's `timeout`) is retried too.
    Retry {
        /// Time before the next attempt.
        delay: Duration,
        /// The error, as the next attempt sees it in [`TaskContext::last_error`].
        error: String,
    },
    /// The task is dead-lettered with this reason: a permanent failure, retries exhausted, or
    /// a payload that does not decode.
    Dead {
        /// The reason recorded with the dead letter.
        reason: String,
    },
    /// The handler snoozed: the same attempt runs again after `delay`.
    Snoozed {
        /// Time before the task runs again.
        delay: Duration,
    },
}

/// Runs `handler` on `task` as a worker would, with a default [`TestContext`] (attempt 0):
/// the task goes through its MessagePack encoding first (so a payload that does not
/// round-trip shows up), the handler runs under the task's timeout with panics caught, and the
/// result is what the worker would do next.
pub async fn run<T: Task, H: Handler<T>>(handler: &H, task: T) -> Outcome {
    run_with(handler, task, TestContext::new()).await
}

/// As [`run`], with a context of your own (e.g. a later attempt).
pub async fn run_with<T: Task, H: Handler<T>>(handler: &H, task: T, ctx: TestContext) -> Outcome {
    let task: T = match rmp_serde::to_vec_named(&task)
        .map_err(|e| e.to_string())
        .and_then(|bytes| rmp_serde::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(task) => task,
        Err(e) => {
            return Outcome::Dead {
                reason: format!("cannot decode {} payload: {e}", T::NAME),
            }
        }
    };
    let attempt = ctx.attempt;
    let options = T::OPTIONS;
    let err = match crate::worker::guarded(handler.handle(task, ctx.build::<T>()), options.timeout)
        .await
    {
        Ok(()) => return Outcome::Succeeded,
        Err(TaskError::Snooze(delay)) => return Outcome::Snoozed { delay },
        Err(e) => e,
    };
    match crate::worker::after_failure(&err, attempt, &options, 1.0) {
        Ok(delay) => Outcome::Retry {
            delay,
            error: err.reason().to_owned(),
        },
        Err(reason) => Outcome::Dead { reason },
    }
}

/// The [`TaskContext`] a test hands a handler: attempt 0, id `test-task`, the task type's queue
/// and retries, unless set otherwise.
///
/// ```
/// use mq_core::testing::TestContext;
/// # #[derive(serde::Serialize, serde::Deserialize, mq_core::Task)]
/// # #[task(max_retries = 5)]
/// # struct Resize { id: u64 }
/// let ctx = TestContext::new().attempt(3).id("01JTEST").last_error("timeout").build::<Resize>();
/// assert_eq!((ctx.attempt(), ctx.id(), ctx.max_retries()), (3, "01JTEST", 5));
/// assert_eq!(ctx.last_error(), Some("timeout"));
/// ```
#[derive(Debug, Clone)]
pub struct TestContext {
    id: String,
    attempt: u32,
    max_retries: Option<u32>,
    queue: Option<String>,
    enqueued_at: u64,
    last_error: Option<String>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    /// Attempt 0, id `test-task`, enqueued now, no previous error.
    pub fn new() -> Self {
        Self {
            id: "test-task".to_owned(),
            attempt: 0,
            max_retries: None,
            queue: None,
            enqueued_at: now_ms(),
            last_error: None,
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The task id ([`TaskContext::id`]).
    #[must_use]
    pub fn id(mut self, id: &str) -> Self {
        self.id = id.to_owned();
        self
    }

    /// The attempt number ([`TaskContext::attempt`]): 0 for the first run.
    #[must_use]
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Retries allowed (default: the task type's `max_retries`). [`run_with`] decides
    /// retry or dead letter with the task type's own.
    #[must_use]
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// The queue (default: the task type's).
    #[must_use]
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_owned());
        self
    }

    /// When the task was first enqueued, unix ms (default: when the context was made).
    #[must_use]
    pub fn enqueued_at(mut self, unix_ms: u64) -> Self {
        self.enqueued_at = unix_ms;
        self
    }

    /// The previous attempt's error ([`TaskContext::last_error`]).
    #[must_use]
    pub fn last_error(mut self, error: &str) -> Self {
        self.last_error = Some(error.to_owned());
        self
    }

    /// The token behind [`TaskContext::cancelled`]: cancel it (before or while the handler
    /// runs) to test how the handler stops when its task is cancelled.
    #[must_use]
    pub fn cancellation(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// The context for a task of type `T`. The one place outside the worker that makes a
    /// [`TaskContext`].
    pub fn build<T: Task>(self) -> TaskContext {
        TaskContext {
            entry_id: format!("0-{}", self.attempt + 1),
            id: self.id,
            queue: self.queue.as_deref().unwrap_or(T::QUEUE).into(),
            attempt: self.attempt,
            max_retries: self.max_retries.unwrap_or(T::OPTIONS.max_retries),
            enqueued_at: self.enqueued_at,
            last_error: self.last_error,
            permit: None,
            cancel: self.cancel,
            // Progress reports go nowhere without Redis.
            progress: None,
            result: None,
            flow: None,
        }
    }
}

/// One task a [`TestProducer`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueuedTask {
    /// The id returned to the caller.
    pub id: String,
    /// The task's queue.
    pub queue: String,
    /// The task type's name.
    pub name: String,
    /// The MessagePack payload, as the worker would receive it.
    pub payload: Vec<u8>,
    /// When it was to run.
    pub when: When,
}

impl EnqueuedTask {
    /// The task, if it is a `T` (same name and queue) and decodes as one.
    pub fn decode<T: Task>(&self) -> Option<T> {
        (self.name == T::NAME && self.queue == T::QUEUE)
            .then(|| rmp_serde::from_slice(&self.payload).ok())
            .flatten()
    }
}

/// When an [`EnqueuedTask`] was to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// At once ([`Enqueue::enqueue`]).
    Now,
    /// After a delay ([`Enqueue::enqueue_in`]).
    In(Duration),
    /// At a time ([`Enqueue::enqueue_at`]).
    At(SystemTime),
}

/// An [`Enqueue`] that records the tasks instead of sending them: pass it to code under test
/// where production passes a [`Producer`](crate::Producer), then assert on what was enqueued.
/// Tasks are encoded as the producer encodes them (an encoding error or a payload over
/// [`DEFAULT_MAX_PAYLOAD`] fails the same way). Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct TestProducer {
    tasks: Arc<Mutex<Vec<EnqueuedTask>>>,
}

impl TestProducer {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every task enqueued so far, in order.
    pub fn enqueued(&self) -> Vec<EnqueuedTask> {
        self.lock().clone()
    }

    /// The tasks of type `T` enqueued so far, decoded, in order.
    pub fn tasks<T: Task>(&self) -> Vec<T> {
        self.lock()
            .iter()
            .filter_map(EnqueuedTask::decode)
            .collect()
    }

    /// Forgets what was enqueued.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Panics unless a task of type `T` for which `matches` is true was enqueued; the message
    /// lists what was.
    #[track_caller]
    pub fn assert_enqueued<T: Task>(&self, matches: impl Fn(&T) -> bool) {
        if self.tasks::<T>().iter().any(matches) {
            return;
        }
        let seen: Vec<String> = self
            .lock()
            .iter()
            .map(|t| format!("{} on queue {} ({:?})", t.name, t.queue, t.when))
            .collect();
        panic!(
            "no matching {} was enqueued on queue {}; enqueued: {seen:?}",
            T::NAME,
            T::QUEUE
        );
    }

    /// Panics if any task of type `T` was enqueued.
    #[track_caller]
    pub fn assert_not_enqueued<T: Task>(&self) {
        let n = self.tasks::<T>().len();
        assert!(n == 0, "{n} {} task(s) were enqueued", T::NAME);
    }

    fn record<T: Task>(&self, task: &T, when: When) -> Result<String> {
        let env = new_envelope(task, now_ms(), None, DEFAULT_MAX_PAYLOAD)?;
        self.lock().push(EnqueuedTask {
            id: env.id.clone(),
            queue: T::QUEUE.to_owned(),
            name: env.name,
            payload: env.payload,
            when,
        });
        Ok(env.id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EnqueuedTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Enqueue for TestProducer {
    async fn enqueue<T: Task>(&self, task: T) -> Result<String> {
        self.record(&task, When::Now)
    }

    async fn enqueue_in<T: Task>(&self, delay: Duration, task: T) -> Result<String> {
        self.record(&task, When::In(delay))
    }

    async fn enqueue_at<T: Task>(&self, at: SystemTime, task: T) -> Result<String> {
        self.record(&task, When::At(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Job {
        n: u64,
    }

    impl Task for Job {
        const NAME: &'static str = "Job";
        const QUEUE: &'static str = "t";
        const OPTIONS: crate::TaskOptions = crate::TaskOptions {
            max_retries: 1,
            backoff: crate::Backoff::Exponential {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
            ..crate::TaskOptions::DEFAULT
        };
    }

    async fn job(task: Job, ctx: TaskContext) -> std::result::Result<(), TaskError> {
        match task.n {
            0 => Ok(()),
            1 => Err(TaskError::snooze(Duration::from_secs(2))),
            2 => panic!("boom"),
            3 => Err(TaskError::retry_after(Duration::from_secs(9), "later")),
            _ => Err(TaskError::retry(format!("attempt {}", ctx.attempt()))),
        }
    }

    #[tokio::test]
    async fn outcomes_are_what_the_worker_would_do() {
        assert_eq!(run(&job, Job { n: 0 }).await, Outcome::Succeeded);
        assert_eq!(
            run(&job, Job { n: 1 }).await,
            Outcome::Snoozed {
                delay: Duration::from_secs(2)
            }
        );
        assert_eq!(
            run(&job, Job { n: 2 }).await,
            Outcome::Retry {
                delay: Duration::from_secs(1),
                error: "handler panicked: boom".into()
            }
        );
        assert_eq!(
            run(&job, Job { n: 3 }).await,
            Outcome::Retry {
                delay: Duration::from_secs(9),
                error: "later".into()
            }
        );
        // The exponential backoff's full delay for attempt 0; attempt 1 is the last.
        assert_eq!(
            run(&job, Job { n: 4 }).await,
            Outcome::Retry {
                delay: Duration::from_secs(1),
                error: "attempt 0".into()
            }
        );
        assert_eq!(
            run_with(&job, Job { n: 4 }, TestContext::new().attempt(1)).await,
            Outcome::Dead {
                reason: "retries exhausted: attempt 1".into()
            }
        );
    }

    #[tokio::test]
    async fn the_test_producer_records_when_tasks_run() {
        let p = TestProducer::new();
        let id = Enqueue::enqueue_in(&p, Duration::from_secs(5), Job { n: 7 })
            .await
            .unwrap();
        let all = p.enqueued();
        assert_eq!(
            (all[0].id.as_str(), all[0].queue.as_str()),
            (id.as_str(), "t")
        );
        assert_eq!(all[0].when, When::In(Duration::from_secs(5)));
        p.assert_enqueued::<Job>(|j| j.n == 7);
        let missing = std::panic::catch_unwind(|| p.assert_enqueued::<Job>(|j| j.n == 8));
        assert!(missing.is_err());
        p.clear();
        p.assert_not_enqueued::<Job>();
    }
}
