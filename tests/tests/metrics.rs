//! The worker's `/metrics` endpoint under load: every documented metric is exported and the
//! counters equal what was processed.

use std::{net::SocketAddr, time::Duration};

use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{free_port, http_get, redis, run_worker, wait_until};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "metered", max_retries = 1, backoff = "none")]
struct Metered {
    n: u32,
    /// 0: succeed, 1: fail once then succeed, 2: fail permanently.
    kind: u8,
}

/// The documented metric names (README "Metrics").
const NAMES: &[&str] = &[
    "mq_tasks_started_total",
    "mq_tasks_finished_total",
    "mq_task_duration_seconds_bucket",
    "mq_task_wait_seconds_bucket",
    "mq_tasks_in_flight",
    "mq_concurrency_limit",
    "mq_queue_depth",
    "mq_queue_pending",
    "mq_queue_delayed",
    "mq_dead_letter_size",
    "mq_reclaimed_total",
    "mq_redis_errors_total",
    "mq_workers",
];

/// The value of the sample whose line starts with `series` (name plus labels, as rendered).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_exports_every_metric_and_counts_exactly() {
    let server = redis();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let worker = Worker::builder(&server.url())
        .concurrency(16)
        .metrics_addr(addr)
        .handle::<Metered, _>(|t: Metered, ctx: TaskContext| async move {
            match (t.kind, ctx.attempt()) {
                (1, 0) => Err(TaskError::retry("once")),
                (2, _) => Err(TaskError::permanent("never")),
                _ => Ok(()),
            }
        })
        .build()
        .await
        .unwrap();
    let metrics = worker.metrics();
    let running = run_worker(worker);

    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..1_000).map(|n| Metered { n, kind: 0 }))
        .await
        .unwrap();
    producer
        .enqueue_many((0..10).map(|n| Metered { n, kind: 1 }))
        .await
        .unwrap();
    producer
        .enqueue_many((0..5).map(|n| Metered { n, kind: 2 }))
        .await
        .unwrap();
    let q = r#"queue="metered",task="Metered""#;
    wait_until(Duration::from_secs(30), "all outcomes counted", || {
        let m = metrics.clone();
        async move {
            let body = m.render();
            value(
                &body,
                &format!(r#"mq_tasks_finished_total{{outcome="success",{q}}}"#),
            ) == Some(1_010.0)
                && value(
                    &body,
                    &format!(r#"mq_tasks_finished_total{{outcome="dead",{q}}}"#),
                ) == Some(5.0)
        }
    })
    .await;

    let (status, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for name in NAMES {
        assert!(
            body.contains(&format!("\n{name}")),
            "{name} missing from /metrics"
        );
    }
    assert_eq!(
        value(&body, &format!("mq_tasks_started_total{{{q}}}")),
        Some(1_025.0)
    );
    assert_eq!(
        value(
            &body,
            &format!(r#"mq_tasks_finished_total{{outcome="success",{q}}}"#)
        ),
        Some(1_010.0)
    );
    assert_eq!(
        value(
            &body,
            &format!(r#"mq_tasks_finished_total{{outcome="retry",{q}}}"#)
        ),
        Some(10.0)
    );
    assert_eq!(
        value(
            &body,
            &format!(r#"mq_tasks_finished_total{{outcome="dead",{q}}}"#)
        ),
        Some(5.0)
    );
    assert_eq!(
        value(&body, &format!("mq_task_duration_seconds_count{{{q}}}")),
        Some(1_025.0)
    );
    assert_eq!(
        value(&body, r#"mq_task_wait_seconds_count{queue="metered"}"#),
        Some(1_025.0)
    );
    assert_eq!(
        value(&body, r#"mq_concurrency_limit{queue="metered"}"#),
        Some(16.0)
    );
    assert_eq!(
        value(&body, r#"mq_tasks_in_flight{queue="metered"}"#),
        Some(0.0)
    );
    // Gauges are sampled every 5 s: wait for a sample that sees the dead letters.
    wait_until(Duration::from_secs(15), "sampled gauges", || {
        let m = metrics.clone();
        async move {
            let body = m.render();
            value(&body, r#"mq_dead_letter_size{queue="metered"}"#) == Some(5.0)
                && value(&body, "mq_workers") == Some(1.0)
        }
    })
    .await;
    let (status, body) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
    running.stop().await;
}

/// A unique task in a queue of 2 partitions, kept an hour after success so re-enqueues are
/// duplicates.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "dups",
    partitions = 2,
    partition_by = "key",
    unique = "key",
    unique_for = "1h"
)]
struct Deduped {
    key: u32,
}

/// `mq_unique_duplicates_refused` mirrors the Redis counters of refused duplicates, summed
/// over the partitions of a partitioned queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_refused_gauge_sums_the_partitions_counters() {
    let server = redis();
    let worker = Worker::builder(&server.url())
        .handle::<Deduped, _>(|_: Deduped, _: TaskContext| async { Ok(()) })
        .build()
        .await
        .unwrap();
    let metrics = worker.metrics();
    let running = run_worker(worker);
    let producer = Producer::connect(&server.url()).await.unwrap();
    for round in 0..2 {
        for key in 0..8 {
            let outcome = producer.submit(Deduped { key }).await.unwrap();
            assert_eq!(outcome.is_duplicate(), round == 1, "key {key}");
        }
    }
    // Both partitions refused some: the gauge is a sum, not one partition's counter.
    let mut c = mq_tests::conn(&server).await;
    for i in 0..2 {
        let n: Option<u64> = redis::cmd("GET")
            .arg(format!("mq:{{dups#{i}}}:duplicates"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(n.is_some_and(|n| n > 0), "partition {i} refused none");
    }
    wait_until(Duration::from_secs(15), "the gauge sampled", || {
        let m = metrics.clone();
        async move { value(&m.render(), r#"mq_unique_duplicates_refused{queue="dups"}"#) == Some(8.0) }
    })
    .await;
    running.stop().await;
}
