//! Rate limits and snooze against a real redis-server: a task type's rate holds across two
//! worker processes, each rate key runs at its own rate, and neither a task delayed by its
//! rate limit nor a snoozed one counts as an attempt.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{redis::keys::QueueKeys, Producer, Rate, Task, TaskContext, TaskError, TaskOptions};
use mq_examples::flow::{account_starts, Limited, PerAccount, LIMITED_STARTS};
use mq_tests::{conn, example_bin, run_worker, server, wait_until, xlen, ChildGuard, Conn};
use serde::{Deserialize, Serialize};

/// The start times (unix µs) recorded in list `key`, sorted.
/// The timing tests of this file run one at a time: each measures start times of worker
/// processes, and two of them side by side on a small machine would measure each other.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn starts(conn: &mut Conn, key: &str) -> Vec<u64> {
    let mut v: Vec<u64> = redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    v.sort_unstable();
    v
}

async fn llen(conn: &mut Conn, key: &str) -> usize {
    redis::cmd("LLEN").arg(key).query_async(conn).await.unwrap()
}

/// Starts per second from the first start to the last.
fn rate(starts: &[u64]) -> f64 {
    let span = (starts[starts.len() - 1] - starts[0]) as f64 / 1e6;
    (starts.len() - 1) as f64 / span
}

/// The most starts in any window of `window_us` (windows beginning at each start).
fn max_in_window(starts: &[u64], window_us: u64) -> usize {
    max_in_window_after(starts, window_us, 0)
}

/// The most starts in any window of `window_us` beginning at a start at least `skip_us` after
/// the first.
fn max_in_window_after(starts: &[u64], window_us: u64, skip_us: u64) -> usize {
    let mut max = 0;
    let mut j = 0;
    for i in 0..starts.len() {
        if starts[i] < starts[0] + skip_us {
            continue;
        }
        while j < starts.len() && starts[j] < starts[i] + window_us {
            j += 1;
        }
        max = max.max(j - i);
    }
    max
}

fn workers(url: &str, n: usize) -> Vec<ChildGuard> {
    let bin = example_bin("flow-worker");
    (0..n)
        .map(|_| ChildGuard::spawn(&bin, url, &["--concurrency", "32"]))
        .collect()
}

/// `rate = "200/s"` over 2,000 tasks with two worker processes: over the whole run within
/// 10 % of 200/s, and no 100 ms window with more than 3x its share (60 starts) once the
/// workers have taken up the backlog (after the first 500 ms). While they take it up, the
/// first reserved slots can be delivered late, behind backlog entries still in the stream,
/// and then start together: that peak is printed (and bounded by 5x the share, 100 starts,
/// so that a regression to no limit at all still fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_two_worker_processes() {
    let _one_at_a_time = TIMING.lock().await;
    let server = server();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    // A backlog first: both workers find 2,000 ready tasks at once.
    producer
        .enqueue_many((0..2000).map(|n| Limited { n }))
        .await
        .unwrap();
    let _workers = workers(&server.url(), 2);
    wait_until(Duration::from_secs(60), "2,000 starts", || {
        let mut c = c.clone();
        async move { llen(&mut c, LIMITED_STARTS).await >= 2000 }
    })
    .await;
    let s = starts(&mut c, LIMITED_STARTS).await;
    let (r, max) = (rate(&s), max_in_window(&s, 100_000));
    let (steady, per_second) = (
        max_in_window_after(&s, 100_000, 500_000),
        max_in_window(&s, 1_000_000),
    );
    eprintln!(
        "2,000 tasks at 200/s: measured {r:.1}/s; at most {steady} starts in 100 ms after the \
         first 500 ms, {max} in the first 500 ms, {per_second} in 1 s"
    );
    assert!(
        (r - 200.0).abs() <= 20.0,
        "measured {r:.1}/s, not 200/s ± 10 %"
    );
    // 3x the share: a late promotion on a loaded machine (CI shares its cores) moves a few
    // due slots together; measured on this 2-core machine: 23 idle, 41 under load.
    assert!(
        steady <= 60,
        "{steady} starts in one 100 ms window (share: 20)"
    );
    assert!(max <= 100, "{max} starts in one 100 ms window (share: 20)");
    // Nothing ran twice, nothing is left behind.
    assert_eq!(s.len(), 2000);
    let keys = QueueKeys::new("mq", Limited::QUEUE);
    wait_until(Duration::from_secs(10), "the stream to empty", || {
        let (mut c, stream) = (c.clone(), keys.stream.clone());
        async move { xlen(&mut c, &stream).await == 0 }
    })
    .await;
}

