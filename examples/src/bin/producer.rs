//! The producer of the vectorization pipeline example: reads product records (JSON lines),
//! filters them and enqueues an `EmbedImage` task (queue `images`) and an `EmbedText` task
//! (queue `texts`) per valid record with `Producer::enqueue_many`, `--batch` tasks at a time.
//!
//! Run (from the workspace root, with a Redis at the URL and the workers started whenever):
//! `cargo run -p mq-examples --bin producer -- --url redis://127.0.0.1:6379/`
//! (or set `MQ_REDIS_URL`; `--input FILE` reads another file, `--dry-run` only filters).
//!
//! Each part of a record is judged on its own (see `mq_examples::pipeline`): a record with a
//! valid image URL and valid text gives both tasks; a record with one valid part gives that
//! task and the other part is counted as filtered with its reason; a record with neither gives
//! no task. Lines that are not JSON or lack a `product_id` are counted as unparseable. The
//! summary lists every count; the exit status is 0 unless reading or Redis failed.

use std::{path::PathBuf, time::Instant};

use clap::Parser;
use mq_core::Producer;
use mq_examples::pipeline::{default_data_file, enqueue_records, EmbedImage, EmbedText, Reason};

#[derive(Parser)]
struct Args {
    /// Redis URL.
    #[arg(
        long,
        env = "MQ_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/"
    )]
    url: String,
    /// JSON-lines file of product records [default: examples/data/products.jsonl in the source
    /// tree].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Tasks per `enqueue_many` call (per queue).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Filter and report only; enqueue nothing (no Redis needed).
    #[arg(long)]
    dry_run: bool,
}

/// Unparseable lines shown in the summary: 5.
const SHOWN_PARSE_ERRORS: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let input = args.input.clone().unwrap_or_else(default_data_file);
    let file =
        std::fs::File::open(&input).map_err(|e| format!("cannot open {}: {e}", input.display()))?;
    let producer = if args.dry_run {
        None
    } else {
        Some(Producer::connect(&args.url).await?)
    };
    let started = Instant::now();
    let done = enqueue_records(
        std::io::BufReader::new(file),
        producer.as_ref(),
        usize::try_from(args.batch)?,
    )
    .await?;
    let elapsed = started.elapsed();
    let c = &done.counts;

    let records = c.parsed();
    println!("producer: read {} lines from {}", c.lines, input.display());
    println!(
        "  records: {records} parsed ({} with both parts valid, {} with one, {} with none), {} unparseable, {} blank lines",
        c.complete,
        c.partial,
        c.rejected,
        c.unparseable.len(),
        c.blank_lines
    );
    for (line, err) in c.unparseable.iter().take(SHOWN_PARSE_ERRORS) {
        println!("    line {line}: {err}");
    }
    if c.unparseable.len() > SHOWN_PARSE_ERRORS {
        println!(
            "    ... and {} more",
            c.unparseable.len() - SHOWN_PARSE_ERRORS
        );
    }
    let filtered = c.filtered_parts();
    println!("  filtered parts: {filtered}");
    for reason in Reason::ALL {
        let n = c.filtered.get(&reason).copied().unwrap_or(0);
        println!("    {:<24} {n}", reason.label());
    }
    match &producer {
        None => println!(
            "  dry run: {} EmbedImage and {} EmbedText tasks would be enqueued",
            done.images, done.texts
        ),
        Some(p) => {
            println!(
                "  enqueued: {} EmbedImage -> {}, {} EmbedText -> {}",
                done.images,
                p.keys::<EmbedImage>().stream,
                done.texts,
                p.keys::<EmbedText>().stream
            );
            let tasks = done.images + done.texts;
            let enqueue_time = done.enqueue_time;
            println!(
                "  time: {elapsed:.2?} in all, {enqueue_time:.2?} enqueueing ({:.0} tasks/s)",
                tasks as f64 / enqueue_time.as_secs_f64().max(1e-9)
            );
        }
    }
    println!(
        "producer: lines={} records={records} unparseable={} complete={} partial={} rejected={} filtered={filtered} images={} texts={}",
        c.lines,
        c.unparseable.len(),
        c.complete,
        c.partial,
        c.rejected,
        done.images,
        done.texts
    );
    Ok(())
}
