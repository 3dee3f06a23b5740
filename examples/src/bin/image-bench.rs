//! Sweep of the MobileNetV2 image model's batch size (feature `mobilenet`): for each batch
//! size, the example images (examples/data/images/, repeated to fill the batches) go through
//! `MobileNet::embed`, and the line says images/s and model ms per batch. The model alone, no
//! queue: `tests/tests/image_model.rs` checks the queue path, and this number is the ceiling
//! a worker's batches can reach.
//!
//! ```text
//! export MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)"
//! cargo run --release -p mq-examples --features mobilenet --bin image-bench -- [--images 64] [--batch-sizes 1,4,8,16,32]
//! ```

use std::{path::PathBuf, time::Instant};

use clap::Parser;
use mq_examples::pipeline::{decode_image, MobileNet};

#[derive(Parser)]
struct Args {
    /// The model directory (what scripts/fetch-image-model.sh prints).
    #[arg(long, env = "MQ_IMAGE_MODEL_DIR")]
    model_dir: PathBuf,
    /// Images embedded per batch size (after one warm-up batch).
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// The batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,32")]
    batch_sizes: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let model = MobileNet::load(&args.model_dir)?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/images");
    let mut images = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "png") {
            images.push(decode_image(&std::fs::read(&path)?)?);
        }
    }
    if images.is_empty() {
        return Err(format!("no images in {}", dir.display()).into());
    }
    println!(
        "image-bench: MobileNetV2 (candle, {} cores), {} images per batch size, {} distinct",
        std::thread::available_parallelism().map_or(1, usize::from),
        args.images,
        images.len()
    );
    for &size in &args.batch_sizes {
        let size = size.max(1);
        let batch: Vec<_> = images.iter().cycle().take(size).cloned().collect();
        model.embed(&batch)?; // warm-up
        let calls = args.images.div_ceil(size);
        let start = Instant::now();
        for _ in 0..calls {
            model.embed(&batch)?;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "image-bench batch_size={size} images={} images_per_s={:.1} model_ms_per_batch={:.1} ms_per_image={:.2}",
            calls * size,
            (calls * size) as f64 / secs,
            secs * 1e3 / calls as f64,
            secs * 1e3 / (calls * size) as f64
        );
    }
    Ok(())
}
