//! The `mq` binary against a real redis-server (one per test): every command's table and
//! `--json` output, state made by `mq_core::Producer` and in-process `mq_core::Worker`s, and
//! the error paths (Redis down, unknown queue, bad JSON, bad ids), each one line on stderr
//! with a non-zero exit status.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, redis, wait_until, xlen};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;

/// Longest wait for anything in these tests: 30 s.
const WAIT: Duration = Duration::from_secs(30);

/// What one run of `mq` printed.
#[derive(Debug)]
struct Out {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts a failure reported as exactly one `error: ...` line containing `what`.
    fn assert_error(&self, what: &str) {
        assert!(!self.success, "expected failure, got {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line expected: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        assert!(lines[0].contains(what), "{:?} lacks {what:?}", lines[0]);
    }
}

/// Runs `mq args...` with `MQ_REDIS_URL=url`, no stdin, killed after [`WAIT`].
async fn mq(url: &str, args: &[&str]) -> Out {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(args)
        .env("MQ_REDIS_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, child)
        .await
        .unwrap_or_else(|_| panic!("mq {args:?} did not finish within {WAIT:?}"))
        .expect("run mq");
    Out {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mq args...` and asserts success.
async fn mq_ok(url: &str, args: &[&str]) -> Out {
    let out = mq(url, args).await;
    assert!(out.success, "mq {args:?} failed: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "mq {args:?} wrote to stderr: {out:?}"
    );
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Task)]
#[task(queue = "images", max_retries = 0, backoff = "none")]
struct EmbedImage {
    product_id: u64,
    url: String,
}

/// An `XRANGE` entry: id and field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

type Running = (mq_core::CancellationToken, JoinHandle<mq_core::Result<()>>);

fn spawn(worker: Worker) -> Running {
    (worker.shutdown_token(), tokio::spawn(worker.run()))
}

/// Stops a worker and returns its result (a grace-period timeout is an error).
async fn stop((token, handle): Running) -> mq_core::Result<()> {
    token.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("worker stops in time")
        .expect("worker task")
}

/// A worker on `images` whose handler dead-letters every task at once.
async fn rejecting_worker(url: &str) -> Running {
    let worker = Worker::builder(url)
        .handle::<EmbedImage, _>(|t: EmbedImage, _ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!("unreachable url {}", t.url)))
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("build worker");
    spawn(worker)
}

fn image(i: u64) -> EmbedImage {
    EmbedImage {
        product_id: i,
        url: format!("https://img.example/{i}.jpg"),
    }
}

/// Enqueues `n` images and lets a rejecting worker dead-letter them all.
async fn make_dead_letters(server: &mq_tests::LocalRedis, n: u64) {
    let producer = Producer::connect(&server.url()).await.expect("producer");
    producer
        .enqueue_many((1..=n).map(image))
        .await
        .expect("enqueue");
    let worker = rejecting_worker(&server.url()).await;
    let mut c = conn(server).await;
    let dead = QueueKeys::new("mq", "images").dead;
    wait_until(WAIT, "tasks dead-lettered", || {
        let mut c = c.clone();
        let dead = dead.clone();
        async move { xlen(&mut c, &dead).await as u64 >= n }
    })
    .await;
    stop(worker).await.expect("clean shutdown");
    assert_eq!(xlen(&mut c, &dead).await as u64, n);
}

fn queue_row<'a>(stats: &'a Value, queue: &str) -> &'a Value {
    stats["queues"]
        .as_array()
        .expect("queues array")
        .iter()
        .find(|q| q["queue"] == queue)
        .unwrap_or_else(|| panic!("queue {queue} missing in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_shows_sizes_and_rates_of_every_queue() {
    let server = redis();
    let url = server.url();
    let out = mq_ok(&url, &["stats", "--sample", "0"]).await;
    assert_eq!(out.stdout, "no queues under prefix \"mq\"\n");

    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many((0..5).map(image)).await.unwrap();
    producer
        .enqueue_in(Duration::from_secs(3600), image(99))
        .await
        .unwrap();
    producer
        .enqueue_raw("texts", "EmbedText", vec![0x80])
        .await
        .unwrap();

    let out = mq_ok(&url, &["stats", "--sample", "0"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "QUEUE   BACKLOG  PENDING  DELAYED  DEAD  CONSUMERS  ENQ/S  DONE/S  PAUSED"
    );
    assert_eq!(
        lines[1],
        "images        5        0        1     0          0      -       -      no"
    );
    assert!(lines[2].starts_with("texts "), "{lines:?}");

    let stats = mq_ok(&url, &["--json", "stats", "--sample", "0"])
        .await
        .json();
    let images = queue_row(&stats, "images");
    assert_eq!(images["backlog"], 5);
    assert_eq!(images["delayed"], 1);
    assert_eq!(images["entries_added"], 5);
    assert!(images["enqueued_per_sec"].is_null());
    assert_eq!(queue_row(&stats, "texts")["length"], 1);

    // Rates: enqueue all through the two samples.
    let p = producer.clone();
    let feeder = tokio::spawn(async move {
        loop {
            p.enqueue(image(1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let stats = mq_ok(&url, &["--json", "stats", "images", "--sample", "0.5"])
        .await
        .json();
    feeder.abort();
    let images = queue_row(&stats, "images");
    assert!(
        images["enqueued_per_sec"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert_eq!(images["done_per_sec"].as_f64(), Some(0.0), "{stats}");
    assert!(stats["rate_window_secs"].as_f64().unwrap() >= 0.5);
    assert_eq!(stats["queues"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_counts_done_tasks_and_watch_refreshes() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue(image(0)).await.unwrap();
    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(|_t: EmbedImage, _ctx: TaskContext| async move {
            Ok::<_, TaskError>(())
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let running = spawn(worker);
    let p = producer.clone();
    let feeder = tokio::spawn(async move {
        loop {
            p.enqueue(image(1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let stats = mq_ok(&url, &["--json", "stats", "images", "--sample", "0.5"])
        .await
        .json();
    let images = queue_row(&stats, "images");
    assert!(images["done_per_sec"].as_f64().unwrap() > 0.0, "{stats}");
    assert_eq!(images["consumers"], 1);

    // --watch prints one JSON line per refresh until killed.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(["--json", "stats", "--watch", "0.2", "--sample", "0.1"])
        .env("MQ_REDIS_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut enqueued = Vec::new();
    for _ in 0..3 {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a refresh in time")
            .unwrap()
            .expect("a line");
        let doc: Value = serde_json::from_str(&line).unwrap();
        enqueued.push(
            queue_row(&doc, "images")["enqueued_per_sec"]
                .as_f64()
                .unwrap(),
        );
    }
    assert!(enqueued.iter().any(|r| *r > 0.0), "{enqueued:?}");
    child.kill().await.unwrap();
    feeder.abort();
    stop(running).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_replayed_and_purged() {
    let server = redis();
    let url = server.url();
    make_dead_letters(&server, 3).await;

    let out = mq_ok(&url, &["dead", "list", "images"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("DEAD ID"), "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[1].contains("EmbedImage") && lines[1].contains("unreachable url"));
    let out = mq_ok(&url, &["dead", "list", "images", "--count", "2"]).await;
    assert!(out.stdout.contains("(2 of 3 dead tasks shown"), "{out:?}");

    let list = mq_ok(&url, &["--json", "dead", "list", "images"])
        .await
        .json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    // Dead-lettered concurrently: in any order. Sort by product id.
    let mut list: Vec<(u64, &Value)> = list
        .iter()
        .map(|d| (d["payload"]["product_id"].as_u64().unwrap(), d))
        .collect();
    list.sort_by_key(|(id, _)| *id);
    assert_eq!(
        list.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let first = list[0].1;
    assert_eq!(first["name"], "EmbedImage");
    assert_eq!(first["attempts"], "1");
    assert_eq!(first["payload"]["url"], "https://img.example/1.jpg");
    assert!(first["error"]
        .as_str()
        .unwrap()
        .ends_with("unreachable url https://img.example/1.jpg"));
    let ids: Vec<String> = list
        .iter()
        .map(|(_, d)| d["dead_id"].as_str().unwrap().to_owned())
        .collect();

    let shown = mq_ok(&url, &["--json", "dead", "show", "images", &ids[1]])
        .await
        .json();
    let payload: EmbedImage = serde_json::from_value(shown["payload"].clone()).unwrap();
    assert_eq!(payload, image(2));
    assert_eq!(shown["dead_id"], ids[1].as_str());
    let out = mq_ok(&url, &["dead", "show", "images", &ids[1]]).await;
    assert!(out.stdout.contains("\"product_id\": 2"), "{}", out.stdout);
    assert!(out.stdout.contains("error:"), "{}", out.stdout);

    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "images");
    let out = mq_ok(&url, &["dead", "replay", "images", &ids[0]]).await;
    assert_eq!(out.stdout, "replayed 1 dead task to queue \"images\"\n");
    assert_eq!(
        (xlen(&mut c, &k.dead).await, xlen(&mut c, &k.stream).await),
        (2, 1)
    );
    let out = mq(&url, &["dead", "replay", "images", &ids[0], &ids[1]]).await;
    out.assert_error("1 of the 2 dead tasks given not found");
    let replayed = mq_ok(
        &url,
        &["--json", "dead", "replay", "images", "--all", "--yes"],
    )
    .await
    .json();
    assert_eq!(replayed["replayed"], 1);
    assert_eq!(
        (xlen(&mut c, &k.dead).await, xlen(&mut c, &k.stream).await),
        (0, 3)
    );

    // The replayed tasks run again (and die again): purge them.
    let worker = rejecting_worker(&url).await;
    wait_until(WAIT, "replayed tasks dead again", || {
        let mut c = c.clone();
        let dead = k.dead.clone();
        async move { xlen(&mut c, &dead).await == 3 }
    })
    .await;
    stop(worker).await.unwrap();
    mq(&url, &["dead", "purge", "images"])
        .await
        .assert_error("without --yes");
    assert_eq!(xlen(&mut c, &k.dead).await, 3);
    let purged = mq_ok(&url, &["--json", "dead", "purge", "images", "--yes"])
        .await
        .json();
    assert_eq!(purged["purged"], 3);
    assert_eq!(xlen(&mut c, &k.dead).await, 0);
    let out = mq_ok(&url, &["dead", "list", "images"]).await;
    assert_eq!(out.stdout, "no dead tasks in queue \"images\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_commands_reject_bad_and_unknown_ids() {
    let server = redis();
    let url = server.url();
    make_dead_letters(&server, 1).await;
    mq(&url, &["dead", "show", "images", "not-an-id"])
        .await
        .assert_error("bad dead-letter id \"not-an-id\"");
    mq(&url, &["dead", "show", "images", "1-0"])
        .await
        .assert_error("no dead task 1-0 in queue \"images\"");
    mq(&url, &["dead", "replay", "images", "1-0", "x"])
        .await
        .assert_error("bad dead-letter id \"x\"");
    let mut c = conn(&server).await;
    assert_eq!(xlen(&mut c, &QueueKeys::new("mq", "images").dead).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_lists_live_workers_and_hides_dead_registrations() {
    let server = redis();
    let url = server.url();
    let out = mq_ok(&url, &["workers"]).await;
    assert_eq!(out.stdout, "no live workers\n");

    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(|_t: EmbedImage, _ctx: TaskContext| async move {
            Ok::<_, TaskError>(())
        })
        .consumer("cli-test-worker")
        .concurrency(7)
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let running = spawn(worker);
    wait_until(WAIT, "worker registered", || {
        let url = url.clone();
        async move {
            let w = mq_ok(&url, &["--json", "workers"]).await.json();
            w.as_array().is_some_and(|a| !a.is_empty())
        }
    })
    .await;

    let workers = mq_ok(&url, &["--json", "workers"]).await.json();
    let workers = workers.as_array().unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0]["consumer"], "cli-test-worker");
    assert_eq!(workers[0]["live"], true);
    assert_eq!(workers[0]["queues"], serde_json::json!(["images"]));
    assert_eq!(workers[0]["concurrency"], 7);
    assert!(workers[0]["heartbeat_ttl_ms"].as_u64().unwrap() > 0);

    let out = mq_ok(&url, &["workers"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("CONSUMER"), "{lines:?}");
    assert!(
        lines[1].starts_with("cli-test-worker  live    images"),
        "{lines:?}"
    );
    stop(running).await.unwrap();
    let workers = mq_ok(&url, &["--json", "workers"]).await.json();
    assert_eq!(workers, serde_json::json!([]));

    // A worker that was SIGKILLed: registered, but its heartbeat key expired (running workers
    // forget such entries at their next metrics sample; none runs now).
    let mut c = conn(&server).await;
    let _: () = redis::cmd("HSET")
        .arg("mq:workers")
        .arg("gone-worker")
        .arg("queues=texts concurrency=2 started_at=1764000000000")
        .query_async(&mut c)
        .await
        .unwrap();
    let out = mq_ok(&url, &["workers"]).await;
    assert!(
        out.stdout
            .contains("1 registered worker without a heartbeat hidden"),
        "{}",
        out.stdout
    );
    let all = mq_ok(&url, &["--json", "workers", "--all"]).await.json();
    let gone = all
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["consumer"] == "gone-worker")
        .expect("stale worker listed with --all");
    assert_eq!(gone["live"], false);
    assert_eq!(gone["started_at"], "2025-11-24T16:00:00.000Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_json_reaches_a_typed_handler() {
    let server = redis();
    let url = server.url();
    let out = mq_ok(
        &url,
        &[
            "enqueue",
            "images",
            "EmbedImage",
            r#"{"product_id": 42, "url": "https://img.example/42.jpg"}"#,
        ],
    )
    .await;
    let id = out.stdout.trim().to_owned();
    assert_eq!(id.len(), 26, "a ULID: {id:?}");
    let out = mq_ok(
        &url,
        &[
            "--json",
            "enqueue",
            "images",
            "EmbedImage",
            r#"{"url": "u", "product_id": 43}"#,
        ],
    )
    .await
    .json();
    assert_eq!(out["queue"], "images");

    // The payload is byte for byte what the derive's producer writes.
    let mut c = conn(&server).await;
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg("mq:{images}:stream")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    // One field, `t` (wire format v2), its payload element the MessagePack.
    assert_eq!(entries[0].1.len(), 1, "{:?}", entries[0].1);
    let (field, t) = &entries[0].1[0];
    assert_eq!(field, "t");
    let packed = mq_core::envelope::PackedTask::decode(t).unwrap();
    assert_eq!((packed.id, packed.name), (&id[..], "EmbedImage"));
    assert_eq!(
        packed.payload,
        rmp_serde::to_vec_named(&EmbedImage {
            product_id: 42,
            url: "https://img.example/42.jpg".into()
        })
        .unwrap()
    );

    let seen: Arc<Mutex<Vec<(String, EmbedImage)>>> = Arc::default();
    let s = seen.clone();
    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(move |t: EmbedImage, ctx: TaskContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((ctx.id().to_owned(), t));
                Ok::<_, TaskError>(())
            }
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let running = spawn(worker);
    wait_until(WAIT, "both tasks handled", || {
        let n = seen.lock().unwrap().len();
        async move { n == 2 }
    })
    .await;
    stop(running).await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(_, t)| t.product_id);
    assert_eq!(seen[0].0, id);
    assert_eq!(
        seen[0].1,
        EmbedImage {
            product_id: 42,
            url: "https://img.example/42.jpg".into()
        }
    );
    assert_eq!(seen[1].1.product_id, 43);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_rejects_bad_json_and_bad_queue_names() {
    let server = redis();
    let url = server.url();
    mq(
        &url,
        &["enqueue", "images", "EmbedImage", "{product_id: 1}"],
    )
    .await
    .assert_error("invalid JSON payload");
    mq(&url, &["enqueue", "bad queue", "EmbedImage", "{}"])
        .await
        .assert_error("queue name \"bad queue\"");
    mq(&url, &["enqueue", "images", "", "{}"])
        .await
        .assert_error("task name must not be empty");
    let mut c = conn(&server).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("mq:{images}:stream")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!exists, "nothing was enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_shows_entries_in_flight() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many((1..=3).map(image)).await.unwrap();
    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(|_t: EmbedImage, _ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, TaskError>(())
        })
        .consumer("busy-worker")
        .concurrency(2)
        .grace_period(Duration::from_millis(100))
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let running = spawn(worker);
    let c = conn(&server).await;
    // Two running and the third prefetched (delivered, leased, waiting for a permit).
    wait_until(WAIT, "all three delivered", || {
        let mut c = c.clone();
        async move { mq_tests::pending(&mut c, "mq:{images}:stream", "mq").await == 3 }
    })
    .await;

    let pending = mq_ok(&url, &["--json", "pending", "images"]).await.json();
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 3, "{pending:?}");
    for p in pending {
        assert_eq!(p["consumer"], "busy-worker");
        assert_eq!(p["deliveries"], 1);
        assert_eq!(p["name"], "EmbedImage");
        assert_eq!(p["task_id"].as_str().map(str::len), Some(26));
        assert!(p["idle_ms"].is_u64());
    }
    let out = mq_ok(&url, &["pending", "images", "--count", "1"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ENTRY ID"), "{lines:?}");
    assert!(lines[1].contains("busy-worker"), "{lines:?}");
    assert!(lines[2].contains("first 1 shown"), "{lines:?}");

    // The handlers never finish: the shutdown leaves them pending, which is an error result.
    assert!(stop(running).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_queues_are_reported() {
    let server = redis();
    let url = server.url();
    for args in [
        &["stats", "nope"][..],
        &["dead", "list", "nope"],
        &["dead", "show", "nope", "1-0"],
        &["dead", "replay", "nope", "--all"],
        &["dead", "purge", "nope", "--yes"],
        &["pending", "nope"],
    ] {
        mq(&url, args)
            .await
            .assert_error("no such queue \"nope\" (key mq:{nope}:stream does not exist)");
    }
    // --prefix and --group select other keys.
    Producer::connect_with_prefix(&url, "app")
        .await
        .unwrap()
        .enqueue(image(1))
        .await
        .unwrap();
    mq(&url, &["pending", "images"])
        .await
        .assert_error("no such queue");
    let out = mq_ok(
        &url,
        &["--prefix", "app", "--group", "g", "pending", "images"],
    )
    .await;
    assert_eq!(out.stdout, "no pending entries in queue \"images\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_one_error_line() {
    let mut server = redis();
    let url = server.url();
    server.stop();
    for args in [
        &["stats"][..],
        &["--json", "stats", "images"],
        &["dead", "list", "images"],
        &["dead", "replay", "images", "--all"],
        &["workers"],
        &["pending", "images"],
        &["enqueue", "images", "EmbedImage", "{}"],
    ] {
        mq(&url, args)
            .await
            .assert_error(&format!("cannot connect to Redis at {url}"));
    }
    mq("redis://user:secret@127.0.0.1:1/", &["workers"])
        .await
        .assert_error("redis://user:***@127.0.0.1:1/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_asks_for_confirmation_and_reports_skipped_entries() {
    let server = redis();
    let url = server.url();
    make_dead_letters(&server, 3).await;
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "images");
    // What the promoter writes for an undecodable delayed member: not a task.
    let raw_id: String = redis::cmd("XADD")
        .arg(&k.dead)
        .arg("*")
        .arg("raw")
        .arg(&b"\xc1"[..])
        .arg("error")
        .arg("undecodable delayed member")
        .arg("failed_at")
        .arg(1_764_000_000_123u64)
        .query_async(&mut c)
        .await
        .unwrap();

    // No terminal to ask on (stdin is /dev/null) and no --yes: nothing is replayed.
    mq(&url, &["dead", "replay", "images", "--all"])
        .await
        .assert_error("refusing to replay 4 dead tasks of queue \"images\" without --yes");
    assert_eq!(
        (xlen(&mut c, &k.dead).await, xlen(&mut c, &k.stream).await),
        (4, 0)
    );

    let out = mq(&url, &["dead", "replay", "images", "--all", "--yes"]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "replayed 3 dead tasks to queue \"images\"\n\
             skipped 1 dead entry that is not a task (no id, name, payload or enqueued_at): {raw_id}\n"
        )
    );
    assert_eq!(
        (xlen(&mut c, &k.dead).await, xlen(&mut c, &k.stream).await),
        (1, 3)
    );
    let json = mq_ok(&url, &["--json", "dead", "replay", "images", "--all", "-y"])
        .await
        .json();
    assert_eq!(json["replayed"], 0);
    assert_eq!(json["skipped"], serde_json::json!([raw_id]));
    // Given by id, the raw entry is skipped too, and that is an error (it was not replayed).
    mq(&url, &["dead", "replay", "images", &raw_id])
        .await
        .assert_error("1 of the 1 dead tasks given not replayed: not a task");
    assert_eq!(xlen(&mut c, &k.stream).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_is_never_printed() {
    let port = mq_tests::free_port();
    let url = format!("redis://:hunter2secret@127.0.0.1:{port}/");
    for args in [&["--help"][..], &["dead", "replay", "--help"], &["stats"]] {
        let out = mq(&url, args).await;
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            !all.contains("hunter2secret"),
            "mq {args:?} printed the password:\n{all}"
        );
    }
    // A URL that does not parse is not echoed with its password either, even when the error
    // quotes it with escapes.
    for url in [
        "redis://:hunter2secret@127.0.0.1:notaport/",
        r#"redis://:hunter2secret"\@127.0.0.1:notaport/"#,
    ] {
        let out = mq(url, &["stats"]).await;
        assert!(!out.success);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            !all.contains("hunter2secret"),
            "printed the password:\n{all}"
        );
    }
}

/// A task of a queue of 3 partitions.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "parted", partitions = 3)]
struct Parted {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_stats_show_a_partitioned_queue_and_each_partition() {
    let cl = mq_tests::cluster();
    let url = cl.url();
    // A worker records the partition count (without running).
    Worker::builder(&url)
        .handle::<Parted, _>(|_p: Parted, _ctx: TaskContext| async move { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let producer = Producer::connect(&url).await.unwrap();
    producer
        .enqueue_many((0..30).map(|n| Parted { n }))
        .await
        .unwrap();
    let stats = mq_ok(&url, &["--json", "stats", "--sample", "0"])
        .await
        .json();
    assert_eq!(queue_row(&stats, "parted")["length"], 30, "{stats}");
    for p in 0..3 {
        assert_eq!(
            queue_row(&stats, &format!("parted#{p}"))["length"],
            10,
            "{stats}"
        );
    }
    let table = mq_ok(&url, &["stats", "--sample", "0"]).await.stdout;
    assert!(table.contains("parted#2"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_a_queue_and_stats_show_it() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many((0..3).map(image)).await.unwrap();
    producer
        .enqueue_raw("texts", "EmbedText", vec![0x80])
        .await
        .unwrap();

    let out = mq_ok(&url, &["pause", "images"]).await;
    assert_eq!(out.stdout, "paused queue \"images\"\n");
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    assert!(admin.is_paused("images").await.unwrap());
    assert!(!admin.is_paused("texts").await.unwrap());

    let out = mq_ok(&url, &["stats", "--sample", "0"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "QUEUE   BACKLOG  PENDING  DELAYED  DEAD  CONSUMERS  ENQ/S  DONE/S  PAUSED"
    );
    assert!(
        lines[1].starts_with("images ") && lines[1].ends_with("  yes"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("texts ") && lines[2].ends_with("  no"),
        "{lines:?}"
    );
    let stats = mq_ok(&url, &["--json", "stats", "--sample", "0"])
        .await
        .json();
    assert_eq!(queue_row(&stats, "images")["paused"], true, "{stats}");
    assert_eq!(queue_row(&stats, "texts")["paused"], false, "{stats}");

    let out = mq_ok(&url, &["--json", "resume", "images"]).await.json();
    assert_eq!(
        out,
        serde_json::json!({ "queue": "images", "paused": false })
    );
    assert!(!admin.is_paused("images").await.unwrap());
    let stats = mq_ok(&url, &["--json", "stats", "images", "--sample", "0"])
        .await
        .json();
    assert_eq!(queue_row(&stats, "images")["paused"], false, "{stats}");

    // A typo pauses nothing: unknown queues are refused.
    mq(&url, &["pause", "imagez"]).await.assert_error("imagez");
    assert!(!admin.is_paused("imagez").await.unwrap());
}

/// `mq stats` lists the per-key concurrency slots in use (unexpired leases only), most first.
#[tokio::test]
async fn stats_show_key_slots_in_use() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue(image(1)).await.unwrap();
    let mut c = conn(&server).await;
    let far = u64::MAX / 2048; // far in the future, in unix ms
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg("mq:{images}:slots:Call:acct-1")
        .arg(far)
        .arg("1-0")
        .arg(far)
        .arg("2-0")
        .cmd("ZADD")
        .arg("mq:{images}:slots:Call:acct-2")
        .arg(far)
        .arg("3-0")
        // An expired lease (a dead worker's slot) does not count.
        .cmd("ZADD")
        .arg("mq:{images}:slots:Call:acct-3")
        .arg(1)
        .arg("4-0")
        .query_async(&mut c)
        .await
        .unwrap();
    // Counting slots scans the keyspace: only with `--keys`.
    let out = mq_ok(&url, &["stats", "images", "--sample", "0"]).await;
    assert!(!out.stdout.contains("key slots"), "{}", out.stdout);
    let out = mq_ok(&url, &["stats", "images", "--sample", "0", "--keys"]).await;
    assert!(
        out.stdout
            .contains("images: key slots in use: Call:acct-1 2, Call:acct-2 1\n"),
        "{}",
        out.stdout
    );
    let stats = mq_ok(
        &url,
        &["--json", "stats", "images", "--sample", "0", "--keys"],
    )
    .await
    .json();
    assert_eq!(queue_row(&stats, "images")["key_slots_partial"], false);
    assert_eq!(
        queue_row(&stats, "images")["key_slots"],
        serde_json::json!([
            { "key": "Call:acct-1", "running": 2 },
            { "key": "Call:acct-2", "running": 1 }
        ]),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_lists_the_cron_schedules_with_last_and_next_tick() {
    let server = redis();
    let url = server.url();
    let out = mq_ok(&url, &["schedules"]).await;
    assert_eq!(out.stdout, "no schedules\n");

    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(|_t: EmbedImage, _ctx: TaskContext| async move {
            Ok::<_, TaskError>(())
        })
        .schedule("* * * * * *", |_tick| EmbedImage {
            product_id: 1,
            url: "https://example.com/1.jpg".into(),
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let running = spawn(worker);
    wait_until(WAIT, "a tick recorded", || {
        let url = url.clone();
        async move {
            let s = mq_ok(&url, &["--json", "schedules"]).await.json();
            s[0]["last_ms"].as_u64().is_some()
        }
    })
    .await;
    stop(running).await.unwrap();

    let s = mq_ok(&url, &["--json", "schedules"]).await.json();
    let s = s.as_array().unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["name"], "EmbedImage");
    assert_eq!(s[0]["queue"], "images");
    assert_eq!(s[0]["expression"], "* * * * * *");
    assert_eq!(s[0]["timezone"], "UTC");
    let (last, next) = (
        s[0]["last_ms"].as_u64().unwrap(),
        s[0]["next_ms"].as_u64().unwrap(),
    );
    assert_eq!((last % 1000, next - last), (0, 1000));

    let out = mq_ok(&url, &["schedules"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    assert!(
        lines[1].starts_with("EmbedImage  images  * * * * * *  UTC "),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_queued_and_a_delayed_task_and_report_unknown_ids() {
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let queued = producer.enqueue(image(1)).await.unwrap();
    let delayed = producer
        .enqueue_in(Duration::from_secs(3600), image(2))
        .await
        .unwrap();

    let out = mq_ok(&url, &["cancel", "images", &queued]).await;
    assert_eq!(
        out.stdout,
        format!("{queued}: cancelled: removed from the queue before it ran\n")
    );
    let out = mq_ok(&url, &["--json", "cancel", "images", &delayed])
        .await
        .json();
    assert_eq!(
        out,
        serde_json::json!({ "queue": "images", "id": delayed, "outcome": "delayed", "consumer": null })
    );
    let keys = QueueKeys::new("mq", "images");
    assert_eq!(xlen(&mut c, &keys.stream).await, 0);
    let left: u64 = redis::cmd("ZCARD")
        .arg(&keys.delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Unknown (or finished) ids are an answer, exit status 0.
    let out = mq_ok(&url, &["cancel", "images", &queued]).await;
    assert_eq!(
        out.stdout,
        format!("{queued}: not found: unknown id or already finished\n")
    );
    mq(&url, &["cancel", "bad queue!", "x"])
        .await
        .assert_error("queue");

    // `mq status`: the task's status (a plain task is not tracked), then the progress it
    // reported, or that there is none.
    let out = mq_ok(&url, &["status", "images", &queued]).await;
    assert_eq!(
        out.stdout,
        format!(
            "{queued}: unknown (not tracked, or expired)\n\
             {queued}: no progress recorded (none reported yet, or expired)\n"
        )
    );
    let key = format!("{}{queued}", keys.task);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("progress")
        .arg(r#"{"done":3}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    let out = mq_ok(&url, &["--json", "status", "images", &queued])
        .await
        .json();
    assert_eq!(out["queue"], "images", "{out}");
    assert_eq!(out["id"], queued.as_str(), "{out}");
    assert_eq!(out["progress"], serde_json::json!({ "done": 3 }), "{out}");
    assert!(out["status"]["state"].is_string(), "{out}");
}

/// `mq dead list` of a queue whose dead letters come from several streams (priority levels
/// here; partitions alike) names each one's stream in a QUEUE column and a `queue` JSON field,
/// which `mq dead show` / `replay` take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_list_names_the_level_or_partition_of_each_dead_letter() {
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", "levels");
    for (level, id) in [
        (mq_core::Priority::High, "01JD3ZK1Q7W9V3T1B0N2C4X5H1"),
        (mq_core::Priority::Normal, "01JD3ZK1Q7W9V3T1B0N2C4X5N1"),
    ] {
        let k = keys.level(level);
        // The level's stream exists (its workers create it), its dead stream has one entry.
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&k.stream)
            .arg("mq")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&k.dead)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("name")
            .arg("Job")
            .arg("payload")
            .arg(&[0x80u8][..])
            .arg("attempt")
            .arg(0)
            .arg("enqueued_at")
            .arg(1)
            .arg("error")
            .arg("boom")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let out = mq_ok(&url, &["dead", "list", "levels"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].contains("QUEUE"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("levels@high") && l.contains("H1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("levels@normal") && l.contains("N1")),
        "{lines:?}"
    );
    let list = mq_ok(&url, &["--json", "dead", "list", "levels"])
        .await
        .json();
    let mut queues: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["queue"].as_str().unwrap())
        .collect();
    queues.sort();
    assert_eq!(queues, ["levels@high", "levels@normal"]);
    // A plain queue's list keeps its columns.
    make_dead_letters(&server, 1).await;
    let out = mq_ok(&url, &["dead", "list", "images"]).await;
    assert!(
        !out.stdout.lines().next().unwrap().contains("QUEUE"),
        "{out:?}"
    );
}

/// The calls of each command Redis ran since its last `CONFIG RESETSTAT`, from
/// `INFO commandstats` (`cmdstat_scan:calls=3,...`), by command name.
async fn command_calls(c: &mut mq_tests::Conn) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
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

/// `mq stats` (every queue, rates from two samples) on a Redis holding 200,000 unrelated keys
/// and 5 queues runs a few dozen commands and no `SCAN`: it finds the queues in the queue
/// registry, not by walking the keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_on_a_big_keyspace_runs_a_few_dozen_commands_and_no_scan() {
    const QUEUES: [&str; 5] = ["q1", "q2", "q3", "q4", "q5"];
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    // 200,000 keys that are not mq's, in one script call.
    let _: () = redis::cmd("EVAL")
        .arg("for i = 1, 200000 do redis.call('SET', 'junk:' .. i, 'x') end")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let producer = Producer::connect(&url).await.unwrap();
    for q in QUEUES {
        for _ in 0..3 {
            producer.enqueue_raw(q, "Job", vec![0x80]).await.unwrap();
        }
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let stats = mq_ok(&url, &["--json", "stats"]).await.json();
    let calls = command_calls(&mut c).await;
    for q in QUEUES {
        assert_eq!(queue_row(&stats, q)["backlog"], 3, "{stats}");
    }
    // Not counted: the `INFO` that reads the counts, and `CONFIG RESETSTAT`.
    let total: u64 = calls
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(calls.get("scan"), None, "no SCAN: {calls:?}");
    // Measured: 47. The queue registry (`SMEMBERS`), and per sample the partition counts
    // (`HGETALL`) and one `MULTI`/`EXEC`: for the rates' first sample `XINFO STREAM` and
    // `EXISTS` (priority streams) per queue, for the second those and `XINFO GROUPS`, `ZCARD`,
    // `XLEN`, `MGET` (pause flag, duplicates).
    assert!(total <= 50, "{total} commands for 5 queues: {calls:?}");
}

#[tokio::test]
async fn eta_reports_the_backlog_and_refuses_bad_deadlines_and_queues() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((0..7).map(image))
        .await
        .expect("enqueue");
    let out = mq_ok(&url, &["--json", "eta", "--queue", "images", "--in", "2h"]).await;
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["remaining"], 7, "{v}");
    // No worker has recorded a drain sample: no rate, so no ETA and no workers needed.
    assert_eq!(v["rate_per_sec"], Value::Null, "{v}");
    assert_eq!(v["workers_needed"], Value::Null, "{v}");
    assert!(v["deadline_ms"].as_u64().is_some(), "{v}");
    let out = mq_ok(&url, &["eta", "--queue", "images", "--by", "06:00"]).await;
    assert!(
        out.stdout
            .contains("images: 7 tasks left, no drain rate yet"),
        "{}",
        out.stdout
    );
    for (args, what) in [
        (
            &["eta", "--queue", "images", "--by", "25:00"][..],
            "expected HH:MM",
        ),
        (&["eta", "--queue", "nope"][..], "no such queue"),
        (
            &["eta", "--queue", "images", "--by", "06:00", "--in", "1h"][..],
            "cannot be used with",
        ),
    ] {
        let out = mq(&url, args).await;
        assert!(!out.success, "{args:?}: {out:?}");
        assert!(out.stderr.contains(what), "{args:?}: {}", out.stderr);
    }
}

#[tokio::test]
async fn runs_lists_and_shows_runs_and_refuses_an_unknown_one() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let out = mq_ok(&url, &["runs"]).await;
    assert_eq!(out.stdout, "no runs\n");
    let day = producer.run("products-2026-12-06").await.expect("run");
    day.enqueue_many((0..3).map(image)).await.expect("enqueue");
    let other = producer.run("products-2026-12-07").await.expect("run");
    other.enqueue(image(9)).await.expect("enqueue");
    assert!(day.seal().await.expect("seal"));
    let out = mq_ok(&url, &["--json", "runs"]).await;
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    // Newest first.
    assert_eq!(v[0]["name"], "products-2026-12-07", "{v}");
    assert_eq!(v[1]["name"], "products-2026-12-06", "{v}");
    assert_eq!(
        (v[1]["total"].as_u64(), v[1]["remaining"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(
        v[1]["sealed_ms"].as_u64().is_some() && v[0]["sealed_ms"].is_null(),
        "{v}"
    );
    let out = mq_ok(&url, &["runs"]).await;
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("products-2026-12-06"))
        .expect("the run's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["sealed", "3", "0", "0"], "{row}");
    let out = mq_ok(&url, &["runs", "show", "products-2026-12-07"]).await;
    assert!(
        out.stdout
            .starts_with("run products-2026-12-07 (open): 0 of 1 tasks ended"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not sealed"), "{}", out.stdout);
    let out = mq(&url, &["runs", "show", "nope"]).await;
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains("no such run \"nope\""),
        "{}",
        out.stderr
    );
}
