//! A worker for the `unique` queue: runs `UniqueJob`s (unique by key) and records when each
//! run starts and ends in Redis.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin unique-worker -- --concurrency 16`
//! Stops gracefully on SIGINT/SIGTERM.

use std::time::Duration;

use clap::Parser;
use mq_core::{TaskContext, Worker};
use mq_examples::unique::{handle_unique_job, UniqueJob};

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
    /// Global in-flight limit.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Reclaim timeout in milliseconds (how long a dead worker's tasks wait to be taken over).
    #[arg(long, default_value_t = 30_000)]
    reclaim_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let conn = mq_core::redis::conn::Conn::connect(&args.url).await?;
    let worker = Worker::builder(&args.url)
        .concurrency(args.concurrency)
        .reclaim_timeout(Duration::from_millis(args.reclaim_timeout_ms))
        .handle::<UniqueJob, _>(move |job: UniqueJob, ctx: TaskContext| {
            handle_unique_job(job, ctx, conn.clone())
        })
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
