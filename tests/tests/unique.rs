//! Unique tasks against a real redis-server: one live task per unique key (queued, delayed,
//! running or retrying), a duplicate enqueue returns the live task's id, the key is released
//! with the ack or the dead letter in the same script (or kept for `unique_for`), and a replay
//! takes it again. With `MQ_TEST_TOPOLOGY=cluster` the same tests run against a local Redis
//! Cluster.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mq_core::{
    admin::Admin, envelope::Envelope, Enqueued, Producer, Task, TaskContext, TaskError,
    TaskOptions, Worker,
};
use mq_examples::unique::{unix_micros, UniqueJob, RUNS_KEY};
use mq_tests::{conn, example_bin, run_worker, server, wait_until, xlen, ChildGuard, Conn};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

/// Unique by `key`; fails while its attempt is below `fail_attempts` (`u32::MAX`: always).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Single {
    key: String,
    fail_attempts: u32,
}

impl Task for Single {
    const NAME: &'static str = "Single";
    const QUEUE: &'static str = "single";
    const OPTIONS: TaskOptions = TaskOptions {
        max_retries: 1,
        backoff: mq_core::Backoff::Fixed(Duration::from_millis(700)),
        ..TaskOptions::DEFAULT
    };

    fn unique_key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

/// Unique by `key`, with a de-duplication window of 1.5 s after success.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Windowed {
    key: String,
}

impl Task for Windowed {
    const NAME: &'static str = "Windowed";
    const QUEUE: &'static str = "windowed";
    const OPTIONS: TaskOptions = TaskOptions {
        unique_for: Some(Duration::from_millis(1500)),
        ..TaskOptions::DEFAULT
    };

