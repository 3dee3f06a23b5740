//! A worker for the `control` queue: runs `LongJob`s, which stop when cancelled
//! (`mq cancel control <id>`), and records their runs in Redis.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin control-worker`
//! Stops gracefully on SIGINT/SIGTERM.

use std::time::Duration;

use clap::Parser;
use mq_core::{TaskContext, Worker};
use mq_examples::control::{handle_long_job, LongJob};

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
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Reclaim timeout in milliseconds; leases are renewed every third of it, and a running
    /// task's cancellation is seen at the next renewal.
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
        .handle::<LongJob, _>(move |job: LongJob, ctx: TaskContext| {
            handle_long_job(job, ctx, conn.clone())
        })
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
