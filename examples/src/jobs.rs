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

/// Hash: `<product>:<half>` -> times a [`Part`] was handled.
pub const PARTS_KEY: &str = "mq-examples:{jobs}:parts";
/// Hash: product -> times its [`Assemble`] ran; and per product a set
/// `<ASSEMBLED_KEY>:<product>` of the entry ids it ran as (one id per release of the parent:
/// a rerun of the same entry after a kill adds nothing).
pub const ASSEMBLED_KEY: &str = "mq-examples:{jobs}:assembled";
/// Set: products whose [`Assemble`] started before both its parts were handled.
pub const EARLY_KEY: &str = "mq-examples:{jobs}:early";

/// One half of a product's work, a child of that product's [`Assemble`] flow: sleeps
/// `sleep_ms`, fails permanently when `fail`, counts itself in [`PARTS_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "jobs-parts",
    max_retries = 0,
    timeout = "1m",
    backoff = "none"
)]
pub struct Part {
    /// The product.
    pub product: u64,
    /// 0 or 1.
    pub half: u8,
    /// Time the handler spends "working".
    pub sleep_ms: u64,
    /// Fail permanently (dead-letter), so the parent follows its flow policy.
    pub fail: bool,
}

/// A flow's parent: runs once both [`Part`]s of its product are done; records its entry id
/// in [`ASSEMBLED_KEY`], and the product in [`EARLY_KEY`] if a part was not handled yet.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "jobs-assemble",
    max_retries = 2,
    timeout = "1m",
    backoff = "fixed(100ms)"
)]
pub struct Assemble {
    /// The product.
    pub product: u64,
}

/// Set: the entry ids of the [`RunComplete`] tasks that ran (one entry: released once).
pub const RUN_COMPLETE_KEY: &str = "mq-examples:{jobs}:run-complete";

/// A run's completion task: records its entry id in [`RUN_COMPLETE_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "jobs-runs", max_retries = 2, backoff = "fixed(100ms)")]
pub struct RunComplete {
    /// The run's name.
    pub run: String,
}

/// Handles a [`RunComplete`].
pub async fn handle_run_complete(
    ctx: &mq_core::TaskContext,
    conn: mq_core::redis::conn::Conn,
) -> Result<(), TaskError> {
    let mut conn = conn;
    let _: () = redis::cmd("SADD")
        .arg(RUN_COMPLETE_KEY)
        .arg(ctx.entry_id())
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Handles a [`Part`].
pub async fn handle_part(part: Part, conn: mq_core::redis::conn::Conn) -> Result<(), TaskError> {
    let mut conn = conn;
    tokio::time::sleep(std::time::Duration::from_millis(part.sleep_ms)).await;
    if part.fail {
        return Err(TaskError::permanent(format!(
            "part {} of product {} refused",
            part.half, part.product
        )));
    }
    let _: () = redis::cmd("HINCRBY")
        .arg(PARTS_KEY)
        .arg(format!("{}:{}", part.product, part.half))
        .arg(1)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Handles an [`Assemble`] whose context is `ctx`.
pub async fn handle_assemble(
    task: Assemble,
    ctx: &mq_core::TaskContext,
    conn: mq_core::redis::conn::Conn,
) -> Result<(), TaskError> {
    let mut conn = conn;
    let parts: Vec<Option<u64>> = redis::cmd("HMGET")
        .arg(PARTS_KEY)
        .arg(format!("{}:0", task.product))
        .arg(format!("{}:1", task.product))
        .query_async(&mut conn)
        .await?;
    let mut pipe = redis::pipe();
    if parts.iter().any(Option::is_none) || ctx.children().len() != 2 {
        pipe.cmd("SADD").arg(EARLY_KEY).arg(task.product).ignore();
    }
    let key = format!("{ASSEMBLED_KEY}:{}", task.product);
    pipe.cmd("SADD").arg(&key).arg(ctx.entry_id()).ignore();
    pipe.cmd("HINCRBY")
        .arg(ASSEMBLED_KEY)
        .arg(task.product)
        .arg(1)
        .ignore();
    let _: () = pipe.query_async(&mut conn).await?;
    Ok(())
}
