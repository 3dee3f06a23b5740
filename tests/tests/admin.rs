//! The admin API against a real redis-server: `dead_replay_all` stays bounded while the
//! replayed tasks die again at once, dead entries that are not tasks (the promoter's `raw`
//! entries) are skipped and reported instead of replayed, `dead_purge` works at `maxmemory`,
//! dead letters decode back into their task type, `stats` is one consistent snapshot and
//! `wait_idle` waits for the last ack.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mq_core::{
    admin::{Admin, DecodeError},
    redis::{keys::QueueKeys, scripts},
    Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, redis, run_worker, wait_until, xlen, RunningWorker};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "doomed", max_retries = 0, backoff = "none")]
struct Doomed {
    n: u32,
}

/// A worker on `doomed` whose handler fails every task permanently (dead-letters it at once).
async fn rejecting_worker(url: &str) -> RunningWorker {
    let worker = Worker::builder(url)
        .handle::<Doomed, _>(|t: Doomed, _ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!(
                "task {} can never succeed",
                t.n
            )))
        })
        .concurrency(64)
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("build worker");
    run_worker(worker)
}

async fn wait_dead(admin: &Admin, n: u64) {
    wait_until(WAIT, &format!("{n} dead tasks"), || {
        let admin = admin.clone();
        async move { admin.stats("doomed").await.ok().map(|s| s.dead) == Some(n) }
    })
    .await;
}

/// With a worker that dead-letters every replayed task again at once, `dead_replay_all` replays
/// each task that was dead when it started exactly once and returns; it does not chase the
/// entries the worker keeps adding. More dead tasks than one replay batch (500), so the walk
/// takes several batches while the worker is busy re-dead-lettering the first ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_is_bounded_while_replayed_tasks_die_again() {
    const N: u32 = 1_200;
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    producer
        .enqueue_many((0..N).map(|n| Doomed { n }))
        .await
        .expect("enqueue");
    let worker = rejecting_worker(&url).await;
    wait_dead(&admin, u64::from(N)).await;

    let report = tokio::time::timeout(WAIT, admin.dead_replay_all("doomed"))
        .await
        .expect("replay_all returns while the worker keeps dead-lettering")
        .expect("replay_all");
    assert_eq!(report.replayed, N as usize, "each dead task replayed once");
    assert!(report.skipped.is_empty(), "{report:?}");

    // The worker dead-letters every replayed task again; none is lost.
    wait_dead(&admin, u64::from(N)).await;
    worker.stop().await;
    let stats = admin.stats("doomed").await.expect("stats");
    assert_eq!(
        (stats.length, stats.delayed, stats.dead),
        (0, 0, u64::from(N))
    );
}

/// A dead entry the promoter wrote for an undecodable delayed member (`raw`, `error`,
/// `failed_at` only) is not a task: `dead_replay_all` and `dead_replay` leave it in the dead
/// stream and
/// report its id, and replay the real dead task beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_dead_entries_are_skipped_and_reported() {
    let server = redis();
    let url = server.url();
    let keys = QueueKeys::new("mq", "doomed");
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    producer.enqueue(Doomed { n: 1 }).await.expect("enqueue");
    // Garbage in the delayed set: the worker's promoter dead-letters it as a `raw` entry.
    let _: () = redis::cmd("ZADD")
        .arg(&keys.delayed)
        .arg(0)
        .arg(&b"\xc1 not msgpack"[..])
        .query_async(&mut c)
        .await
        .expect("ZADD");
    let worker = rejecting_worker(&url).await;
    wait_dead(&admin, 2).await;
    worker.stop().await;

    let dead = admin.dead_list("doomed", 10).await.expect("dead_list");
    let raw = dead
        .iter()
        .find(|d| d.raw().is_some())
        .expect("a raw dead entry from the promoter");
    assert_eq!(raw.name(), None, "{raw:?}");
    let raw_id = raw.dead_id().to_owned();

    let report = admin
        .dead_replay("doomed", std::slice::from_ref(&raw_id))
        .await
        .expect("replay");
    assert_eq!(
        (report.replayed, report.skipped.clone()),
        (0, vec![raw_id.clone()])
    );

    let report = admin.dead_replay_all("doomed").await.expect("replay_all");
    assert_eq!(report.replayed, 1, "{report:?}");
    assert_eq!(report.skipped, vec![raw_id.clone()]);
    assert_eq!(
        xlen(&mut c, &keys.stream).await,
        1,
        "only the task went back"
    );
    let left = admin.dead_list("doomed", 10).await.expect("dead_list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].dead_id(), raw_id, "the raw entry stays dead");
}

