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

use std::{
    collections::BTreeMap,
    io::BufRead,
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use mq_core::{Producer, Task};
use mq_examples::pipeline::{
    default_data_file, parse_line, validate, EmbedImage, EmbedText, Reason,
};

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

#[derive(Default)]
struct Counts {
    lines: u64,
    blank_lines: u64,
    unparseable: Vec<(u64, String)>,
    complete: u64,
    partial: u64,
    rejected: u64,
    filtered: BTreeMap<Reason, u64>,
    images: u64,
    texts: u64,
}

/// Buffers tasks of one type and enqueues them `batch` at a time.
struct Batcher<T> {
    producer: Option<Producer>,
    tasks: Vec<T>,
    batch: usize,
    enqueued: u64,
    time: Duration,
}

impl<T: Task> Batcher<T> {
    fn new(producer: Option<Producer>, batch: usize) -> Self {
        Self {
            producer,
            tasks: Vec::with_capacity(batch),
            batch,
            enqueued: 0,
            time: Duration::ZERO,
        }
    }

    async fn push(&mut self, task: T) -> mq_core::Result<()> {
        self.tasks.push(task);
        if self.tasks.len() >= self.batch {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> mq_core::Result<()> {
        let tasks = std::mem::take(&mut self.tasks);
        let n = tasks.len() as u64;
        if let Some(p) = &self.producer {
            if n > 0 {
                let started = Instant::now();
                p.enqueue_many(tasks).await?;
                self.time += started.elapsed();
                self.enqueued += n;
            }
        }
        Ok(())
    }
}

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
    let batch = usize::try_from(args.batch)?;
    let mut images = Batcher::<EmbedImage>::new(producer.clone(), batch);
    let mut texts = Batcher::<EmbedText>::new(producer.clone(), batch);
    let mut c = Counts::default();
    let started = Instant::now();

    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        c.lines += 1;
        if line.trim().is_empty() {
            c.blank_lines += 1;
            continue;
        }
        let product = match parse_line(&line) {
            Ok(p) => p,
            Err(e) => {
                c.unparseable.push((i as u64 + 1, e.to_string()));
                continue;
            }
        };
        let v = validate(&product);
        if v.is_complete() {
            c.complete += 1;
        } else if v.is_rejected() {
            c.rejected += 1;
        } else {
            c.partial += 1;
        }
        for reason in v.reasons() {
            *c.filtered.entry(reason).or_default() += 1;
        }
        if let Ok(task) = v.image {
            c.images += 1;
            images.push(task).await?;
        }
        if let Ok(task) = v.text {
            c.texts += 1;
            texts.push(task).await?;
        }
    }
    images.flush().await?;
    texts.flush().await?;
    let elapsed = started.elapsed();

    let records = c.complete + c.partial + c.rejected;
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
    let filtered: u64 = c.filtered.values().sum();
    println!("  filtered parts: {filtered}");
    for reason in Reason::ALL {
        let n = c.filtered.get(&reason).copied().unwrap_or(0);
        println!("    {:<24} {n}", reason.label());
    }
    match &producer {
        None => println!(
            "  dry run: {} EmbedImage and {} EmbedText tasks would be enqueued",
            c.images, c.texts
        ),
        Some(p) => {
            println!(
                "  enqueued: {} EmbedImage -> {}, {} EmbedText -> {}",
                images.enqueued,
                p.keys::<EmbedImage>().stream,
                texts.enqueued,
                p.keys::<EmbedText>().stream
            );
            let tasks = images.enqueued + texts.enqueued;
            let enqueue_time = images.time + texts.time;
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
        c.images,
        c.texts
    );
    Ok(())
}
