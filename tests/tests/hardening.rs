//! Hardening against a real redis-server (issue 10): acks at `maxmemory`, evicting Redis,
//! shutdown of idle and busy workers (handing back what was fetched but not run, aborting what
//! outlives the grace period, a second signal), a second consumer group, secrets in errors and
//! `Debug`, build-time checks, `/healthz`, and start-up while Redis is down.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::jobs::{Job, HANDLED_KEY, STARTED_KEY};
use mq_tests::{
    conn, example_bin, free_port, http_get, pending, redis, redis_with, run_worker, wait_until,
    xlen, ChildGuard, Conn,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "hard", max_retries = 0)]
struct Hard {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "hard-slow", max_retries = 0)]
struct Slow {
    ms: u64,
}

fn keys(queue: &str) -> QueueKeys {
    QueueKeys::new("mq", queue)
}

async fn info_field(c: &mut Conn, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

/// One pending entry: (consumer, idle ms, deliveries).
async fn pending_entry(c: &mut Conn, stream: &str) -> Option<(String, u64, u64)> {
    let rows = mq_tests::pending_rows(c, stream).await;
    rows.into_iter().next().map(|(_, c, idle, n)| (c, idle, n))
}

/// A tracing subscriber that writes into a buffer, for checking what a run logged.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Buf(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_acked_when_redis_is_over_maxmemory() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (g, d) = (gate.clone(), done.clone());
    let worker = Worker::builder(&server.url())
        .concurrency(64)
        .handle::<Hard, _>(move |_t: Hard, _ctx: TaskContext| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                let _p = g.acquire().await.map_err(TaskError::retry)?;
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue_many((0..40).map(|n| Hard { n }))
        .await
        .unwrap();
    let stream = keys("hard").stream;
    wait_until(WAIT, "all 40 fetched", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { pending(&mut c, &stream, "mq").await == 40 }
    })
    .await;
    // Now Redis is full: every write that needs memory is refused.
    let used = info_field(&mut c, "memory", "used_memory").await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used / 2)
        .query_async(&mut c)
        .await
        .unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("x")
        .arg("y")
        .query_async(&mut c)
        .await;
    assert!(refused.is_err(), "redis refuses writes now: {refused:?}");
    gate.add_permits(40);
    wait_until(WAIT, "40 tasks acked and deleted at maxmemory", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { pending(&mut c, &stream, "mq").await == 0 && xlen(&mut c, &stream).await == 0 }
    })
    .await;
    assert_eq!(done.load(Ordering::SeqCst), 40);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    running.stop().await;
}

#[tokio::test]
async fn an_evicting_redis_is_refused_unless_allowed() {
    let server = redis_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let err = Producer::connect(&server.url())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maxmemory-policy allkeys-lru") && err.contains("noeviction"),
        "{err}"
    );
    let build = || {
        Worker::builder(&server.url())
            .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
    };
    let err = build().build().await.unwrap_err().to_string();
    assert!(err.contains("maxmemory-policy allkeys-lru"), "{err}");
    // Opted out: both work.
    Producer::builder(&server.url())
        .allow_eviction(true)
        .connect()
        .await
        .unwrap();
    build().allow_eviction(true).build().await.unwrap();
}

