//! Reliability against a real redis-server: panics and timeouts, replay and purge, leases that
//! hold while the worker lives (even with a CPU-bound handler) and are taken over when it is
//! SIGKILLed, Redis restarts, and random garbage entries. With `MQ_TEST_TOPOLOGY=cluster` the
//! same tests run against a local Redis Cluster (a restart then stops and starts every node).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use mq_core::{
    admin::Admin, redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker,
};
use mq_examples::jobs::{Job, BY_CONSUMER_KEY, HANDLED_KEY, STARTED_KEY};
use mq_tests::{
    conn, example_bin, pending, run_worker, server, server_with, wait_until, xlen, ChildGuard,
    Conn, RunningWorker,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "explode",
    max_retries = 1,
    timeout = "300ms",
    backoff = "none"
)]
struct Explode {
    mode: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_timeouts_are_retried_then_dead_lettered_while_other_tasks_run() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let r = runs.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Explode, _>(move |t: Explode, _ctx: TaskContext| {
            let r = r.clone();
            async move {
                *r.lock().unwrap().entry(t.mode.clone()).or_default() += 1;
                match t.mode.as_str() {
                    "panic" => panic!("boom"),
                    "timeout" => tokio::time::sleep(Duration::from_secs(60)).await,
                    _ => {}
                }
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue(Explode {
            mode: "panic".into(),
        })
        .await
        .unwrap();
    producer
        .enqueue(Explode {
            mode: "timeout".into(),
        })
        .await
        .unwrap();
    producer
        .enqueue_many((0..50).map(|_| Explode { mode: "ok".into() }))
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    wait_until(WAIT, "2 dead letters and 50 successes", || {
        let (admin, runs) = (admin.clone(), runs.clone());
        async move {
            runs.lock().unwrap().get("ok") == Some(&50)
                && admin.stats("explode").await.ok().map(|s| s.dead) == Some(2)
        }
    })
    .await;
    running.stop().await;
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs["panic"], 2, "first run + 1 retry");
    assert_eq!(runs["timeout"], 2, "first run + 1 retry");
    let dead = admin.dead_list("explode", 10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d.error()).collect();
    assert!(
        reasons.contains(&"retries exhausted: handler panicked: boom"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"retries exhausted: timed out after 300ms"),
        "{reasons:?}"
    );
    for d in &dead {
        assert_eq!(d.attempts(), Some(2));
        assert_eq!(d.name(), Some("Explode"));
    }
    let stats = admin.stats("explode").await.unwrap();
    assert_eq!((stats.length, stats.pending, stats.delayed), (0, 0, 0));
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "replay", max_retries = 0)]
struct Fragile {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_dead_task_runs_again_and_purge_empties_the_dead_stream() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let done: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let (b, d) = (broken.clone(), done.clone());
    let worker = Worker::builder(&server.url())
        .handle::<Fragile, _>(move |t: Fragile, ctx: TaskContext| {
            let (b, d) = (b.clone(), d.clone());
            async move {
                if b.load(Ordering::SeqCst) {
                    return Err(TaskError::permanent("downstream is broken"));
                }
                d.lock().unwrap().push((t.n, ctx.attempt()));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let admin = Admin::connect(&server.url()).await.unwrap();
    let ids = producer
        .enqueue_many((0..3).map(|n| Fragile { n }))
        .await
        .unwrap();
    wait_until(WAIT, "3 dead letters", || {
        let admin = admin.clone();
        async move { admin.stats("replay").await.ok().map(|s| s.dead) == Some(3) }
    })
    .await;
    let dead = admin.dead_list("replay", 10).await.unwrap();
    let shown = admin
        .dead_show("replay", dead[0].dead_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown, dead[0]);
    assert_eq!(
        shown.error(),
        Some("permanent failure: downstream is broken")
    );
    assert!(ids.iter().any(|id| Some(id.as_str()) == shown.task_id()));
    let json = shown.payload_json().unwrap();
    assert!(
        json["n"].as_u64().unwrap() < 3,
        "payload decoded for display: {json}"
    );

    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        admin
            .dead_replay("replay", &[dead[0].dead_id().to_owned()])
            .await
            .unwrap()
            .replayed,
        1
    );
    assert_eq!(admin.dead_replay_all("replay").await.unwrap().replayed, 2);
    wait_until(WAIT, "replayed tasks handled", || {
        let d = done.clone();
        async move { d.lock().unwrap().len() == 3 }
    })
    .await;
    let mut handled = done.lock().unwrap().clone();
    handled.sort();
    assert_eq!(
        handled,
        vec![(0, 0), (1, 0), (2, 0)],
        "each ran once more, attempt reset"
    );
    assert_eq!(admin.stats("replay").await.unwrap().dead, 0);

    broken.store(true, Ordering::SeqCst);
    producer.enqueue(Fragile { n: 7 }).await.unwrap();
    wait_until(WAIT, "a new dead letter", || {
        let admin = admin.clone();
        async move { admin.stats("replay").await.ok().map(|s| s.dead) == Some(1) }
    })
    .await;
    assert_eq!(admin.dead_purge("replay").await.unwrap(), 1);
    assert_eq!(admin.stats("replay").await.unwrap().dead, 0);
    assert_eq!(admin.queues().await.unwrap(), vec!["replay".to_owned()]);
    running.stop().await;
}

async fn hget_all(c: &mut Conn, key: &str) -> HashMap<String, u64> {
    redis::cmd("HGETALL").arg(key).query_async(c).await.unwrap()
}

async fn started(c: &mut Conn) -> usize {
    redis::cmd("SCARD")
        .arg(STARTED_KEY)
        .query_async(c)
        .await
        .unwrap_or(0)
}

const RECLAIM_MS: &str = "1000";

/// Starts worker A (a `jobs-worker` process, reclaim timeout 1 s, `concurrency`), enqueues
/// `jobs` and waits until A started all of them. Returns A and a connection.
async fn worker_a_running(
    server: &mq_tests::TestServer,
    concurrency: &str,
    jobs: Vec<Job>,
) -> (ChildGuard, Conn) {
    let bin = example_bin("jobs-worker");
    let args = [
        "--reclaim-timeout-ms",
        RECLAIM_MS,
        "--concurrency",
        concurrency,
    ];
    let a = ChildGuard::spawn(&bin, &server.url(), &args);
    let n = jobs.len();
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue_many(jobs)
        .await
        .unwrap();
    let c = conn(server).await;
    wait_until(WAIT, "worker A started every job", || {
        let mut c = c.clone();
        async move { started(&mut c).await == n }
    })
    .await;
    (a, c)
}

/// Starts worker B like A.
fn worker_b(server: &mq_tests::TestServer, concurrency: &str) -> ChildGuard {
    let args = [
        "--reclaim-timeout-ms",
        RECLAIM_MS,
        "--concurrency",
        concurrency,
    ];
    ChildGuard::spawn(&example_bin("jobs-worker"), &server.url(), &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_task_three_times_the_reclaim_timeout_is_not_taken_over_while_its_worker_lives() {
    let server = server();
    // Two tasks that burn both runtime threads of worker A without yielding for 3.5 s.
    let jobs = (0..2)
        .map(|n| Job {
            n,
            sleep_ms: 3_500,
            spin: true,
        })
        .collect();
    let (mut a, mut c) = worker_a_running(&server, "2", jobs).await;
    let mut b = worker_b(&server, "2");
    wait_until(WAIT, "both handled", || {
        let mut c = c.clone();
        async move { hget_all(&mut c, HANDLED_KEY).await.len() == 2 }
    })
    .await;
    // Give B a few more reclaim rounds to (wrongly) run a task again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    a.signal("TERM");
    b.signal("TERM");
    assert!(a.wait_exit(WAIT).await.success());
    assert!(b.wait_exit(WAIT).await.success());
    let handled = hget_all(&mut c, HANDLED_KEY).await;
    assert_eq!(
        handled.values().copied().collect::<Vec<_>>(),
        vec![1, 1],
        "{handled:?}"
    );
    let by = hget_all(&mut c, BY_CONSUMER_KEY).await;
    assert_eq!(by.len(), 1, "only worker A ran them: {by:?}");
    let k = QueueKeys::new("mq", "jobs");
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_sigkilled_worker_are_taken_over_and_finished_by_another() {
    let server = server();
    let jobs = (0..4)
        .map(|n| Job {
            n,
            sleep_ms: 2_000,
            spin: false,
        })
        .collect();
    let (mut a, mut c) = worker_a_running(&server, "4", jobs).await;
    a.signal("KILL");
    a.wait_exit(WAIT).await;
    assert!(
        hget_all(&mut c, HANDLED_KEY).await.is_empty(),
        "A died before finishing"
    );
    let mut b = worker_b(&server, "4");
    wait_until(WAIT, "B finished all 4", || {
        let mut c = c.clone();
        async move { hget_all(&mut c, HANDLED_KEY).await.len() == 4 }
    })
    .await;
    b.signal("TERM");
    assert!(b.wait_exit(WAIT).await.success());
    let handled = hget_all(&mut c, HANDLED_KEY).await;
    assert!(handled.values().all(|&v| v == 1), "{handled:?}");
    let k = QueueKeys::new("mq", "jobs");
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
    assert_eq!(xlen(&mut c, &k.dead).await, 0);
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "restart")]
struct Survive {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_producer_survive_a_redis_restart() {
    let mut server = server_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let producer = Producer::connect(&server.url()).await.unwrap();
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let s = seen.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Survive, _>(move |t: Survive, _ctx: TaskContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(t.n);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue_many((0..100).map(|n| Survive { n }))
        .await
        .unwrap();
    wait_until(WAIT, "first 100", || {
        let s = seen.clone();
        async move { s.lock().unwrap().len() == 100 }
    })
    .await;

    server.stop();
    let down = tokio::time::timeout(WAIT, producer.enqueue(Survive { n: 999 })).await;
    assert!(
        matches!(down, Ok(Err(_))),
        "enqueue while Redis is down is an error: {down:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().unwrap();

    // The producer reconnects by itself; the worker resumes fetching.
    let mut sent = false;
    for _ in 0..100 {
        if producer
            .enqueue_many((100..200).map(|n| Survive { n }))
            .await
            .is_ok()
        {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "producer works again after the restart");
    wait_until(WAIT, "second 100 after the restart", || {
        let s = seen.clone();
        async move { s.lock().unwrap().len() >= 200 }
    })
    .await;
    running.stop().await;
    let mut all = seen.lock().unwrap().clone();
    all.sort();
    all.dedup();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "fuzz")]
struct Ping {
    n: u32,
}

mod random_entries {
    use super::*;
    use proptest::prelude::*;

    /// A field name: mostly the real ones, sometimes junk.
    fn field_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec!["id", "name", "payload", "attempt", "enqueued_at", "error", "traceparent", "t", "r"])
                .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ]
    }

    /// A value: sometimes valid for its slot, sometimes random bytes.
    fn field_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => Just(b"Ping".to_vec()),
            1 => any::<u32>().prop_map(|n| n.to_string().into_bytes()),
            1 => any::<u32>().prop_map(|n| rmp_serde::to_vec_named(&Ping { n }).unwrap()),
            2 => prop::collection::vec(any::<u8>(), 0..40),
            // A v2 `t` of a Ping, whole or cut short, and v2 `r` values.
            1 => (any::<u32>(), 0..64usize).prop_map(|(n, cut)| {
                let mut t = v2_ping(n);
                t.truncate(t.len().saturating_sub(cut % 4 * 7));
                t
            }),
            1 => (any::<u32>(), any::<bool>()).prop_map(|(n, e)| {
                let mut r = vec![0x92];
                rmp::encode::write_uint(&mut r, u64::from(n)).unwrap();
                if e {
                    rmp::encode::write_str(&mut r, "boom").unwrap();
                } else {
                    rmp::encode::write_nil(&mut r).unwrap();
                }
                r
            }),
        ]
    }

    /// The v2 `t` value of `Ping { n }`.
    fn v2_ping(n: u32) -> Vec<u8> {
        mq_core::envelope::Envelope {
            id: format!("{n:026}"),
            name: "Ping".into(),
            payload: rmp_serde::to_vec_named(&Ping { n }).unwrap(),
            attempt: 0,
            enqueued_at: 1_764_000_000_000,
            traceparent: None,
            error: None,
            unique: None,
            rate_key: None,
            rate_slot: None,
            concurrency_key: None,
            track: None,
            events: false,
            flow: None,
        }
        .encode_task()
    }

    fn entry() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        prop::collection::vec((field_name(), field_value()), 1..8)
    }

    #[test]
    fn every_random_entry_ends_handled_or_dead_and_the_worker_survives() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = server();
        let handled = Arc::new(AtomicUsize::new(0));
        let h = handled.clone();
        let running = rt.block_on(async {
            let worker = Worker::builder(&server.url())
                .handle::<Ping, _>(move |_p: Ping, _ctx: TaskContext| {
                    let h = h.clone();
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, TaskError>(())
                    }
                })
                .build()
                .await
                .unwrap();
            run_worker(worker)
        });
        let k = QueueKeys::new("mq", "fuzz");
        let mut c = rt.block_on(conn(&server));
        let total = AtomicUsize::new(0);
        let config = ProptestConfig {
            cases: 32,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(entries in prop::collection::vec(entry(), 1..12))| {
            let mut c = c.clone();
            rt.block_on(async {
                for fields in &entries {
                    let mut cmd = redis::cmd("XADD");
                    cmd.arg(&k.stream).arg("*");
                    for (f, v) in fields {
                        cmd.arg(&f[..]).arg(&v[..]);
                    }
                    let _: String = cmd.query_async(&mut c).await.unwrap();
                }
                let expect = total.fetch_add(entries.len(), Ordering::SeqCst) + entries.len();
                wait_until(WAIT, "every entry handled or dead-lettered", || {
                    let (h, mut c, k) = (handled.clone(), c.clone(), k.clone());
                    async move {
                        h.load(Ordering::SeqCst) + xlen(&mut c, &k.dead).await == expect
                            && xlen(&mut c, &k.stream).await == 0
                            && pending(&mut c, &k.stream, "mq").await == 0
                    }
                })
                .await;
            });
        });
        rt.block_on(async {
            // Every dead letter says why.
            let admin = Admin::connect(&server.url()).await.unwrap();
            for d in admin.dead_list("fuzz", 10_000).await.unwrap() {
                assert!(d.error().is_some_and(|e| !e.is_empty()), "{d:?}");
            }
            // Still alive and well.
            let before = handled.load(Ordering::SeqCst);
            Producer::connect(&server.url())
                .await
                .unwrap()
                .enqueue(Ping { n: 1 })
                .await
                .unwrap();
            wait_until(WAIT, "a valid task after the garbage", || {
                let h = handled.clone();
                async move { h.load(Ordering::SeqCst) == before + 1 }
            })
            .await;
            assert_eq!(xlen(&mut c, &k.delayed).await, 0, "nothing was retried");
            running.stop().await;
        });
        eprintln!(
            "random entries: {}, handled: {}",
            total.load(Ordering::SeqCst),
            handled.load(Ordering::SeqCst)
        );
    }
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "members")]
struct Member {
    n: u32,
}