/// `dead_purge` deletes the dead stream when Redis is over `maxmemory` with `noeviction` (where
/// every command queued in a `MULTI` is refused) and returns how many entries it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_works_over_maxmemory() {
    const N: usize = 3_000;
    let server = redis();
    let keys = QueueKeys::new("mq", "doomed");
    let mut c = conn(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("XADD")
            .arg(&keys.dead)
            .arg("*")
            .arg("id")
            .arg(i)
            .arg("error")
            .arg("x".repeat(200))
            .ignore();
    }
    let () = pipe
        .query_async(&mut c)
        .await
        .expect("fill the dead stream");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .expect("INFO");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory");
    for (k, v) in [
        ("maxmemory-policy", "noeviction".to_owned()),
        ("maxmemory", (used - 64 * 1024).to_string()),
    ] {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut c)
            .await
            .expect("CONFIG SET");
    }
    let oom: redis::RedisResult<()> = redis::cmd("SET")
        .arg("probe")
        .arg("x")
        .query_async(&mut c)
        .await;
    assert!(
        oom.as_ref().is_err_and(|e| e.code() == Some("OOM")),
        "Redis is over maxmemory: {oom:?}"
    );

    let admin = Admin::connect(&server.url()).await.expect("admin");
    assert_eq!(
        admin
            .dead_purge("doomed")
            .await
            .expect("purge at maxmemory"),
        N as u64
    );
    assert_eq!(xlen(&mut c, &keys.dead).await, 0);
}

/// `stats` is one consistent snapshot: while the real promote script moves due tasks one per
/// call from the delayed set to the stream on another connection, every snapshot taken in a
/// tight loop counts each task exactly once (`length + delayed == N`; nothing is acked, so
/// nothing leaves). Reads that are not atomic together can see a task in neither place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_is_a_consistent_snapshot_during_promotion() {
    const N: u64 = 2_000;
    let server = redis();
    let url = server.url();
    let keys = QueueKeys::new("mq", "doomed");
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    for n in 0..N as u32 {
        producer
            .enqueue_in(Duration::ZERO, Doomed { n })
            .await
            .expect("enqueue_in");
    }
    assert_eq!(admin.stats("doomed").await.expect("stats").delayed, N);

    let done = Arc::new(AtomicBool::new(false));
    let promoter = tokio::spawn({
        let mut c = conn(&server).await;
        let done = done.clone();
        async move {
            loop {
                let (moved, _more, _trimmed, _due_in): (u64, u64, u64, i64) = scripts::PROMOTE
                    .key(&keys.delayed)
                    .key(&keys.stream)
                    .key(&keys.dead)
                    .arg(1)
                    .arg(1 << 20)
                    .arg(1_000_000)
                    .invoke_async(&mut c)
                    .await
                    .expect("promote");
                if moved == 0 {
                    break;
                }
            }
            done.store(true, Ordering::SeqCst);
        }
    });
    let mut snapshots = 0u64;
    let mut torn = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !done.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline && !promoter.is_finished()
                || done.load(Ordering::SeqCst),
            "the promoter stopped early or took longer than {WAIT:?}"
        );
        let s = admin.stats("doomed").await.expect("stats");
        snapshots += 1;
        if s.length + s.delayed + s.dead != N {
            torn.push((s.length, s.delayed, s.dead));
        }
    }
    tokio::time::timeout(WAIT, promoter)
        .await
        .expect("promoter ends")
        .expect("promoter");
    assert!(
        torn.is_empty(),
        "{} of {snapshots} snapshots did not count every task once (length, delayed, dead): {:?}",
        torn.len(),
        &torn[..torn.len().min(5)]
    );
    let s = admin.stats("doomed").await.expect("stats");
    assert_eq!((s.length, s.delayed, s.dead), (N, 0, 0));
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "batchjob", max_retries = 3, backoff = "none")]
struct Job {
    n: u32,
    fail_first: bool,
}

