//! Handlers: the [`Handler`] trait (also implemented by async fns and closures), the
//! [`TaskContext`] they receive and the [`TaskError`] that tells the runtime what to do next.

use std::{fmt, future::Future, marker::PhantomData, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::task::{Task, TaskOptions};

/// What the runtime knows about the task being handled.
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

    /// Like [`blocking`], and the task's slot of the worker's in-flight limit stays taken
    /// until `work` has returned, even if the attempt timed out before: a blocking thread cannot
    /// be stopped, so without this a timed-out task's work would go on next to its retry and
    /// the next task, beyond the limit. Prefer this in handlers.
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
/// Any error converts into [`TaskError::Retry`] with `?`, so handlers can use the errors they
/// already have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Retry with the task's backoff (dead-letter once retries are exhausted).
    Retry(String),
    /// Retry after exactly this delay (dead-letter once retries are exhausted).
    RetryAfter(Duration, String),
    /// Do not retry: move the task to the dead-letter stream now.
    Permanent(String),
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
    /// The reason given by the handler.
    pub fn reason(&self) -> &str {
        match self {
            TaskError::Retry(r) | TaskError::RetryAfter(_, r) | TaskError::Permanent(r) => r,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError::retry(e)
    }
}

/// Handles tasks of type `T`.
///
/// Implement it on a struct that holds your clients and models, or pass an async fn or closure
/// `Fn(T, TaskContext) -> impl Future<Output = Result<(), TaskError>>`, which implements it.
///
/// # Examples
///
/// ```
/// use mq_core::{async_trait, Handler, Task, TaskContext, TaskError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Task)]
/// # struct Resize { id: u64 }
///
/// struct Resizer;
///
/// #[async_trait]
/// impl Handler<Resize> for Resizer {
///     async fn handle(&self, task: Resize, ctx: TaskContext) -> Result<(), TaskError> {
///         println!("resizing {} (attempt {})", task.id, ctx.attempt());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Handler<T: Task>: Send + Sync + 'static {
    /// Handles one task. `Err` is retried or dead-lettered as the [`TaskError`] says.
    async fn handle(&self, task: T, ctx: TaskContext) -> Result<(), TaskError>;
}

#[async_trait]
impl<T, F, Fut> Handler<T> for F
where
    T: Task,
    F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
{
    async fn handle(&self, task: T, ctx: TaskContext) -> Result<(), TaskError> {
        (self)(task, ctx).await
    }
}

/// Why a stream entry could not be handed to a handler.
#[derive(Debug)]
pub(crate) struct DecodeError(pub(crate) String);

/// A handler with its task type erased: decodes the payload, then calls the typed handler.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn call<'a>(
        &'a self,
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
