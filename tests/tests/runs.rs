//! Runs against a real Redis (issue 24, item 2): a run's counters (total, done, dead, failed,
//! remaining), its completion task exactly once when it is sealed and every task ended, a
//! flow counted as one task, and what a run must refuse or survive: a copy of an entry beyond
//! the run's total, a forged `rn` field, a replayed dead task after the end, a second seal,
//! adding to a sealed run, unique tasks, bad names, a Cluster. The 1,000,000-task memory
//! test is at the end.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use mq_core::{
    admin::RunInfo, redis::keys::QueueKeys, Admin, Error, Producer, Task, TaskContext, TaskError,
    Worker,
};
use mq_tests::{conn, run_worker, wait_until, xlen};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(60);

/// An entry's fields as `XRANGE` gives them.
type Fields = Vec<(String, Vec<u8>)>;

/// A task of a run: `dead` ones fail for good, `flaky` ones fail their first attempt.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "rn_work", max_retries = 1, backoff = "none")]
struct Work {
    n: u64,
    dead: bool,
    flaky: bool,
}

/// A run's completion task.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "rn_done", max_retries = 0)]
struct RunDone {
    run: String,
}

/// A flow's parent and child, counted in a run as one task.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "rn_index", max_retries = 0)]
struct Index {
    n: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "rn_work", unique = "n")]
struct UniqueWork {
    n: u64,
}

/// Counts of what ran: `Work` attempts, completions, flow parents.
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    completions: AtomicU64,
    parents: AtomicU64,
}

async fn worker(url: &str, counts: &Arc<Counts>) -> Worker {
    let (c1, c2, c3) = (counts.clone(), counts.clone(), counts.clone());
    Worker::builder(url)
        .handle::<Work, _>(move |t: Work, ctx: TaskContext| {
            let c = c1.clone();
            async move {
                c.attempts.fetch_add(1, Ordering::SeqCst);
                if t.dead {
                    return Err(TaskError::permanent(format!("work {} refused", t.n)));
                }
                if t.flaky && ctx.attempt() == 0 {
                    return Err(TaskError::retry("flaky"));
                }
                Ok(())
            }
        })
        .handle::<RunDone, _>(move |_t: RunDone, _ctx: TaskContext| {
            let c = c2.clone();
            async move {
                c.completions.fetch_add(1, Ordering::SeqCst);
                Ok::<(), TaskError>(())
            }
        })
        .handle::<Index, _>(move |_t: Index, _ctx: TaskContext| {
            let c = c3.clone();
            async move {
                c.parents.fetch_add(1, Ordering::SeqCst);
                Ok::<(), TaskError>(())
            }
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("worker")
}

fn work(n: u64) -> Work {
    Work {
        n,
        dead: n.is_multiple_of(10),
        flaky: n % 10 == 5,
    }
}

async fn run_info(admin: &Admin, name: &str) -> RunInfo {
    admin.run(name).await.expect("run").expect("the run exists")
}

async fn wait_for_completions(counts: &Arc<Counts>, n: u64) {
    wait_until(WAIT, "the completion task", || {
        let counts = counts.clone();
        async move { counts.completions.load(Ordering::SeqCst) >= n }
    })
    .await;
    // A moment more: a second completion would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_sealed_run_counts_its_tasks_and_enqueues_its_completion_once() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let run = producer.run("products-2026-12-06").await.expect("run");
    // 50 tasks (5 dead, 5 failing once), one at a time and in a batch, and one flow.
    run.enqueue(work(0)).await.expect("enqueue");
    let ids = run.enqueue_many((1..50).map(work)).await.expect("many");
    assert_eq!(ids.len(), 49);
    let flow = run
        .flow(Index { n: 1 })
        .child(Work {
            n: 1000,
            dead: false,
            flaky: false,
        })
        .enqueue()
        .await
        .expect("flow");
    assert_eq!(flow.children.len(), 1);
    let before = run_info(&admin, run.name()).await;
    assert_eq!(
        (
            before.total,
            before.done,
            before.remaining,
            before.sealed_ms
        ),
        (51, 0, 51, None)
    );
    assert!(run
        .seal_with(RunDone {
            run: run.name().into()
        })
        .await
        .expect("seal"));
    let counts = Arc::new(Counts::default());
    let w = run_worker(worker(&url, &counts).await);
    wait_for_completions(&counts, 1).await;
    w.stop().await;
    assert_eq!(counts.completions.load(Ordering::SeqCst), 1, "exactly once");
    assert_eq!(counts.parents.load(Ordering::SeqCst), 1);
    // 50 + 5 retries + the flow's child.
    assert_eq!(counts.attempts.load(Ordering::SeqCst), 56);
    let r = run_info(&admin, run.name()).await;
    assert_eq!(r.name, "products-2026-12-06");
    assert_eq!(
        (r.total, r.done, r.dead, r.failed, r.remaining),
        (51, 46, 5, 5, 0),
        "{r:?}"
    );
    let (sealed, ended) = (r.sealed_ms.expect("sealed"), r.ended_ms.expect("ended"));
    assert!(r.created_ms <= sealed && sealed <= ended);
    assert_eq!(r.eta_secs, Some(0.0));
    // The run's hash expires a week after the end.
    let mut c = conn(&server).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&r.key)
        .query_async(&mut c)
        .await
        .expect("PTTL");
    assert!(ttl > 6 * 24 * 3600 * 1000, "ttl {ttl}");
    let all = admin.runs().await.expect("runs");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, r.key);
}

