//! A worker for the rate-limited queues `flow-rate` (200 tasks/s in all) and `flow-keyed`
//! (50 tasks/s per account) that records when each task started, and for `flow-conc` (2 tasks
//! at once per account) that records when each task ran.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin flow-worker`
//! Stops gracefully on SIGINT/SIGTERM.

use clap::Parser;
use mq_core::TaskContext;
use mq_examples::flow::{
    handle_limited, handle_per_account, handle_per_key, Limited, PerAccount, PerKey,
};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: mq_examples::WorkerArgs,
    /// Global in-flight limit.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    args.worker
        .run_with(args.concurrency, |builder, conn| {
            let (keyed, per_key) = (conn.clone(), conn.clone());
            builder
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
        })
        .await
}