/// A worker on `batchjob` whose handler takes 150 ms (longer than a `wait_idle` poll), fails the first attempt of tasks with
/// `fail_first` (retry after 300 ms), and counts finished tasks in `done`.
async fn job_worker(url: &str, done: Arc<AtomicU32>) -> RunningWorker {
    let worker = Worker::builder(url)
        .handle::<Job, _>(move |t: Job, ctx: TaskContext| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                if t.fail_first && ctx.attempt() == 0 {
                    return Err(TaskError::retry_after(
                        Duration::from_millis(300),
                        format!("job {} fails once", t.n),
                    ));
                }
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .concurrency(4)
        .block_timeout(Duration::from_millis(100))
        .promote_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("build worker");
    run_worker(worker)
}

/// `wait_idle` returns `true` only once every task has finished and been acked: tasks ready
/// at once, tasks delayed by 400 ms and a task whose first attempt fails and waits 300 ms for
/// its retry. At that moment the handler has finished every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_idle_returns_after_the_last_task_is_acked() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    assert!(
        admin
            .wait_idle("batchjob", Duration::ZERO)
            .await
            .expect("wait_idle"),
        "a queue that does not exist is idle"
    );
    producer
        .enqueue_many((0..20).map(|n| Job {
            n,
            fail_first: n == 7,
        }))
        .await
        .expect("enqueue");
    for n in 20..25 {
        producer
            .enqueue_in(
                Duration::from_millis(400),
                Job {
                    n,
                    fail_first: false,
                },
            )
            .await
            .expect("enqueue_in");
    }
    let done = Arc::new(AtomicU32::new(0));
    let worker = job_worker(&url, done.clone()).await;
    let idle = admin.wait_idle("batchjob", WAIT).await.expect("wait_idle");
    let finished = done.load(Ordering::SeqCst);
    let stats = admin.stats("batchjob").await.expect("stats");
    worker.stop().await;
    assert!(idle, "the queue became idle within {WAIT:?}");
    assert_eq!(finished, 25, "every task finished when wait_idle returned");
    assert!(stats.is_idle(), "{stats:?}");
    assert_eq!(stats.dead, 0);
}

/// `wait_idle` returns `false` at its timeout while a task is still delayed, even with a
/// worker running and nothing else to do; dead letters do not make a queue busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_idle_times_out_while_a_task_is_delayed() {
    let server = redis();
    let url = server.url();
    let keys = QueueKeys::new("mq", "batchjob");
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let _: String = redis::cmd("XADD")
        .arg(&keys.dead)
        .arg("*")
        .arg("error")
        .arg("an old dead letter")
        .query_async(&mut c)
        .await
        .expect("XADD dead");
    producer
        .enqueue_in(
            Duration::from_secs(60),
            Job {
                n: 1,
                fail_first: false,
            },
        )
        .await
        .expect("enqueue_in");
    let done = Arc::new(AtomicU32::new(0));
    let worker = job_worker(&url, done.clone()).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let idle = admin
        .wait_idle("batchjob", timeout)
        .await
        .expect("wait_idle");
    let waited = started.elapsed();
    worker.stop().await;
    assert!(!idle, "a task is still delayed");
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(2),
        "waited {waited:?} for a timeout of {timeout:?}"
    );
    let stats = admin.stats("batchjob").await.expect("stats");
    assert_eq!((stats.delayed, stats.dead), (1, 1), "{stats:?}");
    assert_eq!(done.load(Ordering::SeqCst), 0);

    // Without the delayed task, the dead letter alone leaves the queue idle.
    let _: u64 = redis::cmd("DEL")
        .arg(&keys.delayed)
        .query_async(&mut c)
        .await
        .expect("DEL");
    assert!(admin
        .wait_idle("batchjob", Duration::ZERO)
        .await
        .expect("wait_idle"));
}

