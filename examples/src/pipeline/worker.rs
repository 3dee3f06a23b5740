//! The consumer side: the batch handler [`Embedder`] (embed a batch, store its vectors, one
//! outcome per task: [`embed_batch`]), its counters ([`EmbedStats`]) and the image and text
//! worker processes ([`run_embed_worker`]).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use mq_core::{BatchHandler, TaskContext, TaskError};

use super::{
    args::WorkerArgs,
    embed::EmbedTask,
    image_model::ImageModel,
    model::{Models, TextModel},
    store::store_vectors,
};

/// Counters of a batch handler, shared with whoever watches it (progress bars, summaries).
/// All are cumulative; a task handled twice (at-least-once delivery) counts twice.
#[derive(Debug, Default)]
pub struct EmbedStats {
    /// Batches handled.
    pub batches: AtomicU64,
    /// Tasks handed to the handler (all attempts).
    pub tasks: AtomicU64,
    /// Vectors stored.
    pub stored: AtomicU64,
    /// Tasks rejected as invalid (dead-lettered).
    pub invalid: AtomicU64,
    /// Tasks whose first attempt was failed on purpose ([`Embedder::fail_first_attempt_every`]).
    pub injected: AtomicU64,
    /// Batches whose vectors could not be stored (their tasks were retried).
    pub store_errors: AtomicU64,
    /// Wall time of the embedding calls, in nanoseconds, summed over batches. Batches in
    /// flight overlap and a real model runs one at a time, so this includes each batch's wait
    /// for the model; the model's own time is `usage()` of the model.
    pub embed_nanos: AtomicU64,
}

impl EmbedStats {
    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `stored=.. invalid=.. batches=.. avg_batch=.. embed_wall_us_per_task=..`, for end-of-run
    /// lines.
    pub fn summary(&self) -> String {
        let batches = Self::get(&self.batches);
        let tasks = Self::get(&self.tasks);
        let embedded = Self::get(&self.stored) + Self::get(&self.invalid);
        format!(
            "stored={} invalid={} batches={batches} avg_batch={:.1} embed_wall_us_per_task={:.1}",
            Self::get(&self.stored),
            Self::get(&self.invalid),
            tasks as f64 / batches.max(1) as f64,
            Self::get(&self.embed_nanos) as f64 / 1e3 / embedded.max(1) as f64,
        )
    }
}

