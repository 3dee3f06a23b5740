//! ETA and workers needed (issue 24, item 3) against a real Redis: the drain rate comes from
//! the workers' drain samples (server time), so after 10 s of two workers at a known
//! per-task time the predicted end is within 10 % of the real one; the workers-needed answer
//! is the measured per-worker rate's; forged or future samples are ignored.

use std::time::{Duration, Instant, SystemTime};

use mq_core::{redis::keys::QueueKeys, Admin, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, run_worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "eta_texts")]
struct Embed {
    n: u64,
}

/// Per-task time of the handlers, and their concurrency: 2 x 50/s x 2 workers = 200 tasks/s.
const TASK_TIME: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 2;
const TASKS: u64 = 5_000;

async fn worker(url: &str) -> Worker {
    Worker::builder(url)
        .concurrency(CONCURRENCY)
        .handle::<Embed, _>(|_t: Embed, _ctx: TaskContext| async move {
            tokio::time::sleep(TASK_TIME).await;
            Ok::<(), TaskError>(())
        })
        .build()
        .await
        .expect("worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eta_after_ten_seconds_is_within_ten_percent_of_the_real_end() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((0..TASKS).map(|n| Embed { n }))
        .await
        .expect("enqueue");
    let admin = Admin::connect(&url).await.expect("admin");
    let before = admin.eta("eta_texts", None).await.expect("eta");
    assert_eq!(before.remaining, TASKS);
    assert_eq!(before.rate_per_sec, None, "no samples, no rate");
    assert_eq!(before.eta_secs, None, "tasks remain, nothing drains");
    let started = Instant::now();
    let (a, b) = (
        run_worker(worker(&url).await),
        run_worker(worker(&url).await),
    );
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let at = started.elapsed();
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let eta = admin.eta("eta_texts", Some(deadline)).await.expect("eta");
    let predicted = at.as_secs_f64() + eta.eta_secs.expect("an eta");
    let per_worker = eta.per_worker_per_sec.expect("a per-worker rate");
    assert_eq!(eta.workers, 2, "{eta:?}");
    assert!(eta.window >= Duration::from_secs(5), "{eta:?}");
    // Followed, the answer finishes by the deadline: remaining / (needed * per worker) <= 60 s.
    let needed = eta.workers_needed.expect("workers needed");
    assert_eq!(
        needed,
        ((eta.remaining as f64 / (per_worker * 60.0)).ceil() as u64).max(1),
        "{eta:?}"
    );
    // Wait for the real end.
    let c = conn(&server).await;
    let stream = QueueKeys::new("mq", "eta_texts").stream;
    mq_tests::wait_until(Duration::from_secs(120), "the queue drained", || {
        let (mut c, stream) = (c.clone(), stream.clone());
        async move { mq_tests::xlen(&mut c, &stream).await == 0 }
    })
    .await;
    let real = started.elapsed().as_secs_f64();
    a.stop().await;
    b.stop().await;
    println!(
        "eta: at {:.1} s: {} left, {:.1}/s ({:.1}/s per worker over {:.1} s), predicted end \
         {predicted:.1} s, real end {real:.1} s, workers needed for 60 s: {needed}",
        at.as_secs_f64(),
        eta.remaining,
        eta.rate_per_sec.unwrap_or(0.0),
        per_worker,
        eta.window.as_secs_f64()
    );
    assert!(
        (predicted - real).abs() <= 0.1 * real,
        "predicted end {predicted:.1} s, real end {real:.1} s"
    );
}

#[tokio::test]
async fn forged_and_future_drain_samples_are_ignored() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((0..10).map(|n| Embed { n }))
        .await
        .expect("enqueue");
    let mut c = conn(&server).await;
    let drain = QueueKeys::new("mq", "eta_texts").drain;
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    // A sample 20 s ago with nothing removed yet (true: no worker ran), one 10 s ahead of
    // the server's clock claiming 5,000 removed (a skewed clock's, or forged), and garbage.
    // Counted, the future one would make a rate of ~166/s; ignored, the rate is 0.
    let _: () = redis::cmd("HSET")
        .arg(&drain)
        .arg("1")
        .arg(format!("{} 0", now_ms - 20_000))
        .arg("2")
        .arg(format!("{} 5000", now_ms + 10_000))
        .arg("3")
        .arg("not a sample")
        .query_async(&mut c)
        .await
        .expect("HSET");
    let admin = Admin::connect(&url).await.expect("admin");
    let eta = admin.eta("eta_texts", None).await.expect("eta");
    assert_eq!(eta.rate_per_sec, Some(0.0), "{eta:?}");
    assert_eq!(eta.eta_secs, None, "nothing drains");
    assert_eq!(eta.remaining, 10);
    let err = admin.eta("a{b}", None).await.expect_err("bad name");
    assert!(err.to_string().contains("contains '{'"), "{err}");
}

/// The workers-needed answer, followed, finishes by the deadline: one worker drains for 10 s,
/// then `Admin::eta` is asked how many workers empty the queue within the next 25 s; that many
/// run (the one plus the rest started now), and the queue is empty before the deadline. With
/// one worker fewer it could not be (the answer is the smallest that can, by its ceil).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_workers_needed_answer_finishes_by_the_deadline() {
    const MANY: u64 = 6_000;
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((0..MANY).map(|n| Embed { n }))
        .await
        .expect("enqueue");
    let admin = Admin::connect(&url).await.expect("admin");
    let mut running = vec![run_worker(worker(&url).await)];
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    // 25 s: the ceil of the answer leaves room for a loaded machine (measured: 5,050 left at
    // 90.5/s a worker, 3 needed, done in 18.8 s).
    let left = Duration::from_secs(25);
    let (deadline, by) = (SystemTime::now() + left, Instant::now() + left);
    let eta = admin.eta("eta_texts", Some(deadline)).await.expect("eta");
    let needed = eta.workers_needed.expect("workers needed");
    let per_worker = eta.per_worker_per_sec.expect("a per-worker rate");
    assert_eq!(eta.workers, 1, "{eta:?}");
    // Fewer would not do: needed - 1 workers at the measured rate miss the deadline.
    assert!(
        needed >= 2 && eta.remaining as f64 > (needed - 1) as f64 * per_worker * 25.0,
        "{eta:?}"
    );
    while (running.len() as u64) < needed {
        running.push(run_worker(worker(&url).await));
    }
    let c = conn(&server).await;
    let stream = QueueKeys::new("mq", "eta_texts").stream;
    mq_tests::wait_until(Duration::from_secs(120), "the queue drained", || {
        let (mut c, stream) = (c.clone(), stream.clone());
        async move { mq_tests::xlen(&mut c, &stream).await == 0 }
    })
    .await;
    let finished = Instant::now();
    for w in running {
        w.stop().await;
    }
    let spare = by.saturating_duration_since(finished);
    println!(
        "workers needed: {} left at {per_worker:.1}/s per worker, {needed} workers needed for \
         25 s; finished {:.1} s before the deadline",
        eta.remaining,
        spare.as_secs_f64()
    );
    assert!(
        finished <= by,
        "finished {:?} after the deadline",
        finished - by
    );
}
