//! `LongJob`: a cancellable task for the `control-worker` example. Its handler works in steps
//! of 50 ms until its `steps` are done or its cancellation arrives, and records what happened in
//! Redis, so a run can be checked from another process (the integration tests do).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_core::{Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

/// List of run records: `S <task id> <unix ms>` when a run starts, `C <task id> <unix ms>` when
/// the handler saw its cancellation, `E <task id> <unix ms>` when it finished its steps.
pub const RUNS_KEY: &str = "mq-examples:{control}:runs";

/// A long task on queue `control` that stops when cancelled.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "control", max_retries = 3)]
pub struct LongJob {
    /// Steps of 50 ms to work.
    pub steps: u64,
}

/// Handles a [`LongJob`]: records its start, works step by step until done or cancelled
/// (reporting `{"step": n, "of": steps}` as its progress after each step), and records which. Returns an error when cancelled (the task still ends as cancelled, not
/// retried).
pub async fn handle_long_job(
    job: LongJob,
    ctx: TaskContext,
    conn: mq_core::redis::conn::Conn,
) -> Result<(), TaskError> {
    let mut conn = conn;
    let record = |what: &str| format!("{what} {} {}", ctx.id(), unix_ms());
    let _: () = redis::cmd("RPUSH")
        .arg(RUNS_KEY)
        .arg(record("S"))
        .query_async(&mut conn)
        .await?;
    for step in 0..job.steps {
        tokio::select! {
            _ = ctx.cancelled() => {
                let _: () = redis::cmd("RPUSH")
                    .arg(RUNS_KEY)
                    .arg(record("C"))
                    .query_async(&mut conn)
                    .await?;
                return Err(TaskError::retry("cancelled"));
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        ctx.progress(&serde_json::json!({ "step": step + 1, "of": job.steps }))
            .await;
    }
    let _: () = redis::cmd("RPUSH")
        .arg(RUNS_KEY)
        .arg(record("E"))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
