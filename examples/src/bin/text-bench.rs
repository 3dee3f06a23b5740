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

use std::time::{Duration, Instant};

use clap::Parser;
use mq_core::{batch, Producer, Worker};
use mq_examples::pipeline::{
    default_data_file, delete_vectors, filter_file, EmbedStats, EmbedTask, EmbedText, Embedder,
    ModelArgs, ModelChoice, TextModel,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// The settings of a sweep, defaults filled in by model.
struct Sweep {
    tasks: u64,
    batch_sizes: Vec<usize>,
    timeout_secs: u64,
    model: TextModel,
}

struct RunResult {
    elapsed: Duration,
    enqueue: Duration,
    stats: String,
    /// Model calls and nanoseconds inside the model during the run (MiniLM only).
    model: Option<(u64, u64)>,
}

async fn one_run(
    url: &str,
    args: &Args,
    sweep: &Sweep,
    texts: &[String],
    size: usize,
    conn: &mut redis::aio::ConnectionManager,
) -> Result<RunResult, BoxError> {
    let n = sweep.tasks;
    let producer = Producer::connect_with_prefix(url, PREFIX).await?;
    let stream = producer.keys::<EmbedText>().stream;
    let tasks = (0..n).map(|i| EmbedText {
        product_id: FIRST_ID + i,
        text: texts[(i % texts.len() as u64) as usize].clone(),
    });
    let started = Instant::now();
    producer.enqueue_many(tasks).await?;
    let enqueue = started.elapsed();

    let embedder = Embedder::new(conn.clone()).text_model(sweep.model.clone());
    let usage_before = sweep.model.usage();
    let stats = embedder.stats();
    let worker = Worker::builder(url)
        .prefix(PREFIX)
        .concurrency(args.concurrency.unwrap_or((4 * size).max(128)))
        .handle::<EmbedText, _>(batch(
            size,
            Duration::from_millis(args.batch_wait_ms),
            embedder,
        ))
        .build()
        .await?;
    let token = worker.shutdown_token();
    let started = Instant::now();
    let running = tokio::spawn(worker.run());
    let deadline = started + Duration::from_secs(sweep.timeout_secs);
    loop {
        if EmbedStats::get(&stats.stored) >= n {
            let left: u64 = redis::cmd("XLEN").arg(&stream).query_async(conn).await?;
            if left == 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            token.cancel();
            return Err(format!(
                "batch size {size}: {} of {n} vectors stored after {}s",
                EmbedStats::get(&stats.stored),
                sweep.timeout_secs
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let model = match (usage_before, sweep.model.usage()) {
        (Some((c0, n0)), Some((c1, n1))) => Some((c1 - c0, n1 - n0)),
        _ => None,
    };
    token.cancel();
    running.await??;

    let deleted = delete_vectors(conn, EmbedText::KIND, (0..n).map(|i| FIRST_ID + i)).await?;
    if deleted != n {
        return Err(format!("batch size {size}: {deleted} of {n} vectors were stored").into());
    }
    Ok(RunResult {
        elapsed,
        enqueue,
        stats: stats.summary(),
        model,
    })
}

async fn run(args: Args) -> Result<(), BoxError> {
    let minilm = args.model.model == ModelChoice::Minilm;
    let sweep = Sweep {
        tasks: args.tasks.unwrap_or(if minilm { 5_000 } else { 50_000 }),
        batch_sizes: if !args.batch_sizes.is_empty() {
            args.batch_sizes.clone()
        } else if minilm {
            vec![1, 8, 32, 128]
        } else {
            vec![1, 32, 128]
        },
        timeout_secs: args.timeout_secs.unwrap_or(if minilm { 900 } else { 300 }),
        model: args.model.load()?,
    };
    if sweep.batch_sizes.contains(&0) {
        return Err("--batch-sizes must list sizes of at least 1".into());
    }
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
        "text-bench: {} tasks per run ({} distinct texts from {}), batch sizes {:?}, batch wait {} ms, text model {}, redis {}",
        sweep.tasks,
        texts.len(),
        input.display(),
        sweep.batch_sizes,
        args.batch_wait_ms,
        sweep.model.name(),
        mq_examples::redact_url(&url)
    );

    let mut results = Vec::new();
    for &size in &sweep.batch_sizes {
        let r = one_run(&url, &args, &sweep, &texts, size, &mut conn).await;
        // Leave nothing behind, also after a failed run.
        let keys: Vec<String> = ["stream", "delayed", "dead"]
            .iter()
            .map(|k| format!("{PREFIX}:{{texts}}:{k}"))
            .collect();
        let _: redis::RedisResult<u64> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        let r = r?;
        let per_s = sweep.tasks as f64 / r.elapsed.as_secs_f64();
        let model = match r.model {
            Some((calls, nanos)) => {
                let model_s = nanos as f64 / 1e9;
                let overhead_s = r.elapsed.as_secs_f64() - model_s;
                format!(
                    " model_ms_per_batch={:.1} model_s={model_s:.2} model_tasks_per_s={:.0} queue_overhead_s={overhead_s:.2} queue_overhead_us_per_task={:.0}",
                    model_s * 1e3 / calls.max(1) as f64,
                    sweep.tasks as f64 / model_s.max(1e-9),
                    overhead_s * 1e6 / sweep.tasks as f64,
                )
            }
            None => String::new(),
        };
        println!(
            "batch_size={size} concurrency={} tasks={} elapsed={:.2}s tasks_per_s={per_s:.0}{model} (enqueue {:.2}s; {})",
            args.concurrency.unwrap_or((4 * size).max(128)),
            sweep.tasks,
            r.elapsed.as_secs_f64(),
            r.enqueue.as_secs_f64(),
            r.stats
        );
        results.push((size, per_s));
    }
    let line: Vec<String> = results
        .iter()
        .map(|(size, per_s)| format!("batch{size}_per_s={per_s:.0}"))
        .collect();
    println!("text-bench tasks={} {}", sweep.tasks, line.join(" "));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    mq_examples::init_tracing_with("warn");
    run(Args::parse()).await
}
