//! Handlers: the [`Handler`] trait (also implemented by async fns and closures), the
//! [`TaskContext`] they receive and the [`TaskError`] that tells the runtime what to do next.

use std::{fmt, future::Future, marker::PhantomData, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::task::{Task, TaskOptions};

/// Reports one task's progress ([`TaskContext::progress_handle`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct ProgressHandle {
    id: String,
    progress: Option<Arc<crate::control::Progress>>,
}

impl ProgressHandle {
    /// As [`TaskContext::progress`]: throttled to one write a second, the last value wins; a
    /// value that does not serialize is logged and dropped, and so is a report after the
    /// attempt ended.
    pub async fn report<V: serde::Serialize + ?Sized>(&self, value: &V) {
        report_progress(self.progress.as_ref(), &self.id, value).await;
    }
}

/// The body of [`TaskContext::progress`] and [`ProgressHandle::report`].
async fn report_progress<V: serde::Serialize + ?Sized>(
    progress: Option<&Arc<crate::control::Progress>>,
    id: &str,
    value: &V,
) {
    let Some(progress) = progress else {
        return;
    };
    match serde_json::to_string(value) {
        Ok(json) => progress.report(json).await,
        Err(e) => {
            tracing::warn!(id = %id, error = %e, "progress value does not serialize to JSON; dropped")
        }
    }
}

/// What the runtime knows about the task being handled, passed to every handler call.
///
/// # Examples
///
/// ```
/// use mq_core::{Task, TaskContext, TaskError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Task)]
/// # struct Charge { cents: u64 }
///
/// async fn charge(task: Charge, ctx: TaskContext) -> Result<(), TaskError> {
///     // The task id is stable across retries: use it as an idempotency key.
///     let key = ctx.id().to_owned();
///     if let Some(previous) = ctx.last_error() {
///         tracing::warn!(attempt = ctx.attempt(), max = ctx.max_retries(), previous, "retrying");
///     }
///     // CPU-heavy work goes to the blocking pool and keeps the task's in-flight slot.
///     let fee = ctx.blocking(move || task.cents / 100).await?;
///     println!("charged {fee} with key {key} from queue {}", ctx.queue());
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub(crate) id: String,
    pub(crate) entry_id: String,
    pub(crate) queue: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_retries: u32,
    pub(crate) enqueued_at: u64,
    pub(crate) last_error: Option<String>,
    /// The task's in-flight permit, shared so that work started with
    /// [`TaskContext::blocking`] keeps it until that work really ends.
    pub(crate) permit: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Fired when the task's cancellation was asked for (see [`TaskContext::cancelled`]).
    pub(crate) cancel: tokio_util::sync::CancellationToken,
    /// Where [`TaskContext::progress`] writes, throttled.
    pub(crate) progress: Option<Arc<crate::control::Progress>>,
    /// Where a tracked task's result goes; `None` for task types without
    /// [`result_ttl`](crate::TaskOptions::result_ttl).
    pub(crate) result: Option<Arc<ResultSlot>>,
    /// A flow parent's children and failed children; `None` for any other task.
    pub(crate) flow: Option<Arc<crate::flow::FlowLinks>>,
}

impl TaskContext {
    /// The task id returned by `enqueue`; stable across retries. Use it to make handlers
    /// idempotent.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The id of the stream entry being handled (changes on every retry).
    pub fn entry_id(&self) -> &str {
        &self.entry_id
    }
    /// The queue the task came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// The attempt number: 0 for the first run, 1 for the first retry...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Retries allowed after the first run.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }
    /// Unix time in milliseconds when the task was first enqueued.
    pub fn enqueued_at(&self) -> u64 {
        self.enqueued_at
    }
    /// The error of the previous attempt, if this is a retry.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// A flow parent's children ([`Producer::flow`](crate::Producer::flow)), in the order
    /// they were added; empty for a task that is not a flow's parent. A tracked child's
    /// result is read with [`Producer::result`](crate::Producer::result)`(&child.queue,
    /// &child.id)`.
    pub fn children(&self) -> &[crate::FlowChild] {
        self.flow.as_deref().map_or(&[], |f| &f.children[..])
    }

    /// The children of a flow parent that died or were cancelled, with the reasons: empty
    /// when all succeeded (always, under [`FlowPolicy::AllSucceeded`](crate::FlowPolicy),
    /// whose parent runs only then).
    pub fn failed_children(&self) -> &[crate::FailedChild] {
        self.flow.as_deref().map_or(&[], |f| &f.failed[..])
    }

