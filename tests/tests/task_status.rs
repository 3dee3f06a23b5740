//! Results, status and events against a real Redis (issue 14, items 3 and 4): a tracked task's
//! status walks queued → running → retrying → running → succeeded; dead and cancelled tasks
//! report their reasons; a result is readable from another process (`mq status --json`),
//! expires after its ttl, and `wait` returns it or times out; plain tasks write no task hash and
//! no events.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use mq_core::{Error, Producer, Task, TaskContext, TaskError, TaskStatus, Worker};
use mq_tests::{run_worker, server, wait_until};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Longest wait for anything in these tests: 60 s.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "st_walk",
    result_ttl = "1h",
    backoff = "fixed(300ms)",
    max_retries = 3
)]
struct Flaky {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Task)]
#[task(queue = "st_short", result_ttl = "1s")]
struct Short {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sum {
    total: u64,
    label: String,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "st_dead", result_ttl = "1h", max_retries = 0)]
struct Doomed {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "st_plain", backoff = "fixed(10ms)", max_retries = 1)]
struct Plain {
    n: u32,
}

/// The status of `id`, read by `mq status --json` in a process of its own.
async fn cli_status(url: &str, queue: &str, id: &str) -> serde_json::Value {
    let out = tokio::process::Command::new(mq_tests::workspace_bin("mq-cli", "mq"))
        .args(["--json", "status", queue, id])
        .env("MQ_REDIS_URL", url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("mq status finishes")
        .expect("mq status runs");
    assert!(
        out.status.success(),
        "mq status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mq status --json prints JSON")
}

/// The keys matching `pattern` on every node (`KEYS` on one node sees that node only).
async fn keys(server: &mq_tests::TestServer, pattern: &str) -> Vec<String> {
    let mut all = Vec::new();
    for url in server.node_urls() {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut c)
            .await
            .unwrap();
        all.extend(found);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_walks_queued_running_retrying_succeeded_and_the_result_is_read_elsewhere() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Flaky { n: 7 }).await.unwrap();
    assert_eq!(
        producer.status("st_walk", &id).await.unwrap(),
        TaskStatus::Queued
    );

    // Each attempt waits for a permit, so the test sees it running.
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let worker = Worker::builder(&url)
        .handle(move |task: Flaky, ctx: TaskContext| {
            let g = g.clone();
            async move {
                g.acquire().await.expect("gate").forget();
                if ctx.attempt() == 0 {
                    return Err(TaskError::retry("boom"));
                }
                Ok(task.n * 6)
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);

    // Polls the status until `want` holds; returns it.
    let status = |want: fn(&TaskStatus) -> bool| {
        let (producer, id) = (producer.clone(), id.clone());
        async move {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let s = producer.status("st_walk", &id).await.unwrap();
                if want(&s) {
                    return s;
                }
                assert!(std::time::Instant::now() < deadline, "stuck at {s:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let s = status(|s| matches!(s, TaskStatus::Running { attempt: 0, .. })).await;
    let TaskStatus::Running {
        consumer, since, ..
    } = s
    else {
        unreachable!()
    };
    assert!(!consumer.is_empty() && since > 0);
    gate.add_permits(1);
    let s = status(|s| matches!(s, TaskStatus::Retrying { .. })).await;
    assert!(
        matches!(&s, TaskStatus::Retrying { error, due } if error == "boom" && *due > 0),
        "{s:?}"
    );
    status(|s| matches!(s, TaskStatus::Running { attempt: 1, .. })).await;
    assert_eq!(producer.result::<u32>("st_walk", &id).await.unwrap(), None);
    gate.add_permits(1);
    let v: u32 = producer.wait("st_walk", &id, WAIT).await.unwrap();
    assert_eq!(v, 42);
    assert!(matches!(
        producer.status("st_walk", &id).await.unwrap(),
        TaskStatus::Succeeded { finished } if finished > 0
    ));
    worker.stop().await;

    // Another process reads the same status and result.
    let seen = cli_status(&url, "st_walk", &id).await;
    assert_eq!(seen["status"]["state"], "succeeded", "{seen}");
    assert_eq!(seen["result"], 42, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_expire_after_their_ttl_and_wait_times_out() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    // No worker for this one: `wait` times out, naming the last status.
    let idle = producer.enqueue(Doomed { n: 0 }).await.unwrap();
    let started = std::time::Instant::now();
    match producer
        .wait::<()>("st_dead", &idle, Duration::from_millis(300))
        .await
    {
        Err(Error::WaitTimeout { status, .. }) => assert_eq!(status, TaskStatus::Queued),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    let worker = Worker::builder(&url)
        .handle(|task: Short, _ctx: TaskContext| async move {
            Ok::<_, TaskError>(Sum {
                total: u64::from(task.n) * 100,
                label: format!("n={}", task.n),
            })
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let id = producer.enqueue(Short { n: 5 }).await.unwrap();
    let sum: Sum = producer.wait("st_short", &id, WAIT).await.unwrap();
    let want = Sum {
        total: 500,
        label: "n=5".into(),
    };
    assert_eq!(sum, want);
    assert_eq!(
        producer.result::<Sum>("st_short", &id).await.unwrap(),
        Some(want)
    );
    worker.stop().await;
    // The ttl is 1 s from the last write (the success).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(producer.result::<Sum>("st_short", &id).await.unwrap(), None);
    assert_eq!(
        producer.status("st_short", &id).await.unwrap(),
        TaskStatus::Unknown
    );
    match producer
        .wait::<Sum>("st_short", &id, Duration::from_millis(100))
        .await
    {
        Err(Error::WaitTimeout { status, .. }) => assert_eq!(status, TaskStatus::Unknown),
        other => panic!("expected no result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_cancelled_tasks_report_their_reasons() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    // Cancelled before it ran (queued), and while scheduled.
    let queued = producer.enqueue(Doomed { n: 1 }).await.unwrap();
    let later = producer
        .enqueue_in(Duration::from_secs(3600), Doomed { n: 2 })
        .await
        .unwrap();
    assert!(matches!(
        producer.status("st_dead", &later).await.unwrap(),
        TaskStatus::Scheduled { due } if due > 0
    ));
    producer.cancel("st_dead", &queued).await.unwrap();
    producer.cancel("st_dead", &later).await.unwrap();
    assert_eq!(
        producer.status("st_dead", &queued).await.unwrap(),
        TaskStatus::Cancelled
    );
    assert_eq!(
        producer.status("st_dead", &later).await.unwrap(),
        TaskStatus::Cancelled
    );

    let dead = producer.enqueue(Doomed { n: 3 }).await.unwrap();
    let worker = Worker::builder(&url)
        .handle(|task: Doomed, _ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!("no way for {}", task.n)))
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    wait_until(WAIT, "the dead task's status", || {
        let (producer, dead) = (producer.clone(), dead.clone());
        async move {
            producer
                .status("st_dead", &dead)
                .await
                .unwrap()
                .is_finished()
        }
    })
    .await;
    assert_eq!(
        producer.status("st_dead", &dead).await.unwrap(),
        TaskStatus::Failed {
            reason: "permanent failure: no way for 3".into()
        }
    );
    match producer.wait::<()>("st_dead", &dead, WAIT).await {
        Err(Error::TaskFailed { status, .. }) => {
            assert!(matches!(status, TaskStatus::Failed { .. }))
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tasks_write_no_task_hash_and_no_events() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let ids = producer
        .enqueue_many((0..20).map(|n| Plain { n }))
        .await
        .unwrap();
    producer
        .enqueue_in(Duration::from_millis(50), Plain { n: 100 })
        .await
        .unwrap();
    let done = Arc::new(AtomicU32::new(0));
    let d = done.clone();
    let worker = Worker::builder(&url)
        .handle(move |task: Plain, ctx: TaskContext| {
            let d = d.clone();
            async move {
                // Some fail once, some for good: retries and dead letters too.
                if task.n.is_multiple_of(3) && ctx.attempt() == 0 {
                    return Err(TaskError::retry("once"));
                }
                if task.n.is_multiple_of(5) {
                    d.fetch_add(1, Ordering::SeqCst);
                    return Err(TaskError::permanent("never"));
                }
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    wait_until(WAIT, "every plain task to end", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 21 }
    })
    .await;
    worker.stop().await;
    assert_eq!(
        producer.status("st_plain", &ids[1]).await.unwrap(),
        TaskStatus::Unknown
    );
    assert_eq!(keys(&server, "*:task:*").await, Vec::<String>::new());
    assert_eq!(keys(&server, "*:events").await, Vec::<String>::new());
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "st_events", events, backoff = "fixed(10ms)", max_retries = 1)]
struct Eventful {
    n: u32,
}

/// The transitions task `n` of [`events_hold_exactly_the_transitions_of_each_task_in_order`]
/// goes through.
fn expected(n: u32) -> Vec<&'static str> {
    if n.is_multiple_of(4) {
        vec!["enqueued", "started", "retrying", "started", "succeeded"]
    } else if n % 10 == 3 {
        vec!["enqueued", "started", "dead"]
    } else {
        vec!["enqueued", "started", "succeeded"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_hold_exactly_the_transitions_of_each_task_in_order() {
    const N: u32 = 1_000;
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let ids = producer
        .enqueue_many((0..N).map(|n| Eventful { n }))
        .await
        .unwrap();
    let worker = Worker::builder(&url)
        .concurrency(32)
        .handle(|task: Eventful, ctx: TaskContext| async move {
            if task.n.is_multiple_of(4) && ctx.attempt() == 0 {
                return Err(TaskError::retry(format!("first try of {}", task.n)));
            }
            if task.n % 10 == 3 {
                return Err(TaskError::permanent(format!("{} is cursed", task.n)));
            }
            Ok(())
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let total: usize = (0..N).map(|n| expected(n).len()).sum();
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    let mut cursor = mq_core::EventCursor::default();
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while events.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total} events",
            events.len()
        );
        let got = admin
            .events(
                "st_events",
                &mut cursor,
                1_000,
                Some(Duration::from_millis(200)),
            )
            .await
            .unwrap();
        events.extend(got);
    }
    // Nothing more comes (no duplicate transitions).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let extra = admin
        .events("st_events", &mut cursor, 1_000, None)
        .await
        .unwrap();
    assert!(extra.is_empty(), "unexpected events: {extra:?}");
    worker.stop().await;

    let mut per_task: std::collections::HashMap<&str, Vec<&mq_core::TaskEvent>> =
        Default::default();
    for e in &events {
        per_task.entry(e.id.as_str()).or_default().push(e);
    }
    assert_eq!(per_task.len(), N as usize);
    for (n, id) in ids.iter().enumerate() {
        let n = n as u32;
        let seen: Vec<&str> = per_task[id.as_str()]
            .iter()
            .map(|e| e.event.as_str())
            .collect();
        assert_eq!(seen, expected(n), "task {n}");
        let detail = |e: &mq_core::TaskEvent, k: &str| {
            e.details
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        for e in &per_task[id.as_str()] {
            match e.event.as_str() {
                "retrying" => assert_eq!(detail(e, "error"), format!("first try of {n}")),
                "dead" => assert_eq!(
                    detail(e, "reason"),
                    format!("permanent failure: {n} is cursed")
                ),
                "started" => assert!(!detail(e, "consumer").is_empty()),
                _ => {}
            }
        }
    }

    // Another process reads the same stream.
    let out = tokio::process::Command::new(mq_tests::workspace_bin("mq-cli", "mq"))
        .args(["--json", "events", "st_events"])
        .env("MQ_REDIS_URL", &url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), total);
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "st_replay", result_ttl = "1h", max_retries = 0)]
struct Second {
    n: u32,
}

/// A replayed dead task is `queued` again, so waiting for it waits for the replay's outcome
/// (it used to keep `failed`, and `wait` failed at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_task_is_queued_again_and_waited_for() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Second { n: 1 }).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let worker = Worker::builder(&url)
        .handle(move |task: Second, _ctx: TaskContext| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(TaskError::permanent("first run fails"));
                }
                Ok(task.n + 41)
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    wait_until(WAIT, "the first run's failure", || {
        let (producer, id) = (producer.clone(), id.clone());
        async move {
            producer
                .status("st_replay", &id)
                .await
                .unwrap()
                .is_finished()
        }
    })
    .await;
    worker.stop().await;
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    let report = admin.dead_replay_all("st_replay").await.unwrap();
    assert_eq!(report.replayed, 1, "{report:?}");
    assert_eq!(
        producer.status("st_replay", &id).await.unwrap(),
        TaskStatus::Queued
    );
    let worker = Worker::builder(&url)
        .handle(
            move |task: Second, _ctx: TaskContext| async move { Ok::<_, TaskError>(task.n + 41) },
        )
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let value: u32 = producer.wait("st_replay", &id, WAIT).await.unwrap();
    assert_eq!(value, 42);
    worker.stop().await;
}