/// Two rate keys at 50/s each run side by side, each at its own rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rate_key_runs_at_its_own_rate() {
    let _one_at_a_time = TIMING.lock().await;
    let server = server();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let per_key = 250;
    producer
        .enqueue_many((0..2 * per_key).map(|n| PerAccount {
            n,
            account: if n % 2 == 0 { "a" } else { "b" }.into(),
        }))
        .await
        .unwrap();
    let _workers = workers(&server.url(), 2);
    let (ka, kb) = (account_starts("a"), account_starts("b"));
    wait_until(Duration::from_secs(60), "500 starts", || {
        let (mut c, ka, kb) = (c.clone(), ka.clone(), kb.clone());
        async move { llen(&mut c, &ka).await + llen(&mut c, &kb).await >= 2 * per_key as usize }
    })
    .await;
    let (a, b) = (starts(&mut c, &ka).await, starts(&mut c, &kb).await);
    assert_eq!((a.len(), b.len()), (per_key as usize, per_key as usize));
    for (key, s) in [("a", &a), ("b", &b)] {
        let (r, max) = (rate(s), max_in_window(s, 100_000));
        eprintln!("key {key} at 50/s: measured {r:.1}/s, at most {max} starts in 100 ms");
        assert!(
            (r - 50.0).abs() <= 5.0,
            "key {key}: {r:.1}/s, not 50/s ± 10 %"
        );
        assert!(max <= 10, "key {key}: {max} starts in 100 ms (share: 5)");
    }
    // Side by side: each key's run overlaps the other's by at least 90 %.
    let overlap = a[a.len() - 1].min(b[b.len() - 1]) as f64 - a[0].max(b[0]) as f64;
    for s in [&a, &b] {
        let span = (s[s.len() - 1] - s[0]) as f64;
        assert!(overlap >= 0.9 * span, "the keys ran one after the other");
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Snoozy {
    n: u64,
}

impl Task for Snoozy {
    const NAME: &'static str = "Snoozy";
    const QUEUE: &'static str = "snoozy";
    const OPTIONS: TaskOptions = TaskOptions {
        max_retries: 1,
        ..TaskOptions::DEFAULT
    };
}

/// The value of the metric line starting with `name{` that contains every label in `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A task snoozed more often than its `max_retries` runs again every time as the same attempt
/// and is never dead-lettered for it; the snoozes are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snoozed_task_is_not_counted_as_an_attempt() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer.enqueue(Snoozy { n: 1 }).await.unwrap();
    let runs: Arc<Mutex<Vec<u32>>> = Arc::default();
    let seen = runs.clone();
    let worker = mq_core::Worker::builder(&server.url())
        .handle(move |_task: Snoozy, ctx: TaskContext| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut runs = seen.lock().unwrap();
                    runs.push(ctx.attempt());
                    runs.len()
                };
                // Three snoozes: more than the one retry allowed.
                if n <= 3 {
                    return Err(TaskError::snooze(Duration::from_millis(50)));
                }
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let metrics = worker.metrics();
    let running = run_worker(worker);
    wait_until(Duration::from_secs(10), "a fourth run", || {
        let runs = runs.clone();
        async move { runs.lock().unwrap().len() >= 4 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;
    assert_eq!(*runs.lock().unwrap(), [0, 0, 0, 0], "attempt numbers seen");
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Snoozy::QUEUE);
    assert_eq!(xlen(&mut c, &keys.dead).await, 0, "dead-lettered");
    assert_eq!(xlen(&mut c, &keys.stream).await, 0);
    let text = metrics.render();
    let count = |outcome: &str| {
        metric(
            &text,
            "mq_tasks_finished_total",
            &[&format!("outcome=\"{outcome}\""), "task=\"Snoozy\""],
        )
    };
    assert_eq!(count("snoozed"), Some(3));
    assert_eq!(count("retry"), Some(0));
    assert_eq!(count("success"), Some(1));
}

#[derive(Debug, Serialize, Deserialize)]
struct Throttled {
    n: u64,
}

impl Task for Throttled {
    const NAME: &'static str = "Throttled";
    const QUEUE: &'static str = "throttled";
    const OPTIONS: TaskOptions = TaskOptions {
        max_retries: 0,
        rate: Some(Rate::new(40, Duration::from_secs(1))),
        ..TaskOptions::DEFAULT
    };
}

/// Tasks held back by their rate limit start later as their first attempt (with no retries
/// allowed, none is dead-lettered), spaced by the limit, and the delays are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delayed_by_its_rate_limit_is_not_counted_as_an_attempt() {
    let _one_at_a_time = TIMING.lock().await;
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..20).map(|n| Throttled { n }))
        .await
        .unwrap();
    let runs: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
    let seen = runs.clone();
    let worker = mq_core::Worker::builder(&server.url())
        .handle(move |_task: Throttled, ctx: TaskContext| {
            let seen = seen.clone();
            async move {
                let at = mq_examples::flow::now_us();
                seen.lock().unwrap().push((ctx.attempt(), at));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let metrics = worker.metrics();
    let running = run_worker(worker);
    wait_until(Duration::from_secs(10), "20 runs", || {
        let runs = runs.clone();
        async move { runs.lock().unwrap().len() >= 20 }
    })
    .await;
    running.stop().await;
    let runs = runs.lock().unwrap().clone();
    assert!(runs.iter().all(|(attempt, _)| *attempt == 0), "{runs:?}");
    let mut at: Vec<u64> = runs.iter().map(|(_, at)| *at).collect();
    at.sort_unstable();
    // 20 tasks at 40/s: 19 intervals of 25 ms at least (less 5 ms of scheduling jitter).
    let span_ms = (at[19] - at[0]) / 1000;
    assert!(span_ms >= 19 * 25 - 5, "20 starts within {span_ms} ms");
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Throttled::QUEUE);
    assert_eq!(xlen(&mut c, &keys.dead).await, 0, "dead-lettered");
    let delayed = metric(
        &metrics.render(),
        "mq_tasks_rate_limited_total",
        &["task=\"Throttled\""],
    );
    assert!(
        delayed.is_some_and(|n| n >= 19),
        "rate-limited: {delayed:?}"
    );
}
