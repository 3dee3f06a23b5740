//! Batch handlers: a handler that takes many tasks at once, as GPU models want.
//!
//! [`batch`] wraps a [`BatchHandler`] into an ordinary [`Handler`]: each task still goes
//! through the worker on its own (its own permit, lease, timeout, ack, retry or dead letter),
//! but instead of running alone it joins a batch. A batch is handed to the handler when it
//! has `max_size` tasks or `max_wait` after its first task arrived, whichever comes first; the
//! handler returns one outcome per task, in order.
//!
//! A running batch is tied to its tasks' attempts: when one of them ends before the batch does
//! (its timeout elapsed, or the worker gave up on it at shutdown), the batch is cancelled, so a
//! task is never retried while its batch still works on it.

use std::{
    future::Future,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::handler::{panic_message, Handler, TaskContext, TaskError};

/// Handles many tasks of type `T` at once, returning one outcome per task in the same order.
/// **Put `#[mq_core::async_trait]` on every `impl BatchHandler`** (as for
/// [`Handler`]: without it an `async fn handle_batch` fails with `E0195`,
/// "lifetime parameters or bounds on method ... do not match the trait declaration").
///
/// Implemented by async fns and closures `Fn(Vec<(T, TaskContext)>) -> impl Future<Output =
/// Vec<Result<(), TaskError>>>`. Wrap it with [`batch`] to register it. Run the model itself
/// with [`blocking`](crate::blocking) so it does not hold up the worker's async threads.
///
/// # Examples
///
/// A struct holding a model, handling batches of up to 32 tasks:
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
///
/// use mq_core::{batch, BatchHandler, Task, TaskContext, TaskError, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(queue = "texts")]
/// struct EmbedText {
///     id: u64,
///     text: String,
/// }
///
/// struct Model; // weights, a session, a GPU handle...
///
/// impl Model {
///     fn embed(&self, texts: &[String]) -> Vec<Vec<f32>> {
///         texts.iter().map(|t| vec![t.len() as f32]).collect()
///     }
/// }
///
/// struct Embedder {
///     model: Arc<Model>,
/// }
///
/// #[mq_core::async_trait]
/// impl BatchHandler<EmbedText> for Embedder {
///     async fn handle_batch(
///         &self,
///         tasks: Vec<(EmbedText, TaskContext)>,
///     ) -> Vec<Result<(), TaskError>> {
///         let n = tasks.len();
///         let texts: Vec<String> = tasks.into_iter().map(|(t, _)| t.text).collect();
///         let model = Arc::clone(&self.model);
///         // One model call for the whole batch, on the blocking pool.
///         match mq_core::blocking(move || model.embed(&texts)).await {
///             Ok(vectors) => vectors.iter().map(|_| Ok(())).collect(),
///             // The model panicked: retry every task of the batch.
///             Err(e) => vec![Err(e); n],
///         }
///     }
/// }
///
/// # async fn run() -> mq_core::Result<()> {
/// let embedder = Embedder { model: Arc::new(Model) };
/// Worker::builder("redis://127.0.0.1/")
///     .handle(batch(32, Duration::from_millis(20), embedder))
///     .build()
///     .await?
///     .run_until_signal()
///     .await
/// # }
/// ```
#[async_trait]
pub trait BatchHandler<T: Send + 'static>: Send + Sync + 'static {
    /// Handles a batch. The result must have one entry per task; if it does not, every task
    /// of the batch is retried.
    async fn handle_batch(&self, tasks: Vec<(T, TaskContext)>) -> Vec<Result<(), TaskError>>;
}

#[async_trait]
impl<T, F, Fut> BatchHandler<T> for F
where
    T: Send + 'static,
    F: Fn(Vec<(T, TaskContext)>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<(), TaskError>>> + Send + 'static,
{
    async fn handle_batch(&self, tasks: Vec<(T, TaskContext)>) -> Vec<Result<(), TaskError>> {
        (self)(tasks).await
    }
}

/// Batches of any `max_size` start with room for at most this many tasks (and the queue of
/// tasks waiting to join a batch holds at most this many): 1,024. Larger batches grow on
/// demand, so a huge `max_size` costs nothing until tasks arrive.
pub const BATCH_PREALLOC_LIMIT: usize = 1_024;

/// Longest `max_wait` of [`batch`]: 365 days; longer ones (up to `Duration::MAX`) are clamped
/// to it, which in practice means "wait until the batch is full".
pub const BATCH_MAX_WAIT_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Wraps `handler` so tasks reach it in batches of at most `max_size`, each waiting at most
/// `max_wait` for the batch to fill. Register the result with
/// [`WorkerBuilder::handle`](crate::WorkerBuilder::handle). The worker's concurrency limits
/// count tasks, so a batch is never larger than the free permits allow.
///
/// Memory grows with the tasks that arrive, not with `max_size` (see
/// [`BATCH_PREALLOC_LIMIT`]); a `max_wait` above [`BATCH_MAX_WAIT_LIMIT`] is clamped to it.
///
/// **Timeouts.** The task's `timeout` covers its whole attempt: waiting for the batch and the
/// batch itself. A batch runs at most until the first of its tasks times out (the task that
/// arrived first, as all tasks of a batch share one timeout); then the batch's future is
/// dropped (cancelled), the timed-out task is retried with "timed out after ..." and the other
/// tasks of the batch are retried with "batch cancelled ...". So a task is never retried while
/// its batch still works on it. As with any handler, work started with
/// [`blocking`](crate::blocking) cannot be stopped and runs to its end; keep
/// `max_wait` plus the batch's run time well below the timeout.
///
/// # Panics
///
/// If `max_size` is 0 (a programmer error, caught the first time the code runs).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use mq_core::{batch, Task, TaskContext, TaskError, Worker};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Task)]
/// # struct EmbedText { text: String }
///
/// async fn embed_all(tasks: Vec<(EmbedText, TaskContext)>) -> Vec<Result<(), TaskError>> {
///     let texts: Vec<String> = tasks.into_iter().map(|(t, _)| t.text).collect();
///     let n = texts.len();
///     // One model call for the whole batch, off the async threads.
///     match mq_core::blocking(move || texts.iter().map(|t| t.len()).collect::<Vec<_>>()).await {
///         Ok(_vectors) => (0..n).map(|_| Ok(())).collect(),
///         Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
///     }
/// }
/// # async fn run() -> mq_core::Result<()> {
/// Worker::builder("redis://127.0.0.1/")
///     .handle(batch(32, Duration::from_millis(20), embed_all))
///     .concurrency(128)
///     .build()
///     .await?
///     .run_until_signal()
///     .await
/// # }
/// ```
pub fn batch<T: Send + 'static, H: BatchHandler<T>>(
    max_size: usize,
    max_wait: Duration,
    handler: H,
) -> Batched<T, H> {
    assert!(
        max_size > 0,
        "mq_core::batch: max_size must be at least 1, got 0"
    );
    let (tx, rx) = mpsc::channel(max_size.saturating_mul(4).min(BATCH_PREALLOC_LIMIT));
    Batched {
        inner: Arc::new(Inner {
            handler,
            max_size,
            max_wait: max_wait.min(BATCH_MAX_WAIT_LIMIT),
            rx: Mutex::new(Some(rx)),
        }),
        tx,
        _task: PhantomData,
    }
}

type Item<T> = (T, TaskContext, oneshot::Sender<Result<(), TaskError>>);

/// A [`BatchHandler`] made into a [`Handler`] by [`batch`].
pub struct Batched<T, H> {
    inner: Arc<Inner<T, H>>,
    tx: mpsc::Sender<Item<T>>,
    _task: PhantomData<fn() -> T>,
}

impl<T, H> std::fmt::Debug for Batched<T, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched")
            .field("task", &std::any::type_name::<T>())
            .field("max_size", &self.inner.max_size)
            .field("max_wait", &self.inner.max_wait)
            .finish()
    }
}

