//! Pause and resume against a real Redis: after `Admin::pause` no task of the queue starts
//! later than 1 s after it on any worker (handlers record their start times), producers keep
//! enqueueing and delayed tasks keep moving to the stream meanwhile; after `resume` every task
//! runs exactly once. A partitioned queue pauses as a whole, and a worker started on a paused
//! queue starts nothing.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use mq_core::{Admin, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{run_worker, server, wait_until, RunningWorker};
use serde::{Deserialize, Serialize};

/// Longest wait for anything in these tests: 60 s.
const WAIT: Duration = Duration::from_secs(60);
/// The promise: nothing starts later than this after `pause` returned.
const BOUND: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "pausing", max_retries = 0)]
struct Job {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "pausing-hot", partitions = 4, max_retries = 0)]
struct Hot {
    n: u64,
}

/// Start time of every task run, by task number.
type Starts = Arc<Mutex<Vec<(u64, Instant)>>>;

fn record(starts: &Starts, n: u64) {
    starts.lock().unwrap().push((n, Instant::now()));
}

async fn job_worker(url: &str, starts: &Starts) -> RunningWorker {
    let starts = starts.clone();
    let worker = Worker::builder(url)
        .concurrency(4)
        .handle::<Job, _>(move |t: Job, _ctx: TaskContext| {
            let starts = starts.clone();
            async move {
                record(&starts, t.n);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    run_worker(worker)
}

async fn hot_worker(url: &str, starts: &Starts) -> RunningWorker {
    let starts = starts.clone();
    let worker = Worker::builder(url)
        .concurrency(8)
        .handle::<Hot, _>(move |t: Hot, _ctx: TaskContext| {
            let starts = starts.clone();
            async move {
                record(&starts, t.n);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    run_worker(worker)
}

/// Tasks that started later than [`BOUND`] after `paused_at`.
fn late(starts: &Starts, paused_at: Instant) -> Vec<(u64, Duration)> {
    starts
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t > paused_at + BOUND)
        .map(|(n, t)| (*n, *t - paused_at))
        .collect()
}

/// Asserts that tasks `0..total` each started exactly once.
fn each_once(starts: &Starts, total: u64) {
    let mut count: HashMap<u64, u32> = HashMap::new();
    for (n, _) in starts.lock().unwrap().iter() {
        *count.entry(*n).or_default() += 1;
    }
    let missing: Vec<u64> = (0..total).filter(|n| !count.contains_key(n)).collect();
    let twice: Vec<(&u64, &u32)> = count.iter().filter(|(_, c)| **c != 1).collect();
    assert!(missing.is_empty(), "tasks never ran: {missing:?}");
    assert!(twice.is_empty(), "tasks ran more than once: {twice:?}");
    assert_eq!(
        count.len() as u64,
        total,
        "tasks that were never enqueued ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_queue_starts_nothing_after_a_second_and_resume_runs_everything_once() {
    let server = server();
    let url = server.url();
    let admin = Admin::connect(&url).await.unwrap();
    let starts: Starts = Arc::default();
    // Two workers, as two hosts would be.
    let workers = [
        job_worker(&url, &starts).await,
        job_worker(&url, &starts).await,
    ];

    // A producer that keeps enqueueing, paused or not.
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = Producer::connect(&url).await.unwrap();
    let feeding = {
        let (next, stop, producer) = (next.clone(), stop.clone(), producer.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let first = next.fetch_add(10, Ordering::SeqCst);
                producer
                    .enqueue_many((first..first + 10).map(|n| Job { n }))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    wait_until(WAIT, "tasks running before the pause", || {
        let starts = starts.clone();
        async move { starts.lock().unwrap().len() >= 50 }
    })
    .await;

    let paused_at = Instant::now();
    admin.pause("pausing").await.unwrap();
    assert!(admin.is_paused("pausing").await.unwrap());
    // Delayed tasks are still promoted while paused: they wait in the stream.
    let first_delayed = next.fetch_add(20, Ordering::SeqCst);
    for n in first_delayed..first_delayed + 20 {
        producer
            .enqueue_in(Duration::from_millis(300), Job { n })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = admin.stats("pausing").await.unwrap();
    assert!(early.paused, "stats show the pause: {early:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = admin.stats("pausing").await.unwrap();
    assert!(
        later.backlog > early.backlog,
        "producers still enqueue while paused: backlog {} then {}",
        early.backlog,
        later.backlog
    );
    assert_eq!(later.delayed, 0, "delayed tasks were promoted: {later:?}");
    let late_starts = late(&starts, paused_at);
    assert!(
        late_starts.is_empty(),
        "{} tasks started more than {BOUND:?} after the pause (task, after): {:?}",
        late_starts.len(),
        &late_starts[..late_starts.len().min(10)]
    );

    stop.store(true, Ordering::SeqCst);
    feeding.await.unwrap();
    let total = next.load(Ordering::SeqCst);
    admin.resume("pausing").await.unwrap();
    assert!(!admin.is_paused("pausing").await.unwrap());
    wait_until(WAIT, "every task run after the resume", || {
        let (starts, admin) = (starts.clone(), admin.clone());
        async move {
            starts.lock().unwrap().len() as u64 >= total
                && admin.stats("pausing").await.unwrap().is_idle()
        }
    })
    .await;
    for w in workers {
        w.stop().await;
    }
    each_once(&starts, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_a_partitioned_queue_pauses_every_partition_and_new_workers() {
    let server = server();
    let url = server.url();
    let admin = Admin::connect(&url).await.unwrap();
    let producer = Producer::connect(&url).await.unwrap();
    let starts: Starts = Arc::default();
    let first = hot_worker(&url, &starts).await;
    producer
        .enqueue_many((0..100).map(|n| Hot { n }))
        .await
        .unwrap();
    wait_until(WAIT, "the first 100 tasks run", || {
        let starts = starts.clone();
        async move { starts.lock().unwrap().len() >= 100 }
    })
    .await;
    assert_eq!(admin.partitions("pausing-hot").await.unwrap().len(), 4);
    assert!(
        admin.pause("pausing-hot#1").await.is_err(),
        "a partition alone cannot be paused"
    );

    let paused_at = Instant::now();
    admin.pause("pausing-hot").await.unwrap();
    for p in admin.partitions("pausing-hot").await.unwrap() {
        assert!(admin.is_paused(&p).await.unwrap(), "{p} is paused");
    }
    // Let the pause reach the worker, then enqueue on every partition (round-robin) and start
    // a second worker: neither runs anything.
    tokio::time::sleep(BOUND).await;
    producer
        .enqueue_many((100..300).map(|n| Hot { n }))
        .await
        .unwrap();
    let second = hot_worker(&url, &starts).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late_starts = late(&starts, paused_at);
    assert!(
        late_starts.is_empty(),
        "{} tasks started more than {BOUND:?} after the pause (task, after): {:?}",
        late_starts.len(),
        &late_starts[..late_starts.len().min(10)]
    );
    let stats = admin.stats("pausing-hot").await.unwrap();
    assert!(stats.paused, "{stats:?}");
    assert_eq!(stats.length, 200, "every new task waits: {stats:?}");
    for p in admin.partitions("pausing-hot").await.unwrap() {
        let s = admin.stats(&p).await.unwrap();
        assert!(s.paused && s.length == 50, "{p}: {s:?}");
    }

    admin.resume("pausing-hot").await.unwrap();
    wait_until(WAIT, "every task run after the resume", || {
        let (starts, admin) = (starts.clone(), admin.clone());
        async move {
            starts.lock().unwrap().len() >= 300
                && admin.stats("pausing-hot").await.unwrap().is_idle()
        }
    })
    .await;
    first.stop().await;
    second.stop().await;
    each_once(&starts, 300);
}
