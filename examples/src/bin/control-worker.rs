//! A worker for the `control` queue: runs `LongJob`s, which stop when cancelled
//! (`mq cancel control <id>`), and records their runs in Redis.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin control-worker`
//! Stops gracefully on SIGINT/SIGTERM.

use clap::Parser;
use mq_core::TaskContext;
use mq_examples::control::{handle_long_job, LongJob};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: mq_examples::WorkerArgs,
    /// Global in-flight limit.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    args.worker
        .run_with(args.concurrency, |builder, conn| {
            builder.handle::<LongJob, _>(move |job: LongJob, ctx: TaskContext| {
                handle_long_job(job, ctx, conn.clone())
            })
        })
        .await
}
