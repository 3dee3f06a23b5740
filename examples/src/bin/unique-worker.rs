//! A worker for the `unique` queue: runs `UniqueJob`s (unique by key) and records when each
//! run starts and ends in Redis.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin unique-worker -- --concurrency 16`
//! Stops gracefully on SIGINT/SIGTERM.

use clap::Parser;
use mq_core::TaskContext;
use mq_examples::unique::{handle_unique_job, UniqueJob};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: mq_examples::WorkerArgs,
    /// Global in-flight limit.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    args.worker
        .run_with(args.concurrency, |builder, conn| {
            builder.handle::<UniqueJob, _>(move |job: UniqueJob, ctx: TaskContext| {
                handle_unique_job(job, ctx, conn.clone())
            })
        })
        .await
}