/// Embeds a batch of tasks and stores their vectors: the body of the pipeline's batch
/// handlers (image worker, text worker, demo, text benchmark).
///
/// 1. With `fail_every > 0`, the first attempt of every task whose product id is a multiple
///    of `fail_every` fails with a retryable error (chaos to show retries; 0 = off).
/// 2. The others are embedded together, with one call of the model of `models` for their
///    kind ([`EmbedTask::embed_with`]), inside [`mq_core::blocking`], off the async threads.
/// 3. The valid tasks' vectors are stored with one pipeline ([`store_vectors`]).
///
/// Outcomes, one per task in order: `Ok` once its vector is stored; an invalid task (from a
/// producer that does not filter) is [`TaskError::permanent`], dead-lettered at once; if the
/// embedding fails or panics or the store fails, every valid task of the batch is retried
/// (storing is idempotent: the same bytes under the same key).
pub async fn embed_batch<T, C>(
    conn: &mut C,
    stats: &EmbedStats,
    models: &Models,
    fail_every: u64,
    tasks: Vec<(T, TaskContext)>,
) -> Vec<Result<(), TaskError>>
where
    T: EmbedTask,
    C: redis::aio::ConnectionLike + Send,
{
    let n = tasks.len();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.tasks.fetch_add(n as u64, Ordering::Relaxed);
    let mut outcomes: Vec<Option<Result<(), TaskError>>> = vec![None; n];
    let mut todo = Vec::with_capacity(n);
    let mut to_embed = Vec::with_capacity(n);
    for (i, (task, ctx)) in tasks.into_iter().enumerate() {
        if fail_every > 0 && task.product_id() % fail_every == 0 && ctx.attempt() == 0 {
            stats.injected.fetch_add(1, Ordering::Relaxed);
            outcomes[i] = Some(Err(TaskError::retry(format!(
                "injected failure: first attempt of product {} (every {fail_every}th)",
                task.product_id()
            ))));
            continue;
        }
        todo.push(i);
        to_embed.push(task);
    }
    if !to_embed.is_empty() {
        let started = Instant::now();
        let models = models.clone();
        let embedded = mq_core::blocking(move || T::embed_with(&to_embed, &models))
            .await
            .and_then(|r| r.map_err(|e| TaskError::retry(e.to_string())));
        match embedded {
            Err(e) => {
                for &i in &todo {
                    outcomes[i] = Some(Err(e.clone()));
                }
            }
            Ok(results) => {
                stats
                    .embed_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let mut vectors = Vec::with_capacity(results.len());
                let mut valid = Vec::with_capacity(results.len());
                for (&i, result) in todo.iter().zip(results) {
                    match result {
                        Ok(v) => {
                            vectors.push(v);
                            valid.push(i);
                        }
                        Err(invalid) => {
                            stats.invalid.fetch_add(1, Ordering::Relaxed);
                            outcomes[i] = Some(Err(TaskError::permanent(invalid)));
                        }
                    }
                }
                let stored = store_vectors(conn, T::KIND, &vectors).await;
                let outcome = match stored {
                    Ok(()) => {
                        stats
                            .stored
                            .fetch_add(vectors.len() as u64, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => {
                        stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        Err(TaskError::retry(format!(
                            "storing {} {} vectors: {e}",
                            vectors.len(),
                            T::KIND.as_str()
                        )))
                    }
                };
                for i in valid {
                    outcomes[i] = Some(outcome.clone());
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(TaskError::retry("no outcome"))))
        .collect()
}

/// The pipeline's batch handler: [`embed_batch`] with a Redis connection and [`EmbedStats`].
/// It handles [`EmbedImage`](super::EmbedImage) and [`EmbedText`](super::EmbedText); use one per worker (or per task type) to keep
/// their counters apart.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mq_core::{batch, Worker};
/// use mq_examples::pipeline::{EmbedText, Embedder};
///
/// let url = "redis://127.0.0.1:6379/";
/// let embedder = Embedder::connect(url).await?;
/// Worker::builder(url)
///     .concurrency(128)
///     .handle::<EmbedText, _>(batch(32, Duration::from_millis(20), embedder))
///     .build()
///     .await?
///     .run_until_signal()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Embedder {
    conn: redis::aio::ConnectionManager,
    stats: Arc<EmbedStats>,
    models: Models,
    fail_every: u64,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("stats", &self.stats)
            .field("models", &self.models.names())
            .field("fail_every", &self.fail_every)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// An embedder storing vectors through `conn`, with the stand-in models.
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self {
            conn,
            stats: Arc::default(),
            models: Models::default(),
            fail_every: 0,
        }
    }

    /// Embeds text tasks with `model`.
    pub fn text_model(mut self, model: TextModel) -> Self {
        self.models.text = model;
        self
    }

    /// Embeds image tasks with `model`.
    pub fn image_model(mut self, model: ImageModel) -> Self {
        self.models.image = model;
        self
    }

    /// Embeds with `models`.
    pub fn models(mut self, models: Models) -> Self {
        self.models = models;
        self
    }

    /// Connects to `url` (a reconnecting connection) for storing vectors.
    ///
    /// # Errors
    ///
    /// A bad URL or an unreachable Redis.
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let conn = redis::Client::open(url)?.get_connection_manager().await?;
        Ok(Self::new(conn))
    }

    /// Fails the first attempt of every task whose product id is a multiple of `n`, so it is
    /// retried (0: never). For demos.
    pub fn fail_first_attempt_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    /// The counters, shared with the clones of this embedder.
    pub fn stats(&self) -> Arc<EmbedStats> {
        self.stats.clone()
    }
}

#[async_trait::async_trait]
impl<T: EmbedTask> BatchHandler<T> for Embedder {
    async fn handle_batch(&self, tasks: Vec<(T, TaskContext)>) -> Vec<Result<(), TaskError>> {
        let mut conn = self.conn.clone();
        embed_batch(&mut conn, &self.stats, &self.models, self.fail_every, tasks).await
    }
}

/// Runs an image or text worker until SIGINT/SIGTERM: a [`Worker`](mq_core::Worker) with
/// [`Embedder`] (with `models`) as the batch handler of `T`, then prints `{name}:
/// stored=.. invalid=..` with the batch statistics and the model that ran.
///
/// # Errors
///
/// Redis cannot be reached, or the worker fails.
pub async fn run_embed_worker<T: EmbedTask>(
    name: &str,
    args: WorkerArgs,
    models: Models,
) -> Result<(), Box<dyn std::error::Error>> {
    let model_name = match T::KIND {
        super::VectorKind::Image => models.image.name(),
        super::VectorKind::Text => models.text.name(),
    };
    let embedder = Embedder::connect(&args.redis.url).await?.models(models);
    let stats = embedder.stats();
    let batch_size = usize::try_from(args.batch_size)?;
    let mut builder = args
        .redis
        .builder()
        .concurrency(usize::try_from(args.concurrency)?)
        .grace_period(std::time::Duration::from_millis(args.grace_ms))
        .handle::<T, _>(mq_core::batch(
            batch_size,
            std::time::Duration::from_millis(args.batch_wait_ms),
            embedder,
        ));
    if let Some(addr) = args.metrics_addr {
        builder = builder.metrics_addr(addr);
    }
    let worker = builder.build().await?;
    tracing::info!(
        consumer = worker.consumer(),
        queue = T::QUEUE,
        concurrency = args.concurrency,
        batch_size,
        batch_wait_ms = args.batch_wait_ms,
        model = model_name,
        metrics_addr = ?args.metrics_addr,
        "{name} started"
    );
    let result = worker.run_until_signal().await;
    println!("{name}: {} model={model_name}", stats.summary());
    result?;
    Ok(())
}
