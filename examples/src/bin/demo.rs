//! The mq demo: the whole vectorization pipeline in one process.
//!
//! Run: `scripts/demo.sh` (installs `redis-server` if needed), or
//! `cargo run --release -p mq-examples --bin demo -- [--url redis://127.0.0.1:6379/]`.
//!
//! 1. Without `--url` (or `MQ_REDIS_URL`) it starts its own `redis-server` on a free port.
//! 2. It reads `examples/data/products.jsonl` (`--input`), filters the records as the
//!    `producer` binary does and deletes any vector it is about to write.
//! 3. It starts an image worker and a text worker (two `mq_core::Worker`s with the
//!    `pipeline::Embedder` batch handler, `--batch-size`/`--batch-wait-ms`/`--concurrency`)
//!    and an index worker, then enqueues each product as a flow: its `EmbedImage` and
//!    `EmbedText` tasks are the children, and the parent `IndexProduct` marks it indexed once
//!    both vectors are stored. The day's products are one run (`--run`), sealed with the
//!    completion task `DayIndexed`. The handler fails the first attempt of every product
//!    whose id is a multiple of `--fail-every` (so those tasks are retried).
//! 4. Progress bars (only when stdout is a terminal) show enqueued and embedded tasks per
//!    queue; when both queues are empty the workers shut down gracefully.
//! 5. It reads every expected vector back and compares it with the embedding computed here,
//!    byte for byte (with a real model, its vectors to cosine ≥ 0.999: their rounding
//!    depends on the batch), counts the vector keys per kind, and prints the filter reasons
//!    and a summary line (`vectors` = vectors found with the expected bytes, `retries` and
//!    `dead` from the workers' metrics and the dead-letter streams):
//!
//! ```text
//! demo: records=3000 parsed=2989 unparseable=11 filtered=202 images=2848 texts=2928 vectors=5776 retries=12 dead=0 elapsed=0.79s tasks_per_s=7281 text_model=hashed image_model=hashed indexed=2989 run_total=2989 run_done=2989 run_dead=0
//! ```
//!
//! and the run's progress line (`demo: run products-...: 2989 of 2989 products done, ...`).
//!
//! The text worker's model is `--model hashed` (default, the fast stand-in) or `--model
//! minilm` (all-MiniLM-L6-v2 with candle: build with `--features minilm`, `--model-dir` or
//! `MQ_MODEL_DIR` from `scripts/fetch-model.sh`; see the `text-worker` binary). The image
//! worker's is `--image-model hashed` (default) or `--image-model mobilenet` (MobileNetV2
//! with candle over the pictures of `--image-dir`: build with `--features mobilenet`,
//! `--image-model-dir` or `MQ_IMAGE_MODEL_DIR` from `scripts/fetch-image-model.sh`; see the
//! `image-worker` binary).
//!
//! It exits non-zero if a vector is missing or wrong, a task was dead-lettered, a product with
//! a task is not indexed, the run did not end with every product done, a record is
//! not accounted for (`records == parsed + unparseable`, `images + texts + filtered == 2 *
//! parsed`), or, on its own server, the number of vector keys of a kind differs from the
//! number of tasks of that kind.

