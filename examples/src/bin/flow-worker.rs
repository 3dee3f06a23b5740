//! A worker for the rate-limited queues `flow-rate` (200 tasks/s in all) and `flow-keyed`
//! (50 tasks/s per account) that records when each task started, and for `flow-conc` (2 tasks
//! at once per account) that records when each task ran.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin flow-worker`
//! Stops gracefully on SIGINT/SIGTERM.

use clap::Parser;
use mq_core::{TaskContext, Worker};
use mq_examples::flow::{
    handle_limited, handle_per_account, handle_per_key, Limited, PerAccount, PerKey,
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
    /// Global in-flight limit.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Reclaim timeout in ms (also the lease of a concurrency slot).
    #[arg(long, default_value_t = 30_000)]
    reclaim_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let conn = mq_core::redis::conn::Conn::connect(&args.url).await?;
    let keyed = conn.clone();
    let per_key = conn.clone();
    let worker = Worker::builder(&args.url)
        .concurrency(args.concurrency)
        .reclaim_timeout(std::time::Duration::from_millis(args.reclaim_timeout_ms))
        .handle(move |task: Limited, _ctx: TaskContext| {
            let conn = conn.clone();
            async move { handle_limited(task, conn).await }
        })
        .handle(move |task: PerAccount, _ctx: TaskContext| {
            let conn = keyed.clone();
            async move { handle_per_account(task, conn).await }
        })
        .handle(move |task: PerKey, _ctx: TaskContext| {
            let conn = per_key.clone();
            async move { handle_per_key(task, conn).await }
        })
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
