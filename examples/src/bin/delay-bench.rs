//! `delay-bench`: how late delayed tasks and retries start, compared with their due time.
//!
//! Run (release build):
//!
//! ```text
//! cargo run --release -p mq-examples --bin delay-bench -- [--many 10000] [--singles 50] \
//!     [--retries 1000] [--url redis://..]
//! ```
//!
//! Without `--url` it starts its own `redis-server` on a free loopback port. With `--url` it
//! touches only keys under the prefix `mq-delay-bench`, deleted at the end.
//!
//! One worker (concurrency 256, no-op handler) runs in this process; the producer runs here too,
//! so producer, worker and Redis share one clock. Lateness is handler start minus due time.
//!
//! - `single_idle`: `--singles` tasks one after another, each `enqueue_in(200 ms)` and awaited
//!   before the next, on an otherwise idle queue.
//! - `single_busy`: the same while the worker drains a backlog of 100,000 plain tasks of
//!   another queue.
//! - `many`: `--many` tasks with due times spread evenly over 5 s (starting 1 s ahead).
//! - `retry`: `--retries` tasks that fail once with `TaskError::retry_after(50 ms)` (an exact
//!   delay); lateness is retry start minus (failure + 50 ms).
//!
//! One line per case: `delay-bench case=... n=... p50_ms=... p99_ms=... max_ms=...`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PREFIX: &str = "mq-delay-bench";

#[derive(Parser)]
struct Args {
    /// Redis URL; without it a local redis-server is started.
    #[arg(long, env = "MQ_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// Delayed tasks spread over 5 s in the `many` case.
    #[arg(long, default_value_t = 10_000)]
    many: usize,
    /// Delayed tasks, one at a time, in the `single_*` cases.
    #[arg(long, default_value_t = 50)]
    singles: usize,
    /// Tasks that fail once and are retried after exactly 50 ms.
    #[arg(long, default_value_t = 1_000)]
    retries: usize,
}

/// A delayed task that knows when it is due (unix ms).
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "delay-bench", max_retries = 1, backoff = "none")]
struct Due {
    due_ms: u64,
    fail_once: bool,
}

/// Plain work for the `single_busy` case.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "delay-bench-load")]
struct Load {
    n: u64,
}

const RETRY_AFTER: Duration = Duration::from_millis(50);

fn now_ms_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[derive(Default)]
struct Record {
    lateness_ms: Vec<f64>,
    failed_at: HashMap<String, f64>,
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

async fn wait_for(rec: &Mutex<Record>, n: usize, limit: Duration) -> Result<(), BoxError> {
    let t0 = Instant::now();
    while rec.lock().map(|r| r.lateness_ms.len()).unwrap_or(0) < n {
        if t0.elapsed() > limit {
            return Err(format!("timed out waiting for {n} tasks").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn take(rec: &Mutex<Record>) -> Vec<f64> {
    rec.lock()
        .map(|mut r| std::mem::take(&mut r.lateness_ms))
        .unwrap_or_default()
}

fn report(case: &str, v: Vec<f64>) {
    let n = v.len();
    let (p50, p99, max) = percentiles(v);
    println!("delay-bench case={case} n={n} p50_ms={p50:.1} p99_ms={p99:.1} max_ms={max:.1}");
}

async fn run(url: &str, args: &Args) -> Result<(), BoxError> {
    let producer = Producer::connect_with_prefix(url, PREFIX).await?;
    let rec = Arc::new(Mutex::new(Record::default()));
    let r = rec.clone();
    let worker = Worker::builder(url)
        .prefix(PREFIX)
        .concurrency(256)
        .handle::<Due, _>(move |t: Due, ctx: TaskContext| {
            let r = r.clone();
            async move {
                let now = now_ms_f();
                let mut rec = r.lock().map_err(|_| TaskError::permanent("poisoned"))?;
                if t.fail_once && ctx.attempt() == 0 {
                    rec.failed_at.insert(ctx.id().to_owned(), now_ms_f());
                    return Err(TaskError::retry_after(RETRY_AFTER, "fail once"));
                }
                let due = match rec.failed_at.remove(ctx.id()) {
                    Some(failed) => failed + RETRY_AFTER.as_secs_f64() * 1000.0,
                    None => t.due_ms as f64,
                };
                rec.lateness_ms.push(now - due);
                Ok(())
            }
        })
        .handle::<Load, _>(|_t: Load, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await?;
    let token = worker.shutdown_token();
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let delay = Duration::from_millis(200);
    for case in ["single_idle", "single_busy"] {
        if case == "single_busy" {
            producer
                .enqueue_many((0..100_000).map(|n| Load { n }))
                .await?;
        }
        for i in 0..args.singles {
            let due_ms = (now_ms_f() as u64) + delay.as_millis() as u64;
            producer
                .enqueue_in(
                    delay,
                    Due {
                        due_ms,
                        fail_once: false,
                    },
                )
                .await?;
            wait_for(&rec, i + 1, Duration::from_secs(10)).await?;
        }
        report(case, take(&rec));
    }

    // Many, spread over 5 s from 1 s ahead; enqueued with enqueue_at, one call each.
    let start = now_ms_f() as u64 + 1_000;
    let spread = 5_000u64;
    let n = args.many as u64;
    let mut sends = Vec::with_capacity(args.many);
    for i in 0..n {
        let due_ms = start + spread * i / n.max(1);
        let p = producer.clone();
        sends.push(async move {
            p.enqueue_at(
                UNIX_EPOCH + Duration::from_millis(due_ms),
                Due {
                    due_ms,
                    fail_once: false,
                },
            )
            .await
        });
    }
    for r in futures::future::join_all(sends).await {
        r?;
    }
    wait_for(&rec, args.many, Duration::from_secs(60)).await?;
    report("many", take(&rec));

    // Retries: each fails once and is retried after exactly 50 ms.
    for _ in 0..args.retries {
        producer
            .enqueue(Due {
                due_ms: 0,
                fail_once: true,
            })
            .await?;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    wait_for(&rec, args.retries, Duration::from_secs(60)).await?;
    report("retry", take(&rec));

    token.cancel();
    running.await??;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    for q in ["delay-bench", "delay-bench-load"] {
        let k = mq_core::redis::keys::QueueKeys::new(PREFIX, q);
        let _: () = redis::pipe()
            .del(&k.stream)
            .del(&k.delayed)
            .del(&k.dead)
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    mq_examples::init_tracing_with("warn");
    let args = Args::parse();
    let redis = mq_examples::Redis::url_or_local(args.url.as_deref())?;
    run(&redis.url, &args).await
}
