//! The Lua scripts against a real redis-server when things are not as they should be: a
//! destination key of the wrong type or an ACL user without a command (the script must fail
//! with nothing changed, so the entry stays pending), a worker whose lease renewal lags behind
//! its own reclaim, a capped dead stream, and delayed members too large to move 1,000 at once.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use mq_core::{
    envelope::{new_task_id, now_ms, Envelope},
    redis::{keys::QueueKeys, scripts},
    Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, pending, redis, redis_with, run_worker, wait_until, xlen, Conn};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

/// Everything the runtime logs (at `warn` and above) in this test binary, also echoed to stderr.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let b = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_ansi(false)
            .with_writer(move || Tee(b.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        eprint!("{}", String::from_utf8_lossy(data));
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log lines that contain every one of `needles`.
fn log_lines_with(needles: &[&str]) -> Vec<String> {
    let buf = logs();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// `(entry id, consumer, delivery count)` of every pending entry of group `mq`.
async fn pending_entries(c: &mut Conn, stream: &str) -> Vec<(String, String, u64)> {
    let rows = mq_tests::pending_rows(c, stream).await;
    rows.into_iter().map(|(id, c, _, n)| (id, c, n)).collect()
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "wrongtype", max_retries = 5, backoff = "none")]
struct WrongType {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "noperm", max_retries = 5, backoff = "none")]
struct NoPerm {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "wrongdead", max_retries = 5)]
struct WrongDead {
    n: u32,
}

