//! A worker that runs a cron schedule of `CronTick` tasks on the `cron` queue and handles
//! them: each run records its task id and the tick it is for in the hash `cron-test:runs`
//! (task id -> tick unix ms), so a test can count the tasks enqueued for each tick.
//!
//! Run: `MQ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p mq-examples --bin cron-worker -- --expr '* * * * * *'`
//! Stops gracefully on SIGINT/SIGTERM.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use mq_core::{MissedTicks, Schedule, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

/// The scheduled task: the tick it is for.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cron", max_retries = 0)]
struct CronTick {
    tick_ms: u64,
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: mq_examples::WorkerArgs,
    /// Cron expression (5 fields, or 6 with seconds).
    #[arg(long, default_value = "* * * * * *")]
    expr: String,
    /// Schedule name.
    #[arg(long, default_value = "tick")]
    name: String,
    /// Missed ticks: `skip` or `run-once`.
    #[arg(long, default_value = "skip")]
    missed: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq_examples::init_tracing();
    let args = Args::parse();
    let missed = match args.missed.as_str() {
        "skip" => MissedTicks::Skip,
        "run-once" => MissedTicks::RunOnce,
        other => return Err(format!("--missed must be skip or run-once, not {other:?}").into()),
    };
    let conn = mq_core::redis::conn::Conn::connect(&args.worker.url).await?;
    let schedule = Schedule::new(&args.expr, |tick: SystemTime| CronTick {
        tick_ms: tick
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    })
    .name(&args.name)
    .missed_ticks(missed);
    let worker = args
        .worker
        .builder()
        .handle(move |t: CronTick, ctx: TaskContext| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("HSET")
                    .arg("cron-test:runs")
                    .arg(ctx.id())
                    .arg(t.tick_ms)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(TaskError::retry)
            }
        })
        .schedule_with(schedule)
        .build()
        .await?;
    worker.run_until_signal().await?;
    Ok(())
}
