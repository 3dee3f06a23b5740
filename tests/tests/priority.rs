//! Priorities against a real Redis: with a backlog at every level a strict worker starts the
//! High tasks first, then Normal, then Low; a weighted worker starts them in proportion to
//! its weights; a retried task stays in its level's keys; a plain queue has no level keys and
//! refuses other levels; queues in `queue_order` run strictly in that order.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{Admin, Error, Priority, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, run_worker, server, wait_until};
use serde::{Deserialize, Serialize};

/// Longest wait for anything in these tests: 60 s.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-strict", priority = "normal", max_retries = 0)]
struct Strict {
    /// The level's index in `Priority::ALL`.
    level: usize,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-weighted", priority = "normal", max_retries = 0)]
struct Weighted {
    /// The level's index in `Priority::ALL`.
    level: usize,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-retry", priority = "high", max_retries = 1)]
struct Flaky;

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-plain", max_retries = 0)]
struct Plain;

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-first", max_retries = 0)]
struct First;

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-second", max_retries = 0)]
struct Second;

type Starts = Arc<Mutex<Vec<Priority>>>;

/// Enqueues `n` tasks at each level, highest level last (so enqueue order cannot explain the
/// start order).
async fn backlog<T: Task>(url: &str, n: usize, task: impl Fn(Priority) -> T) {
    let producer = Producer::connect(url).await.unwrap();
    for level in [Priority::Low, Priority::Normal, Priority::High] {
        producer
            .clone()
            .with_priority(level)
            .enqueue_many((0..n).map(|_| task(level)))
            .await
            .unwrap();
    }
}

/// Runs a worker from `builder` whose handler of `T` records each task's level (`level`) and
/// then waits `pause`, until `until` tasks started; the levels in start order.
async fn level_starts<T>(
    builder: mq_core::WorkerBuilder,
    level: fn(&T) -> usize,
    pause: Duration,
    until: usize,
) -> Vec<Priority>
where
    T: Task + serde::de::DeserializeOwned + Send + 'static,
{
    let starts: Starts = Arc::default();
    let s = starts.clone();
    let worker = builder
        .handle::<T, _>(move |t: T, _ctx: TaskContext| {
            let s = s.clone();
            let l = Priority::ALL[level(&t)];
            async move {
                s.lock().unwrap().push(l);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "the starts", || {
        let done = starts.lock().unwrap().len() >= until;
        async move { done }
    })
    .await;
    running.stop().await;
    let starts = starts.lock().unwrap().clone();
    starts
}

fn count(starts: &[Priority], level: Priority) -> usize {
    starts.iter().filter(|l| **l == level).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_levels_start_every_high_task_first_then_normal_then_low() {
    let server = server();
    let url = server.url();
    const N: usize = 300;
    backlog(&url, N, |level| Strict {
        level: level.index(),
    })
    .await;
    // Admin counts every level of the queue, and each alone by its level's name.
    let admin = Admin::connect(&url).await.unwrap();
    assert_eq!(
        admin.stats(Strict::QUEUE).await.unwrap().backlog,
        3 * N as u64
    );
    for level in admin.levels(Strict::QUEUE).await.unwrap() {
        let s = admin.stats(&level).await.unwrap();
        assert_eq!((s.queue.as_str(), s.backlog), (level.as_str(), N as u64));
    }
    let starts = level_starts::<Strict>(
        Worker::builder(&url).concurrency(4),
        |t| t.level,
        Duration::ZERO,
        3 * N,
    )
    .await;
    assert_eq!(starts.len(), 3 * N);
    let first: Vec<Priority> = starts[..100].to_vec();
    assert!(
        first.iter().all(|l| *l == Priority::High),
        "the first 100 starts were not all High: {} High, {} Normal, {} Low",
        count(&first, Priority::High),
        count(&first, Priority::Normal),
        count(&first, Priority::Low),
    );
    // Every level before the next: the starts are sorted by level, up to the few tasks of
    // one dispatch whose handlers the runtime happened to poll in another order (the
    // concurrency, 4, at most, at each boundary).
    let (high, normal, low) = (
        &starts[..N - 4],
        &starts[N + 4..2 * N - 4],
        &starts[2 * N + 4..],
    );
    assert!(
        high.iter().all(|l| *l == Priority::High),
        "High mixed with others: {starts:?}"
    );
    assert!(
        normal.iter().all(|l| *l == Priority::Normal),
        "Normal mixed with others: {starts:?}"
    );
    assert!(
        low.iter().all(|l| *l == Priority::Low),
        "Low mixed with others: {starts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_levels_start_tasks_in_proportion_to_their_weights() {
    let server = server();
    let url = server.url();
    const N: usize = 1000;
    backlog(&url, N, |level| Weighted {
        level: level.index(),
    })
    .await;
    const FIRST: usize = 1000;
    let starts = level_starts::<Weighted>(
        Worker::builder(&url)
            .concurrency(2)
            .priority_weights(Weighted::QUEUE, [6, 3, 1]),
        |t| t.level,
        Duration::from_millis(2),
        FIRST,
    )
    .await;
    let starts = starts[..FIRST].to_vec();
    for (level, weight) in [
        (Priority::High, 6.0),
        (Priority::Normal, 3.0),
        (Priority::Low, 1.0),
    ] {
        let want = FIRST as f64 * weight / 10.0;
        let got = count(&starts, level) as f64;
        assert!(
            (got - want).abs() <= want * 0.1,
            "{level}: {got} of the first {FIRST} starts, want {want} ± 10 %"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_task_stays_in_its_level() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    // The type's default level: High.
    producer.enqueue(Flaky).await.unwrap();
    let k = producer.keys::<Flaky>();
    assert_eq!(k.stream, "mq:{prio-retry}:stream:high");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let a = attempts.clone();
    let worker = Worker::builder(&url)
        .handle::<Flaky, _>(move |_t: Flaky, ctx: TaskContext| {
            let a = a.clone();
            async move {
                a.lock().unwrap().push(ctx.attempt());
                if ctx.attempt() == 0 {
                    return Err(TaskError::retry_after(Duration::from_secs(2), "once"));
                }
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "the first attempt", || {
        let n = attempts.lock().unwrap().len();
        async move { n >= 1 }
    })
    .await;
    // Waiting for its retry in the High level's delayed set, not the plain one.
    let plain = k.level(Priority::Normal);
    wait_until(WAIT, "the retry in delayed:high", || {
        let mut c = c.clone();
        let (high, normal) = (k.delayed.clone(), plain.delayed.clone());
        async move {
            let h: usize = redis::cmd("ZCARD")
                .arg(&high)
                .query_async(&mut c)
                .await
                .unwrap();
            let n: usize = redis::cmd("ZCARD")
                .arg(&normal)
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(n, 0, "a High task's retry went to the plain delayed set");
            h == 1
        }
    })
    .await;
    wait_until(WAIT, "the second attempt", || {
        let n = attempts.lock().unwrap().len();
        async move { n >= 2 }
    })
    .await;
    running.stop().await;
    assert_eq!(*attempts.lock().unwrap(), vec![0, 1]);
    let plain_len: usize = redis::cmd("XLEN")
        .arg(&plain.stream)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(plain_len, 0);
    let admin = Admin::connect(&url).await.unwrap();
    assert_eq!(
        admin.levels("prio-retry").await.unwrap(),
        ["prio-retry@high", "prio-retry@normal", "prio-retry@low"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_queue_has_no_level_keys_and_refuses_other_levels() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    match producer
        .clone()
        .with_priority(Priority::High)
        .enqueue(Plain)
        .await
    {
        Err(Error::NotPrioritized { priority, .. }) => assert_eq!(priority, Priority::High),
        other => panic!("enqueued a plain task at High: {other:?}"),
    }
    // Normal is the plain queue itself.
    producer
        .clone()
        .with_priority(Priority::Normal)
        .enqueue(Plain)
        .await
        .unwrap();
    producer.enqueue(Plain).await.unwrap();
    let worker = Worker::builder(&url)
        .handle::<Plain, _>(|_t: Plain, _ctx: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    worker.run_until_idle().await.unwrap();
    let k = producer.keys::<Plain>();
    assert_eq!(k.stream, "mq:{prio-plain}:stream");
    for level in [Priority::High, Priority::Low] {
        let l = k.level(level);
        let found: usize = redis::cmd("EXISTS")
            .arg(&l.stream)
            .arg(&l.delayed)
            .arg(&l.dead)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(found, 0, "a plain queue has {level} keys");
    }
    let admin = Admin::connect(&url).await.unwrap();
    assert!(admin.levels("prio-plain").await.unwrap().is_empty());
    let stats = admin.stats("prio-plain").await.unwrap();
    assert!(stats.is_idle(), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_order_starts_the_first_queue_before_the_second() {
    let server = server();
    let url = server.url();
    const N: usize = 200;
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many((0..N).map(|_| Second)).await.unwrap();
    producer.enqueue_many((0..N).map(|_| First)).await.unwrap();
    let starts: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (s1, s2) = (starts.clone(), starts.clone());
    let worker = Worker::builder(&url)
        .concurrency(4)
        .queue_order(&[First::QUEUE, Second::QUEUE])
        .handle::<First, _>(move |_t: First, _ctx: TaskContext| {
            let s = s1.clone();
            async move {
                s.lock().unwrap().push("first");
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Second, _>(move |_t: Second, _ctx: TaskContext| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push("second");
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "every task started", || {
        let done = starts.lock().unwrap().len() >= 2 * N;
        async move { done }
    })
    .await;
    running.stop().await;
    let starts = starts.lock().unwrap().clone();
    let firsts = starts[..N - 4].iter().filter(|q| **q == "first").count();
    assert_eq!(
        firsts,
        N - 4,
        "the second queue started before the first drained: {starts:?}"
    );
}

/// Cancelling finds a task in any level: a queued High task and a delayed Low one are removed
/// and never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_finds_tasks_in_every_level() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let high = producer
        .clone()
        .with_priority(Priority::High)
        .enqueue(Strict { level: 0 })
        .await
        .unwrap();
    let low = producer
        .clone()
        .with_priority(Priority::Low)
        .enqueue_in(Duration::from_secs(3600), Strict { level: 2 })
        .await
        .unwrap();
    assert_eq!(
        producer.cancel("prio-strict", &high).await.unwrap(),
        mq_core::CancelOutcome::Queued
    );
    assert_eq!(
        producer.cancel("prio-strict", &low).await.unwrap(),
        mq_core::CancelOutcome::Delayed
    );
    let stats = Admin::connect(&url)
        .await
        .unwrap()
        .stats("prio-strict")
        .await
        .unwrap();
    assert_eq!((stats.length, stats.delayed), (0, 0), "{stats:?}");
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-limited", priority = "normal", max_retries = 0)]
struct Limited;

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "prio-after", max_retries = 0)]
struct After;

/// A first queue held at its own `queue_concurrency` cannot use the worker's other permits:
/// while it waits for its own limit, the queues after it use them (and it goes first again as
/// soon as one of its permits frees). Its lower level, held back by its higher one and by the
/// same limit, holds back no other queue either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_order_lets_later_queues_use_what_a_limited_first_queue_cannot() {
    let server = server();
    let url = server.url();
    const SLOW: usize = 10;
    const FAST: usize = 50;
    let producer = Producer::connect(&url).await.unwrap();
    for level in [Priority::High, Priority::Normal] {
        producer
            .clone()
            .with_priority(level)
            .enqueue_many((0..SLOW / 2).map(|_| Limited))
            .await
            .unwrap();
    }
    producer
        .enqueue_many((0..FAST).map(|_| After))
        .await
        .unwrap();
    let starts: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (s1, s2) = (starts.clone(), starts.clone());
    let worker = Worker::builder(&url)
        .concurrency(16)
        .queue_concurrency(Limited::QUEUE, 2)
        .queue_order(&[Limited::QUEUE, After::QUEUE])
        .handle::<Limited, _>(move |_t: Limited, _ctx: TaskContext| {
            let s = s1.clone();
            async move {
                s.lock().unwrap().push("limited");
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, TaskError>(())
            }
        })
        .handle::<After, _>(move |_t: After, _ctx: TaskContext| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push("after");
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "every task started", || {
        let done = starts.lock().unwrap().len() >= SLOW + FAST;
        async move { done }
    })
    .await;
    running.stop().await;
    let starts = starts.lock().unwrap().clone();
    // The limited queue takes 5 rounds of 200 ms; the other queue's tasks start in the first.
    let last_after = starts.iter().rposition(|q| *q == "after").unwrap();
    let limited_before = starts[..last_after]
        .iter()
        .filter(|q| **q == "limited")
        .count();
    assert!(
        limited_before <= 4,
        "the second queue waited for the limited first queue's backlog: {starts:?}"
    );
}

/// Levels share their queue's limit: a higher level waiting at that limit still holds back
/// the lower ones (only other queues may use what the queue cannot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_levels_stay_in_order_at_the_queue_limit() {
    let server = server();
    let url = server.url();
    const N: usize = 40;
    backlog(&url, N, |level| Strict {
        level: level.index(),
    })
    .await;
    let starts = level_starts::<Strict>(
        Worker::builder(&url)
            .concurrency(16)
            .queue_concurrency(Strict::QUEUE, 2),
        |t| t.level,
        Duration::from_millis(5),
        3 * N,
    )
    .await;
    let mut sorted = starts.clone();
    sorted.sort_by_key(|l| l.index());
    assert_eq!(starts, sorted, "levels mixed at the queue limit");
}
