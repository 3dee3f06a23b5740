//! The admin API against a real redis-server: `replay_all` stays bounded while the replayed
//! tasks die again at once, dead entries that are not tasks (the promoter's `raw` entries) are
//! skipped and reported instead of replayed, and `purge` works at `maxmemory`.

use std::time::Duration;

use mq_core::{
    admin::Admin, redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker,
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

/// With a worker that dead-letters every replayed task again at once, `replay_all` replays
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

    let report = tokio::time::timeout(WAIT, admin.replay_all("doomed"))
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
/// `failed_at` only) is not a task: `replay_all` and `replay` leave it in the dead stream and
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
        .find(|d| d.field("raw").is_some())
        .expect("a raw dead entry from the promoter");
    assert_eq!(raw.field("name"), None, "{raw:?}");
    let raw_id = raw.dead_id.clone();

    let report = admin
        .replay("doomed", std::slice::from_ref(&raw_id))
        .await
        .expect("replay");
    assert_eq!(
        (report.replayed, report.skipped.clone()),
        (0, vec![raw_id.clone()])
    );

    let report = admin.replay_all("doomed").await.expect("replay_all");
    assert_eq!(report.replayed, 1, "{report:?}");
    assert_eq!(report.skipped, vec![raw_id.clone()]);
    assert_eq!(
        xlen(&mut c, &keys.stream).await,
        1,
        "only the task went back"
    );
    let left = admin.dead_list("doomed", 10).await.expect("dead_list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].dead_id, raw_id, "the raw entry stays dead");
}

/// `purge` deletes the dead stream when Redis is over `maxmemory` with `noeviction` (where
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
        admin.purge("doomed").await.expect("purge at maxmemory"),
        N as u64
    );
    assert_eq!(xlen(&mut c, &keys.dead).await, 0);
}
