//! `image-bench`: the MobileNetV2 image model (feature `mobilenet`) by batch size, alone and
//! through the queue, as `text-bench` does for MiniLM.
//!
//! ```text
//! export MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)"
//! cargo run --release -p mq-examples --features mobilenet --bin image-bench -- \
//!     [--images 32] [--tasks 128] [--batch-sizes 1,4,8,16,32] [--batch-wait-ms 20] [--url redis://..]
//! ```
//!
//! 1. **The model alone:** for each batch size, `--images` images of the image mirror
//!    (`examples/data/images/`, cycled to fill the batches) through `MobileNet::embed` after
//!    one warm-up batch: images/s and model ms per batch, the ceiling of a worker. On the CPU
//!    a call runs its batch `CPU_CHUNK` images per forward pass; `ms_per_image_one_pass` is
//!    the same batch in one forward pass, for comparison.
//! 2. **Through the queue** (skipped with `--tasks 0`): for each batch size, `--tasks`
//!    `EmbedImage` tasks (URLs; the worker's image mirror gives each its picture, as in
//!    `image-worker --model mobilenet`) are enqueued, then an in-process worker with the
//!    pipeline's batch handler (`mq_core::batch(size, --batch-wait-ms, pipeline::Embedder)`,
//!    concurrency `max(128, 4 * size)`) embeds and stores them; the clock runs from the
//!    worker's start until every vector is stored and every task acked. The line gives
//!    tasks/s, the model's share (`model_ms_per_batch`, `model_s`) and the rest,
//!    `queue_overhead_us_per_task` = (elapsed − model busy time) / tasks: fetching, waiting
//!    for a batch to fill, decoding nothing (the mirror's pictures are decoded at start),
//!    storing and acking.
//!
//! Without `--url` it starts its own `redis-server`; with `--url` it touches only its own keys
//! (prefix `mq-image-bench`, product ids from 3,000,000,000 on, deleted at the end).

use std::time::{Duration, Instant};

use clap::Parser;
use mq_examples::pipeline::bench::{bench_run, BenchError, BenchSpec};
use mq_examples::pipeline::{
    default_image_dir, EmbedImage, ImageMirror, ImageModel, MobileNet, Models, CPU_CHUNK,
};

/// Key prefix of the benchmark's queue.
const PREFIX: &str = "mq-image-bench";
/// First product id of the benchmark's tasks (clear of the data set's ids).
const FIRST_ID: u64 = 3_000_000_000;

#[derive(Parser)]
struct Args {
    /// The model directory (what scripts/fetch-image-model.sh prints).
    #[arg(long, env = "MQ_IMAGE_MODEL_DIR")]
    model_dir: std::path::PathBuf,
    /// Images embedded per batch size by the model alone (after one warm-up batch).
    #[arg(long, default_value_t = 32)]
    images: usize,
    /// Tasks per batch size through the queue (0: skip that part).
    #[arg(long, default_value_t = 128)]
    tasks: u64,
    /// The batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,32")]
    batch_sizes: Vec<usize>,
    /// Longest time a batch waits to fill, in milliseconds.
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// Limit of one queue run, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Redis URL; without it the benchmark starts its own redis-server on a free port.
    #[arg(long, env = "MQ_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
}

/// Seconds per image over `calls` calls of `model.embed(batch)`, after one warm-up call.
fn secs_per_image(
    model: &MobileNet,
    batch: &[image::DynamicImage],
    calls: usize,
) -> Result<f64, BenchError> {
    model.embed(batch)?; // warm-up
    let start = Instant::now();
    for _ in 0..calls {
        model.embed(batch)?;
    }
    Ok(start.elapsed().as_secs_f64() / (calls * batch.len()) as f64)
}

fn model_alone(args: &Args, model: &MobileNet, mirror: &ImageMirror) -> Result<(), BenchError> {
    let images: Vec<_> = (0..mirror.len())
        .map(|i| mirror.fetch(&format!("warm-{i}")).1.clone())
        .collect();
    // The same network with the whole batch in one forward pass, to show what CPU_CHUNK saves.
    let one_pass = MobileNet::load(&args.model_dir)?.with_chunk(usize::MAX);
    for &size in &args.batch_sizes {
        let batch: Vec<_> = images.iter().cycle().take(size).cloned().collect();
        let calls = args.images.div_ceil(size);
        let chunked = secs_per_image(model, &batch, calls)?;
        let whole = secs_per_image(&one_pass, &batch, calls)?;
        println!(
            "image-bench model batch_size={size} images={} images_per_s={:.1} model_ms_per_batch={:.1} ms_per_image={:.2} (forward passes of {CPU_CHUNK}); ms_per_image_one_pass={:.2}",
            calls * size,
            1.0 / chunked,
            chunked * 1e3 * size as f64,
            chunked * 1e3,
            whole * 1e3,
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    mq_examples::init_tracing_with("warn");
    let args = Args::parse();
    if args.batch_sizes.is_empty() || args.batch_sizes.contains(&0) {
        return Err("--batch-sizes must list sizes of at least 1".into());
    }
    let model = ImageModel::mobilenet(&args.model_dir, &default_image_dir())?;
    let ImageModel::MobileNet(net, mirror) = &model else {
        return Err("not MobileNetV2".into());
    };
    println!(
        "image-bench: MobileNetV2 (candle, {} cores), {} distinct images, batch sizes {:?}",
        std::thread::available_parallelism().map_or(1, usize::from),
        mirror.len(),
        args.batch_sizes
    );
    model_alone(&args, net, mirror)?;
    if args.tasks == 0 {
        return Ok(());
    }
    let redis = mq_examples::Redis::url_or_local(args.url.as_deref())?;
    let url = redis.url.clone();
    let mut conn = redis::Client::open(url.as_str())?
        .get_connection_manager()
        .await?;
    let models = Models {
        image: model.clone(),
        ..Models::default()
    };
    let n = args.tasks as usize;
    let mut results = Vec::new();
    for &size in &args.batch_sizes {
        let spec = BenchSpec {
            url: url.clone(),
            prefix: PREFIX.into(),
            batch_size: size,
            batch_wait: Duration::from_millis(args.batch_wait_ms),
            concurrency: (4 * size).max(128),
            timeout: Duration::from_secs(args.timeout_secs),
            models: models.clone(),
        };
        let tasks = (0..args.tasks)
            .map(|i| EmbedImage {
                product_id: FIRST_ID + i,
                url: format!("https://img.example-shop.com/products/{i}/item.jpg"),
            })
            .collect();
        let r = bench_run(&spec, tasks, &mut conn).await?;
        println!(
            "image-bench queue batch_size={size} tasks={n} elapsed={:.2}s tasks_per_s={:.1}{} ({})",
            r.elapsed.as_secs_f64(),
            r.per_s(n),
            r.model_line(n),
            r.stats
        );
        results.push(format!("batch{size}_per_s={:.1}", r.per_s(n)));
    }
    println!("image-bench tasks={n} {}", results.join(" "));
    Ok(())
}
