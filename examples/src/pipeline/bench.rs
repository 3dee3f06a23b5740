//! One run of the embed benchmarks (`text-bench`, `image-bench`): tasks through a real queue
//! to an in-process worker with the pipeline's batch handler, timed from the worker's start
//! until every vector is stored and every task acked ([`bench_run`]).

use std::time::{Duration, Instant};

use mq_core::{batch, Producer, Worker};

use super::{
    embed::{EmbedTask, VectorKind},
    model::Models,
    store::delete_vectors,
    worker::{EmbedStats, Embedder},
};

/// A boxed error that crosses tasks.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// The settings of one [`bench_run`].
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// The Redis URL.
    pub url: String,
    /// The key prefix of the benchmark's queue (not `mq`, so a shared Redis is left alone).
    pub prefix: String,
    /// Largest batch handed to the model.
    pub batch_size: usize,
    /// Longest time a batch waits to fill.
    pub batch_wait: Duration,
    /// The worker's in-flight limit.
    pub concurrency: usize,
    /// The run fails after this long.
    pub timeout: Duration,
    /// The models the worker embeds with.
    pub models: Models,
}

/// What one [`bench_run`] measured.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// From the worker's start until every vector was stored and the stream was empty.
    pub elapsed: Duration,
    /// Enqueueing the tasks (`enqueue_many`, before the worker started).
    pub enqueue: Duration,
    /// The handler's [`EmbedStats::summary`].
    pub stats: String,
    /// Model calls and nanoseconds inside the model during the run (real models only).
    pub model: Option<(u64, u64)>,
}

impl BenchRun {
    /// Tasks per second over [`elapsed`](Self::elapsed).
    pub fn per_s(&self, tasks: usize) -> f64 {
        tasks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// With a real model, ` model_ms_per_batch=.. model_s=.. model_tasks_per_s=..
    /// queue_overhead_s=.. queue_overhead_us_per_task=..`: the time inside the model (one
    /// batch runs at a time, so `model_s` is its busy time) and the rest of the elapsed time,
    /// when the model sat idle (fetching, waiting for a batch to fill, storing, acking);
    /// empty for a stand-in.
    pub fn model_line(&self, tasks: usize) -> String {
        let Some((calls, nanos)) = self.model else {
            return String::new();
        };
        let model_s = nanos as f64 / 1e9;
        let overhead_s = self.elapsed.as_secs_f64() - model_s;
        format!(
            " model_ms_per_batch={:.1} model_s={model_s:.2} model_tasks_per_s={:.0} queue_overhead_s={overhead_s:.2} queue_overhead_us_per_task={:.0}",
            model_s * 1e3 / calls.max(1) as f64,
            tasks as f64 / model_s.max(1e-9),
            overhead_s * 1e6 / tasks.max(1) as f64,
        )
    }
}

fn usage(models: &Models, kind: VectorKind) -> Option<(u64, u64)> {
    match kind {
        VectorKind::Image => models.image.usage(),
        VectorKind::Text => models.text.usage(),
    }
}

/// Enqueues `tasks` with `enqueue_many` while no worker runs, then runs a worker with
/// `mq_core::batch(batch_size, batch_wait, Embedder)` until every task's vector is stored and
/// the stream is empty; checks that every vector was stored (by deleting them) and deletes
/// the queue's keys, also after a failure.
///
/// # Errors
///
/// Redis errors, the worker's, a timeout, or a vector count that is not the task count.
pub async fn bench_run<T: EmbedTask>(
    spec: &BenchSpec,
    tasks: Vec<T>,
    conn: &mut redis::aio::ConnectionManager,
) -> Result<BenchRun, BenchError> {
    let producer = Producer::connect_with_prefix(&spec.url, &spec.prefix).await?;
    let keys = producer.keys::<T>();
    let result = timed_run(spec, tasks, conn, &producer, &keys.stream).await;
    let _: redis::RedisResult<u64> = redis::cmd("DEL")
        .arg(&[&keys.stream, &keys.delayed, &keys.dead])
        .query_async(conn)
        .await;
    result
}

async fn timed_run<T: EmbedTask>(
    spec: &BenchSpec,
    tasks: Vec<T>,
    conn: &mut redis::aio::ConnectionManager,
    producer: &Producer,
    stream: &str,
) -> Result<BenchRun, BenchError> {
    let n = tasks.len() as u64;
    let ids: Vec<u64> = tasks.iter().map(EmbedTask::product_id).collect();
    let started = Instant::now();
    producer.enqueue_many(tasks).await?;
    let enqueue = started.elapsed();

    let embedder = Embedder::new(conn.clone()).models(spec.models.clone());
    let usage_before = usage(&spec.models, T::KIND);
    let stats = embedder.stats();
    let worker = Worker::builder(&spec.url)
        .prefix(&spec.prefix)
        .concurrency(spec.concurrency)
        .handle::<T, _>(batch(spec.batch_size, spec.batch_wait, embedder))
        .build()
        .await?;
    let token = worker.shutdown_token();
    let started = Instant::now();
    let running = tokio::spawn(worker.run());
    let deadline = started + spec.timeout;
    loop {
        if EmbedStats::get(&stats.stored) >= n {
            let left: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
            if left == 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            token.cancel();
            return Err(format!(
                "batch size {}: {} of {n} vectors stored after {:?}",
                spec.batch_size,
                EmbedStats::get(&stats.stored),
                spec.timeout
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let model = match (usage_before, usage(&spec.models, T::KIND)) {
        (Some((c0, n0)), Some((c1, n1))) => Some((c1 - c0, n1 - n0)),
        _ => None,
    };
    token.cancel();
    running.await??;

    let deleted = delete_vectors(conn, T::KIND, ids).await?;
    if deleted != n {
        return Err(format!(
            "batch size {}: {deleted} of {n} vectors were stored",
            spec.batch_size
        )
        .into());
    }
    Ok(BenchRun {
        elapsed,
        enqueue,
        stats: stats.summary(),
        model,
    })
}