#[tokio::test]
async fn an_idle_worker_stops_at_once_without_warnings() {
    let server = redis();
    let worker = Worker::builder(&server.url())
        // A long blocking read: the old fetcher waited it out at every shutdown.
        .block_timeout(Duration::from_secs(5))
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    // This (current-thread) runtime runs every task of the worker: its logs land here.
    let (logs, _guard) = capture_logs();
    let token = worker.shutdown_token();
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await; // in its blocking read by now
    let signalled = Instant::now();
    token.cancel();
    handle.await.unwrap().unwrap();
    let took = signalled.elapsed();
    eprintln!("idle worker stopped {took:?} after the signal");
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logs.contains("WARN") && !logs.contains("ERROR"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_fetched_but_not_started_are_handed_back_uncounted() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let slow_started = Arc::new(AtomicBool::new(false));
    let s = slow_started.clone();
    // Global limit 1: while the slow task runs, the idle fetcher of `hard` reads an entry and
    // waits for a permit that never comes before the shutdown.
    let a = Worker::builder(&server.url())
        .consumer("worker-a")
        .concurrency(1)
        .handle::<Slow, _>(move |t: Slow, _c: TaskContext| {
            let s = s.clone();
            async move {
                s.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(t.ms)).await;
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async {
            // A handler that only panics has no result type to infer: name it.
            if std::hint::black_box(true) {
                panic!("worker A never starts this task");
            }
            Ok::<(), TaskError>(())
        })
        .build()
        .await
        .unwrap();
    let a = run_worker(a);
    // Both fetchers find their queues empty and go into blocking reads holding no permit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer.enqueue(Slow { ms: 1_500 }).await.unwrap();
    wait_until(WAIT, "slow task started", || {
        let s = slow_started.clone();
        async move { s.load(Ordering::SeqCst) }
    })
    .await;
    producer.enqueue(Hard { n: 1 }).await.unwrap();
    let stream = keys("hard").stream;
    wait_until(WAIT, "the entry delivered to worker A", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { pending(&mut c, &stream, "mq").await == 1 }
    })
    .await;
    a.stop().await;
    let (owner, idle, deliveries) = pending_entry(&mut c, &stream).await.expect("still pending");
    assert_eq!(owner, "worker-a");
    assert_eq!(
        deliveries, 0,
        "a delivery that never started is not counted"
    );
    assert!(idle > 86_400_000, "reclaimable at once, idle {idle} ms");
    // Worker B (reclaim timeout 2 s, reclaim every 1 s) runs it at its first reclaim.
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let b = Worker::builder(&server.url())
        .consumer("worker-b")
        .reclaim_timeout(Duration::from_secs(2))
        .handle::<Hard, _>(move |_t: Hard, _c: TaskContext| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Slow, _>(|_t: Slow, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let b = run_worker(b);
    wait_until(WAIT, "worker B ran the handed-back task", || {
        let ran = ran.clone();
        async move { ran.load(Ordering::SeqCst) == 1 }
    })
    .await;
    eprintln!(
        "handed-back task ran on worker B {:?} after it started",
        started.elapsed()
    );
    b.stop().await;
    assert_eq!(xlen(&mut c, &stream).await, 0);
}

/// Sets a flag when dropped: the handler future was aborted, not left running.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_outliving_the_grace_period_are_aborted_and_handed_back() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let (started, dropped, finished) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s, d, f) = (started.clone(), dropped.clone(), finished.clone());
    let worker = Worker::builder(&server.url())
        .grace_period(Duration::from_millis(300))
        .handle::<Slow, _>(move |t: Slow, _c: TaskContext| {
            let (s, d, f) = (s.clone(), d.clone(), f.clone());
            async move {
                let _flag = DropFlag(d);
                s.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(t.ms)).await;
                f.store(true, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let token = worker.shutdown_token();
    let handle = tokio::spawn(worker.run());
    producer.enqueue(Slow { ms: 5_000 }).await.unwrap();
    wait_until(WAIT, "task started", || {
        let s = started.clone();
        async move { s.load(Ordering::SeqCst) }
    })
    .await;
    let t0 = Instant::now();
    token.cancel();
    let r = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("run returns")
        .unwrap();
    assert!(
        matches!(r, Err(mq_core::Error::ShutdownTimeout { in_flight: 1, .. })),
        "{r:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert!(dropped.load(Ordering::SeqCst), "the handler was aborted");
    assert!(!finished.load(Ordering::SeqCst));
    let stream = keys("hard-slow").stream;
    let (_, idle, deliveries) = pending_entry(&mut c, &stream).await.expect("pending");
    assert!(idle > 86_400_000, "handed back: idle {idle} ms");
    assert_eq!(deliveries, 1, "it did start: the delivery counts");
    // Still not finished a while later: nothing runs in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_second_signal_stops_the_drain_at_once() {
    let server = redis();
    let mut c = conn(&server).await;
    let bin = example_bin("jobs-worker");
    let mut worker = ChildGuard::spawn(&bin, &server.url(), &["--grace-ms", "60000"]);
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue(Job {
            n: 1,
            sleep_ms: 60_000,
            spin: false,
        })
        .await
        .unwrap();
    wait_until(WAIT, "job started", || {
        let mut c = c.clone();
        async move {
            redis::cmd("SCARD")
                .arg(STARTED_KEY)
                .query_async::<u64>(&mut c)
                .await
                .unwrap_or(0)
                == 1
        }
    })
    .await;
    worker.signal("INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "draining, not stopped"
    );
    let t0 = Instant::now();
    worker.signal("INT");
    worker.wait_exit(Duration::from_secs(10)).await;
    eprintln!("stopped {:?} after the second signal", t0.elapsed());
    let handled: u64 = redis::cmd("HLEN")
        .arg(HANDLED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(handled, 0, "the job was aborted, not finished");
    let (_, idle, _) = pending_entry(&mut c, &keys("jobs").stream)
        .await
        .expect("pending");
    assert!(idle > 86_400_000, "handed back: idle {idle} ms");
}

#[tokio::test]
async fn a_second_consumer_group_is_refused() {
    let server = redis();
    let ok = || {
        Worker::builder(&server.url())
            .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
    };
    ok().build().await.unwrap();
    ok().build().await.unwrap(); // the same group again is fine
    let err = ok()
        .group("analytics")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"mq\"") && err.contains("analytics"), "{err}");
    let mut c = conn(&server).await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys("hard").stream)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "no second group was created");
}

#[tokio::test]
async fn passwords_stay_out_of_errors_and_debug_output() {
    let port = free_port(); // nothing listens there
    let url = format!("redis://app:hunter2secret@127.0.0.1:{port}/");
    let builder = Worker::builder(&url)
        .startup_timeout(Duration::from_millis(300))
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) });
    let debug = format!("{builder:?} {:?}", builder.config());
    assert!(
        !debug.contains("hunter2secret") && debug.contains("app:***@"),
        "{debug}"
    );
    let err = builder.build().await.unwrap_err();
    let text = format!("{err} {err:?} {}", mq_core::error::chain(&err));
    assert!(!text.contains("hunter2secret"), "{text}");
    let err = Producer::connect(&url).await.unwrap_err();
    let text = format!("{err} {err:?} {}", mq_core::error::chain(&err));
    assert!(!text.contains("hunter2secret"), "{text}");
    let err = Producer::connect("redis://:hunter2secret@127.0.0.1:notaport/")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2secret"), "{text}");
}

