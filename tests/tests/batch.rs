//! Batch handlers against a real redis-server: batch sizes, partial batches after max_wait,
//! and per-task outcomes inside a batch.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mq_core::{admin::Admin, batch, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{redis, run_worker, wait_until};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "batch", max_retries = 2, backoff = "fixed(50ms)")]
struct Item {
    n: u32,
}

/// What the handler saw: for each batch, when it arrived and (n, attempt) of its tasks.
type Calls = Arc<Mutex<Vec<(Instant, Vec<(u32, u32)>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_respect_max_size_and_max_wait_and_outcomes_are_per_task() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let handler = move |tasks: Vec<(Item, TaskContext)>| {
        let c = c.clone();
        async move {
            let seen: Vec<(u32, u32)> = tasks.iter().map(|(t, ctx)| (t.n, ctx.attempt())).collect();
            c.lock().unwrap().push((Instant::now(), seen.clone()));
            seen.into_iter()
                .map(|(n, attempt)| {
                    if n == 13 && attempt == 0 {
                        Err(TaskError::retry("thirteen fails once"))
                    } else {
                        Ok(())
                    }
                })
                .collect::<Vec<_>>()
        }
    };
    let worker = Worker::builder(&server.url())
        .concurrency(64)
        .handle::<Item, _>(batch(8, Duration::from_millis(300), handler))
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);

    producer
        .enqueue_many((0..50).map(|n| Item { n }))
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    wait_until(Duration::from_secs(30), "50 tasks done", || {
        let admin = admin.clone();
        async move {
            admin
                .stats("batch")
                .await
                .map(|s| s.length + s.delayed == 0)
                .unwrap_or(false)
        }
    })
    .await;
    let first_phase = calls.lock().unwrap().len();

    // Three tasks trickling in: they wait max_wait for company, then run as one partial batch.
    let sent = Instant::now();
    for n in 100..103 {
        producer.enqueue(Item { n }).await.unwrap();
    }
    wait_until(Duration::from_secs(30), "partial batch", || {
        let calls = calls.clone();
        async move {
            calls
                .lock()
                .unwrap()
                .iter()
                .any(|(_, b)| b.iter().any(|(n, _)| *n >= 100))
        }
    })
    .await;
    running.stop().await;

    let calls = calls.lock().unwrap().clone();
    assert!(
        calls.iter().all(|(_, b)| b.len() <= 8),
        "max_size 8: {calls:?}"
    );
    assert!(
        calls[..first_phase].iter().any(|(_, b)| b.len() == 8),
        "full batches formed"
    );
    let (at, partial) = calls
        .iter()
        .find(|(_, b)| b.iter().any(|(n, _)| *n >= 100))
        .unwrap();
    assert_eq!(
        partial.len(),
        3,
        "the trickle formed one partial batch: {partial:?}"
    );
    assert!(
        *at - sent >= Duration::from_millis(250),
        "partial batch waited for max_wait"
    );

    // Thirteen ran twice (failed, then retried alone); its batch-mates ran once.
    let runs: Vec<(u32, u32)> = calls.iter().flat_map(|(_, b)| b.clone()).collect();
    let thirteen: Vec<_> = runs.iter().filter(|(n, _)| *n == 13).collect();
    assert_eq!(thirteen, vec![&(13, 0), &(13, 1)]);
    for n in (0..50).chain(100..103).filter(|n| *n != 13) {
        assert_eq!(
            runs.iter().filter(|(m, _)| *m == n).count(),
            1,
            "task {n} ran once"
        );
    }
    // Only the failed task was retried: its batch-mates (checked above to run once) were acked.
    let failed_batch = calls.iter().find(|(_, b)| b.contains(&(13, 0))).unwrap();
    assert!(
        failed_batch.1.len() > 1,
        "13 failed inside a real batch: {failed_batch:?}"
    );
    let stats = admin.stats("batch").await.unwrap();
    assert_eq!(
        (stats.length, stats.pending, stats.delayed, stats.dead),
        (0, 0, 0, 0)
    );
}
