//! Delayed tasks and retries start at their due time, not on a polling tick: promoters sleep
//! until the earliest due time and are woken over Pub/Sub when an earlier one is scheduled.
//! Also `enqueue_many_in`/`_at`, `Worker::run_until_idle` and a graceful worker leaving its
//! consumer group. Timing bounds here are generous (seconds against a 30 s polling interval);
//! the precision itself is measured by `delay-bench`.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, redis, run_worker, wait_until, xlen};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(20);
/// Far longer than any bound below: without wake-ups a promoter would look only this often.
const NO_POLLING: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "delays", max_retries = 1)]
struct Tick {
    n: u64,
    fail_once: bool,
}

fn keys() -> QueueKeys {
    QueueKeys::new("mq", "delays")
}

/// A worker recording when each task number started.
async fn worker(url: &str) -> (Worker, Arc<Mutex<Vec<(u64, Instant)>>>) {
    let started: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let s = started.clone();
    let w = Worker::builder(url)
        .promote_interval(NO_POLLING)
        .handle::<Tick, _>(move |t: Tick, ctx: TaskContext| {
            let s = s.clone();
            async move {
                if t.fail_once && ctx.attempt() == 0 {
                    return Err(TaskError::retry_after(
                        Duration::from_millis(100),
                        "fail once",
                    ));
                }
                s.lock().unwrap().push((t.n, Instant::now()));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    (w, started)
}

fn ran(started: &Mutex<Vec<(u64, Instant)>>, n: u64) -> Option<Instant> {
    started
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| *m == n)
        .map(|(_, t)| *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_delayed_task_wakes_the_promoter() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let (w, started) = worker(&server.url()).await;
    let running = run_worker(w);
    // Let the promoter find the set empty and go to sleep for its long interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tick = |n| Tick {
        n,
        fail_once: false,
    };
    producer
        .enqueue_in(Duration::from_secs(20), tick(1))
        .await
        .unwrap();
    let t0 = Instant::now();
    producer
        .enqueue_in(Duration::from_millis(200), tick(2))
        .await
        .unwrap();
    let s = started.clone();
    wait_until(Duration::from_secs(5), "the 200 ms task ran", || {
        let s = s.clone();
        async move { ran(&s, 2).is_some() }
    })
    .await;
    let late = ran(&started, 2).unwrap() - t0;
    eprintln!("200 ms task started after {late:?}");
    assert!(late >= Duration::from_millis(190), "not early: {late:?}");
    assert!(ran(&started, 1).is_none(), "the 20 s task waits");
    // enqueue_at wakes it the same way.
    let t0 = Instant::now();
    producer
        .enqueue_at(SystemTime::now() + Duration::from_millis(300), tick(3))
        .await
        .unwrap();
    let s = started.clone();
    wait_until(Duration::from_secs(5), "the enqueue_at task ran", || {
        let s = s.clone();
        async move { ran(&s, 3).is_some() }
    })
    .await;
    eprintln!(
        "300 ms enqueue_at task started after {:?}",
        ran(&started, 3).unwrap() - t0
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_runs_after_its_delay_not_a_polling_tick() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let (w, started) = worker(&server.url()).await;
    let running = run_worker(w);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    producer
        .enqueue(Tick {
            n: 7,
            fail_once: true,
        })
        .await
        .unwrap();
    let s = started.clone();
    wait_until(Duration::from_secs(5), "the retry ran", || {
        let s = s.clone();
        async move { ran(&s, 7).is_some() }
    })
    .await;
    let late = ran(&started, 7).unwrap() - t0;
    eprintln!("retry after 100 ms started {late:?} after the enqueue");
    assert!(late >= Duration::from_millis(95), "{late:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_many_in_and_at_schedule_every_task() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let tick = |n| Tick {
        n,
        fail_once: false,
    };
    let ids = producer
        .enqueue_many_in(Duration::from_millis(300), (0..2_500).map(tick))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2_500);
    let at = SystemTime::now() + Duration::from_millis(400);
    let more = producer
        .enqueue_many_at(at, (2_500..3_000).map(tick))
        .await
        .unwrap();
    assert_eq!(more.len(), 500);
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(keys().delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(delayed, 3_000, "all waiting, none run early");
    let (w, started) = worker(&server.url()).await;
    let running = run_worker(w);
    let s = started.clone();
    wait_until(WAIT, "all 3,000 ran", || {
        let s = s.clone();
        async move { s.lock().unwrap().len() == 3_000 }
    })
    .await;
    running.stop().await;
    let mut seen: Vec<u64> = started.lock().unwrap().iter().map(|(n, _)| *n).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 3_000, "each exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_idle_returns_once_everything_is_done() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let tick = |n, fail_once| Tick { n, fail_once };
    producer
        .enqueue_many((0..50).map(|n| tick(n, false)))
        .await
        .unwrap();
    producer
        .enqueue_many_in(Duration::from_millis(400), (50..55).map(|n| tick(n, false)))
        .await
        .unwrap();
    producer.enqueue(tick(55, true)).await.unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let w = Worker::builder(&server.url())
        .handle(move |t: Tick, ctx: TaskContext| {
            let d = d.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if t.fail_once && ctx.attempt() == 0 {
                    return Err(TaskError::retry_after(Duration::from_millis(300), "once"));
                }
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, w.run_until_idle())
        .await
        .expect("stops by itself")
        .expect("clean stop");
    assert_eq!(done.load(Ordering::SeqCst), 56, "every task finished first");
    assert_eq!(xlen(&mut c, &keys().stream).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gracefully_stopped_worker_leaves_the_group() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    for n in 0..3 {
        // A consumer exists once something was delivered to it: each worker handles a task.
        let (w, started) = worker(&server.url()).await;
        let running = run_worker(w);
        producer
            .enqueue(Tick {
                n,
                fail_once: false,
            })
            .await
            .unwrap();
        wait_until(WAIT, "the task ran", || {
            let s = started.clone();
            async move { ran(&s, n).is_some() }
        })
        .await;
        running.stop().await;
    }
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(keys().stream)
        .arg("mq")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        consumers.is_empty(),
        "no consumer left behind: {consumers:?}"
    );
}
