//! Cancellation against a real Redis (issue 14, item 1): a queued task never runs, a delayed
//! one never runs, a running one on another worker process sees its cancellation within two
//! lease-renewal intervals and ends as cancelled (not retried, not dead-lettered), a task
//! cancelled while it runs and rescheduled for a retry before its worker learned it never runs
//! again, and cancelling an unknown or finished id answers `NotFound`.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mq_core::redis::keys::QueueKeys;
use mq_core::{Admin, CancelOutcome, Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::control::{handle_long_job, LongJob, RUNS_KEY};
use mq_tests::{conn, example_bin, run_worker, server, wait_until, xlen, ChildGuard, Conn};
use serde::{Deserialize, Serialize};

/// Longest wait for anything in these tests: 60 s.
const WAIT: Duration = Duration::from_secs(60);
/// Reclaim timeout of the workers here: leases (and cancellations) are renewed every 500 ms.
const RECLAIM: Duration = Duration::from_millis(1_500);

/// The run records of `id` (`S`, `C`, `E`), in order.
async fn runs(conn: &mut Conn, id: &str) -> Vec<String> {
    let all: Vec<String> = redis::cmd("LRANGE")
        .arg(RUNS_KEY)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    all.iter()
        .filter(|r| r.split(' ').nth(1) == Some(id))
        .map(|r| r[..1].to_owned())
        .collect()
}

async fn long_worker(url: &str) -> mq_tests::RunningWorker {
    let c = mq_core::redis::conn::Conn::connect(url).await.unwrap();
    let worker = Worker::builder(url)
        .concurrency(4)
        .reclaim_timeout(RECLAIM)
        .handle::<LongJob, _>(move |job: LongJob, ctx: TaskContext| {
            handle_long_job(job, ctx, c.clone())
        })
        .build()
        .await
        .unwrap();
    run_worker(worker)
}

async fn exists(conn: &mut Conn, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u32>(conn)
        .await
        .unwrap()
        == 1
}

#[tokio::test]
async fn a_cancelled_queued_task_never_runs() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let admin = Admin::connect(&url).await.unwrap();
    let doomed = producer.enqueue(LongJob { steps: 1 }).await.unwrap();
    let kept = producer.enqueue(LongJob { steps: 1 }).await.unwrap();
    assert_eq!(
        admin.cancel("control", &doomed).await.unwrap(),
        CancelOutcome::Queued
    );
    // A second cancel finds nothing: the entry is gone.
    assert_eq!(
        producer.cancel("control", &doomed).await.unwrap(),
        CancelOutcome::NotFound
    );
    let worker = long_worker(&url).await;
    wait_until(WAIT, "the kept task ran", || {
        let (mut c, kept) = (c.clone(), kept.clone());
        async move { runs(&mut c, &kept).await == ["S", "E"] }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;
    assert!(
        runs(&mut c, &doomed).await.is_empty(),
        "the cancelled task ran"
    );
    assert_eq!(
        xlen(&mut c, &QueueKeys::new("mq", "control").stream).await,
        0
    );
}

#[tokio::test]
async fn a_cancelled_delayed_task_never_runs() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let worker = long_worker(&url).await;
    let doomed = producer
        .enqueue_in(Duration::from_millis(800), LongJob { steps: 1 })
        .await
        .unwrap();
    let kept = producer
        .enqueue_in(Duration::from_millis(800), LongJob { steps: 1 })
        .await
        .unwrap();
    assert_eq!(
        producer.cancel("control", &doomed).await.unwrap(),
        CancelOutcome::Delayed
    );
    wait_until(WAIT, "the kept task ran", || {
        let (mut c, kept) = (c.clone(), kept.clone());
        async move { runs(&mut c, &kept).await == ["S", "E"] }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    assert!(
        runs(&mut c, &doomed).await.is_empty(),
        "the cancelled task ran"
    );
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(QueueKeys::new("mq", "control").delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(delayed, 0);
}

#[tokio::test]
async fn a_running_task_on_another_process_sees_its_cancellation_within_two_renewals() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let bin = example_bin("control-worker");
    let reclaim_ms = RECLAIM.as_millis().to_string();
    let _proc = ChildGuard::spawn(&bin, &url, &["--reclaim-timeout-ms", &reclaim_ms]);
    let producer = Producer::connect(&url).await.unwrap();
    let admin = Admin::connect(&url).await.unwrap();
    // 1,000 steps of 50 ms: runs 50 s unless cancelled.
    let id = producer.enqueue(LongJob { steps: 1_000 }).await.unwrap();
    wait_until(WAIT, "the task started", || {
        let (mut c, id) = (c.clone(), id.clone());
        async move { runs(&mut c, &id).await == ["S"] }
    })
    .await;
    let outcome = admin.cancel("control", &id).await.unwrap();
    let asked = Instant::now();
    assert!(
        matches!(&outcome, CancelOutcome::Running { consumer } if !consumer.is_empty()),
        "{outcome:?}"
    );
    let renewal = RECLAIM / 3;
    let deadline = asked + 2 * renewal;
    loop {
        if runs(&mut c, &id).await == ["S", "C"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handler did not see its cancellation within 2 x {renewal:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("cancellation seen after {:?}", asked.elapsed());
    let keys = QueueKeys::new("mq", "control");
    // Settled as cancelled: acked and deleted, not retried, not dead, the cancel hash empty.
    wait_until(WAIT, "the entry was settled", || {
        let (mut c, stream) = (c.clone(), keys.stream.clone());
        async move { xlen(&mut c, &stream).await == 0 }
    })
    .await;
    tokio::time::sleep(RECLAIM * 2).await;
    assert_eq!(runs(&mut c, &id).await, ["S", "C"], "the task ran again");
    assert_eq!(xlen(&mut c, &keys.dead).await, 0, "dead-lettered");
    assert!(
        !exists(&mut c, &keys.delayed).await,
        "scheduled for a retry"
    );
    assert!(
        !exists(&mut c, &keys.cancel).await,
        "cancel hash left behind"
    );
    assert_eq!(
        admin.cancel("control", &id).await.unwrap(),
        CancelOutcome::NotFound
    );
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-retry", max_retries = 5, backoff = "fixed(300ms)")]
struct Flaky {
    n: u64,
}

/// A task cancelled while it runs, that fails before its worker's next lease renewal (so it
/// is rescheduled for a retry as usual), is dropped when the retry comes due: it never runs
/// again.
#[tokio::test]
async fn a_task_cancelled_while_it_fails_is_not_retried() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let runs = Arc::new(AtomicU32::new(0));
    let seen = runs.clone();
    // Leases renewed every 10 s: the cancellation cannot reach the handler before it fails.
    let worker = Worker::builder(&url)
        .reclaim_timeout(Duration::from_secs(30))
        .handle::<Flaky, _>(move |_t: Flaky, _ctx: TaskContext| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                Err::<(), _>(TaskError::retry("flaky"))
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Flaky { n: 1 }).await.unwrap();
    wait_until(WAIT, "the task started", || {
        let runs = runs.clone();
        async move { runs.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert!(matches!(
        producer.cancel("cancel-retry", &id).await.unwrap(),
        CancelOutcome::Running { .. }
    ));
    // It fails 500 ms after starting, its retry is due 300 ms later: wait well past that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    worker.stop().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the cancelled task was retried"
    );
    let keys = QueueKeys::new("mq", "cancel-retry");
    assert_eq!(xlen(&mut c, &keys.stream).await, 0);
    assert!(!exists(&mut c, &keys.delayed).await);
    assert!(
        !exists(&mut c, &keys.cancel).await,
        "cancel hash left behind"
    );
}

#[tokio::test]
async fn cancelling_an_unknown_or_finished_task_answers_not_found() {
    let server = server();
    let url = server.url();
    let c = conn(&server).await;
    let admin = Admin::connect(&url).await.unwrap();
    assert_eq!(
        admin
            .cancel("control", "01JD3ZK1Q7W9V3T1B0N2C4X5YZ")
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(LongJob { steps: 1 }).await.unwrap();
    let worker = long_worker(&url).await;
    wait_until(WAIT, "the task ran", || {
        let (mut c, id) = (c.clone(), id.clone());
        async move { runs(&mut c, &id).await == ["S", "E"] }
    })
    .await;
    worker.stop().await;
    assert_eq!(
        admin.cancel("control", &id).await.unwrap(),
        CancelOutcome::NotFound
    );
    assert!(admin.cancel("bad queue!", &id).await.is_err());
}

/// Calls of `HSET` the server ran so far (`INFO commandstats`; on a cluster, the sum over its
/// nodes, each of which answers with its own text).
async fn hset_calls(conn: &mut Conn) -> u64 {
    fn texts(v: &redis::Value, out: &mut Vec<String>) {
        match v {
            redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
            redis::Value::VerbatimString { text, .. } => out.push(text.clone()),
            redis::Value::Map(kv) => kv.iter().for_each(|(_, v)| texts(v, out)),
            redis::Value::Array(a) => a.iter().for_each(|v| texts(v, out)),
            _ => {}
        }
    }
    let info: redis::Value = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let mut all = Vec::new();
    texts(&info, &mut all);
    all.iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.strip_prefix("cmdstat_hset:calls="))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Progress is readable from another process while the task runs and after it ended (the
/// last value, flushed at the end), and a handler reporting after every 50 ms step (60
/// reports in 3 s) writes at most about one per second.
#[tokio::test]
async fn progress_is_readable_from_another_process_and_throttled() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let bin = example_bin("control-worker");
    let _proc = ChildGuard::spawn(&bin, &url, &[]);
    let producer = Producer::connect(&url).await.unwrap();
    // Let the worker register before counting writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let id = producer.enqueue(LongJob { steps: 60 }).await.unwrap();
    assert_eq!(
        producer
            .progress::<serde_json::Value>("control", &id)
            .await
            .unwrap(),
        None
    );
    wait_until(WAIT, "progress while running", || {
        let (mut c, id, producer) = (c.clone(), id.clone(), producer.clone());
        async move {
            let p: Option<serde_json::Value> = producer.progress("control", &id).await.unwrap();
            p.is_some() && runs(&mut c, &id).await == ["S"]
        }
    })
    .await;
    wait_until(WAIT, "the task ended", || {
        let (mut c, id) = (c.clone(), id.clone());
        async move { runs(&mut c, &id).await == ["S", "E"] }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = Admin::connect(&url).await.unwrap();
    assert_eq!(
        admin.progress("control", &id).await.unwrap(),
        Some(serde_json::json!({ "step": 60, "of": 60 }))
    );
    // 3 s of reports: about 4 progress writes (plus a heartbeat's registry write or two),
    // not 60.
    let writes = hset_calls(&mut c).await;
    assert!(writes <= 8, "{writes} HSETs for 60 progress reports in 3 s");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}{id}", QueueKeys::new("mq", "control").task))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
}
