//! A worker for the `jobs` queue that records every handled `Job` in Redis (and for the
//! `jobs-parts` and `jobs-assemble` queues of a flow's children and parents, and `jobs-runs` of the run they are in).
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin jobs-worker -- --concurrency 16`
//! Stops gracefully on SIGINT/SIGTERM.

use std::time::Duration;

use clap::Parser;
use mq_core::TaskContext;
use mq_examples::jobs::{
    handle_assemble, handle_job, handle_part, handle_run_complete, Assemble, Job, Part, RunComplete,
};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: mq_examples::WorkerArgs,
    /// Global in-flight limit.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Grace period at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    grace_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    // A reconnecting connection (to one server or a cluster): the handler keeps working
    // across Redis restarts.
    let conn = mq_core::redis::conn::Conn::connect(&args.worker.url).await?;
    let consumer = mq_core::config::default_consumer_name();
    let name = consumer.clone();
    let (parts, assemble, completes) = (conn.clone(), conn.clone(), conn.clone());
    let worker = args
        .worker
        .builder()
        .consumer(&consumer)
        .concurrency(args.concurrency)
        .grace_period(Duration::from_millis(args.grace_ms))
        .handle::<Job, _>(move |job: Job, _ctx: TaskContext| {
            let conn = conn.clone();
            let name = name.clone();
            async move { handle_job(job, conn, &name).await }
        })
        // The flow of tests/tests/flows.rs: two parts, then their product's assembly.
        .handle::<Part, _>(move |part: Part, _ctx: TaskContext| {
            let conn = parts.clone();
            async move { handle_part(part, conn).await }
        })
        .handle::<Assemble, _>(move |task: Assemble, ctx: TaskContext| {
            let conn = assemble.clone();
            async move { handle_assemble(task, &ctx, conn).await }
        })
        // The completion task of the run those flows are in.
        .handle::<RunComplete, _>(move |_task: RunComplete, ctx: TaskContext| {
            let conn = completes.clone();
            async move { handle_run_complete(&ctx, conn).await }
        })
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
