//! `Job`: the task of the `jobs-worker` example, which records every completion in Redis so a
//! run can be checked from outside (the integration tests do).

use mq_core::{Task, TaskError};
use serde::{Deserialize, Serialize};

/// Hash: task number -> times handled. The keys share one hash tag, so the handler's pipeline
/// touches one slot of a Redis Cluster.
pub const HANDLED_KEY: &str = "mq-examples:{jobs}:handled";
/// Hash: consumer name -> tasks it handled.
pub const BY_CONSUMER_KEY: &str = "mq-examples:{jobs}:by-consumer";
/// Set: task numbers whose handler started.
pub const STARTED_KEY: &str = "mq-examples:{jobs}:started";

/// A job that sleeps `sleep_ms` and then counts itself as handled.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "jobs",
    max_retries = 2,
    timeout = "1m",
    backoff = "fixed(100ms)"
)]
pub struct Job {
    /// Job number, unique within a run.
    pub n: u64,
    /// Time the handler spends "working".
    pub sleep_ms: u64,
    /// Burn the CPU for `sleep_ms` without ever yielding to the runtime (a model inference
    /// written carelessly), instead of sleeping.
    #[serde(default)]
    pub spin: bool,
}

/// Handles a [`Job`]: marks it started, sleeps, counts it handled (per job and per consumer).
pub async fn handle_job(
    job: Job,
    conn: mq_core::redis::conn::Conn,
    consumer: &str,
) -> Result<(), TaskError> {
    let mut conn = conn;
    if job.sleep_ms > 0 {
        let _: () = redis::cmd("SADD")
            .arg(STARTED_KEY)
            .arg(job.n)
            .query_async(&mut conn)
            .await?;
        let work = std::time::Duration::from_millis(job.sleep_ms);
        if job.spin {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < work {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
        } else {
            tokio::time::sleep(work).await;
        }
    }
    let _: () = redis::pipe()
        .cmd("HINCRBY")
        .arg(HANDLED_KEY)
        .arg(job.n)
        .arg(1)
        .ignore()
        .cmd("HINCRBY")
        .arg(BY_CONSUMER_KEY)
        .arg(consumer)
        .arg(1)
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(())
}
