//! `UniqueJob`: a [unique](mq_core::Task::unique_key) task (one per `key` at a time) for the
//! `unique-worker` example, whose handler records when each run starts and ends, so a run can
//! be checked from outside for two tasks of one key running at once (the integration tests
//! do).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_core::{Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

/// List of run records, `S <key> <task id> <unix µs>` at the start of a run and
/// `E <key> <task id> <unix µs>` at its end.
pub const RUNS_KEY: &str = "mq-examples:{unique}:runs";

/// A task unique by `key`: while one with a key is queued, running or retrying, enqueueing
/// another with that key returns the live task's id. (Written by hand: the derive's `unique`
/// attribute comes separately.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UniqueJob {
    /// The unique key.
    pub key: u64,
    /// Time the handler spends "working".
    pub sleep_ms: u64,
}

impl Task for UniqueJob {
    const NAME: &'static str = "UniqueJob";
    const QUEUE: &'static str = "unique";
    const OPTIONS: TaskOptions = TaskOptions {
        max_retries: 2,
        timeout: Some(Duration::from_secs(60)),
        ..TaskOptions::DEFAULT
    };

    fn unique_key(&self) -> Option<String> {
        Some(self.key.to_string())
    }
}

/// Handles a [`UniqueJob`]: records its start, sleeps `sleep_ms`, records its end.
pub async fn handle_unique_job(
    job: UniqueJob,
    ctx: TaskContext,
    conn: mq_core::redis::conn::Conn,
) -> Result<(), TaskError> {
    let mut conn = conn;
    let record = |what: &str| format!("{what} {} {} {}", job.key, ctx.id(), unix_micros());
    let _: () = redis::cmd("RPUSH")
        .arg(RUNS_KEY)
        .arg(record("S"))
        .query_async(&mut conn)
        .await?;
    tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    let _: () = redis::cmd("RPUSH")
        .arg(RUNS_KEY)
        .arg(record("E"))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Microseconds since the unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