use std::{
    io::IsTerminal,
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mq_core::{batch, Admin, Producer, TaskContext, Worker};
use mq_examples::pipeline::index::{
    day_indexed, index_product, products, DayIndexed, IndexProduct, DAYS_KEY, INDEXED_KEY,
};
use mq_examples::pipeline::{
    check_vectors_with, default_data_file, delete_vectors, filter_file, EmbedImage, EmbedStats,
    EmbedTask, EmbedText, Embedder, ImageModelArgs, ImageModelChoice, ModelArgs, ModelChoice,
    Models, VectorKind, VECTOR_KEY_PREFIX,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
struct Args {
    /// Redis URL; without it the demo starts its own redis-server on a free port.
    #[arg(long, env = "MQ_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// JSON-lines file of product records [default: examples/data/products.jsonl in the source
    /// tree].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Largest batch handed to a model.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Longest time a batch waits to fill, in milliseconds.
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// In-flight limit of each of the two workers.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// Fail the first attempt of every product whose id is a multiple of N (0: never).
    #[arg(long, default_value_t = 500)]
    fail_every: u64,
    /// Products (flows, one `MULTI` each) being enqueued at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    enqueue_batch: u64,
    /// The run the day's products are counted in (default: `products-<UTC date>-<HHMMSS>`).
    #[arg(long)]
    run: Option<String>,
    /// Give up after this many seconds [default: 120; 1800 with a real model (--model minilm,
    /// --image-model mobilenet), which embeds tens of inputs per second on a small CPU].
    #[arg(long)]
    timeout_secs: Option<u64>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    image_model: ImageModelArgs,
}

/// The value of `mq_tasks_finished_total` summed over queues and tasks for one outcome, from a
/// worker's metrics text.
fn finished(metrics_text: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    metrics_text
        .lines()
        .filter(|l| l.starts_with("mq_tasks_finished_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn bar(mp: &MultiProgress, len: usize, label: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix:>16} [{bar:40.cyan/blue}] {pos:>6}/{len:6} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let pb = mp.add(ProgressBar::new(len as u64));
    pb.set_style(style);
    pb.set_prefix(label.to_owned());
    pb
}

/// Sets the bars from the counters; each shows its rate since `started`.
fn update(
    bars: &[ProgressBar; 4],
    enqueued: &[AtomicU64; 2],
    image_stats: &EmbedStats,
    text_stats: &EmbedStats,
    started: Instant,
) {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let values = [
        enqueued[0].load(Ordering::Relaxed),
        enqueued[1].load(Ordering::Relaxed),
        EmbedStats::get(&image_stats.stored),
        EmbedStats::get(&text_stats.stored),
    ];
    for (bar, value) in bars.iter().zip(values) {
        if bar.position() != value || bar.message().is_empty() {
            bar.set_position(value);
            bar.set_message(format!("{:>8.0}/s", value as f64 / secs));
        }
    }
}

/// Number of stored vectors of one kind (`SCAN MATCH mq-demo:vec:{kind}:*`).
async fn count_keys(
    conn: &mut redis::aio::ConnectionManager,
    kind: VectorKind,
) -> redis::RedisResult<u64> {
    let pattern = format!("{VECTOR_KEY_PREFIX}:{}:*", kind.as_str());
    let (mut cursor, mut n) = (0u64, 0u64);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(conn)
            .await?;
        n += keys.len() as u64;
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

async fn stream_len(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
) -> redis::RedisResult<u64> {
    redis::cmd("XLEN").arg(key).query_async(conn).await
}

async fn zcard(conn: &mut redis::aio::ConnectionManager, key: &str) -> redis::RedisResult<u64> {
    redis::cmd("ZCARD").arg(key).query_async(conn).await
}

/// Builds a worker for `T` with its own embedder; returns it with the embedder's counters.
async fn worker<T: EmbedTask>(
    url: &str,
    args: &Args,
    conn: redis::aio::ConnectionManager,
    models: Models,
) -> Result<(Worker, Arc<EmbedStats>), BoxError> {
    let embedder = Embedder::new(conn)
        .models(models)
        .fail_first_attempt_every(args.fail_every);
    let stats = embedder.stats();
    let worker = Worker::builder(url)
        .concurrency(usize::try_from(args.concurrency)?)
        .grace_period(Duration::from_secs(10))
        .handle::<T, _>(batch(
            usize::try_from(args.batch_size)?,
            Duration::from_millis(args.batch_wait_ms),
            embedder,
        ))
        .build()
        .await?;
    Ok((worker, stats))
}

/// The worker of the `index` queue: the flows' parents and the run's completion task.
async fn index_worker(url: &str, args: &Args) -> Result<Worker, BoxError> {
    let conn = mq_core::redis::conn::Conn::connect(url).await?;
    let days = conn.clone();
    Ok(Worker::builder(url)
        .concurrency(usize::try_from(args.concurrency)?)
        .grace_period(Duration::from_secs(10))
        .handle::<IndexProduct, _>(move |t: IndexProduct, _ctx: TaskContext| {
            index_product(t, conn.clone())
        })
        .handle::<DayIndexed, _>(move |t: DayIndexed, _ctx: TaskContext| {
            day_indexed(t, days.clone())
        })
        .build()
        .await?)
}

async fn run(args: Args) -> Result<bool, BoxError> {
    // Loaded before anything starts (MiniLM: 90 MB of weights).
    let models = Models {
        text: args.model.load()?,
        image: args.image_model.load()?,
    };
    let redis = mq_examples::Redis::url_or_local(args.url.as_deref())?;
    let own_server = redis.is_local();
    if own_server {
        println!("demo: started redis-server on {}", redis.url);
    }
    let url = redis.url.clone();
    let input = args.input.clone().unwrap_or_else(default_data_file);
    let data = filter_file(&input)?;
    println!(
        "demo: {} records in {}: {} image and {} text tasks to embed",
        data.records(),
        input.display(),
        data.images.len(),
        data.texts.len()
    );
    println!(
        "demo: text model {}, image model {}",
        models.text.name(),
        models.image.name()
    );

    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_connection_manager().await?;
    let producer = Producer::connect(&url).await?;
    let (image_keys, text_keys) = (producer.keys::<EmbedImage>(), producer.keys::<EmbedText>());
    // A previous run's vectors must not count for this one.
    delete_vectors(
        &mut conn,
        EmbedImage::KIND,
        data.images.iter().map(|t| t.product_id),
    )
    .await?;
    delete_vectors(
        &mut conn,
        EmbedText::KIND,
        data.texts.iter().map(|t| t.product_id),
    )
    .await?;
    let ids: Vec<u64> = products(&data.images, &data.texts)
        .iter()
        .map(|p| p.index.product_id)
        .collect();
    if !ids.is_empty() {
        let _: () = redis::cmd("SREM")
            .arg(INDEXED_KEY)
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
    }
    let dead_before = stream_len(&mut conn, &image_keys.dead).await?
        + stream_len(&mut conn, &text_keys.dead).await?;

    let (image_worker, image_stats) =
        worker::<EmbedImage>(&url, &args, conn.clone(), models.clone()).await?;
    let (text_worker, text_stats) =
        worker::<EmbedText>(&url, &args, conn.clone(), models.clone()).await?;
    let index_worker = index_worker(&url, &args).await?;
    let metrics = [
        image_worker.metrics(),
        text_worker.metrics(),
        index_worker.metrics(),
    ];
    let tokens = [
        image_worker.shutdown_token(),
        text_worker.shutdown_token(),
        index_worker.shutdown_token(),
    ];
    let started = Instant::now();
    let runs = [
        tokio::spawn(image_worker.run()),
        tokio::spawn(text_worker.run()),
        tokio::spawn(index_worker.run()),
    ];

    // Progress bars, redrawn from the counters 10 times a second.
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stdout_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let mp = MultiProgress::with_draw_target(target);
    let bars = [
        bar(&mp, data.images.len(), "enqueued images"),
        bar(&mp, data.texts.len(), "enqueued texts"),
        bar(&mp, data.images.len(), "embedded images"),
        bar(&mp, data.texts.len(), "embedded texts"),
    ];
    let enqueued = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let ticker = {
        let (bars, enqueued) = (bars.clone(), enqueued.clone());
        let (image_stats, text_stats) = (image_stats.clone(), text_stats.clone());
        tokio::spawn(async move {
            loop {
                update(&bars, &enqueued, &image_stats, &text_stats, started);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Each product is a flow (its embedding tasks, then its IndexProduct), the day's products
    // one run, sealed with its completion task once all are enqueued.
    let run_name = args
        .run
        .clone()
        .unwrap_or_else(|| format!("products-{}", chrono::Utc::now().format("%Y-%m-%d-%H%M%S")));
    let day = producer.run(&run_name).await?;
    let flows = products(&data.images, &data.texts);
    let in_flight = usize::try_from(args.enqueue_batch)?;
    let mut enqueues = futures::stream::iter(flows.iter().map(|p| {
        let (day, enqueued) = (&day, &enqueued);
        async move {
            let mut flow = day.flow(p.index.clone());
            if let Some(t) = &p.image {
                flow = flow.child(t.clone());
            }
            if let Some(t) = &p.text {
                flow = flow.child(t.clone());
            }
            flow.enqueue().await?;
            enqueued[0].fetch_add(u64::from(p.image.is_some()), Ordering::Relaxed);
            enqueued[1].fetch_add(u64::from(p.text.is_some()), Ordering::Relaxed);
            Ok::<(), mq_core::Error>(())
        }
    }))
    .buffer_unordered(in_flight);
    while let Some(r) = enqueues.next().await {
        r?;
    }
    drop(enqueues);
    day.seal_with(DayIndexed {
        run: run_name.clone(),
    })
    .await?;
    let admin = Admin::connect(&url).await?;
    let index_keys = producer.keys::<IndexProduct>();

    // Done when both streams and both delayed sets are empty: every task was acked, or
    // dead-lettered (retries move stream -> delayed -> stream atomically).
    let real_model = args.model.model != ModelChoice::Hashed
        || args.image_model.image_model != ImageModelChoice::Hashed;
    let timeout_secs = args
        .timeout_secs
        .unwrap_or(if real_model { 1800 } else { 120 });
    let deadline = started + Duration::from_secs(timeout_secs);
    let mut timed_out = false;
    loop {
        let mut left = 0;
        for keys in [&image_keys, &text_keys, &index_keys] {
            left += stream_len(&mut conn, &keys.stream).await?
                + zcard(&mut conn, &keys.delayed).await?;
        }
        // The run ends with the last product; its completion task then runs.
        let day_done: bool = redis::cmd("SISMEMBER")
            .arg(DAYS_KEY)
            .arg(&run_name)
            .query_async(&mut conn)
            .await?;
        if left == 0 && day_done {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            mp.suspend(|| {
                println!("demo: ERROR {left} tasks still queued after {timeout_secs}s, giving up")
            });
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    for token in &tokens {
        token.cancel();
    }
    for run in runs {
        run.await??;
    }
    ticker.abort();
    update(&bars, &enqueued, &image_stats, &text_stats, started);
    for b in &bars {
        b.finish();
    }
    drop(mp);

    let rendered: Vec<String> = metrics.iter().map(|m| m.render()).collect();
    let retries: u64 = rendered.iter().map(|m| finished(m, "retry")).sum();
    let dead_after = stream_len(&mut conn, &image_keys.dead).await?
        + stream_len(&mut conn, &text_keys.dead).await?;
    let dead = dead_after.saturating_sub(dead_before);
    let image_check = check_vectors_with(&mut conn, &data.images, &models).await?;
    let text_check = check_vectors_with(&mut conn, &data.texts, &models).await?;
    let tasks = (data.images.len() + data.texts.len()) as u64;
    let vectors = image_check.ok + text_check.ok;
    let indexed: u64 = redis::cmd("SMISMEMBER")
        .arg(INDEXED_KEY)
        .arg(flows.iter().map(|p| p.index.product_id).collect::<Vec<_>>())
        .query_async::<Vec<u64>>(&mut conn)
        .await?
        .iter()
        .sum();
    let r = admin
        .run(&run_name)
        .await?
        .ok_or_else(|| format!("run {run_name} is gone"))?;
    let image_keys_n = count_keys(&mut conn, VectorKind::Image).await?;
    let text_keys_n = count_keys(&mut conn, VectorKind::Text).await?;

    println!("demo: filtered parts by reason: {}", data.reasons_line());
    println!(
        "demo: image worker {}; text worker {}",
        image_stats.summary(),
        text_stats.summary()
    );
    println!(
        "demo: run {run_name}: {} of {} products done, {} dead, {} failed attempts retried; {}",
        r.done,
        r.total,
        r.dead,
        r.failed,
        match r.ended_ms {
            Some(end) => format!(
                "ended {:.2}s after it opened",
                end.saturating_sub(r.created_ms) as f64 / 1000.0
            ),
            None => "not ended".into(),
        }
    );
    println!(
        "demo: records={} parsed={} unparseable={} filtered={} images={} texts={} vectors={vectors} retries={retries} dead={dead} elapsed={:.2}s tasks_per_s={:.0} {} indexed={indexed} run_total={} run_done={} run_dead={}",
        data.records(),
        data.parsed(),
        data.unparseable.len(),
        data.filtered_parts(),
        data.images.len(),
        data.texts.len(),
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64().max(1e-9),
        models.names(),
        r.total,
        r.done,
        r.dead,
    );

    let mut ok = !timed_out;
    for (kind, check) in [("image", &image_check), ("text", &text_check)] {
        if !check.is_complete() || check.invalid > 0 {
            ok = false;
            println!(
                "demo: ERROR {kind} vectors: {} ok, {} missing (e.g. {:?}), {} wrong (e.g. {:?}), {} invalid",
                check.ok,
                check.missing.len(),
                &check.missing[..check.missing.len().min(5)],
                check.wrong.len(),
                &check.wrong[..check.wrong.len().min(5)],
                check.invalid
            );
        }
    }
    if dead > 0 {
        ok = false;
        println!("demo: ERROR {dead} tasks were dead-lettered");
    }
    let products_n = flows.len() as u64;
    if indexed != products_n
        || r.total != products_n
        || r.done != products_n
        || r.ended_ms.is_none()
    {
        ok = false;
        println!(
            "demo: ERROR {indexed} of {products_n} products indexed; the run counted {} done of {}",
            r.done, r.total
        );
    }
    if !data.is_accounted() {
        ok = false;
        println!("demo: ERROR images + texts + filtered != 2 * parsed records");
    }
    if vectors != tasks {
        ok = false;
    }
    // On its own server nothing else writes vectors: one key per task, none for filtered parts.
    if own_server
        && (image_keys_n != data.images.len() as u64 || text_keys_n != data.texts.len() as u64)
    {
        ok = false;
        println!(
            "demo: ERROR {image_keys_n} image and {text_keys_n} text vector keys for {} image and {} text tasks",
            data.images.len(),
            data.texts.len()
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    // Logs go to stderr; keep them to warnings so they do not tear the progress bars.
    mq_examples::init_tracing_with("warn");
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("demo: FAILED: not every valid record has its vector");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo: error: {e}");
            ExitCode::FAILURE
        }
    }
}
