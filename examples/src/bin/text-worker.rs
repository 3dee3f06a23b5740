//! The text worker of the vectorization pipeline example: handles `EmbedText` tasks (queue
//! `texts`) in batches, computing the vector of each text with the chosen text model and
//! storing it at `mq-demo:vec:text:{product_id}` (little-endian `f32`s). It handles tasks from
//! the Rust producer and from `examples/python/producer.py` alike.
//!
//! Run (from the workspace root; every flag also has an environment variable):
//!
//! ```text
//! cargo run --release -p mq-examples --bin text-worker -- --url redis://127.0.0.1:6379/ \
//!     [--concurrency 128] [--batch-size 32] [--batch-wait-ms 20] [--metrics-addr 0.0.0.0:9464] \
//!     [--model hashed|minilm] [--model-dir DIR]
//! ```
//!
//! (`MQ_REDIS_URL`, `MQ_CONCURRENCY`, `MQ_BATCH_SIZE`, `MQ_BATCH_WAIT_MS`, `MQ_METRICS_ADDR`,
//! `MQ_MODEL`, `MQ_MODEL_DIR`.) Stops gracefully on SIGINT/SIGTERM and then prints what it did.
//!
//! Text models (`--model`):
//!
//! * `hashed` (default): hashed character 3-grams, 256 values, about 2 µs a text: a stand-in
//!   for a real model that keeps tests and the demo fast.
//! * `minilm`: all-MiniLM-L6-v2 sentence embeddings, 384 values, as the Python
//!   `sentence-transformers` package computes them (mean pooling, L2-normalized), run with
//!   candle on the CPU. Build with `--features minilm` (`--features cuda` for CUDA device 0;
//!   untested here, no GPU) and get the weights once with `scripts/fetch-model.sh`, which
//!   prints the directory for `--model-dir`/`MQ_MODEL_DIR`; nothing is downloaded at run time:
//!
//! ```text
//! export MQ_MODEL_DIR="$(scripts/fetch-model.sh)"
//! cargo run --release -p mq-examples --features minilm --bin text-worker -- --model minilm
//! ```
//!
//! The handler is `mq_core::batch(--batch-size, --batch-wait-ms, pipeline::Embedder)`: a batch
//! of up to `--batch-size` tasks is embedded in one model call on tokio's blocking pool
//! (`mq_core::blocking`, so leases, fetching and acking go on meanwhile; MiniLM runs one batch
//! at a time, using every core) and its vectors are stored with one pipeline. A task with
//! blank text is dead-lettered at once; a model error or a Redis error while storing retries
//! the whole batch with the task's backoff.

use clap::Parser;
use mq_examples::pipeline::{run_embed_worker, EmbedText, ModelArgs, Models, WorkerArgs};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    // Loaded before the worker starts (MiniLM: 90 MB of weights), so nothing waits on it.
    let text = args.model.load().map_err(|e| format!("text-worker: {e}"))?;
    let models = Models {
        text,
        ..Models::default()
    };
    run_embed_worker::<EmbedText>("text-worker", args.worker, models).await
}