#[tokio::test]
async fn a_run_sealed_after_its_tasks_ended_ends_at_once_and_refuses_more() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let run = producer.run("late-seal").await.expect("run");
    run.enqueue_many((1..=3).map(|n| Work {
        n,
        dead: false,
        flaky: false,
    }))
    .await
    .expect("many");
    let counts = Arc::new(Counts::default());
    let w = run_worker(worker(&url, &counts).await);
    wait_until(WAIT, "3 done", || {
        let admin = admin.clone();
        async move { run_info(&admin, "late-seal").await.done == 3 }
    })
    .await;
    // Every task ended, but the run is not sealed: it has not ended.
    let r = run_info(&admin, "late-seal").await;
    assert_eq!((r.remaining, r.ended_ms), (0, None));
    assert_eq!(counts.completions.load(Ordering::SeqCst), 0);
    assert!(run
        .seal_with(RunDone {
            run: "late-seal".into()
        })
        .await
        .expect("seal"));
    wait_for_completions(&counts, 1).await;
    // A second seal changes nothing, and its completion task is dropped.
    assert!(!run
        .seal_with(RunDone {
            run: "again".into()
        })
        .await
        .expect("seal"));
    assert!(!run.seal().await.expect("seal"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.stop().await;
    assert_eq!(counts.completions.load(Ordering::SeqCst), 1);
    assert!(run_info(&admin, "late-seal").await.ended_ms.is_some());
    // A sealed run takes no more tasks.
    match producer.run("late-seal").await {
        Err(Error::Config(m)) => assert!(m.contains("sealed"), "{m}"),
        other => panic!("a sealed run must be refused: {other:?}"),
    }
}

/// The hostile cases: a copy of a run's entry (beyond its total: a counter cannot tell a copy
/// from its original, but it never counts past the total), an `rn` naming a string or a hash
/// that is no run, and a dead task replayed after the run ended.
#[tokio::test]
async fn copies_forged_fields_and_late_replays_never_count_twice_or_end_a_run_again() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Work::QUEUE);
    let run = producer.run("hostile").await.expect("run");
    run.enqueue(Work {
        n: 1,
        dead: false,
        flaky: false,
    })
    .await
    .expect("enqueue");
    run.enqueue(Work {
        n: 10,
        dead: true,
        flaky: false,
    })
    .await
    .expect("enqueue");
    // The first entry's fields, kept to forge entries with.
    let first: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("XRANGE");
    let fields = first[0].1.clone();
    assert!(fields.iter().any(|(k, _)| k == "rn"), "{fields:?}");
    assert!(run
        .seal_with(RunDone {
            run: "hostile".into()
        })
        .await
        .expect("seal"));
    let counts = Arc::new(Counts::default());
    let w = run_worker(worker(&url, &counts).await);
    wait_for_completions(&counts, 1).await;
    let r = run_info(&admin, "hostile").await;
    assert_eq!(
        (r.total, r.done, r.dead, r.remaining),
        (2, 1, 1, 0),
        "{r:?}"
    );
    // Now a copy of the first entry, and forged run fields: a string key and a hash without a
    // `total`, both named like runs, and a queue's own hash.
    let _: () = redis::cmd("SET")
        .arg("mq:run:900")
        .arg("not a run")
        .query_async(&mut c)
        .await
        .expect("SET");
    let _: () = redis::cmd("HSET")
        .arg("mq:run:901")
        .arg("done")
        .arg(7)
        .query_async(&mut c)
        .await
        .expect("HSET");
    for forged in [
        None,
        Some("mq:run:900"),
        Some("mq:run:901"),
        Some("mq:{rn_work}:cancel"),
    ] {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&keys.stream).arg("*");
        for (k, v) in &fields {
            if k != "rn" || forged.is_none() {
                cmd.arg(k).arg(v);
            }
        }
        if let Some(key) = forged {
            cmd.arg("rn").arg(key);
        }
        let _: String = cmd.query_async(&mut c).await.expect("XADD forged");
    }
    wait_until(WAIT, "the forged entries to be settled", || {
        let (counts, mut c, stream) = (counts.clone(), c.clone(), keys.stream.clone());
        async move { counts.attempts.load(Ordering::SeqCst) >= 6 && xlen(&mut c, &stream).await == 0 }
    })
    .await;
    let after = run_info(&admin, "hostile").await;
    assert_eq!(
        (after.done, after.dead),
        (1, 1),
        "the copy is not counted: {after:?}"
    );
    let forged_string: String = redis::cmd("GET")
        .arg("mq:run:900")
        .query_async(&mut c)
        .await
        .expect("GET");
    assert_eq!(forged_string, "not a run");
    let forged_hash: Vec<String> = redis::cmd("HKEYS")
        .arg("mq:run:901")
        .query_async(&mut c)
        .await
        .expect("HKEYS");
    assert_eq!(forged_hash, vec!["done".to_owned()]);
    // The dead task replayed after the end: counted again when it ends (dead once more), the
    // run not ended a second time.
    let report = admin.dead_replay_all(Work::QUEUE).await.expect("replay");
    assert_eq!(report.replayed, 1);
    wait_until(WAIT, "the replayed task", || {
        let counts = counts.clone();
        async move { counts.attempts.load(Ordering::SeqCst) >= 7 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.stop().await;
    let last = run_info(&admin, "hostile").await;
    assert_eq!(
        (last.total, last.done, last.dead, last.ended_ms),
        (2, 1, 1, r.ended_ms),
        "{last:?}"
    );
    assert_eq!(counts.completions.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_names_unique_tasks_and_a_cluster_are_refused() {
    let server = mq_tests::redis();
    let producer = Producer::connect(&server.url()).await.expect("producer");
    let long = "x".repeat(201);
    for bad in ["", long.as_str(), "day\n2"] {
        match producer.run(bad).await {
            Err(Error::Config(_)) => {}
            other => panic!("run name {bad:?} must be refused: {other:?}"),
        }
    }
    let run = producer.run("unique").await.expect("run");
    match run.enqueue(UniqueWork { n: 1 }).await {
        Err(Error::Config(m)) => assert!(m.contains("unique"), "{m}"),
        other => panic!("a unique task must be refused: {other:?}"),
    }
    // Nothing was counted or written.
    let admin = Admin::connect(&server.url()).await.expect("admin");
    assert_eq!(run_info(&admin, "unique").await.total, 0);
    let mut c = conn(&server).await;
    assert_eq!(
        xlen(&mut c, &QueueKeys::new("mq", "rn_work").stream).await,
        0
    );
    let cluster = mq_tests::cluster();
    let producer = Producer::connect(&cluster.url()).await.expect("producer");
    match producer.run("on-a-cluster").await {
        Err(Error::Config(m)) => assert!(m.contains("Cluster"), "{m}"),
        other => panic!("a run on a cluster must be refused: {other:?}"),
    }
}

/// A no-op task: the smallest a run's task can be.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "rn_noop", max_retries = 0)]
struct Noop {
    n: u32,
}

async fn used_memory(c: &mut mq_tests::Conn) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(c)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

/// Redis memory that `n` queued tasks take, enqueued by `enqueue` into an empty server.
async fn memory_of<F, Fut>(c: &mut mq_tests::Conn, enqueue: F) -> u64
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _: () = redis::cmd("FLUSHALL")
        .query_async(c)
        .await
        .expect("FLUSHALL");
    let before = used_memory(c).await;
    enqueue().await;
    used_memory(c).await - before
}

/// Issue 24's memory bound: a run of 1,000,000 no-op tasks costs Redis at most 16 bytes per
/// task more than 1,000,000 plain tasks (`used_memory`, same server, same queue), and its
/// completion task runs exactly once after all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_million_tasks_costs_at_most_16_bytes_a_task_and_completes_once() {
    const N: u32 = 1_000_000;
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let mut c = conn(&server).await;
    let plain = memory_of(&mut c, || async {
        producer
            .enqueue_many((0..N).map(|n| Noop { n }))
            .await
            .expect("plain");
    })
    .await;
    let run = memory_of(&mut c, || async {
        let run = producer.run("a-million").await.expect("run");
        run.enqueue_many((0..N).map(|n| Noop { n }))
            .await
            .expect("run");
    })
    .await;
    let per_task = (run as f64 - plain as f64) / f64::from(N);
    eprintln!(
        "1,000,000 queued tasks: plain {plain} B ({:.1} B a task), in a run {run} B ({:.1} B \
         a task): {per_task:+.1} B a task",
        plain as f64 / f64::from(N),
        run as f64 / f64::from(N)
    );
    assert!(per_task <= 16.0, "{per_task:.1} B a task over a plain task");
    let r = run_info(&admin, "a-million").await;
    assert_eq!(r.total, u64::from(N));
    // Drain it: the completion task runs once, after the last task.
    let handle = producer.run("a-million").await.expect("reopen");
    assert!(handle
        .seal_with(RunDone {
            run: "a-million".into()
        })
        .await
        .expect("seal"));
    let done = Arc::new(AtomicU64::new(0));
    let completions = Arc::new(Counts::default());
    let (d, cm) = (done.clone(), completions.clone());
    let worker = Worker::builder(&url)
        .handle::<Noop, _>(move |_t: Noop, _ctx: TaskContext| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::Relaxed);
                Ok::<(), TaskError>(())
            }
        })
        .handle::<RunDone, _>(move |_t: RunDone, _ctx: TaskContext| {
            let cm = cm.clone();
            async move {
                cm.completions.fetch_add(1, Ordering::SeqCst);
                Ok::<(), TaskError>(())
            }
        })
        .concurrency(256)
        .build()
        .await
        .expect("worker");
    let started = std::time::Instant::now();
    let w = run_worker(worker);
    wait_until(Duration::from_secs(600), "the completion task", || {
        let cm = completions.clone();
        async move { cm.completions.load(Ordering::SeqCst) >= 1 }
    })
    .await;
    let drained = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.stop().await;
    let r = run_info(&admin, "a-million").await;
    eprintln!(
        "drained in {:.1} s; rate {:?}/s over {:?}",
        drained.as_secs_f64(),
        r.rate_per_sec,
        r.window
    );
    assert_eq!(completions.completions.load(Ordering::SeqCst), 1);
    assert!(done.load(Ordering::SeqCst) >= u64::from(N));
    assert_eq!((r.done, r.dead, r.remaining), (u64::from(N), 0, 0));
}
