//! Flows against a real Redis (issue 24, item 1): a parent that runs once after all its
//! children (in other queues), the two policies, a replayed dead child re-opening its report,
//! nesting, and what a flow must refuse or survive: a child entry delivered twice (counted
//! once), a forged parent field, unique tasks, an empty flow.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use mq_core::{
    redis::keys::QueueKeys, Admin, FlowPolicy, Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, run_worker, wait_until, xlen};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "fl_images", max_retries = 0, backoff = "none")]
struct EmbedImage {
    product: u64,
    fail: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "fl_texts",
    max_retries = 0,
    backoff = "none",
    result_ttl = "1h"
)]
struct EmbedText {
    product: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "fl_index", max_retries = 0, backoff = "none")]
struct Index {
    product: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "fl_texts", unique = "product")]
struct UniqueText {
    product: u64,
}

/// What the handlers saw: when each task ended (by kind and product), and each parent's
/// children and failed children as its context listed them.
#[derive(Default)]
struct Log {
    ended: Vec<(&'static str, u64, Instant)>,
    parents: Vec<(u64, usize, Vec<String>)>,
}

type Shared = Arc<Mutex<Log>>;

/// A worker of the three queues: images fail when asked to (and `hold` keeps image handlers
/// waiting while it is set), texts return their product as result, an index records its
/// children.
async fn worker(url: &str, log: &Shared, hold: &Arc<AtomicBool>) -> Worker {
    worker_refusing(url, log, hold, &Arc::new(AtomicBool::new(false))).await
}

/// [`worker`] whose image handlers also fail while `refuse` is set.
async fn worker_refusing(
    url: &str,
    log: &Shared,
    hold: &Arc<AtomicBool>,
    refuse: &Arc<AtomicBool>,
) -> Worker {
    let (l1, l2, l3, hold) = (log.clone(), log.clone(), log.clone(), hold.clone());
    let refuse = refuse.clone();
    Worker::builder(url)
        .handle::<EmbedImage, _>(move |t: EmbedImage, _ctx: TaskContext| {
            let (log, hold, refuse) = (l1.clone(), hold.clone(), refuse.clone());
            async move {
                let deadline = Instant::now() + WAIT;
                while hold.load(Ordering::SeqCst) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if t.fail || refuse.load(Ordering::SeqCst) {
                    return Err(TaskError::permanent(format!("no image for {}", t.product)));
                }
                log.lock()
                    .unwrap()
                    .ended
                    .push(("image", t.product, Instant::now()));
                Ok(())
            }
        })
        .handle::<EmbedText, _>(move |t: EmbedText, _ctx: TaskContext| {
            let log = l2.clone();
            async move {
                log.lock()
                    .unwrap()
                    .ended
                    .push(("text", t.product, Instant::now()));
                // The returned value is a tracked task's result.
                Ok::<u64, TaskError>(t.product)
            }
        })
        .handle::<Index, _>(move |t: Index, ctx: TaskContext| {
            let log = l3.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.ended.push(("index", t.product, Instant::now()));
                let failed = ctx
                    .failed_children()
                    .iter()
                    .map(|f| format!("{} {}", f.child.queue, f.reason))
                    .collect();
                log.parents.push((t.product, ctx.children().len(), failed));
                Ok::<(), TaskError>(())
            }
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("worker")
}

/// An entry's fields as `XRANGE` gives them.
type Fields = Vec<(String, Vec<u8>)>;

/// Every entry of `stream`, oldest first.
async fn entries(c: &mut mq_tests::Conn, stream: &str) -> Vec<Fields> {
    let all: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .expect("XRANGE");
    all.into_iter().map(|(_, f)| f).collect()
}

/// Adds an entry of `fields` (and `extra`) to `stream`.
async fn add_entry(c: &mut mq_tests::Conn, stream: &str, fields: &Fields, extra: &[(&str, &str)]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    for (k, v) in fields {
        cmd.arg(k).arg(v);
    }
    for (k, v) in extra {
        cmd.arg(*k).arg(*v);
    }
    let _: String = cmd.query_async(c).await.expect("XADD");
}

/// The parents' records: product, children, failed children.
fn parents(log: &Shared) -> Vec<(u64, usize, Vec<String>)> {
    log.lock().unwrap().parents.clone()
}

fn ended(log: &Shared, kind: &str) -> Vec<(u64, Instant)> {
    log.lock()
        .unwrap()
        .ended
        .iter()
        .filter(|e| e.0 == kind)
        .map(|e| (e.1, e.2))
        .collect()
}

#[tokio::test]
async fn a_parent_runs_once_after_all_its_children_in_other_queues() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let mut children = Vec::new();
    for p in 0..50 {
        let ids = producer
            .flow(Index { product: p })
            .child(EmbedImage {
                product: p,
                fail: false,
            })
            .child(EmbedText { product: p })
            .enqueue()
            .await
            .expect("flow");
        assert_eq!(ids.children.len(), 2);
        children.push(ids);
    }
    let mut c = conn(&server).await;
    // Nothing of the parents is in their stream before their children ran.
    assert_eq!(
        xlen(&mut c, &QueueKeys::new("mq", "fl_index").stream).await,
        0
    );
    let (log, hold) = (Shared::default(), Arc::new(AtomicBool::new(false)));
    let w = run_worker(worker(&url, &log, &hold).await);
    wait_until(WAIT, "50 parents", || {
        let log = log.clone();
        async move { ended(&log, "index").len() >= 50 }
    })
    .await;
    // A moment more: a parent run twice would show now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    let (images, texts, index) = (
        ended(&log, "image"),
        ended(&log, "text"),
        ended(&log, "index"),
    );
    assert_eq!(index.len(), 50, "each parent exactly once");
    let at = |v: &[(u64, Instant)], p| v.iter().find(|e| e.0 == p).map(|e| e.1);
    for p in 0..50 {
        let parent = at(&index, p).expect("parent ran");
        assert!(
            at(&images, p).expect("image") <= parent,
            "image {p} before its parent"
        );
        assert!(
            at(&texts, p).expect("text") <= parent,
            "text {p} before its parent"
        );
    }
    for (_, kids, failed) in &log.lock().unwrap().parents {
        assert_eq!(*kids, 2);
        assert!(failed.is_empty());
    }
    // A tracked child's result is readable by the ids the parent lists.
    let ids = &children[3];
    let result: Option<u64> = producer
        .result("fl_texts", &ids.children[1])
        .await
        .expect("result");
    assert_eq!(result, Some(3));
    // No pending-parent hash is left behind.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*:flow:*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_dead_child_fails_the_parent_or_is_listed_as_the_policy_says() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let failing = |p| EmbedImage {
        product: p,
        fail: true,
    };
    producer
        .flow(Index { product: 1 })
        .child(failing(1))
        .child(EmbedText { product: 1 })
        .enqueue()
        .await
        .expect("all-succeeded flow");
    producer
        .flow(Index { product: 2 })
        .policy(FlowPolicy::Always)
        .child(failing(2))
        .child(EmbedText { product: 2 })
        .enqueue()
        .await
        .expect("always flow");
    // A child cancelled while queued counts as failed, with the reason `cancelled`.
    let cancelled = producer
        .flow(Index { product: 3 })
        .policy(FlowPolicy::Always)
        .child(EmbedImage {
            product: 3,
            fail: false,
        })
        .child(EmbedText { product: 3 })
        .enqueue()
        .await
        .expect("flow 3");
    let admin = Admin::connect(&url).await.expect("admin");
    let outcome = admin
        .cancel("fl_texts", &cancelled.children[1])
        .await
        .expect("cancel");
    assert_eq!(outcome, mq_core::CancelOutcome::Queued);
    let (log, hold) = (Shared::default(), Arc::new(AtomicBool::new(false)));
    let w = run_worker(worker(&url, &log, &hold).await);
    wait_until(WAIT, "parents 2 and 3 ran and parent 1 is dead", || {
        let (log, admin) = (log.clone(), admin.clone());
        async move {
            ended(&log, "index").len() == 2
                && admin.dead_list("fl_index", 10).await.expect("dead").len() == 1
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    let mut parents = parents(&log);
    parents.sort();
    assert_eq!(parents.len(), 2, "only the `always` parents ran");
    let (product, kids, failed) = &parents[0];
    assert_eq!((*product, *kids), (2, 2));
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].starts_with("fl_images ") && failed[0].contains("no image for 2"),
        "{failed:?}"
    );
    assert_eq!(parents[1], (3, 2, vec!["fl_texts cancelled".to_owned()]));
    let dead = admin.dead_list("fl_index", 10).await.expect("dead");
    let reason = dead[0].error().expect("reason");
    assert!(
        reason.contains("flow: 1 of 2 children failed") && reason.contains("no image for 1"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_replayed_dead_child_reopens_its_report_before_the_parent_is_decided() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .flow(Index { product: 9 })
        .child(EmbedImage {
            product: 9,
            fail: false,
        })
        .child(EmbedText { product: 9 })
        .enqueue()
        .await
        .expect("flow");
    // Child b (the text) is held back: taken out of its stream until a was replayed.
    let mut c = conn(&server).await;
    let texts = QueueKeys::new("mq", "fl_texts").stream;
    let b = entries(&mut c, &texts).await;
    assert_eq!(b.len(), 1);
    let _: () = redis::cmd("DEL")
        .arg(&texts)
        .query_async(&mut c)
        .await
        .expect("DEL");
    // Child a dies while images are refused.
    let (log, hold, refuse) = (
        Shared::default(),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(true)),
    );
    let w = run_worker(worker_refusing(&url, &log, &hold, &refuse).await);
    let admin = Admin::connect(&url).await.expect("admin");
    wait_until(WAIT, "child a dead", || {
        let admin = admin.clone();
        async move { admin.dead_list("fl_images", 10).await.expect("dead").len() == 1 }
    })
    .await;
    let letter = admin
        .dead_list("fl_images", 10)
        .await
        .expect("dead")
        .remove(0);
    assert!(
        letter.field("fp").is_some(),
        "the dead letter keeps its parent field"
    );
    // Replayed, a succeeds this time: its report goes from dead back to pending, then done.
    refuse.store(false, Ordering::SeqCst);
    let report = admin
        .dead_replay("fl_images", &[letter.dead_id().to_owned()])
        .await
        .expect("replay");
    assert_eq!(report.replayed, 1);
    let again = admin
        .dead_replay("fl_images", &[letter.dead_id().to_owned()])
        .await
        .expect("second replay");
    assert_eq!(again.replayed, 0, "a dead letter is replayed once");
    wait_until(WAIT, "the replayed child ran", || {
        let log = log.clone();
        async move { ended(&log, "image").len() == 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ended(&log, "index").is_empty(), "b has not ended yet");
    add_entry(&mut c, &texts, &b[0], &[]).await;
    wait_until(WAIT, "the parent ran", || {
        let log = log.clone();
        async move { ended(&log, "index").len() == 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    let parents = parents(&log);
    assert_eq!(parents.len(), 1, "once");
    assert!(
        parents[0].2.is_empty(),
        "no failed child: {:?}",
        parents[0].2
    );
    assert!(admin
        .dead_list("fl_index", 10)
        .await
        .expect("dead")
        .is_empty());
}

#[tokio::test]
async fn a_child_delivered_twice_is_counted_once() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let ids = producer
        .flow(Index { product: 5 })
        .child(EmbedText { product: 5 })
        .child(EmbedImage {
            product: 5,
            fail: false,
        })
        .enqueue()
        .await
        .expect("flow");
    let mut c = conn(&server).await;
    // A second copy of the text child's entry (as a producer's retry could write): same id,
    // same parent.
    let texts = QueueKeys::new("mq", "fl_texts").stream;
    let copy = entries(&mut c, &texts).await.remove(0);
    add_entry(&mut c, &texts, &copy, &[]).await;
    // The image child is held: both text copies end first.
    let (log, hold) = (Shared::default(), Arc::new(AtomicBool::new(true)));
    let w = run_worker(worker(&url, &log, &hold).await);
    wait_until(WAIT, "both text copies ran", || {
        let log = log.clone();
        async move { ended(&log, "text").len() == 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        ended(&log, "index").is_empty(),
        "two reports of one child must not release the parent of two"
    );
    let left: Option<u64> = redis::cmd("HGET")
        .arg(format!(
            "{}:flow:{}",
            QueueKeys::new("mq", "fl_index").stream,
            ids.parent
        ))
        .arg("left")
        .query_async(&mut c)
        .await
        .expect("HGET");
    assert_eq!(left, Some(1), "one child left");
    hold.store(false, Ordering::SeqCst);
    wait_until(WAIT, "the parent", || {
        let log = log.clone();
        async move { ended(&log, "index").len() == 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    assert_eq!(ended(&log, "index").len(), 1);
}

#[tokio::test]
async fn nested_flows_run_inside_out() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let inner = producer
        .flow(Index { product: 2 })
        .child(EmbedText { product: 21 })
        .child(EmbedText { product: 22 });
    let ids = producer
        .flow(Index { product: 1 })
        .child_flow(inner)
        .child(EmbedImage {
            product: 11,
            fail: false,
        })
        .enqueue()
        .await
        .expect("nested flow");
    assert_eq!(ids.children.len(), 2);
    let (log, hold) = (Shared::default(), Arc::new(AtomicBool::new(false)));
    let w = run_worker(worker(&url, &log, &hold).await);
    wait_until(WAIT, "both parents", || {
        let log = log.clone();
        async move { ended(&log, "index").len() == 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    let index = ended(&log, "index");
    assert_eq!(index.len(), 2);
    let (inner_at, outer_at) = (
        index.iter().find(|e| e.0 == 2).expect("inner").1,
        index.iter().find(|e| e.0 == 1).expect("outer").1,
    );
    assert!(
        inner_at <= outer_at,
        "the inner parent is the outer's child"
    );
    for (_, t) in ended(&log, "text") {
        assert!(t <= inner_at);
    }
}

#[tokio::test]
async fn what_a_flow_refuses_or_ignores() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let err = producer
        .flow(Index { product: 1 })
        .enqueue()
        .await
        .expect_err("no children");
    assert!(err.to_string().contains("no children"), "{err}");
    let err = producer
        .flow(Index { product: 1 })
        .child(UniqueText { product: 1 })
        .enqueue()
        .await
        .expect_err("unique child");
    assert!(err.to_string().contains("unique"), "{err}");
    let mut c = conn(&server).await;
    assert_eq!(
        xlen(&mut c, &QueueKeys::new("mq", "fl_texts").stream).await,
        0
    );
    // An entry whose parent field names a key of another type (or no flow at all) is an
    // ordinary task: it runs, is acked, and the key is left alone.
    let _: () = redis::cmd("SET")
        .arg("mq:{fl_index}:stream:flow:forged")
        .arg("a cache value")
        .query_async(&mut c)
        .await
        .expect("SET");
    producer
        .enqueue(EmbedText { product: 77 })
        .await
        .expect("enqueue");
    let texts = QueueKeys::new("mq", "fl_texts").stream;
    let plain = entries(&mut c, &texts).await.remove(0);
    let _: () = redis::cmd("DEL")
        .arg(&texts)
        .query_async(&mut c)
        .await
        .expect("DEL");
    for fp in ["mq:{fl_index}:stream:flow:forged", "not a flow key"] {
        add_entry(&mut c, &texts, &plain, &[("fp", fp)]).await;
    }
    let (log, hold) = (Shared::default(), Arc::new(AtomicBool::new(false)));
    let w = run_worker(worker(&url, &log, &hold).await);
    wait_until(WAIT, "both forged entries acked", || {
        let mut c = c.clone();
        let texts = texts.clone();
        async move {
            xlen(&mut c, &texts).await == 0 && mq_tests::pending(&mut c, &texts, "mq").await == 0
        }
    })
    .await;
    w.stop().await;
    assert_eq!(ended(&log, "text").len(), 2);
    let kept: String = redis::cmd("GET")
        .arg("mq:{fl_index}:stream:flow:forged")
        .query_async(&mut c)
        .await
        .expect("GET");
    assert_eq!(kept, "a cache value");
}

#[tokio::test]
async fn flows_are_refused_on_a_cluster() {
    let cluster = mq_tests::cluster();
    let producer = Producer::connect(&cluster.url()).await.expect("producer");
    let err = producer
        .flow(Index { product: 1 })
        .child(EmbedText { product: 1 })
        .enqueue()
        .await
        .expect_err("cluster");
    assert!(err.to_string().contains("one Redis server"), "{err}");
}

/// 10,000 flows of two parts each across 3 worker processes, one SIGKILLed midway (and
/// started again): every parent is released exactly once (one entry id per product, however
/// often a kill made it run), after both its parts; the flows with a dead part (every 100th
/// product) end with their parent dead-lettered, never run.
#[tokio::test]
async fn ten_thousand_flows_survive_a_sigkilled_worker() {
    use mq_examples::jobs::{
        Assemble, Part, RunComplete, ASSEMBLED_KEY, EARLY_KEY, RUN_COMPLETE_KEY,
    };
    const FLOWS: u64 = 10_000;
    let server = mq_tests::redis();
    let url = server.url();
    let bin = mq_tests::example_bin("jobs-worker");
    let args = [
        "--concurrency",
        "32",
        "--reclaim-timeout-ms",
        "1000",
        "--grace-ms",
        "1000",
    ];
    let spawn = || mq_tests::ChildGuard::spawn(&bin, &url, &args);
    let producer = Producer::connect(&url).await.expect("producer");
    let failing = |p: u64| p % 100 == 7;
    let enqueue = Instant::now();
    // The flows are one run (issue 24, item 2), whose completion task must run exactly once.
    let day = producer.run("chaos").await.expect("run");
    for p in 0..FLOWS {
        day.flow(Assemble { product: p })
            .child(Part {
                product: p,
                half: 0,
                sleep_ms: 1,
                fail: false,
            })
            .child(Part {
                product: p,
                half: 1,
                sleep_ms: 1,
                fail: failing(p),
            })
            .enqueue()
            .await
            .expect("flow");
    }
    assert!(day
        .seal_with(RunComplete {
            run: "chaos".into()
        })
        .await
        .expect("seal"));
    let enqueue = enqueue.elapsed();
    let started = Instant::now();
    let mut workers: Vec<_> = (0..3).map(|_| spawn()).collect();
    let dead_parents = (0..FLOWS).filter(|p| failing(*p)).count() as u64;
    let mut c = conn(&server).await;
    let admin = Admin::connect(&url).await.expect("admin");
    let assembled = |c: &mut mq_tests::Conn| {
        let mut c = c.clone();
        async move {
            redis::cmd("HLEN")
                .arg(ASSEMBLED_KEY)
                .query_async::<u64>(&mut c)
                .await
                .expect("HLEN")
        }
    };
    // SIGKILL one worker once a fifth of the parents ran, and start it again.
    let deadline = Instant::now() + Duration::from_secs(240);
    while assembled(&mut c).await < FLOWS / 5 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].signal("KILL");
    workers[0].wait_exit(Duration::from_secs(10)).await;
    let killed_at = assembled(&mut c).await;
    workers[0] = spawn();
    loop {
        let dead = admin
            .dead_list("jobs-assemble", 1000)
            .await
            .expect("dead")
            .len() as u64;
        if assembled(&mut c).await + dead >= FLOWS {
            break;
        }
        assert!(Instant::now() < deadline, "flows not done in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = started.elapsed();
    wait_until(WAIT, "the run's completion task", || {
        let mut c = c.clone();
        async move {
            redis::cmd("SCARD")
                .arg(RUN_COMPLETE_KEY)
                .query_async::<u64>(&mut c)
                .await
                .unwrap_or(0)
                >= 1
        }
    })
    .await;
    // Anything run twice would have had a second to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for w in &workers {
        w.signal("TERM");
    }
    for w in &mut workers {
        w.wait_exit(Duration::from_secs(15)).await;
    }
    let runs: std::collections::HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(ASSEMBLED_KEY)
        .query_async(&mut c)
        .await
        .expect("HGETALL");
    let mut released_twice = 0;
    for p in runs.keys() {
        let entries: u64 = redis::cmd("SCARD")
            .arg(format!("{ASSEMBLED_KEY}:{p}"))
            .query_async(&mut c)
            .await
            .expect("SCARD");
        released_twice += u64::from(entries != 1);
    }
    let early: u64 = redis::cmd("SCARD")
        .arg(EARLY_KEY)
        .query_async(&mut c)
        .await
        .expect("SCARD");
    let dead = admin.dead_list("jobs-assemble", 1000).await.expect("dead");
    let reruns: u64 = runs.values().map(|n| n - 1).sum();
    println!(
        "flows: {FLOWS} flows enqueued in {:.1} s, run in {:.1} s by 3 workers; killed one at \
         {killed_at} parents; {} parents ran ({reruns} reruns of the same entry after the \
         kill), {} dead, {released_twice} released twice, {early} early",
        enqueue.as_secs_f64(),
        run.as_secs_f64(),
        runs.len(),
        dead.len()
    );
    assert_eq!(
        runs.len() as u64,
        FLOWS - dead_parents,
        "every healthy parent ran"
    );
    assert_eq!(released_twice, 0, "each parent released exactly once");
    assert_eq!(early, 0, "no parent ran before both its parts");
    assert_eq!(dead.len() as u64, dead_parents);
    for d in &dead {
        let task: Assemble = rmp_serde::from_slice(d.payload().expect("payload")).expect("decode");
        assert!(failing(task.product), "product {} died", task.product);
        assert!(
            d.error()
                .is_some_and(|r| r.contains("flow: 1 of 2 children failed")),
            "{:?}",
            d.error()
        );
        assert!(!runs.contains_key(&task.product));
    }
    assert_eq!(
        mq_tests::pending(&mut c, &QueueKeys::new("mq", "jobs-parts").stream, "mq").await,
        0
    );
    // The run counted every flow once, and its completion task was released once.
    let info = admin.run("chaos").await.expect("run").expect("the run");
    assert_eq!(
        (info.total, info.done, info.dead, info.remaining),
        (FLOWS, FLOWS - dead_parents, dead_parents, 0),
        "{info:?}"
    );
    assert!(info.ended_ms.is_some());
    let completions: u64 = redis::cmd("SCARD")
        .arg(RUN_COMPLETE_KEY)
        .query_async(&mut c)
        .await
        .expect("SCARD");
    assert_eq!(completions, 1, "the completion task released once");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*:flow:*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(left.is_empty(), "pending parents left: {}", left.len());
}