    /// Completes once the task's cancellation was asked for
    /// ([`Producer::cancel`](crate::Producer::cancel), [`Admin::cancel`](crate::Admin::cancel),
    /// `mq cancel`), from any host: the worker learns it from its next lease renewal, within
    /// one renewal interval (a third of the reclaim timeout). The handler decides how to stop:
    /// one that never looks runs to its end. However the handler then returns, the task is
    /// settled as cancelled: acked, never retried nor dead-lettered, counted with outcome
    /// `cancelled`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mq_core::{Task, TaskContext, TaskError};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, Task)]
    /// # struct Crawl { pages: u32 }
    ///
    /// async fn crawl(task: Crawl, ctx: TaskContext) -> Result<(), TaskError> {
    ///     for _page in 0..task.pages {
    ///         tokio::select! {
    ///             _ = ctx.cancelled() => return Err(TaskError::permanent("cancelled")),
    ///             _ = tokio::time::sleep(Duration::from_millis(10)) => {} // fetch a page
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the task's cancellation was asked for (see [`cancelled`](Self::cancelled)):
    /// for handlers that check between steps, or in blocking work.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports the task's progress (any value that serializes to JSON: a percentage, a
    /// struct of counters), readable by id from any host while and after the task runs
    /// ([`Producer::progress`](crate::Producer::progress), `mq status QUEUE ID`) for an hour
    /// after the last write. Throttled: at most one write per second per task, the last value
    /// wins, and a value reported less than a second after the previous write is written at
    /// the end of that second or when the task ends, so a chatty handler cannot flood Redis. A
    /// value that cannot be serialized is logged and dropped; so is a failed write: progress
    /// never fails the task. Tasks that never report progress write nothing.
    ///
    /// ```
    /// use mq_core::{Task, TaskContext, TaskError};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, Task)]
    /// # struct Import { rows: u64 }
    ///
    /// async fn import(task: Import, ctx: TaskContext) -> Result<(), TaskError> {
    ///     for row in 0..task.rows {
    ///         // ... import the row ...
    ///         ctx.progress(&serde_json::json!({ "done": row + 1, "of": task.rows })).await;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn progress<V: serde::Serialize + ?Sized>(&self, value: &V) {
        report_progress(self.progress.as_ref(), &self.id, value).await;
    }

    /// A handle that reports this task's [`progress`](Self::progress) and holds nothing else
    /// of the context: unlike a clone of the context, it does not keep the task's in-flight
    /// slot. For code that reports from elsewhere (the Python binding's `ctx.progress`). A
    /// report through it after the attempt ended is dropped.
    pub fn progress_handle(&self) -> ProgressHandle {
        ProgressHandle {
            id: self.id.clone(),
            progress: self.progress.clone(),
        }
    }

    /// Stores `value` as the task's result, for a handler struct (an async fn or closure
    /// handler returns its result instead: see [`Handler`]'s Results). Kept (as JSON) only
    /// for a task type with [`result_ttl`](crate::TaskOptions::result_ttl), once the handler
    /// returns `Ok`; the last value set wins. Does nothing for other task types.
    ///
    /// # Errors
    ///
    /// A retryable [`TaskError`] if `value` does not serialize to JSON.
    pub fn set_result<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<(), TaskError> {
        match &self.result {
            Some(slot) => slot.set(value),
            None => Ok(()),
        }
    }

    /// The task's cancellation token (see [`cancelled`](Self::cancelled)), to pass to code
    /// that takes one, or to check from blocking work.
    pub fn cancellation_token(&self) -> tokio_util::sync::CancellationToken {
        self.cancel.clone()
    }

    /// Like [`blocking`], and the task's slot of the worker's in-flight limit stays taken
    /// until `work` has returned, even if the attempt timed out before: a blocking thread cannot
    /// be stopped, so without this a timed-out task's work would go on next to its retry and
    /// the next task, beyond the limit. An attempt that fails (times out) while `work` runs is
    /// settled only after `work` has returned: its retry or dead letter, and the freeing of its
    /// per-key concurrency slot, wait for it (so does a clone of the context kept alive after
    /// the handler's future ended). Prefer this in handlers.
    ///
    /// # Errors
    ///
    /// As [`blocking`].
    pub async fn blocking<F, R>(&self, work: F) -> Result<R, TaskError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self.permit.clone();
        blocking(move || {
            let _permit = permit;
            work()
        })
        .await
    }
}