struct Inner<T, H> {
    handler: H,
    max_size: usize,
    max_wait: Duration,
    /// Taken by the collector task, started on the first task.
    rx: Mutex<Option<mpsc::Receiver<Item<T>>>>,
}

#[async_trait]
impl<T: Send + 'static, H: BatchHandler<T>> Handler<T> for Batched<T, H> {
    async fn handle(&self, task: T, ctx: TaskContext) -> Result<(), TaskError> {
        let rx = self.inner.rx.lock().map(|mut rx| rx.take()).unwrap_or(None);
        if let Some(rx) = rx {
            tokio::spawn(collect(self.inner.clone(), rx));
        }
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send((task, ctx, done_tx))
            .await
            .map_err(|_| TaskError::retry("batch collector stopped"))?;
        done_rx
            .await
            .unwrap_or_else(|_| Err(TaskError::retry("batch dropped without an outcome")))
    }
}

/// Gathers tasks into batches and starts each batch as its own tokio task, until every sender
/// is gone. A panic while gathering drops the tasks in hand (each gets a retryable error from
/// its closed channel) and the collector goes on with the next batch.
async fn collect<T: Send + 'static, H: BatchHandler<T>>(
    inner: Arc<Inner<T, H>>,
    mut rx: mpsc::Receiver<Item<T>>,
) {
    loop {
        match AssertUnwindSafe(gather(&inner, &mut rx))
            .catch_unwind()
            .await
        {
            Ok(Some(items)) => {
                tokio::spawn(run_batch(inner.clone(), items));
            }
            Ok(None) => return,
            Err(panic) => tracing::error!(
                task = std::any::type_name::<T>(),
                panic = %panic_message(&*panic),
                "batch collector panicked; the tasks it held are retried"
            ),
        }
    }
}

