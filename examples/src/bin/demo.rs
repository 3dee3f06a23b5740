//! The mq demo: a producer and a worker in one process, against a local `redis-server`
//! started on a free port (or `--url`).
//!
//! Run: `cargo run --release -p mq-examples --bin demo` (or `scripts/demo.sh`, which installs
//! `redis-server` first if needed).
//!
//! It enqueues `--tasks` product records with one pipelined `enqueue_many`, schedules a few
//! for later with `enqueue_in`, lets every 500th one fail once so it is retried, drains the
//! queue with one worker, shuts it down gracefully and prints a summary.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::LocalRedis;
use serde::{Deserialize, Serialize};

/// A product record whose text is to be turned into a vector.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "demo",
    max_retries = 3,
    timeout = "30s",
    backoff = "fixed(200ms)"
)]
struct EmbedProduct {
    product_id: u64,
    title: String,
}

#[derive(Parser)]
struct Args {
    /// Redis URL; without it the demo starts its own redis-server on a free port.
    #[arg(long, env = "MQ_REDIS_URL")]
    url: Option<String>,
    /// Number of tasks to enqueue at once.
    #[arg(long, default_value_t = 20_000)]
    tasks: u64,
    /// Number of tasks scheduled 1 s in the future.
    #[arg(long, default_value_t = 5)]
    delayed: u64,
    /// Global in-flight limit of the worker.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Default)]
struct Counts {
    handled: AtomicU64,
    retried: AtomicU64,
    dims: AtomicU64,
}

/// A stand-in for a model: a 16-dimension hashed bag of characters.
fn embed(text: &str) -> [f32; 16] {
    let mut v = [0f32; 16];
    for b in text.bytes() {
        v[(b as usize * 31) % 16] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.map(|x| x / norm)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let _local;
    let url = match args.url.clone() {
        Some(u) => u,
        None => {
            let server = LocalRedis::start()?;
            println!("started redis-server on {}", server.url());
            let url = server.url();
            _local = server;
            url
        }
    };

    let producer = Producer::connect(&url).await?;
    let started = Instant::now();
    let ids = producer
        .enqueue_many((0..args.tasks).map(|i| EmbedProduct {
            product_id: i,
            title: format!("product {i}: red cotton t-shirt, size {}", i % 5),
        }))
        .await?;
    let enqueue_time = started.elapsed();
    for i in 0..args.delayed {
        producer
            .enqueue_in(
                Duration::from_secs(1),
                EmbedProduct {
                    product_id: args.tasks + i,
                    title: "scheduled product".into(),
                },
            )
            .await?;
    }
    println!(
        "enqueued {} tasks in {:.0?} ({:.0}/s) and {} delayed by 1 s",
        ids.len(),
        enqueue_time,
        ids.len() as f64 / enqueue_time.as_secs_f64(),
        args.delayed
    );

    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let worker = Worker::builder(&url)
        .concurrency(args.concurrency)
        .handle::<EmbedProduct, _>(move |t: EmbedProduct, ctx: TaskContext| {
            let c = c.clone();
            async move {
                if t.product_id % 500 == 7 && ctx.attempt() == 0 {
                    c.retried.fetch_add(1, Ordering::Relaxed);
                    return Err(TaskError::retry("simulated model hiccup"));
                }
                let v = embed(&t.title);
                c.dims.fetch_add(v.len() as u64, Ordering::Relaxed);
                c.handled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .build()
        .await?;
    let token = worker.shutdown_token();
    let drain_start = Instant::now();
    let run = tokio::spawn(worker.run());

    let total = args.tasks + args.delayed;
    let deadline = Instant::now() + Duration::from_secs(600);
    while counts.handled.load(Ordering::Relaxed) < total {
        if Instant::now() > deadline {
            return Err("demo did not finish within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_time = drain_start.elapsed();
    token.cancel();
    run.await??;

    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let keys = producer.keys::<EmbedProduct>();
    let left: u64 = redis::cmd("XLEN")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await?;
    let dead: u64 = redis::cmd("XLEN")
        .arg(&keys.dead)
        .query_async(&mut conn)
        .await?;
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(&keys.delayed)
        .query_async(&mut conn)
        .await?;
    let handled = counts.handled.load(Ordering::Relaxed);
    println!(
        "demo: enqueued={total} handled={handled} retried={} dead={dead} left_in_stream={left} left_delayed={delayed} drain={:.2?} tasks_per_s={:.0}",
        counts.retried.load(Ordering::Relaxed),
        drain_time,
        handled as f64 / drain_time.as_secs_f64(),
    );
    if handled != total || left != 0 || dead != 0 || delayed != 0 {
        return Err("not every task was handled exactly once".into());
    }
    Ok(())
}
