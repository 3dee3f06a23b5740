//! The image worker of the vectorization pipeline example: handles `EmbedImage` tasks (queue
//! `images`) in batches, rendering each product image from its URL, computing its
//! colour-histogram vector and storing it at `mq-demo:vec:image:{product_id}` (little-endian
//! `f32`s).
//!
//! Run (from the workspace root; every flag also has an environment variable):
//!
//! ```text
//! cargo run --release -p mq-examples --bin image-worker -- --url redis://127.0.0.1:6379/ \
//!     [--concurrency 128] [--batch-size 32] [--batch-wait-ms 20] [--metrics-addr 0.0.0.0:9464]
//! ```
//!
//! (`MQ_REDIS_URL`, `MQ_CONCURRENCY`, `MQ_BATCH_SIZE`, `MQ_BATCH_WAIT_MS`, `MQ_METRICS_ADDR`.)
//! Stops gracefully on SIGINT/SIGTERM and then prints what it did.
//!
//! The handler is `mq_core::batch(--batch-size, --batch-wait-ms, pipeline::Embedder)`: a batch
//! of up to `--batch-size` tasks is embedded in one call on tokio's blocking pool
//! (`mq_core::blocking`) and its vectors are stored with one pipeline. A task whose URL is
//! invalid (from a producer that does not filter) is dead-lettered at once; a Redis error while
//! storing retries the whole batch with the task's backoff.

use clap::Parser;
use mq_examples::pipeline::{run_embed_worker, EmbedImage, TextModel, WorkerArgs};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    run_embed_worker::<EmbedImage>("image-worker", Args::parse().worker, TextModel::Hashed).await
}
