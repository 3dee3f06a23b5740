//! Rate-limited tasks of the `flow-worker` example, whose handlers record when each task
//! started so a run can be checked from outside (the integration tests do). The `impl Task`s
//! are written by hand: they show what `#[task(rate = "200/s")]` and
//! `#[task(rate = "50/s", rate_key = "account")]` stand for. [`PerKey`] tasks (queue
//! `flow-conc`, `#[task(key_concurrency = 2, concurrency_key = "account")]`) record when each
//! ran, so the number running at once per account can be checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_core::{redis::conn::Conn, Rate, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

/// List of start times (unix microseconds) of [`Limited`] tasks. The keys share one hash
/// tag, so each handler's command touches one slot of a Redis Cluster.
pub const LIMITED_STARTS: &str = "mq-examples:{flow}:starts:limited";

/// The list of start times (unix microseconds) of [`PerAccount`] tasks of `account`.
pub fn account_starts(account: &str) -> String {
    format!("mq-examples:{{flow}}:starts:account:{account}")
}

/// A task of queue `flow-rate` limited to 200 starts per second across all workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limited {
    /// Task number.
    pub n: u64,
}

impl Task for Limited {
    const NAME: &'static str = "Limited";
    const QUEUE: &'static str = "flow-rate";
    const OPTIONS: TaskOptions = TaskOptions {
        rate: Some(Rate::new(200, Duration::from_secs(1))),
        ..TaskOptions::DEFAULT
    };
}

/// A task of queue `flow-keyed` limited to 50 starts per second per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerAccount {
    /// Task number.
    pub n: u64,
    /// The account whose own limit the task counts against.
    pub account: String,
}

impl Task for PerAccount {
    const NAME: &'static str = "PerAccount";
    const QUEUE: &'static str = "flow-keyed";
    const OPTIONS: TaskOptions = TaskOptions {
        rate: Some(Rate::new(50, Duration::from_secs(1))),
        ..TaskOptions::DEFAULT
    };

    fn rate_key(&self) -> Option<String> {
        Some(self.account.clone())
    }
}

/// The current unix time in microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Handles a [`Limited`]: records its start time.
pub async fn handle_limited(_task: Limited, mut conn: Conn) -> Result<(), TaskError> {
    let at = now_us();
    let _: () = redis::cmd("RPUSH")
        .arg(LIMITED_STARTS)
        .arg(at)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Handles a [`PerAccount`]: records its start time under its account.
pub async fn handle_per_account(task: PerAccount, mut conn: Conn) -> Result<(), TaskError> {
    let at = now_us();
    let _: () = redis::cmd("RPUSH")
        .arg(account_starts(&task.account))
        .arg(at)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// List of runs of [`PerKey`] tasks, each `"<account> <n> <start µs> <end µs>"`.
pub const PER_KEY_RUNS: &str = "mq-examples:{flow-conc}:runs";

/// A task of queue `flow-conc`: at most 2 run at once per account, across all workers.
#[derive(Debug, Clone, Serialize, Deserialize, mq_core::Task)]
#[task(queue = "flow-conc", key_concurrency = 2, concurrency_key = "account")]
pub struct PerKey {
    /// Task number.
    pub n: u64,
    /// The account whose running tasks are limited.
    pub account: String,
    /// How long the handler runs, in ms.
    pub sleep_ms: u64,
    /// If set, the handler first waits (up to 60 s) while this Redis key exists.
    pub gate: Option<String>,
}

/// Handles a [`PerKey`]: waits for its gate, sleeps, then records its run.
pub async fn handle_per_key(task: PerKey, mut conn: Conn) -> Result<(), TaskError> {
    let start = now_us();
    if let Some(gate) = &task.gate {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let held: bool = redis::cmd("EXISTS")
                .arg(gate)
                .query_async(&mut conn)
                .await?;
            if !held || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(task.sleep_ms)).await;
    let run = format!("{} {} {start} {}", task.account, task.n, now_us());
    let _: () = redis::cmd("RPUSH")
        .arg(PER_KEY_RUNS)
        .arg(run)
        .query_async(&mut conn)
        .await?;
    Ok(())
}