/// Waits for a first task, then for more until the batch is full or `max_wait` has passed.
/// `None` once every sender is gone.
async fn gather<T, H>(
    inner: &Inner<T, H>,
    rx: &mut mpsc::Receiver<Item<T>>,
) -> Option<Vec<Item<T>>> {
    let first = rx.recv().await?;
    let mut items = Vec::with_capacity(inner.max_size.min(BATCH_PREALLOC_LIMIT));
    items.push(first);
    let deadline = tokio::time::Instant::now() + inner.max_wait;
    while items.len() < inner.max_size {
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => items.push(item),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    Some(items)
}

async fn run_batch<T: Send + 'static, H: BatchHandler<T>>(
    inner: Arc<Inner<T, H>>,
    items: Vec<Item<T>>,
) {
    let mut tasks = Vec::with_capacity(items.len());
    let mut senders = Vec::with_capacity(items.len());
    for (task, ctx, tx) in items {
        // A task whose attempt timed out while it waited for the batch was already settled
        // (retried): running it here would run it twice.
        if tx.is_closed() {
            continue;
        }
        tasks.push((task, ctx));
        senders.push(tx);
    }
    let n = tasks.len();
    if n == 0 {
        return;
    }
    let outcomes = {
        // Resolves as soon as one task stops waiting for its outcome: its attempt ended
        // (timed out) and the worker retries it, so the batch must not go on with it.
        let abandoned =
            futures::future::select_all(senders.iter_mut().map(|tx| Box::pin(tx.closed())));
        tokio::select! {
            biased;
            outcomes = AssertUnwindSafe(inner.handler.handle_batch(tasks)).catch_unwind() => Some(outcomes),
            _ = abandoned => None,
        }
    };
    let outcomes = match outcomes {
        None => {
            let e = TaskError::retry(
                "batch cancelled: another task of the batch timed out (or was abandoned at shutdown) while the batch ran",
            );
            vec![Err(e); n]
        }
        Some(Ok(o)) if o.len() == n => o,
        Some(Ok(o)) => {
            let e = TaskError::retry(format!(
                "batch handler returned {} outcomes for {n} tasks",
                o.len()
            ));
            vec![Err(e); n]
        }
        Some(Err(panic)) => {
            let e = TaskError::retry(format!("handler panicked: {}", panic_message(&*panic)));
            vec![Err(e); n]
        }
    };
    for (tx, outcome) in senders.into_iter().zip(outcomes) {
        // A task that timed out meanwhile no longer listens; its entry was already settled.
        let _ = tx.send(outcome);
    }
}