async fn consumers(c: &mut Conn) -> Vec<(String, u64)> {
    let v: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(QueueKeys::new("mq", "members").stream)
        .arg("mq")
        .query_async(c)
        .await
        .unwrap();
    let mut out: Vec<(String, u64)> = v
        .into_iter()
        .map(|m| {
            let name = match &m["name"] {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            };
            let pending = match m["pending"] {
                redis::Value::Int(n) => n as u64,
                _ => 0,
            };
            (name, pending)
        })
        .collect();
    out.sort();
    out
}

/// Leaves an entry (`junk 1`, not a task) pending for `consumer`, as a worker that read it and
/// died would; creates the group if needed. Returns the entry id.
async fn leave_pending(c: &mut Conn, stream: &str, consumer: &str) -> String {
    mq_tests::create_group(c, stream).await;
    let id: String = redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(c)
        .await
        .unwrap();
    mq_tests::read_as(c, stream, consumer).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_create_the_group_at_once_and_idle_empty_consumers_are_reaped() {
    let server = server();
    let mut c = conn(&server).await;
    // A consumer of a dead worker that still has a pending entry: it must never be removed.
    let k = QueueKeys::new("mq", "members");
    leave_pending(&mut c, &k.stream, "dead-with-pending").await;
    let created: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&k.stream)
        .arg("mq")
        .arg("dead-and-empty")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(created, 1);
    assert_eq!(
        consumers(&mut c).await,
        vec![
            ("dead-and-empty".to_owned(), 0),
            ("dead-with-pending".to_owned(), 1)
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // both idle past the timeout

    // Eight workers build (XGROUP CREATE ... MKSTREAM) concurrently: all succeed.
    let url = server.url();
    let builds = (0..8).map(|i| {
        let url = url.clone();
        async move {
            Worker::builder(&url)
                .consumer(&format!("w{i}"))
                .consumer_idle_timeout(Duration::from_millis(400))
                .reclaim_timeout(Duration::from_secs(3600))
                .handle::<Member, _>(|_m: Member, _ctx: TaskContext| async {
                    Ok::<_, TaskError>(())
                })
                .build()
                .await
        }
    });
    let workers: Vec<Worker> = futures::future::join_all(builds)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("concurrent builds all succeed");
    let running: Vec<RunningWorker> = workers.into_iter().take(1).map(run_worker).collect();
    wait_until(WAIT, "the idle empty consumer reaped", || {
        let mut c = c.clone();
        async move {
            let names: Vec<String> = consumers(&mut c)
                .await
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            !names.contains(&"dead-and-empty".to_owned())
        }
    })
    .await;
    let left = consumers(&mut c).await;
    assert!(
        left.contains(&("dead-with-pending".to_owned(), 1)),
        "a consumer with pending entries is kept: {left:?}"
    );
    for r in running {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_deleted_under_a_dead_worker_are_dropped_by_reclaim() {
    let server = server();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "members");
    // A worker that died after reading it; then someone deleted the entry.
    let id = leave_pending(&mut c, &k.stream, "ghost").await;
    let _: i64 = redis::cmd("XDEL")
        .arg(&k.stream)
        .arg(&id)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 1);

    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let worker = Worker::builder(&server.url())
        .reclaim_timeout(Duration::from_millis(200))
        .handle::<Member, _>(move |_m: Member, _ctx: TaskContext| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "the deleted entry left the pending list", || {
        let mut c = c.clone();
        let k = k.clone();
        async move { pending(&mut c, &k.stream, "mq").await == 0 }
    })
    .await;
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue(Member { n: 1 })
        .await
        .unwrap();
    wait_until(WAIT, "the worker still handles tasks", || {
        let s = seen.clone();
        async move { s.load(Ordering::SeqCst) == 1 }
    })
    .await;
    running.stop().await;
    assert_eq!(xlen(&mut c, &k.dead).await, 0, "nothing to dead-letter");
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "poison", max_retries = 0)]
struct Poison {
    #[serde(deserialize_with = "panicking")]
    n: u32,
}

fn panicking<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 666 {
        panic!("deserializer panicked on {n}");
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserializer_and_a_poisoned_delayed_member_block_nothing() {
    let server = server();
    let mut c = conn(&server).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Poison, _>(move |_t: Poison, _ctx: TaskContext| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer.enqueue(Poison { n: 666 }).await.unwrap();
    // A delayed member from a careless producer: a boolean value, which XADD cannot take.
    let k = QueueKeys::new("mq", "poison");
    let bad = {
        let mut m = Vec::new();
        rmp::encode::write_map_len(&mut m, 2).unwrap();
        rmp::encode::write_str(&mut m, "id").unwrap();
        rmp::encode::write_str(&mut m, "x").unwrap();
        rmp::encode::write_str(&mut m, "flag").unwrap();
        rmp::encode::write_bool(&mut m, true).unwrap();
        m
    };
    let _: i64 = redis::cmd("ZADD")
        .arg(&k.delayed)
        .arg(0)
        .arg(bad)
        .query_async(&mut c)
        .await
        .unwrap();
    producer
        .enqueue_in(Duration::from_millis(10), Poison { n: 1 })
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    wait_until(WAIT, "good task handled, two dead letters", || {
        let (h, admin) = (handled.clone(), admin.clone());
        async move {
            let s = admin.stats("poison").await.ok();
            h.load(Ordering::SeqCst) == 1
                && s.is_some_and(|s| s.dead == 2 && s.pending == 0 && s.delayed == 0)
        }
    })
    .await;
    running.stop().await;
    let dead = admin.dead_list("poison", 10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d.error()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("payload decoding panicked: deserializer panicked on 666")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not a string or number")),
        "{reasons:?}"
    );
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "busy")]
struct Busy {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "empty")]
struct Empty {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_queue_holds_no_capacity_from_a_busy_one() {
    let server = server();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let worker = Worker::builder(&server.url())
        .concurrency(1)
        .block_timeout(Duration::from_secs(2))
        .handle::<Busy, _>(move |_t: Busy, _ctx: TaskContext| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Empty, _>(|_t: Empty, _ctx: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    // Let the empty queue's fetcher settle into its blocking read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue_many((0..50).map(|n| Busy { n }))
        .await
        .unwrap();
    wait_until(WAIT, "50 busy tasks", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 50 }
    })
    .await;
    let took = started.elapsed();
    running.stop().await;
    // Were the blocked read holding the only permit, each task would wait up to 2 s.
    assert!(took < Duration::from_secs(4), "50 tasks took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_delivered_more_than_max_deliveries_is_dead_lettered_as_abandoned() {
    let server = server();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "members");
    // Delivered once to a worker that died with it.
    leave_pending(&mut c, &k.stream, "crashed").await;
    let worker = Worker::builder(&server.url())
        .reclaim_timeout(Duration::from_millis(200))
        .max_deliveries(1)
        .handle::<Member, _>(|_m: Member, _ctx: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let admin = Admin::connect(&server.url()).await.unwrap();
    wait_until(WAIT, "abandoned entry dead-lettered", || {
        let admin = admin.clone();
        async move {
            admin
                .stats("members")
                .await
                .is_ok_and(|s| s.dead == 1 && s.pending == 0 && s.length == 0)
        }
    })
    .await;
    running.stop().await;
    let dead = admin.dead_list("members", 10).await.unwrap();
    let d = &dead[0];
    assert!(
        d.error()
            .is_some_and(|e| e.starts_with("abandoned: delivered 2 times")),
        "{d:?}"
    );
    assert_eq!(d.deliveries(), Some(2));
    assert_eq!(d.attempts(), Some(1));
    assert_eq!(
        d.field("junk").as_deref(),
        Some("1"),
        "original fields kept"
    );
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(
    queue = "slowcpu",
    max_retries = 1,
    timeout = "200ms",
    backoff = "none"
)]
struct SlowCpu {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_work_of_a_timed_out_task_keeps_its_slot_until_it_ends() {
    let server = server();
    let running_now = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(AtomicUsize::new(0));
    let (r, m, b) = (running_now.clone(), max_seen.clone(), bodies.clone());
    let worker = Worker::builder(&server.url())
        .concurrency(1)
        .handle::<SlowCpu, _>(move |_t: SlowCpu, ctx: TaskContext| {
            let (r, m, b) = (r.clone(), m.clone(), b.clone());
            async move {
                ctx.blocking(move || {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(600));
                    r.fetch_sub(1, Ordering::SeqCst);
                    b.fetch_add(1, Ordering::SeqCst);
                })
                .await
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue_many((0..3).map(|n| SlowCpu { n }))
        .await
        .unwrap();
    let admin = Admin::connect(&server.url()).await.unwrap();
    // Every attempt times out: 3 tasks x 2 attempts, then 3 dead letters.
    wait_until(WAIT, "all attempts ran and timed out", || {
        let (b, admin) = (bodies.clone(), admin.clone());
        async move {
            b.load(Ordering::SeqCst) == 6 && admin.stats("slowcpu").await.is_ok_and(|s| s.dead == 3)
        }
    })
    .await;
    running.stop().await;
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        1,
        "never more blocking bodies than the limit"
    );
}