/// A failed attempt and what the runtime should do about it.
///
/// `?` converts the errors handlers already have into [`TaskError::Retry`]: any
/// `std::error::Error + Send + Sync + 'static`, `Box<dyn Error + Send + Sync>`, `anyhow::Error`,
/// `String` (see the `From` impl below). Return [`TaskError::permanent`] for failures a retry
/// cannot fix and [`TaskError::retry_after`] when the other side said when to come back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::{Task, TaskContext, TaskError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Task)]
/// # struct Fetch { url: String }
///
/// async fn fetch(task: Fetch, _ctx: TaskContext) -> Result<(), TaskError> {
///     if !task.url.starts_with("https://") {
///         // Dead-lettered at once: retrying cannot fix the URL.
///         return Err(TaskError::permanent(format!("not https: {}", task.url)));
///     }
///     let status: u16 = "429".parse()?; // a parse error would be retried with the backoff
///     if status == 429 {
///         // Rate limited: come back in exactly 30 s (still counts as a retry).
///         return Err(TaskError::retry_after(Duration::from_secs(30), "rate limited"));
///     }
///     Ok(())
/// }
///
/// // `?` on a boxed error (or `anyhow::Error`) keeps the message.
/// fn check() -> Result<(), TaskError> {
///     let e: Box<dyn std::error::Error + Send + Sync> = "disk full".into();
///     Err(e)?;
///     Ok(())
/// }
/// assert_eq!(check(), Err(TaskError::Retry("disk full".into())));
/// assert_eq!(TaskError::permanent("bad input").reason(), "bad input");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Retry with the task's backoff (dead-letter once retries are exhausted).
    Retry(String),
    /// Retry after exactly this delay (dead-letter once retries are exhausted).
    RetryAfter(Duration, String),
    /// Do not retry: move the task to the dead-letter stream now.
    Permanent(String),
    /// Not a failure: run the task again after this delay, as the same attempt (the attempt
    /// number and the retries left do not change, and the task is never dead-lettered for
    /// snoozing). See [`TaskError::snooze`].
    Snooze(Duration),
}