/// A task a worker dead-lettered decodes back into its type with the typed accessors set;
/// decoding it as another task type fails with `DecodeError::WrongTask`, and the promoter's
/// `raw` entry is `DecodeError::NotATask`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_decode_into_their_task_type() {
    let server = redis();
    let url = server.url();
    let keys = QueueKeys::new("mq", "doomed");
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let task_id = producer.enqueue(Doomed { n: 42 }).await.expect("enqueue");
    let _: () = redis::cmd("ZADD")
        .arg(&keys.delayed)
        .arg(0)
        .arg(&b"\xc1 not msgpack"[..])
        .query_async(&mut c)
        .await
        .expect("ZADD");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let worker = rejecting_worker(&url).await;
    wait_dead(&admin, 2).await;
    worker.stop().await;

    let dead = admin.dead_list("doomed", 10).await.expect("dead_list");
    let d = dead
        .iter()
        .find(|d| d.task_id() == Some(task_id.as_str()))
        .expect("the dead task");
    assert_eq!(d.decode::<Doomed>().expect("decode").n, 42);
    assert_eq!(d.name(), Some("Doomed"));
    assert_eq!(
        d.error(),
        Some("permanent failure: task 42 can never succeed")
    );
    assert_eq!(d.attempts(), Some(1));
    assert!(d.worker().is_some_and(|w| !w.is_empty()), "{d:?}");
    assert!(
        d.failed_at()
            .is_some_and(|t| t >= before.saturating_sub(1_000)),
        "{d:?}"
    );
    assert_eq!((d.deliveries(), d.raw()), (None, None));
    let shown = admin
        .dead_show("doomed", d.dead_id())
        .await
        .expect("dead_show")
        .expect("the same entry");
    assert_eq!(&shown, d);

    match d.decode::<Job>() {
        Err(DecodeError::WrongTask {
            dead_id,
            expected,
            found,
        }) => assert_eq!(
            (dead_id.as_str(), expected, found.as_str()),
            (d.dead_id(), "Job", "Doomed")
        ),
        other => panic!("expected WrongTask, got {other:?}"),
    }

    let raw = dead.iter().find(|d| d.raw().is_some()).expect("raw entry");
    assert!(
        matches!(raw.decode::<Doomed>(), Err(DecodeError::NotATask { .. })),
        "{raw:?}"
    );
}

/// The calls of each command since the last `CONFIG RESETSTAT` (`INFO commandstats`).
async fn command_calls(c: &mut mq_tests::Conn) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO");
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "foreign")]
struct Foreign {
    n: u32,
}

/// `Admin::queues` reads the queue registry: a queue shows once a `Producer` wrote to it (one
/// `SADD` with its first write, none after) or once a worker of it started; a queue only
/// written by hand (another language's producer without the registry) does not, until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_registry_lists_queues_of_producers_and_workers() {
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    let admin = Admin::connect(&url).await.expect("admin");
    let producer = Producer::connect(&url).await.expect("producer");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .expect("RESETSTAT");
    for _ in 0..3 {
        producer
            .enqueue_raw("emails", "Send", vec![0x80])
            .await
            .expect("enqueue");
    }
    producer
        .clone()
        .enqueue_many((0..3).map(|n| Doomed { n }))
        .await
        .expect("enqueue");
    producer
        .enqueue_in(Duration::from_secs(3600), Doomed { n: 9 })
        .await
        .expect("enqueue_in");
    assert_eq!(
        command_calls(&mut c).await.get("sadd"),
        Some(&2),
        "one SADD per queue and producer"
    );
    // Written by hand: not registered.
    let _: String = redis::cmd("XADD")
        .arg("mq:{foreign}:stream")
        .arg("*")
        .arg("t")
        .arg("x")
        .query_async(&mut c)
        .await
        .expect("XADD");
    assert_eq!(admin.queues().await.expect("queues"), ["doomed", "emails"]);
    // Its worker registers it when it starts.
    let worker = Worker::builder(&url)
        .handle::<Foreign, _>(
            |_t: Foreign, _ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("build worker");
    let running = run_worker(worker);
    wait_until(WAIT, "the worker registers its queue", || {
        let admin = admin.clone();
        async move { admin.queues().await.ok().is_some_and(|q| q.len() == 3) }
    })
    .await;
    assert_eq!(
        admin.queues().await.expect("queues"),
        ["doomed", "emails", "foreign"]
    );
    running.stop().await;
}