/// Runs one failing task on a worker connecting with `worker_url`; its retry (or, for a
/// permanent error, its dead letter) cannot be written: `what` is `retry` or `dead-letter`.
/// Checks that the entry stays pending and that the error is logged with the queue, entry id,
/// task id and `detail`.
async fn failing_write_leaves_the_entry_pending<T>(
    server: &mq_tests::LocalRedis,
    worker_url: &str,
    task: T,
    what: &'static str,
    detail: &[&str],
    revoke_after_build: Option<(&str, &str)>,
) where
    T: Task + Serialize + for<'de> Deserialize<'de> + Send + 'static,
{
    let mut c = conn(server).await;
    let k = QueueKeys::new("mq", T::QUEUE);
    let producer = Producer::connect(&server.url()).await.unwrap();
    let task_id = producer.enqueue(task).await.unwrap();
    let worker = Worker::builder(worker_url)
        .handle::<T, _>(move |_t: T, _ctx: TaskContext| async move {
            Err::<(), _>(match what {
                "retry" => TaskError::retry("boom"),
                _ => TaskError::permanent("boom"),
            })
        })
        .build()
        .await
        .unwrap();
    // A permission taken away while the worker runs (build() checks the ACL up front).
    if let Some((user, rule)) = revoke_after_build {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg(rule)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let running = run_worker(worker);
    let queue_field = format!("queue={}", T::QUEUE);
    let failed = format!("{what} failed");
    wait_until(WAIT, "a failed settle attempt", || {
        let (q, f) = (queue_field.clone(), failed.clone());
        async move { !log_lines_with(&[&f, &q]).is_empty() }
    })
    .await;
    let entries = pending_entries(&mut c, &k.stream).await;
    assert_eq!(entries.len(), 1, "the entry stays pending (not lost)");
    assert_eq!(
        xlen(&mut c, &k.stream).await,
        1,
        "the entry stays in the stream"
    );
    let final_line = format!("{what} failed 5 times");
    wait_until(WAIT, "the worker gave up settling the entry", || {
        let (l, q) = (final_line.clone(), queue_field.clone());
        async move { !log_lines_with(&[&l, &q]).is_empty() }
    })
    .await;
    assert_eq!(
        pending_entries(&mut c, &k.stream).await,
        entries,
        "still pending"
    );
    let entry_id = &entries[0].0;
    let mut needles = vec![failed.as_str(), queue_field.as_str(), entry_id, &task_id];
    needles.extend_from_slice(detail);
    assert!(
        !log_lines_with(&needles).is_empty(),
        "a log line has all of {needles:?}"
    );
    running.stop().await;
    assert_eq!(pending(&mut c, &k.stream, "mq").await, 1);
}

async fn set_string(c: &mut Conn, key: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("not what mq expects")
        .query_async(c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_into_a_delayed_key_of_the_wrong_type_leaves_the_entry_pending() {
    logs();
    let server = redis();
    let k = QueueKeys::new("mq", WrongType::QUEUE);
    set_string(&mut conn(&server).await, &k.delayed).await;
    let detail = ["WRONGTYPE", k.delayed.as_str()];
    failing_write_leaves_the_entry_pending(
        &server,
        &server.url(),
        WrongType { n: 1 },
        "retry",
        &detail,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_by_a_user_without_zadd_leaves_the_entry_pending() {
    logs();
    let server = redis();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("nozadd")
        .arg("on")
        .arg(">secret")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut conn(&server).await)
        .await
        .unwrap();
    let url = format!("redis://nozadd:secret@127.0.0.1:{}/", server.port());
    failing_write_leaves_the_entry_pending(
        &server,
        &url,
        NoPerm { n: 1 },
        "retry",
        &["may not run ZADD", "delayed"],
        Some(("nozadd", "-zadd")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_into_a_dead_key_of_the_wrong_type_leaves_the_entry_pending() {
    logs();
    let server = redis();
    let k = QueueKeys::new("mq", WrongDead::QUEUE);
    set_string(&mut conn(&server).await, &k.dead).await;
    let detail = ["WRONGTYPE", k.dead.as_str()];
    failing_write_leaves_the_entry_pending(
        &server,
        &server.url(),
        WrongDead { n: 1 },
        "dead-letter",
        &detail,
        None,
    )
    .await;
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "slow", max_retries = 0, timeout = "none")]
struct Slow {
    n: u32,
}

/// A worker's lease renewal lags (simulated: the test keeps pushing the idle time of the
/// running entry past the reclaim timeout). Its own reclaim must neither count a delivery nor
/// dead-let the entry as abandoned: it is running right here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_neither_counts_nor_abandons_entries_its_worker_is_running() {
    logs();
    let server = redis();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "slow");
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let worker = Worker::builder(&server.url())
        .consumer("C")
        .reclaim_timeout(Duration::from_millis(600))
        .max_deliveries(1)
        .handle::<Slow, _>(move |_t: Slow, _ctx: TaskContext| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                r.notified().await;
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue(Slow { n: 1 })
        .await
        .unwrap();
    wait_until(WAIT, "the task started", || {
        let s = started.clone();
        async move { s.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let entries = pending_entries(&mut c, &k.stream).await;
    assert_eq!(entries.len(), 1);
    let (id, consumer, count) = entries[0].clone();
    assert_eq!(
        (consumer.as_str(), count),
        ("C", 1),
        "delivered once: at max_deliveries"
    );
    // For 3 s (ten reclaim intervals) the entry looks idle for 100 s between renewals.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&k.stream)
            .arg("mq")
            .arg("C")
            .arg(0)
            .arg(&id)
            .arg("IDLE")
            .arg(100_000)
            .arg("JUSTID")
            .query_async(&mut c)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        xlen(&mut c, &k.dead).await,
        0,
        "a running task is never abandoned"
    );
    let entries = pending_entries(&mut c, &k.stream).await;
    assert_eq!(
        entries,
        vec![(id.clone(), "C".to_owned(), 1)],
        "still ours, delivery count unchanged"
    );
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "not started a second time"
    );
    release.notify_waiters();
    wait_until(WAIT, "the task acked", || {
        let mut c = c.clone();
        let k = k.clone();
        async move { pending(&mut c, &k.stream, "mq").await == 0 && xlen(&mut c, &k.stream).await == 0 }
    })
    .await;
    running.stop().await;
    assert_eq!(xlen(&mut c, &k.dead).await, 0);
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "restarted", max_retries = 0)]
struct Restarted {
    n: u32,
}

/// A worker restarted with a fixed consumer name finds the entries its previous process left
/// pending under that name: it runs them (a new delivery, counted), and dead-letters them as
/// abandoned once delivered more than `max_deliveries` times (a task that crashes its worker
/// in a restart loop must not run forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_runs_or_abandons_what_its_previous_process_left_pending() {
    logs();
    let server = redis();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "restarted");
    mq_tests::create_group(&mut c, &k.stream).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    producer.enqueue(Restarted { n: 1 }).await.unwrap();
    mq_tests::read_as(&mut c, &k.stream, "fixed").await; // delivered twice already: abandoned
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&k.stream)
        .arg("mq")
        .arg("fixed")
        .arg(0)
        .arg(&pending_entries(&mut c, &k.stream).await[0].0)
        .arg("RETRYCOUNT")
        .arg(2)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    producer.enqueue(Restarted { n: 2 }).await.unwrap();
    mq_tests::read_as(&mut c, &k.stream, "fixed").await; // delivered once: runs again
    let ran: Arc<Mutex<Vec<u32>>> = Arc::default();
    let r = ran.clone();
    let worker = Worker::builder(&server.url())
        .consumer("fixed")
        .reclaim_timeout(Duration::from_millis(300))
        .max_deliveries(2)
        .handle::<Restarted, _>(move |t: Restarted, _ctx: TaskContext| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(t.n);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "one run and one abandoned", || {
        let mut c = c.clone();
        let k = k.clone();
        async move {
            pending(&mut c, &k.stream, "mq").await == 0 && xlen(&mut c, &k.dead).await == 1
        }
    })
    .await;
    running.stop().await;
    assert_eq!(*ran.lock().unwrap(), vec![2]);
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "capped", max_retries = 0)]
struct Capped {
    n: u32,
}

/// The dead stream is trimmed with `XTRIM MAXLEN ~ cap` after each dead letter. `~` trims
/// whole macro nodes only (`stream-node-max-entries`, 100 by default), so the test server uses
/// nodes of 5 entries: the stream then stays between the cap and the cap plus one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_stream_is_capped_and_trimmed_entries_are_counted() {
    logs();
    let server = redis_with(&["--stream-node-max-entries", "5"]);
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "capped");
    let worker = Worker::builder(&server.url())
        .dead_letter_max_len(10)
        .handle::<Capped, _>(|_t: Capped, _ctx: TaskContext| async {
            Err::<(), _>(TaskError::permanent("no"))
        })
        .build()
        .await
        .unwrap();
    let metrics = worker.metrics();
    let running = run_worker(worker);
    let producer = Producer::connect(&server.url()).await.unwrap();
    for n in 0..30 {
        producer.enqueue(Capped { n }).await.unwrap();
    }
    wait_until(WAIT, "all 30 dead-lettered", || {
        let mut c = c.clone();
        let k = k.clone();
        async move {
            pending(&mut c, &k.stream, "mq").await == 0 && xlen(&mut c, &k.stream).await == 0
        }
    })
    .await;
    running.stop().await;
    let len = xlen(&mut c, &k.dead).await;
    assert!((10..15).contains(&len), "dead stream length {len}");
    let text = metrics.render();
    let trimmed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mq_dead_letters_trimmed_total{queue=\"capped\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no trimmed metric in\n{text}"));
    assert_eq!(trimmed as usize, 30 - len, "every trimmed entry counted");
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "big")]
struct Big {
    data: String,
}