impl TaskError {
    /// A retryable failure with this reason.
    pub fn retry(reason: impl fmt::Display) -> Self {
        TaskError::Retry(reason.to_string())
    }
    /// A retryable failure that must wait `delay` before the next attempt.
    pub fn retry_after(delay: Duration, reason: impl fmt::Display) -> Self {
        TaskError::RetryAfter(delay, reason.to_string())
    }
    /// A permanent failure: no more attempts.
    pub fn permanent(reason: impl fmt::Display) -> Self {
        TaskError::Permanent(reason.to_string())
    }
    /// Run the task again after `delay` without counting an attempt: for a handler that
    /// learns of a limit from outside (an HTTP 429 with `Retry-After`). The task goes back to
    /// its queue's delayed set with the same attempt number ([`TaskContext::attempt`] is
    /// unchanged on the next run, the previous error too) and is never dead-lettered for
    /// snoozing, however often; it counts in `mq_tasks_finished_total{outcome="snoozed"}`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mq_core::{TaskContext, TaskError};
    /// # #[derive(serde::Serialize, serde::Deserialize, mq_core::Task)]
    /// # struct CallApi { account: u64 }
    ///
    /// async fn call_api(task: CallApi, _ctx: TaskContext) -> Result<(), TaskError> {
    ///     let (status, retry_after) = (429, Duration::from_secs(2)); // the API's answer
    ///     if status == 429 {
    ///         return Err(TaskError::snooze(retry_after));
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn snooze(delay: Duration) -> Self {
        TaskError::Snooze(delay)
    }
    /// The reason given by the handler (`snoozed` for [`TaskError::Snooze`]).
    pub fn reason(&self) -> &str {
        match self {
            TaskError::Retry(r) | TaskError::RetryAfter(_, r) | TaskError::Permanent(r) => r,
            TaskError::Snooze(_) => "snoozed",
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// `?` in a handler: any error that converts into `Box<dyn Error + Send + Sync>` becomes a
/// [`TaskError::Retry`] whose reason is the error and its sources joined with `": "` (see
/// [`chain`](crate::error::chain)). That covers every `E: std::error::Error + Send + Sync +
/// 'static`, `Box<dyn Error + Send + Sync>` itself, `anyhow::Error` (anyhow converts into the
/// box, with its context chain as sources), `String` and `&str`.
///
/// One blanket impl over `Into<Box<dyn Error + Send + Sync>>` is what makes boxed errors work:
/// a blanket impl over `E: Error` could not sit beside an impl for `Box<dyn Error>` or
/// `anyhow::Error`, since Rust's coherence rules let std and anyhow add `Error` impls for those
/// types later. Errors that are not `Send + Sync + 'static` (a poisoned `std::sync::Mutex`
/// lock borrows its guard) take `.map_err(TaskError::retry)`. `anyhow::bail!` and
/// `anyhow::ensure!` return an `anyhow::Error` without `?`, so they belong in functions that
/// return `anyhow::Result`, whose result the handler then `?`s.
//
// `TaskError` must not implement `std::error::Error`: this impl would then overlap with
// `impl<T> From<T> for T`.
impl<E> From<E> for TaskError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(e: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        TaskError::Retry(crate::error::chain(&*boxed))
    }
}

/// Handles tasks of type `T`. **Put `#[mq_core::async_trait]` on every `impl Handler`**: the
/// trait is an [`async_trait`](crate::async_trait), and an `async fn handle` without the
/// attribute fails with ``error[E0195]: lifetime parameters or bounds on method `handle` do
/// not match the trait declaration``, a message that does not mention it.
///
/// Implement it on a struct that holds your clients and models, or pass an async fn or closure
/// `Fn(T, TaskContext) -> impl Future<Output = Result<(), TaskError>>`, which implements it.
/// Register either with [`WorkerBuilder::handle`](crate::WorkerBuilder::handle); the task type
/// is inferred from the impl or the fn's first argument (a closure needs its argument types
/// written out: `|task: SendEmail, ctx: TaskContext| async move { ... }`).
///
/// `?` works on any error that converts into `Box<dyn Error + Send + Sync>`: every
/// `std::error::Error + Send + Sync + 'static`, boxed errors, `anyhow::Error`, `String`; each
/// becomes a retryable [`TaskError`] (see its `From` impl).
///
/// # Examples
///
/// A handler struct holding a client, registered on a worker:
///
/// ```no_run
/// use std::sync::Arc;
///
/// use mq_core::{Handler, Task, TaskContext, TaskError, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(queue = "emails", max_retries = 5)]
/// struct SendEmail {
///     to: String,
///     body: String,
/// }
///
/// struct SmtpClient; // your client: a connection pool, an HTTP client...
///
/// impl SmtpClient {
///     async fn send(&self, to: &str, body: &str) -> Result<(), std::io::Error> {
///         println!("to {to}: {body}");
///         Ok(())
///     }
/// }
///
/// struct Mailer {
///     smtp: Arc<SmtpClient>,
/// }
///
/// #[mq_core::async_trait]
/// impl Handler<SendEmail> for Mailer {
///     async fn handle(&self, task: SendEmail, ctx: TaskContext) -> Result<(), TaskError> {
///         if !task.to.contains('@') {
///             return Err(TaskError::permanent(format!("bad address {:?}", task.to)));
///         }
///         // `?`: an I/O error is retried with the task's backoff.
///         self.smtp.send(&task.to, &task.body).await?;
///         tracing::info!(id = ctx.id(), attempt = ctx.attempt(), "sent");
///         Ok(())
///     }
/// }
///
/// # async fn run() -> mq_core::Result<()> {
/// let mailer = Mailer { smtp: Arc::new(SmtpClient) };
/// Worker::builder("redis://127.0.0.1/")
///     .handle(mailer) // the task type comes from the impl
///     .build()
///     .await?
///     .run_until_signal()
///     .await
/// # }
/// ```
///
/// # Results
///
/// An async fn or closure handler may return a value: `Result<R, TaskError>` with any
/// `R: Serialize` (`()` as before). For a task type with
/// [`result_ttl`](crate::TaskOptions::result_ttl) the value is stored as JSON with the task's
/// status and read with [`Producer::result`](crate::Producer::result) /
/// [`Producer::wait`](crate::Producer::wait); for other task types it is dropped, never
/// serialized. A handler struct returns `()` and stores a result with
/// [`TaskContext::set_result`].
///
/// ```
/// use mq_core::{Task, TaskContext, TaskError};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(result_ttl = "1h")]
/// struct Add { a: i64, b: i64 }
///
/// async fn add(task: Add, _ctx: TaskContext) -> Result<i64, TaskError> {
///     Ok(task.a + task.b)
/// }
/// let _builder = mq_core::Worker::builder("redis://127.0.0.1/").handle(add);
/// ```
#[async_trait]
pub trait Handler<T: Send + 'static>: Send + Sync + 'static {
    /// Handles one task. `Err` is retried or dead-lettered as the [`TaskError`] says.
    async fn handle(&self, task: T, ctx: TaskContext) -> Result<(), TaskError>;
}

#[async_trait]
impl<T, R, F, Fut> Handler<T> for F
where
    T: Send + 'static,
    R: serde::Serialize + Send + 'static,
    F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, TaskError>> + Send + 'static,
{
    async fn handle(&self, task: T, ctx: TaskContext) -> Result<(), TaskError> {
        // `None` unless the task type is tracked: then the value is not even serialized.
        let slot = ctx.result.clone();
        let value = (self)(task, ctx).await?;
        if let Some(slot) = slot {
            slot.set(&value)?;
        }
        Ok(())
    }
}

/// Where the result of a tracked task's handler goes (JSON), for the settling script.
#[derive(Debug, Default)]
pub(crate) struct ResultSlot(std::sync::Mutex<Option<String>>);

impl ResultSlot {
    /// Stores `value` as JSON; a value that does not serialize fails the attempt.
    pub(crate) fn set<R: serde::Serialize + ?Sized>(&self, value: &R) -> Result<(), TaskError> {
        let json = serde_json::to_string(value).map_err(|e| {
            TaskError::retry(format!("the task's result does not serialize to JSON: {e}"))
        })?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(json);
        Ok(())
    }

    /// The stored result, if any.
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Why a stream entry could not be handed to a handler.
#[derive(Debug)]
pub(crate) struct DecodeError(pub(crate) String);

/// A handler with its task type erased: decodes the payload, then calls the typed handler.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    /// Decodes `payload` (of the entry's task `name`) and starts the handler on it.
    fn call<'a>(
        &'a self,
        name: &str,
        payload: &[u8],
        ctx: TaskContext,
    ) -> Result<BoxFuture<'a, Result<(), TaskError>>, DecodeError>;
    fn options(&self) -> TaskOptions;
}

pub(crate) struct Typed<T, H> {
    handler: H,
    _task: PhantomData<fn() -> T>,
}

impl<T, H> Typed<T, H> {
    pub(crate) fn new(handler: H) -> Self {
        Self {
            handler,
            _task: PhantomData,
        }
    }
}

impl<T: Task, H: Handler<T>> ErasedHandler for Typed<T, H> {
    fn call<'a>(
        &'a self,
        _name: &str,
        payload: &[u8],
        ctx: TaskContext,
    ) -> Result<BoxFuture<'a, Result<(), TaskError>>, DecodeError> {
        let task: T = rmp_serde::from_slice(payload)
            .map_err(|e| DecodeError(format!("cannot decode {} payload: {e}", T::NAME)))?;
        Ok(self.handler.handle(task, ctx))
    }

    fn options(&self) -> TaskOptions {
        T::OPTIONS
    }
}

/// Runs CPU-bound work (model inference, image decoding) on tokio's blocking thread pool, off
/// the async worker threads, so fetching, acking and the rest of the worker keep going. A
/// panic in `work` becomes a retryable [`TaskError`].
///
/// Leases are renewed from a thread of their own either way; this keeps throughput up.
///
/// # Examples
///
/// ```
/// # async fn demo() -> Result<(), mq_core::TaskError> {
/// let sum = mq_core::blocking(|| (0..1_000_000u64).sum::<u64>()).await?;
/// assert_eq!(sum, 499_999_500_000);
/// # Ok(()) }
/// ```
pub async fn blocking<F, R>(work: F) -> Result<R, TaskError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        if e.is_panic() {
            let panic = e.into_panic();
            TaskError::retry(format!("handler panicked: {}", panic_message(&*panic)))
        } else {
            TaskError::retry("blocking work was cancelled")
        }
    })
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