/// `unique_stats` and `key_slots` scan, but at most `SCAN_MAX_CALLS` calls: on a keyspace
/// larger than that they stop and say their counts are partial; on a small one they are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_scans_are_bounded_and_say_when_partial() {
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    let admin = Admin::connect(&url).await.expect("admin");
    let _: () = redis::cmd("SET")
        .arg("mq:{doomed}:unique:k1")
        .arg("id")
        .query_async(&mut c)
        .await
        .expect("SET");
    let u = admin.unique_stats("doomed").await.expect("unique_stats");
    assert_eq!((u.held, u.partial), (1, false));
    assert!(!admin.key_slots("doomed").await.expect("key_slots").partial);

    let _: () = redis::cmd("EVAL")
        .arg("for i = 1, 200000 do redis.call('SET', 'junk:' .. i, 'x') end")
        .arg(0)
        .query_async(&mut c)
        .await
        .expect("fill");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .expect("RESETSTAT");
    let u = admin.unique_stats("doomed").await.expect("unique_stats");
    assert!(u.partial, "{u:?}");
    assert!(u.held <= 1, "{u:?}");
    assert!(admin.key_slots("doomed").await.expect("key_slots").partial);
    let scans = command_calls(&mut c).await.get("scan").copied();
    assert_eq!(
        scans,
        Some(2 * mq_core::admin::SCAN_MAX_CALLS as u64),
        "each walk stops at the cap"
    );
}

/// `Admin::overview` gives a queue with priority levels a row per level, and its total counts
/// every level, like `stats` of the queue and of each level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_rows_of_a_queue_with_levels_match_stats() {
    let server = redis();
    let url = server.url();
    let admin = Admin::connect(&url).await.expect("admin");
    let producer = Producer::connect(&url).await.expect("producer");
    let high = producer.clone().with_priority(mq_core::Priority::High);
    for _ in 0..2 {
        high.enqueue_raw("lv", "Job", vec![0x80])
            .await
            .expect("high");
    }
    producer
        .enqueue_raw("lv", "Job", vec![0x80])
        .await
        .expect("normal");
    producer
        .enqueue_raw("plain", "Job", vec![0x80])
        .await
        .expect("plain");
    admin.pause("lv").await.expect("pause");
    let queues = admin.queues().await.expect("queues");
    assert_eq!(queues, ["lv", "plain"]);
    let o = admin.overview(&queues).await.expect("overview");
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].total.stats, admin.stats("lv").await.expect("stats"));
    assert_eq!(o[0].total.stats.length, 3);
    assert!(o[0].total.stats.paused);
    assert_eq!(
        o[0].total.info.as_ref().and_then(|i| i.entries_added),
        Some(3)
    );
    let levels: Vec<(String, u64)> = o[0]
        .levels
        .iter()
        .map(|l| (l.stats.queue.clone(), l.stats.length))
        .collect();
    assert_eq!(
        levels,
        [
            ("lv@high".to_owned(), 2),
            ("lv@normal".to_owned(), 1),
            ("lv@low".to_owned(), 0)
        ]
    );
    for l in &o[0].levels {
        assert_eq!(l.stats, admin.stats(&l.stats.queue).await.expect("stats"));
    }
    assert!(o[1].levels.is_empty() && o[1].partitions.is_empty());
    assert_eq!(o[1].total.stats, admin.stats("plain").await.expect("stats"));
    assert!(!o[1].total.stats.paused);
}
