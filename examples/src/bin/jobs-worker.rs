//! A worker for the `jobs` queue that records every handled `Job` in Redis.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin jobs-worker -- --concurrency 16`
//! Stops gracefully on SIGINT/SIGTERM.

use std::time::Duration;

use clap::Parser;
use mq_core::{TaskContext, Worker};
use mq_examples::jobs::{handle_job, Job};

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
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Grace period at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    grace_ms: u64,
    /// Reclaim timeout in milliseconds (how long a dead worker's tasks wait to be taken over).
    #[arg(long, default_value_t = 30_000)]
    reclaim_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    // A reconnecting connection (to one server or a cluster): the handler keeps working
    // across Redis restarts.
    let conn = mq_core::redis::conn::Conn::connect(&args.url).await?;
    let consumer = mq_core::config::default_consumer_name();
    let name = consumer.clone();
    let worker = Worker::builder(&args.url)
        .consumer(&consumer)
        .concurrency(args.concurrency)
        .grace_period(Duration::from_millis(args.grace_ms))
        .reclaim_timeout(Duration::from_millis(args.reclaim_timeout_ms))
        .handle::<Job, _>(move |job: Job, _ctx: TaskContext| {
            let conn = conn.clone();
            let name = name.clone();
            async move { handle_job(job, conn, &name).await }
        })
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
