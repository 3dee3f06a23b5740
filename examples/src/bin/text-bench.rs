//! `text-bench`: throughput of the text worker with different batch sizes over the same tasks.
//!
//! Run (release build):
//!
//! ```text
//! cargo run --release -p mq-examples --bin text-bench -- [--tasks 50000] \
//!     [--batch-sizes 1,32,128] [--batch-wait-ms 20] [--concurrency N] [--url redis://..] \
//!     [--model hashed|minilm] [--model-dir DIR]
//! ```
//!
//! With `--model minilm` (build with `--features minilm`; `--model-dir`/`MQ_MODEL_DIR` from
//! `scripts/fetch-model.sh`) the texts go through all-MiniLM-L6-v2 and the defaults become
//! `--tasks 5000 --batch-sizes 1,8,32,128`:
//!
//! ```text
//! cargo run --release -p mq-examples --features minilm --bin text-bench -- \
//!     --model minilm --model-dir "$(scripts/fetch-model.sh)"
//! ```
//!
//! Without `--url` it starts its own `redis-server` on a free loopback port. With `--url` it
//! touches only its own keys: the queue uses the key prefix `mq-text-bench` (not `mq`) and the
//! vectors are stored under product ids from 2,000,000,000 on; both are deleted at the end.
//!
//! For each batch size: the same `--tasks` `EmbedText` tasks (the texts of
//! `examples/data/products.jsonl`, cycled; product ids `2e9 + i`) are enqueued with
//! `enqueue_many` while no worker runs; then an in-process worker starts with the pipeline's
//! batch handler (`mq_core::batch(size, --batch-wait-ms, pipeline::Embedder)`, as in
//! `text-worker`) and concurrency `max(128, 4 * size)`, so several batches overlap (or `--concurrency`). The clock runs from the
//! worker's start until every vector is stored and the stream is empty (every task acked).
//! Every stored vector is then checked to exist, and the vectors are deleted before the next
//! size. Each run is bounded by `--timeout-secs` (default 300; 900 with MiniLM).
//!
//! One line per size, then a final line of fixed form for scripts:
//!
//! ```text
//! text-bench tasks=50000 batch1_per_s=X batch32_per_s=Y batch128_per_s=Z
//! ```
//!
//! With MiniLM each size's line also separates the model's time from the queue's:
//! `model_ms_per_batch` (time inside one model call, averaged), `model_s` (inside the model,
//! summed: MiniLM runs one batch at a time, so this is the model's busy time),
//! `model_tasks_per_s` (tasks / `model_s`: the rate if the queue cost nothing) and
//! `queue_overhead_s` = elapsed − `model_s` (the time the model sat idle: fetching, waiting
//! for a batch to fill, storing, acking), also per task (`queue_overhead_us_per_task`).

use std::time::Duration;

use clap::Parser;
use mq_examples::pipeline::bench::{bench_run, BenchError, BenchSpec};
use mq_examples::pipeline::{
    default_data_file, filter_file, EmbedText, ModelArgs, ModelChoice, Models,
};

type BoxError = BenchError;

/// Key prefix of the benchmark's queue.
const PREFIX: &str = "mq-text-bench";
/// First product id of the benchmark's tasks (clear of the data set's ids).
const FIRST_ID: u64 = 2_000_000_000;

#[derive(Parser)]
struct Args {
    /// Redis URL; without it the benchmark starts its own redis-server on a free port.
    #[arg(long, env = "MQ_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// JSON-lines file the texts come from [default: examples/data/products.jsonl].
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    /// Tasks per run [default: 50000; 5000 with --model minilm].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tasks: Option<u64>,
    /// Batch sizes to compare, one run each [default: 1,32,128; 1,8,32,128 with --model
    /// minilm].
    #[arg(long, value_delimiter = ',')]
    batch_sizes: Vec<usize>,
    /// Longest time a batch waits to fill, in milliseconds.
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// In-flight limit of the worker [default: max(128, batch size)].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Limit of one run, in seconds [default: 300; 900 with --model minilm].
    #[arg(long)]
    timeout_secs: Option<u64>,
    #[command(flatten)]
    model: ModelArgs,
}

async fn run(args: Args) -> Result<(), BoxError> {
    let minilm = args.model.model == ModelChoice::Minilm;
    let tasks = args.tasks.unwrap_or(if minilm { 5_000 } else { 50_000 });
    let batch_sizes = if !args.batch_sizes.is_empty() {
        args.batch_sizes.clone()
    } else if minilm {
        vec![1, 8, 32, 128]
    } else {
        vec![1, 32, 128]
    };
    if batch_sizes.contains(&0) {
        return Err("--batch-sizes must list sizes of at least 1".into());
    }
    let models = Models {
        text: args.model.load()?,
        ..Models::default()
    };
    let redis = mq_examples::Redis::url_or_local(args.url.as_deref())?;
    let url = redis.url.clone();
    let input = args.input.clone().unwrap_or_else(default_data_file);
    let texts: Vec<String> = filter_file(&input)?
        .texts
        .into_iter()
        .map(|t| t.text)
        .collect();
    if texts.is_empty() {
        return Err(format!("no texts in {}", input.display()).into());
    }
    let mut conn = redis::Client::open(url.as_str())?
        .get_connection_manager()
        .await?;
    println!(
        "text-bench: {tasks} tasks per run ({} distinct texts from {}), batch sizes {batch_sizes:?}, batch wait {} ms, text model {}, redis {}",
        texts.len(),
        input.display(),
        args.batch_wait_ms,
        models.text.name(),
        mq_examples::redact_url(&url)
    );

    let mut results = Vec::new();
    for &size in &batch_sizes {
        let spec = BenchSpec {
            url: url.clone(),
            prefix: PREFIX.into(),
            batch_size: size,
            batch_wait: Duration::from_millis(args.batch_wait_ms),
            concurrency: args.concurrency.unwrap_or((4 * size).max(128)),
            timeout: Duration::from_secs(args.timeout_secs.unwrap_or(if minilm {
                900
            } else {
                300
            })),
            models: models.clone(),
        };
        let batch = (0..tasks).map(|i| EmbedText {
            product_id: FIRST_ID + i,
            text: texts[(i % texts.len() as u64) as usize].clone(),
        });
        let r = bench_run(&spec, batch.collect(), &mut conn).await?;
        let n = tasks as usize;
        let per_s = r.per_s(n);
        println!(
            "batch_size={size} concurrency={} tasks={tasks} elapsed={:.2}s tasks_per_s={per_s:.0}{} (enqueue {:.2}s; {})",
            spec.concurrency,
            r.elapsed.as_secs_f64(),
            r.model_line(n),
            r.enqueue.as_secs_f64(),
            r.stats
        );
        results.push((size, per_s));
    }
    let line: Vec<String> = results
        .iter()
        .map(|(size, per_s)| format!("batch{size}_per_s={per_s:.0}"))
        .collect();
    println!("text-bench tasks={tasks} {}", line.join(" "));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    mq_examples::init_tracing_with("warn");
    run(Args::parse()).await
}
