//! The image worker of the vectorization pipeline example: handles `EmbedImage` tasks (queue
//! `images`) in batches, computing the vector of each product image with the chosen image
//! model and storing it at `mq-demo:vec:image:{product_id}` (little-endian `f32`s).
//!
//! Run (from the workspace root; every flag also has an environment variable):
//!
//! ```text
//! cargo run --release -p mq-examples --bin image-worker -- --url redis://127.0.0.1:6379/ \
//!     [--concurrency 128] [--batch-size 32] [--batch-wait-ms 20] [--metrics-addr 0.0.0.0:9464] \
//!     [--model hashed|mobilenet] [--model-dir DIR] [--image-dir DIR]
//! ```
//!
//! (`MQ_REDIS_URL`, `MQ_CONCURRENCY`, `MQ_BATCH_SIZE`, `MQ_BATCH_WAIT_MS`, `MQ_METRICS_ADDR`,
//! `MQ_IMAGE_MODEL`, `MQ_IMAGE_MODEL_DIR`, `MQ_IMAGE_DIR`.) Stops gracefully on SIGINT/SIGTERM
//! and then prints what it did.
//!
//! Image models (`--model`):
//!
//! * `hashed` (default): the colour histogram of a picture drawn from the URL, 64 values, a
//!   few µs an image: a stand-in that keeps tests and the demo fast.
//! * `mobilenet`: MobileNetV2 with torchvision's ImageNet weights, 1280 values (the features
//!   before its classifier, L2-normalized), run with candle. Build with `--features mobilenet`
//!   and get the weights once with `scripts/fetch-image-model.sh`, which prints the directory
//!   for `--model-dir`/`MQ_IMAGE_MODEL_DIR`. The tasks' URLs name shops that do not exist, so
//!   the pictures come from a local image mirror, `--image-dir` (default
//!   `examples/data/images/`): URL → file `fnv1a64(url) % files` of the sorted PNG/JPEG files
//!   (`pipeline::image_model`). Nothing is downloaded at run time:
//!
//! ```text
//! export MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)"
//! cargo run --release -p mq-examples --features mobilenet --bin image-worker -- --model mobilenet
//! ```
//!
//! The handler is `mq_core::batch(--batch-size, --batch-wait-ms, pipeline::Embedder)`: a batch
//! of up to `--batch-size` tasks is embedded in one model call on tokio's blocking pool
//! (`mq_core::blocking`) and its vectors are stored with one pipeline. A task whose URL is
//! invalid (from a producer that does not filter) is dead-lettered at once; a model error or
//! a Redis error while storing retries the whole batch with the task's backoff.

use std::path::PathBuf;

use clap::Parser;
use mq_examples::pipeline::{
    run_embed_worker, EmbedImage, ImageModelArgs, ImageModelChoice, Models, WorkerArgs,
};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
    /// Image model: `hashed` (the fast stand-in) or `mobilenet` (MobileNetV2; needs a build
    /// with `--features mobilenet` and the weights directory).
    #[arg(long, env = "MQ_IMAGE_MODEL", value_enum, default_value_t = ImageModelChoice::Hashed)]
    model: ImageModelChoice,
    /// Directory of mobilenet_v2.safetensors, as printed by scripts/fetch-image-model.sh.
    #[arg(long, env = "MQ_IMAGE_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// The image mirror: PNG/JPEG files standing in for the URLs' CDN [default:
    /// examples/data/images in the source tree].
    #[arg(long, env = "MQ_IMAGE_DIR")]
    image_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    // Loaded before the worker starts, so nothing waits on it.
    let image = ImageModelArgs {
        image_model: args.model,
        image_model_dir: args.model_dir,
        image_dir: args.image_dir,
    }
    .load()
    .map_err(|e| format!("image-worker: {e}"))?;
    let models = Models {
        image,
        ..Models::default()
    };
    run_embed_worker::<EmbedImage>("image-worker", args.worker, models).await
}
