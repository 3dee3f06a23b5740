//! Foundation behaviour against a real redis-server: enqueue -> handle -> ack, batches,
//! several worker processes, in-flight limits, graceful shutdown, delayed tasks, bad entries.
//! With `MQ_TEST_TOPOLOGY=cluster` the same tests run against a local Redis Cluster.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::jobs::{Job, BY_CONSUMER_KEY, HANDLED_KEY, STARTED_KEY};
use mq_tests::{
    conn, example_bin, pending, run_worker, server, wait_until, xlen, ChildGuard, Conn,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "basic")]
struct Ping {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "limited", concurrency = 3)]
struct Limited {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "other")]
struct Other {
    n: u32,
}

const WAIT: Duration = Duration::from_secs(30);

fn keys(queue: &str) -> QueueKeys {
    QueueKeys::new("mq", queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_task_is_handled_then_acked_and_deleted() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Ping, _>(move |p: Ping, ctx: TaskContext| {
            let seen = seen2.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((p.n, ctx.id().to_owned(), ctx.attempt()));
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let id = producer.enqueue(Ping { n: 42 }).await.unwrap();

    let mut c = conn(&server).await;
    let k = keys("basic");
    wait_until(WAIT, "task handled and acked", || {
        let seen = seen.clone();
        let mut c = c.clone();
        let k = k.clone();
        async move {
            !seen.lock().unwrap().is_empty()
                && xlen(&mut c, &k.stream).await == 0
                && pending(&mut c, &k.stream, "mq").await == 0
        }
    })
    .await;
    running.stop().await;
    assert_eq!(*seen.lock().unwrap(), vec![(42, id, 0)]);
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_many_ten_thousand_each_handled_exactly_once() {
    const N: usize = 10_000;
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let ids = producer
        .enqueue_many((0..N as u32).map(|n| Ping { n }))
        .await
        .unwrap();
    assert_eq!(ids.len(), N);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), N, "task ids are unique");

    let c2 = counts.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Ping, _>(move |p: Ping, _ctx: TaskContext| {
            let counts = c2.clone();
            async move {
                counts[p.n as usize].fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let running = run_worker(worker);
    let mut c = conn(&server).await;
    let k = keys("basic");
    wait_until(WAIT, "all tasks handled and acked", || {
        let counts = counts.clone();
        let mut c = c.clone();
        let k = k.clone();
        async move {
            counts.iter().all(|x| x.load(Ordering::SeqCst) > 0)
                && xlen(&mut c, &k.stream).await == 0
        }
    })
    .await;
    let elapsed = started.elapsed();
    running.stop().await;
    eprintln!("handled {N} tasks in {elapsed:?}");
    let twice: Vec<usize> = (0..N)
        .filter(|&i| counts[i].load(Ordering::SeqCst) != 1)
        .collect();
    assert!(twice.is_empty(), "handled other than once: {twice:?}");
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_ten_thousand_tasks_without_duplicates() {
    const N: u64 = 10_000;
    let server = server();
    let bin = example_bin("jobs-worker");
    let producer = Producer::connect(&server.url()).await.unwrap();
    let mut workers = vec![
        ChildGuard::spawn(&bin, &server.url(), &["--concurrency", "32"]),
        ChildGuard::spawn(&bin, &server.url(), &["--concurrency", "32"]),
    ];
    // Both are members of the group before the burst arrives.
    let mut c = conn(&server).await;
    let k = keys("jobs");
    wait_until(WAIT, "two workers registered", || {
        let mut c = c.clone();
        async move {
            let n: usize = redis::cmd("HLEN")
                .arg("mq:workers")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            n == 2
        }
    })
    .await;
    producer
        .enqueue_many((0..N).map(|n| Job {
            n,
            sleep_ms: 0,
            spin: false,
        }))
        .await
        .unwrap();
    wait_until(Duration::from_secs(90), "all jobs handled", || {
        let mut c = c.clone();
        async move {
            let n: u64 = redis::cmd("HLEN")
                .arg(HANDLED_KEY)
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            n == N
        }
    })
    .await;
    for w in &workers {
        w.signal("TERM");
    }
    for w in &mut workers {
        assert!(w.wait_exit(WAIT).await.success());
    }
    let handled: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(HANDLED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(handled.len() as u64, N);
    let dup: Vec<_> = handled.iter().filter(|(_, &v)| v != 1).collect();
    assert!(dup.is_empty(), "handled more than once: {dup:?}");
    let by_consumer: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(BY_CONSUMER_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    eprintln!("share per consumer: {by_consumer:?}");
    assert_eq!(by_consumer.len(), 2, "both workers took part");
    assert_eq!(by_consumer.values().sum::<u64>(), N);
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
}

/// Tracks the highest number of handlers running at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    async fn hold(&self, d: Duration) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(d).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_in_flight_limit_is_reached_and_never_exceeded() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..300).map(|n| Ping { n }))
        .await
        .unwrap();
    let gauge = Arc::new(Gauge::default());
    let done = Arc::new(AtomicUsize::new(0));
    let (g, d) = (gauge.clone(), done.clone());
    let worker = Worker::builder(&server.url())
        .concurrency(8)
        .handle::<Ping, _>(move |_p: Ping, _ctx: TaskContext| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                g.hold(Duration::from_millis(10)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "300 tasks", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 300 }
    })
    .await;
    running.stop().await;
    assert_eq!(gauge.max.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_queue_limits_hold_under_the_global_limit() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..120).map(|n| Limited { n }))
        .await
        .unwrap();
    producer
        .enqueue_many((0..120).map(|n| Other { n }))
        .await
        .unwrap();
    let (limited, other, total) = (
        Arc::new(Gauge::default()),
        Arc::new(Gauge::default()),
        Arc::new(Gauge::default()),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let (l, t1, d1) = (limited.clone(), total.clone(), done.clone());
    let (o, t2, d2) = (other.clone(), total.clone(), done.clone());
    let worker = Worker::builder(&server.url())
        .concurrency(7)
        .queue_concurrency("other", 5)
        .handle::<Limited, _>(move |_t: Limited, _ctx: TaskContext| {
            let (l, t, d) = (l.clone(), t1.clone(), d1.clone());
            async move {
                tokio::join!(
                    l.hold(Duration::from_millis(10)),
                    t.hold(Duration::from_millis(10))
                );
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Other, _>(move |_t: Other, _ctx: TaskContext| {
            let (o, t, d) = (o.clone(), t2.clone(), d2.clone());
            async move {
                tokio::join!(
                    o.hold(Duration::from_millis(10)),
                    t.hold(Duration::from_millis(10))
                );
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "240 tasks", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 240 }
    })
    .await;
    running.stop().await;
    assert_eq!(
        limited.max.load(Ordering::SeqCst),
        3,
        "derive concurrency = 3"
    );
    assert_eq!(
        other.max.load(Ordering::SeqCst),
        5,
        "builder queue_concurrency = 5"
    );
    assert!(total.max.load(Ordering::SeqCst) <= 7, "global limit 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_acks_in_flight_tasks_and_fetches_nothing_new() {
    let server = server();
    let bin = example_bin("jobs-worker");
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..20).map(|n| Job {
            n,
            sleep_ms: 1_500,
            spin: false,
        }))
        .await
        .unwrap();
    let mut worker = ChildGuard::spawn(&bin, &server.url(), &["--concurrency", "4"]);
    let mut c = conn(&server).await;
    wait_until(WAIT, "4 jobs started", || {
        let mut c = c.clone();
        async move {
            let n: usize = redis::cmd("SCARD")
                .arg(STARTED_KEY)
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            n == 4
        }
    })
    .await;
    worker.signal("TERM");
    let status = worker.wait_exit(WAIT).await;
    assert!(status.success(), "worker exits cleanly: {status}");

    let started: Vec<u64> = redis::cmd("SMEMBERS")
        .arg(STARTED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    let handled: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(HANDLED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(started.len(), 4, "nothing new started after SIGTERM");
    for n in &started {
        assert_eq!(handled.get(n), Some(&1), "in-flight job {n} finished");
    }
    assert_eq!(handled.len(), 4);
    let k = keys("jobs");
    assert_eq!(
        xlen(&mut c, &k.stream).await,
        16,
        "the finished jobs were acked and deleted; the other 16 are still queued"
    );
    // The fetcher had prefetched up to its limit (4) beyond the running jobs: those were handed
    // back at shutdown, reclaimable at once and with that delivery not counted.
    let rows = mq_tests::pending_rows(&mut c, &k.stream).await;
    assert!(
        rows.len() <= 4,
        "at most one limit's worth prefetched: {rows:?}"
    );
    for (id, _, idle, deliveries) in &rows {
        assert!(*idle > 86_400_000, "{id} handed back (idle {idle} ms)");
        assert_eq!(
            *deliveries, 0,
            "{id}: the unstarted delivery is not counted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_tasks_run_at_their_due_time_not_before() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let ran: Arc<Mutex<HashMap<u32, SystemTime>>> = Arc::default();
    let r = ran.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Ping, _>(move |p: Ping, _ctx: TaskContext| {
            let r = r.clone();
            async move {
                r.lock().unwrap().insert(p.n, SystemTime::now());
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);

    let before_in = SystemTime::now();
    producer
        .enqueue_in(Duration::from_millis(1_500), Ping { n: 1 })
        .await
        .unwrap();
    let after_in = SystemTime::now();
    let at = SystemTime::now() + Duration::from_millis(1_000);
    producer.enqueue_at(at, Ping { n: 2 }).await.unwrap();
    producer.enqueue(Ping { n: 3 }).await.unwrap();

    wait_until(WAIT, "three tasks", || {
        let r = ran.clone();
        async move { r.lock().unwrap().len() == 3 }
    })
    .await;
    running.stop().await;
    let ran = ran.lock().unwrap().clone();
    let due_in_earliest = before_in + Duration::from_millis(1_500);
    let due_in_latest = after_in + Duration::from_millis(1_500);
    // Unix-ms scores: allow the 1 ms rounding of the due time.
    let ms = Duration::from_millis(1);
    assert!(ran[&1] + ms >= due_in_earliest, "enqueue_in ran early");
    assert!(
        ran[&1] <= due_in_latest + Duration::from_secs(1),
        "enqueue_in ran late"
    );
    assert!(ran[&2] + ms >= at, "enqueue_at ran early");
    assert!(
        ran[&2] <= at + Duration::from_secs(1),
        "enqueue_at ran late"
    );
    assert!(ran[&3] < ran[&2], "the immediate task did not wait");
    let mut c = conn(&server).await;
    let n: usize = redis::cmd("ZCARD")
        .arg(keys("basic").delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0, "delayed set is empty after promotion");
}

async fn dead_entries(c: &mut Conn, key: &str) -> Vec<HashMap<String, redis::Value>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .unwrap();
    reply.ids.into_iter().map(|e| e.map).collect()
}

fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_do_not_stop_the_worker_and_end_in_dead_letters() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = handled.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Ping, _>(move |p: Ping, _ctx: TaskContext| {
            let h = h.clone();
            async move {
                h.lock().unwrap().push(p.n);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let k = keys("basic");
    let mut c = conn(&server).await;
    let xadd = |fields: Vec<(&'static str, Vec<u8>)>| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&k.stream).arg("*");
        for (f, v) in fields {
            cmd.arg(f).arg(v);
        }
        cmd
    };
    let good = |name: &str, payload: Vec<u8>| {
        vec![
            ("id", b"01TESTTASKID0000000000000".to_vec()),
            ("name", name.as_bytes().to_vec()),
            ("payload", payload),
            ("attempt", b"0".to_vec()),
            ("enqueued_at", b"1764000000000".to_vec()),
        ]
    };
    let valid_payload = rmp_serde::to_vec_named(&Ping { n: 9 }).unwrap();
    type Fields = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, Fields)> = vec![
        (
            "cannot decode Ping payload",
            good("Ping", vec![0xc1, 0xff, 0x00]),
        ),
        (
            "unknown task name \"Nope\"",
            good("Nope", valid_payload.clone()),
        ),
        (
            "malformed entry: missing field `payload`",
            good("Ping", vec![])
                .into_iter()
                .filter(|(f, _)| *f != "payload")
                .collect(),
        ),
        (
            "malformed entry: missing field `attempt`",
            vec![("garbage", b"\x00\x01".to_vec())],
        ),
    ];
    for (_, fields) in &cases {
        let _: String = xadd(fields.clone()).query_async(&mut c).await.unwrap();
    }
    producer.enqueue(Ping { n: 1 }).await.unwrap();

    let n_bad = cases.len();
    wait_until(
        WAIT,
        "the valid task handled and bad ones dead-lettered",
        || {
            let h = handled.clone();
            let mut c = c.clone();
            let k = k.clone();
            async move { h.lock().unwrap().len() == 1 && xlen(&mut c, &k.dead).await == n_bad }
        },
    )
    .await;
    running.stop().await;
    assert_eq!(*handled.lock().unwrap(), vec![1]);
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 0);
    let dead = dead_entries(&mut c, &k.dead).await;
    assert_eq!(dead.len(), cases.len());
    for (reason, fields) in &cases {
        // Bad entries are handled concurrently: find each one's dead letter by its reason.
        let entry = dead
            .iter()
            .find(|e| text(&e["error"]).contains(reason))
            .unwrap_or_else(|| panic!("no dead letter with reason {reason:?}"));
        for (f, v) in fields {
            assert_eq!(
                entry[*f],
                redis::Value::BulkString(v.clone()),
                "original field {f} kept"
            );
        }
        assert!(entry.contains_key("failed_at") && entry.contains_key("worker"));
    }
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "flaky", max_retries = 2, backoff = "fixed(200ms)")]
struct Flaky {
    fail_times: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_is_retried_with_backoff_then_dead_lettered() {
    let server = server();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let runs: Arc<Mutex<Vec<(u32, u32, Instant)>>> = Arc::default();
    let r = runs.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Flaky, _>(move |t: Flaky, ctx: TaskContext| {
            let r = r.clone();
            async move {
                r.lock()
                    .unwrap()
                    .push((t.fail_times, ctx.attempt(), Instant::now()));
                if ctx.attempt() < t.fail_times {
                    Err(TaskError::retry(format!("failure {}", ctx.attempt())))
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer.enqueue(Flaky { fail_times: 2 }).await.unwrap();
    producer.enqueue(Flaky { fail_times: 99 }).await.unwrap();
    let k = keys("flaky");
    let mut c = conn(&server).await;
    wait_until(
        WAIT,
        "one success after 3 runs, one dead after 3 runs",
        || {
            let r = runs.clone();
            let mut c = c.clone();
            let k = k.clone();
            async move { r.lock().unwrap().len() == 6 && xlen(&mut c, &k.dead).await == 1 }
        },
    )
    .await;
    running.stop().await;
    let runs = runs.lock().unwrap().clone();
    for fail_times in [2, 99] {
        let mine: Vec<_> = runs.iter().filter(|r| r.0 == fail_times).collect();
        assert_eq!(mine.iter().map(|r| r.1).collect::<Vec<_>>(), vec![0, 1, 2]);
        for pair in mine.windows(2) {
            // fixed(200ms) is exact (no jitter): 200 ms plus the promotion delay.
            let gap = pair[1].2 - pair[0].2;
            assert!(
                gap >= Duration::from_millis(200),
                "retry came after {gap:?}"
            );
        }
    }
    let dead = dead_entries(&mut c, &k.dead).await;
    assert_eq!(text(&dead[0]["error"]), "retries exhausted: failure 2");
    assert_eq!(text(&dead[0]["attempts"]), "3");
    assert_eq!(xlen(&mut c, &k.stream).await, 0);
}