/// 50 due delayed members of 1 MB each: one promote call moves only a few megabytes (not all
/// 50 at once, which could block Redis for long), and the promoter keeps calling until none
/// is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_moves_large_members_in_calls_bounded_by_bytes_until_none_is_due() {
    logs();
    let server = redis();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "big");
    let payload = rmp_serde::to_vec_named(&Big {
        data: "x".repeat(1 << 20),
    })
    .unwrap();
    for _ in 0..50 {
        let member = Envelope {
            id: new_task_id(),
            name: Big::NAME.to_owned(),
            payload: payload.clone(),
            attempt: 0,
            enqueued_at: now_ms(),
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
        .to_delayed_member();
        let _: i64 = redis::cmd("ZADD")
            .arg(&k.delayed)
            .arg(0)
            .arg(member)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    mq_tests::create_group(&mut c, &k.stream).await;
    // One call, as the promoter makes it: at most 1,000 members, 4 MiB, dead cap 1,000,000.
    let reply: redis::Value = scripts::PROMOTE
        .key(&k.delayed)
        .key(&k.stream)
        .key(&k.dead)
        .arg(1000)
        .arg(4 << 20)
        .arg(1_000_000)
        .invoke_async(&mut c)
        .await
        .unwrap();
    let (moved, more) = match &reply {
        redis::Value::Int(n) => (*n, 0),
        redis::Value::Array(v) => match (&v[0], &v[1]) {
            (redis::Value::Int(m), redis::Value::Int(more)) => (*m, *more),
            _ => panic!("unexpected reply {reply:?}"),
        },
        _ => panic!("unexpected reply {reply:?}"),
    };
    assert!(
        (1..50).contains(&moved),
        "one call moved {moved} of 50 members of 1 MB"
    );
    assert_eq!(more, 1, "the script says more are due");
    assert_eq!(xlen(&mut c, &k.stream).await, moved as usize);

    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Big, _>(move |t: Big, _ctx: TaskContext| {
            let d = d.clone();
            async move {
                assert_eq!(t.data.len(), 1 << 20);
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "all 50 promoted and run", || {
        let d = done.clone();
        async move { d.load(Ordering::SeqCst) == 50 }
    })
    .await;
    running.stop().await;
    let delayed: i64 = redis::cmd("ZCARD")
        .arg(&k.delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(delayed, 0);
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "malformed")]
struct Malformed {
    n: u32,
}

/// An entry that does not parse as a task (here a bad `attempt`) is dead-lettered, and the log
/// line names its queue, entry id and the task id and name it carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_line_of_a_malformed_entry_names_its_task_id() {
    logs();
    let server = redis();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", Malformed::QUEUE);
    let task_id = new_task_id();
    let entry_id: String = redis::cmd("XADD")
        .arg(&k.stream)
        .arg("*")
        .arg("id")
        .arg(&task_id)
        .arg("name")
        .arg(Malformed::NAME)
        .arg("payload")
        .arg("")
        .arg("attempt")
        .arg("first")
        .arg("enqueued_at")
        .arg(now_ms())
        .query_async(&mut c)
        .await
        .unwrap();
    let worker = Worker::builder(&server.url())
        .handle::<Malformed, _>(|_t: Malformed, _ctx: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "the entry dead-lettered", || {
        let mut c = c.clone();
        let k = k.clone();
        async move { xlen(&mut c, &k.dead).await == 1 }
    })
    .await;
    running.stop().await;
    let lines = log_lines_with(&[
        "dead-lettered",
        "queue=malformed",
        &entry_id,
        &task_id,
        Malformed::NAME,
    ]);
    assert_eq!(
        lines.len(),
        1,
        "one log line names queue, entry, task id and name"
    );
}