    fn unique_key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

fn single(key: &str, fail_attempts: u32) -> Single {
    Single {
        key: key.into(),
        fail_attempts,
    }
}

async fn get(c: &mut Conn, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(c).await.unwrap()
}

/// A worker for `Single` that records the ids it ran.
async fn single_worker(url: &str, ran: Arc<Mutex<Vec<String>>>) -> Worker {
    Worker::builder(url)
        .handle::<Single, _>(move |t: Single, ctx: TaskContext| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(ctx.id().to_owned());
                if ctx.attempt() < t.fail_attempts {
                    return Err(TaskError::retry("told to fail"));
                }
                Ok(())
            }
        })
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_enqueue_returns_the_live_task_id() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let keys = producer.keys::<Single>();

    let first = producer.submit(single("a", 0)).await.unwrap();
    let Enqueued::Added(id) = first.clone() else {
        panic!("first enqueue not added: {first:?}")
    };
    assert_eq!(get(&mut c, &keys.unique_key("a")).await, Some(id.clone()));
    assert_eq!(
        producer.submit(single("a", 0)).await.unwrap(),
        Enqueued::Duplicate(id.clone())
    );
    assert_eq!(producer.enqueue(single("a", 0)).await.unwrap(), id);
    // Delayed: a duplicate of the queued one too; another key is delayed and holds its key.
    assert_eq!(
        producer
            .enqueue_in(Duration::from_secs(60), single("a", 0))
            .await
            .unwrap(),
        id
    );
    let delayed = producer
        .enqueue_in(Duration::from_secs(60), single("b", 0))
        .await
        .unwrap();
    assert_eq!(
        get(&mut c, &keys.unique_key("b")).await,
        Some(delayed.clone())
    );
    // Many: duplicates of live tasks and of earlier tasks of the same call are reported.
    let many = producer
        .submit_many(["a", "c", "b", "c"].map(|k| single(k, 0)))
        .await
        .unwrap();
    assert_eq!(many[0], Enqueued::Duplicate(id.clone()));
    assert!(matches!(&many[1], Enqueued::Added(_)), "{many:?}");
    assert_eq!(many[2], Enqueued::Duplicate(delayed.clone()));
    assert_eq!(many[3], Enqueued::Duplicate(many[1].id().to_owned()));
    let ids = producer
        .enqueue_many(["a", "d"].map(|k| single(k, 0)))
        .await
        .unwrap();
    assert_eq!(ids[0], id);

    // One entry per key in the stream (a, c, d), each with its key in field `u`.
    assert_eq!(xlen(&mut c, &keys.stream).await, 3);
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let unique: Vec<Option<String>> = entries
        .into_iter()
        .map(|(_, fields)| {
            let fields = fields.into_iter().map(redis::Value::BulkString).collect();
            Envelope::from_fields(fields).unwrap().unique
        })
        .collect();
    assert_eq!(unique, ["a", "c", "d"].map(|k| Some(k.to_owned())));
    assert_eq!(producer.duplicates_refused(), 7);
    let refused: u64 = redis::cmd("GET")
        .arg(&keys.duplicates)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(refused, 7);
    let admin = Admin::connect(&url).await.unwrap();
    let stats = admin.unique_stats("single").await.unwrap();
    assert_eq!((stats.held, stats.duplicates), (4, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_success_the_key_is_free_and_unique_for_keeps_it_for_its_window() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(Vec::<String>::new()));
    let done2 = done.clone();
    let worker = Worker::builder(&url)
        .handle::<Windowed, _>(move |_t: Windowed, ctx: TaskContext| {
            let done = done2.clone();
            async move {
                done.lock().unwrap().push(ctx.id().to_owned());
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let running_single = run_worker(single_worker(&url, ran.clone()).await);
    let single_key = producer.keys::<Single>().unique_key("k");

    // Without unique_for: once the task is acked its key is gone and the next one is added.
    let first = producer.submit(single("k", 0)).await.unwrap();
    assert!(!first.is_duplicate());
    wait_until(WAIT, "the first task acked and its key released", || {
        let mut c = c.clone();
        let key = single_key.clone();
        async move { get(&mut c, &key).await.is_none() }
    })
    .await;
    let second = producer.submit(single("k", 0)).await.unwrap();
    assert!(
        matches!(&second, Enqueued::Added(id) if id != first.id()),
        "{second:?}"
    );

    // With unique_for = 1.5 s: after the success the key is kept for the window.
    let windowed = producer.submit(Windowed { key: "w".into() }).await.unwrap();
    let id = windowed.id().to_owned();
    wait_until(WAIT, "the windowed task ran", || {
        let done = done.clone();
        let id = id.clone();
        async move { done.lock().unwrap().contains(&id) }
    })
    .await;
    let w_key = producer.keys::<Windowed>().unique_key("w");
    wait_until(WAIT, "the windowed key to get its expiry", || {
        let mut c = c.clone();
        let key = w_key.clone();
        async move {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            ttl > 0
        }
    })
    .await;
    let acked = Instant::now();
    assert_eq!(
        producer.submit(Windowed { key: "w".into() }).await.unwrap(),
        Enqueued::Duplicate(id.clone()),
        "within unique_for the finished task's key still refuses duplicates"
    );
    wait_until(WAIT, "the window to pass", || {
        let mut c = c.clone();
        let key = w_key.clone();
        async move { get(&mut c, &key).await.is_none() }
    })
    .await;
    assert!(
        acked.elapsed() > Duration::from_millis(1000),
        "the key lasted its window"
    );
    let again = producer.submit(Windowed { key: "w".into() }).await.unwrap();
    assert!(
        matches!(&again, Enqueued::Added(new) if *new != id),
        "{again:?}"
    );
    running.stop().await;
    running_single.stop().await;
    let _ = &mut c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_task_keeps_its_key_a_dead_one_releases_it_and_replay_takes_it_again() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let keys = producer.keys::<Single>();
    let key = keys.unique_key("x");
    let ran = Arc::new(Mutex::new(Vec::new()));
    let running = run_worker(single_worker(&url, ran.clone()).await);

    // Fails on both attempts (max_retries 1): first a retry 700 ms later, then dead.
    let doomed = producer.submit(single("x", u32::MAX)).await.unwrap();
    let doomed_id = doomed.id().to_owned();
    wait_until(
        WAIT,
        "the first attempt failed and waits for its retry",
        || {
            let mut c = c.clone();
            let keys = keys.clone();
            async move {
                let n: u64 = redis::cmd("ZCARD")
                    .arg(&keys.delayed)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                n == 1
            }
        },
    )
    .await;
    assert_eq!(
        producer.submit(single("x", 0)).await.unwrap(),
        Enqueued::Duplicate(doomed_id.clone()),
        "a retrying task keeps its key"
    );
    let admin = Admin::connect(&url).await.unwrap();
    wait_until(WAIT, "the task dead-lettered", || {
        let admin = admin.clone();
        async move { admin.stats("single").await.unwrap().dead == 1 }
    })
    .await;
    assert_eq!(
        get(&mut c, &key).await,
        None,
        "a dead task releases its key"
    );

    // A new task takes the key (no worker runs it yet); replaying the dead one now would run
    // two tasks of one key: it stays dead.
    running.stop().await;
    let blocker = producer.submit(single("x", 0)).await.unwrap();
    assert!(!blocker.is_duplicate());
    let dead_id = admin.dead_list("single", 10).await.unwrap()[0]
        .dead_id()
        .to_owned();
    let report = admin
        .dead_replay("single", std::slice::from_ref(&dead_id))
        .await
        .unwrap();
    assert_eq!(
        (report.replayed, report.duplicates.clone()),
        (0, vec![dead_id.clone()])
    );
    assert_eq!(admin.stats("single").await.unwrap().dead, 1);

    // Once the blocker is done, the replay takes the key again for the dead task's id.
    let running = run_worker(single_worker(&url, ran.clone()).await);
    wait_until(WAIT, "the blocker ran and released the key", || {
        let mut c = c.clone();
        let key = key.clone();
        async move { get(&mut c, &key).await.is_none() }
    })
    .await;
    running.stop().await;
    let report = admin
        .dead_replay("single", std::slice::from_ref(&dead_id))
        .await
        .unwrap();
    assert_eq!((report.replayed, report.duplicates.len()), (1, 0));
    assert_eq!(get(&mut c, &key).await, Some(doomed_id.clone()));
    assert_eq!(
        producer.submit(single("x", 0)).await.unwrap(),
        Enqueued::Duplicate(doomed_id.clone()),
        "the replayed task holds its key"
    );
    // It fails again (twice) and dies again: the key is released again.
    let running = run_worker(single_worker(&url, ran.clone()).await);
    wait_until(
        WAIT,
        "the replayed task dead again and its key released",
        || {
            let mut c = c.clone();
            let key = key.clone();
            let admin = admin.clone();
            async move {
                admin.stats("single").await.unwrap().dead == 1 && get(&mut c, &key).await.is_none()
            }
        },
    )
    .await;
    running.stop().await;
    let runs = ran.lock().unwrap().clone();
    assert_eq!(runs.iter().filter(|id| **id == doomed_id).count(), 4);
}

/// 10 producers enqueue the same 1,000 keys 10 times each while 3 worker processes run them
/// and one is SIGKILLed: every key is handled, no two runs of one key overlap, every task
/// added ran, and no key stays held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_never_run_one_key_twice_at_once_across_a_sigkill() {
    const KEYS: u64 = 1_000;
    const PRODUCERS: usize = 10;
    const ROUNDS: usize = 10;
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let bin = example_bin("unique-worker");
    let args = ["--concurrency", "32", "--reclaim-timeout-ms", "1000"];
    let mut workers: Vec<ChildGuard> = (0..3)
        .map(|_| ChildGuard::spawn(&bin, &url, &args))
        .collect();

    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let url = url.clone();
        producers.push(tokio::spawn(async move {
            let producer = Producer::connect(&url).await.unwrap();
            let mut outcomes = Vec::new();
            for round in 0..ROUNDS {
                // Each producer walks the keys from its own offset, in batches of 100.
                let keys: Vec<u64> = (0..KEYS)
                    .map(|k| (k + (p * 97 + round * 13) as u64) % KEYS)
                    .collect();
                for chunk in keys.chunks(100) {
                    let tasks: Vec<UniqueJob> = chunk
                        .iter()
                        .map(|&key| UniqueJob { key, sleep_ms: 3 })
                        .collect();
                    outcomes.extend(producer.submit_many(tasks).await.unwrap());
                }
            }
            outcomes
        }));
    }
    // SIGKILL one worker while the producers are at work.
    tokio::time::sleep(Duration::from_millis(700)).await;
    workers[0].0.kill().unwrap();
    let _ = workers[0].0.wait();
    let killed_at = unix_micros();
    let mut added = HashSet::new();
    let mut duplicates = 0usize;
    for p in producers {
        for o in p.await.unwrap() {
            match o {
                Enqueued::Added(id) => {
                    assert!(added.insert(id), "an id added twice");
                }
                Enqueued::Duplicate(_) => duplicates += 1,
            }
        }
    }
    assert_eq!(added.len() + duplicates, PRODUCERS * ROUNDS * KEYS as usize);
    eprintln!(
        "{} tasks added, {duplicates} duplicates refused in {:?}",
        added.len(),
        started.elapsed()
    );

    let keys = mq_core::redis::keys::QueueKeys::new("mq", UniqueJob::QUEUE);
    // Every task added finishes (the killed worker's after the reclaim timeout).
    wait_until(
        Duration::from_secs(120),
        "every added task ran to its end",
        || {
            let mut c = c.clone();
            let added = added.clone();
            async move {
                let runs: Vec<String> = redis::cmd("LRANGE")
                    .arg(RUNS_KEY)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let ended: HashSet<&str> = runs
                    .iter()
                    .filter(|r| r.starts_with('E'))
                    .filter_map(|r| r.split(' ').nth(2))
                    .collect();
                added.iter().all(|id| ended.contains(id.as_str()))
            }
        },
    )
    .await;
    let admin = Admin::connect(&url).await.unwrap();
    wait_until(WAIT, "the stream drained and every key released", || {
        let mut c = c.clone();
        let keys = keys.clone();
        let admin = admin.clone();
        async move {
            admin.unique_stats(UniqueJob::QUEUE).await.unwrap().held == 0
                && xlen(&mut c, &keys.stream).await == 0
        }
    })
    .await;
    let refused = admin
        .unique_stats(UniqueJob::QUEUE)
        .await
        .unwrap()
        .duplicates;
    assert_eq!(refused as usize, duplicates);

    // Per key: runs (start, end; a run cut by the SIGKILL ends then) never overlap.
    let runs: Vec<String> = redis::cmd("LRANGE")
        .arg(RUNS_KEY)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut spans: HashMap<(u64, String), (u64, Option<u64>)> = HashMap::new();
    let mut run_no: HashMap<String, usize> = HashMap::new();
    for r in &runs {
        let parts: Vec<&str> = r.split(' ').collect();
        let (what, key, id, at) = (
            parts[0],
            parts[1].parse::<u64>().unwrap(),
            parts[2],
            parts[3].parse::<u64>().unwrap(),
        );
        if what == "S" {
            let n = run_no.entry(id.to_owned()).or_default();
            *n += 1;
            spans.insert((key, format!("{id}#{n}")), (at, None));
        } else {
            let n = run_no[id];
            spans.get_mut(&(key, format!("{id}#{n}"))).unwrap().1 = Some(at);
        }
    }
    let mut by_key: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for ((key, _), (start, end)) in spans {
        by_key
            .entry(key)
            .or_default()
            .push((start, end.unwrap_or(killed_at)));
    }
    assert_eq!(by_key.len(), KEYS as usize, "every key handled");
    let mut overlaps = Vec::new();
    for (key, mut s) in by_key {
        s.sort();
        for w in s.windows(2) {
            if w[1].0 < w[0].1 {
                overlaps.push((key, w[0], w[1]));
            }
        }
    }
    assert!(
        overlaps.is_empty(),
        "{} overlapping runs of one key, e.g. {:?}",
        overlaps.len(),
        &overlaps[..overlaps.len().min(3)]
    );
    for w in workers.iter_mut().skip(1) {
        w.signal("TERM");
        w.wait_exit(WAIT).await;
    }
}