#[tokio::test]
async fn a_limit_for_a_queue_without_handlers_is_a_build_error() {
    let err = Worker::builder("redis://127.0.0.1:1/")
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .queue_concurrency("hrad", 4)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"hrad\"") && err.contains("no handler"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_an_unreachable_redis_and_recovers() {
    let mut server = redis();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let worker = Worker::builder(&server.url())
        .block_timeout(Duration::from_millis(200))
        .metrics_addr(addr)
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "/healthz ok", || async move {
        matches!(http_get(addr, "/healthz").await, Ok((200, _)))
    })
    .await;
    server.stop();
    wait_until(
        WAIT,
        "/healthz unhealthy while redis is down",
        || async move {
            match http_get(addr, "/healthz").await {
                Ok((503, body)) => body.contains("fetch hard"),
                _ => false,
            }
        },
    )
    .await;
    server.restart().unwrap();
    wait_until(WAIT, "/healthz ok again", || async move {
        matches!(http_get(addr, "/healthz").await, Ok((200, _)))
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_before_redis_waits_for_it_and_runs() {
    let mut server = redis();
    server.stop();
    let url = server.url();
    let build = tokio::spawn(async move {
        Worker::builder(&url)
            .startup_timeout(Duration::from_secs(30))
            .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
            .build()
            .await
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!build.is_finished(), "build waits for redis");
    server.restart().unwrap();
    let worker = tokio::time::timeout(WAIT, build)
        .await
        .expect("build returns once redis is up")
        .unwrap()
        .expect("build succeeds");
    // Redis goes away again right at the start of run(): nothing fails, tasks run once it is back.
    server.stop();
    let running = run_worker(worker);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.restart().unwrap();
    let c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer
        .enqueue_many((0..10).map(|n| Hard { n }))
        .await
        .unwrap();
    let stream = keys("hard").stream;
    wait_until(WAIT, "tasks handled after redis came back", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { xlen(&mut c, &stream).await == 0 }
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn build_gives_up_after_the_startup_timeout() {
    let port = free_port();
    let t0 = Instant::now();
    let err = Worker::builder(&format!("redis://127.0.0.1:{port}/"))
        .startup_timeout(Duration::from_millis(800))
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, mq_core::Error::Redis { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

async fn cmd(c: &mut Conn, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(c).await.unwrap();
}

/// A failover behind a stable address: the old primary becomes a replica, the address moves
/// to the new primary. Connections still open to the old one get `READONLY`; the worker must
/// reconnect (and so reach the new primary) instead of failing until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_readonly_errors_make_the_worker_reconnect() {
    let a = redis();
    let b = redis();
    let (mut ca, mut cb) = (conn(&a).await, conn(&b).await);
    let port = |s: &mq_tests::LocalRedis| s.port().to_string();
    cmd(&mut cb, &["REPLICAOF", "127.0.0.1", &port(&a)]).await;
    let addr = |s: &mq_tests::LocalRedis| -> std::net::SocketAddr {
        format!("127.0.0.1:{}", s.port()).parse().unwrap()
    };
    let proxy = mq_tests::SwitchProxy::start(addr(&a)).await;
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let worker = Worker::builder(&proxy.url())
        .block_timeout(Duration::from_millis(200))
        .handle::<Hard, _>(move |_t: Hard, _c: TaskContext| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let producer = Producer::connect(&a.url()).await.unwrap();
    producer.enqueue(Hard { n: 0 }).await.unwrap();
    wait_until(WAIT, "first task on the old primary", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 1 }
    })
    .await;
    // Wait for B to have the stream and group, then fail over.
    wait_until(WAIT, "replica in sync", || {
        let mut cb = cb.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(keys("hard").stream)
                .query_async::<u64>(&mut cb)
                .await
                .unwrap_or(0)
                == 1
        }
    })
    .await;
    cmd(&mut cb, &["REPLICAOF", "NO", "ONE"]).await;
    cmd(&mut ca, &["REPLICAOF", "127.0.0.1", &port(&b)]).await;
    proxy.switch(addr(&b));
    let producer = Producer::connect(&b.url()).await.unwrap();
    producer
        .enqueue_many((1..=10).map(|n| Hard { n }))
        .await
        .unwrap();
    wait_until(WAIT, "tasks on the new primary handled", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 11 }
    })
    .await;
    let cb2 = conn(&b).await;
    wait_until(WAIT, "acked on the new primary", || {
        let mut c = cb2.clone();
        async move { xlen(&mut c, &keys("hard").stream).await == 0 }
    })
    .await;
    running.stop().await;
}

/// A queue starved by another queue of the same worker (which holds every global permit)
/// keeps at most one entry delivered to this worker, so that idle workers elsewhere can run
/// the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_queue_does_not_hoard_entries() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    let running_slow = Arc::new(AtomicUsize::new(0));
    let r = running_slow.clone();
    // The slow tasks hold their permits until the test has looked (not for a fixed time,
    // which a loaded machine can outlast), at most `t.ms`.
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let worker = Worker::builder(&server.url())
        .concurrency(4)
        .handle::<Slow, _>(move |t: Slow, _c: TaskContext| {
            let (r, rel) = (r.clone(), rel.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                let until = Instant::now() + Duration::from_millis(t.ms);
                while !rel.load(Ordering::SeqCst) && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<_, TaskError>(())
            }
        })
        .handle::<Hard, _>(|_t: Hard, _c: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue_many((0..4).map(|_| Slow { ms: 60_000 }))
        .await
        .unwrap();
    wait_until(WAIT, "4 slow tasks hold every permit", || {
        let r = running_slow.clone();
        async move { r.load(Ordering::SeqCst) == 4 }
    })
    .await;
    producer
        .enqueue_many((0..20).map(|n| Hard { n }))
        .await
        .unwrap();
    let stream = keys("hard").stream;
    wait_until(WAIT, "the starved queue fetched something", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { pending(&mut c, &stream, "mq").await >= 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = pending(&mut c, &stream, "mq").await;
    release.store(true, Ordering::SeqCst);
    assert_eq!(held, 1, "a starved queue holds one entry, not a window");
    running.stop().await;
}
