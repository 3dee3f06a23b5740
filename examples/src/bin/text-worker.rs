//! The text worker of the vectorization pipeline example: handles `EmbedText` tasks (queue
//! `texts`) by computing the hashed character-3-gram vector of the text and storing it at
//! `mq-demo:vec:text:{product_id}` (little-endian `f32`s). It handles tasks from the Rust
//! producer and from `examples/python/producer.py` alike.
//!
//! Run (from the workspace root): `cargo run --release -p mq-examples --bin text-worker --
//! --url redis://127.0.0.1:6379/ --concurrency 64` (or set `MQ_REDIS_URL`). Stops gracefully on
//! SIGINT/SIGTERM and then prints what it did.
//!
//! The handler runs one task through `pipeline::process_texts`, which takes a slice: a batch
//! handler can pass many tasks to it and store all their vectors in one pipeline. A task with
//! blank text is dead-lettered at once; a Redis error while storing is retried with the task's
//! backoff.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use clap::Parser;
use mq_core::{async_trait, Handler, TaskContext, TaskError, Worker};
use mq_examples::pipeline::{process_texts, EmbedText};

#[derive(Parser)]
struct Args {
    /// Redis URL.
    #[arg(long, env = "MQ_REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    url: String,
    /// Global in-flight limit of this process.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Grace period at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    grace_ms: u64,
}

#[derive(Default)]
struct Stats {
    stored: AtomicU64,
    invalid: AtomicU64,
    embed_nanos: AtomicU64,
}

/// Holds the connection the vectors are stored with.
struct TextEmbedder {
    conn: redis::aio::ConnectionManager,
    stats: Arc<Stats>,
}

#[async_trait]
impl Handler<EmbedText> for TextEmbedder {
    async fn handle(&self, task: EmbedText, _ctx: TaskContext) -> Result<(), TaskError> {
        let out = process_texts(&mut self.conn.clone(), std::slice::from_ref(&task)).await?;
        let s = &self.stats;
        s.embed_nanos
            .fetch_add(out.embed_time.as_nanos() as u64, Ordering::Relaxed);
        s.stored.fetch_add(out.stored as u64, Ordering::Relaxed);
        if let Some((_, invalid)) = out.invalid.into_iter().next() {
            s.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(TaskError::permanent(invalid));
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let conn = redis::Client::open(args.url.as_str())?
        .get_connection_manager()
        .await?;
    let stats = Arc::new(Stats::default());
    let worker = Worker::builder(&args.url)
        .concurrency(args.concurrency)
        .grace_period(Duration::from_millis(args.grace_ms))
        .handle::<EmbedText, _>(TextEmbedder {
            conn,
            stats: stats.clone(),
        })
        .build()
        .await?;
    let result = worker.run_until_signal().await;
    let stored = stats.stored.load(Ordering::Relaxed);
    let embedded = stored + stats.invalid.load(Ordering::Relaxed);
    println!(
        "text-worker: stored={stored} invalid={} embed_avg_us={:.1}",
        stats.invalid.load(Ordering::Relaxed),
        stats.embed_nanos.load(Ordering::Relaxed) as f64 / 1e3 / embedded.max(1) as f64
    );
    result?;
    Ok(())
}
