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

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "bounds", max_retries = 2, backoff = "fixed(50ms)")]
struct Bounded {
    n: u32,
}

/// Runs `worker` until the `bounds` queue has nothing left (at most 30 s) and returns the
/// sizes of the batches the handler saw.
async fn drain_bounds(server: &mq_examples::LocalRedis, max_size: usize, max_wait: Duration) {
    let producer = Producer::connect(&server.url()).await.unwrap();
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = sizes.clone();
    let handler = move |tasks: Vec<(Bounded, TaskContext)>| {
        s.lock().unwrap().push(tasks.len());
        let n = tasks.len();
        async move { (0..n).map(|_| Ok(())).collect::<Vec<_>>() }
    };
    let worker = Worker::builder(&server.url())
        .concurrency(64)
        .handle::<Bounded, _>(batch(max_size, max_wait, handler))
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue_many((0..8).map(|n| Bounded { n }))
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    wait_until(Duration::from_secs(30), "8 tasks settled", || {
        let admin = admin.clone();
        async move {
            admin
                .stats("bounds")
                .await
                .map(|s| s.length + s.delayed == 0)
                .unwrap_or(false)
        }
    })
    .await;
    running.stop().await;
    let stats = admin.stats("bounds").await.unwrap();
    assert_eq!(
        (stats.pending, stats.dead),
        (0, 0),
        "every task handled, none dead-lettered; batches: {:?}",
        sizes.lock().unwrap()
    );
    assert_eq!(sizes.lock().unwrap().iter().sum::<usize>(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_max_size_does_not_preallocate() {
    // Before: `batch` sized its channel and every batch's Vec by max_size (overflow/OOM).
    let server = redis();
    drain_bounds(&server, usize::MAX, Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_wait_of_duration_max_waits_for_a_full_batch() {
    // Before: `now + Duration::MAX` panicked the collector; every task was retried, then
    // dead-lettered. Now it means "wait until the batch is full" (8 tasks, max_size 8).
    let server = redis();
    drain_bounds(&server, 8, Duration::MAX).await;
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "slow",
    max_retries = 2,
    timeout = "200ms",
    backoff = "fixed(50ms)"
)]
struct Slow {
    n: u32,
}

/// Counts the copies of each task running right now, and the most ever seen at once.
#[derive(Default)]
struct Running {
    now: std::collections::HashMap<String, u32>,
    max: u32,
}

/// Marks one task as running until dropped (also when its batch is cancelled).
struct RunGuard(Arc<Mutex<Running>>, String);

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(n) = self.0.lock().unwrap().now.get_mut(&self.1) {
            *n -= 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_batch_task_never_runs_twice_at_once() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let running: Arc<Mutex<Running>> = Arc::default();
    let r = running.clone();
    let handler = move |tasks: Vec<(Slow, TaskContext)>| {
        let r = r.clone();
        async move {
            let _guards: Vec<RunGuard> = tasks
                .iter()
                .map(|(_, ctx)| {
                    let mut state = r.lock().unwrap();
                    let n = state.now.entry(ctx.id().to_owned()).or_default();
                    *n += 1;
                    let n = *n;
                    state.max = state.max.max(n);
                    RunGuard(r.clone(), ctx.id().to_owned())
                })
                .collect();
            // Far beyond the 200 ms timeout of each task.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            tasks.iter().map(|_| Ok(())).collect::<Vec<_>>()
        }
    };
    let worker = Worker::builder(&server.url())
        .concurrency(64)
        .promote_interval(Duration::from_millis(20))
        .handle::<Slow, _>(batch(4, Duration::from_millis(20), handler))
        .build()
        .await
        .unwrap();
    let worker_run = run_worker(worker);
    producer
        .enqueue_many((0..4).map(|n| Slow { n }))
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    // Three attempts of 200 ms each: every task ends in the dead-letter stream.
    wait_until(Duration::from_secs(30), "4 tasks dead-lettered", || {
        let admin = admin.clone();
        async move {
            admin
                .stats("slow")
                .await
                .map(|s| s.dead == 4)
                .unwrap_or(false)
        }
    })
    .await;
    // Let any batch still running finish before looking.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    worker_run.stop().await;
    let state = running.lock().unwrap();
    assert_eq!(state.now.len(), 4, "every task ran: {:?}", state.now);
    assert!(
        state.now.values().all(|n| *n == 0),
        "nothing still running: {:?}",
        state.now
    );
    assert_eq!(
        state.max, 1,
        "a timed-out task ran again while its batch still worked on it"
    );
}
