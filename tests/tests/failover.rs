//! Failover on a real Redis Cluster (3 masters + 3 replicas): the master holding a queue is
//! SIGKILLed while 4 producers enqueue and 2 workers consume; its replica is promoted and
//! both sides go on. With `durable(1, ..)` no acknowledged task is lost; without it, what is
//! lost was acknowledged just before the kill (replication is asynchronous) and the test says
//! how much.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use mq_core::{redis::keys::QueueKeys, Admin, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{cluster, run_worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "failover", backoff = "fixed(100ms)", max_retries = 20)]
struct Beat {
    n: u64,
}

const PRODUCERS: u64 = 4;

struct Outcome {
    /// Acknowledged enqueues: task number -> when.
    acked: HashMap<u64, Instant>,
    /// How many enqueues failed (not acknowledged).
    failed: usize,
    /// When the master was killed.
    killed_at: Instant,
    /// Task numbers handled, with how often.
    handled: HashMap<u64, u32>,
    /// Tasks handled after the failover completed.
    handled_after_failover: u64,
}

/// Runs the scenario with or without a durable producer and returns what happened.
async fn run(durable: bool) -> Outcome {
    let mut cl = cluster();
    let url = cl.url();
    let stream = QueueKeys::new("mq", "failover").stream;
    let master = cl.master_for_key(&stream);

    let handled: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let handled = handled.clone();
        let worker = Worker::builder(&url)
            .concurrency(8)
            .reclaim_timeout(Duration::from_secs(3))
            .handle::<Beat, _>(move |b: Beat, _ctx: TaskContext| {
                let handled = handled.clone();
                async move {
                    *handled.lock().unwrap().entry(b.n).or_default() += 1;
                    Ok::<_, TaskError>(())
                }
            })
            .build()
            .await
            .unwrap();
        workers.push(run_worker(worker));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let producer = Producer::connect(&url).await.unwrap();
        let producer = if durable {
            producer.durable(1, Duration::from_secs(1)).unwrap()
        } else {
            producer
        };
        let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
        producers.push(tokio::spawn(async move {
            let mut n = p;
            // Bounded: at most 100,000 enqueues per producer.
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match producer.enqueue(Beat { n }).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(n, Instant::now());
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                n += PRODUCERS;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acked.lock().unwrap().len();
    assert!(
        before_kill > 100,
        "producers run before the kill: {before_kill}"
    );
    let killed_at = Instant::now();
    cl.kill_node(master);
    // The harness waits synchronously: keep the runtime's other thread free meanwhile.
    let promoted =
        tokio::task::block_in_place(|| cl.wait_failover(master, Duration::from_secs(30)))
            .expect("the replica is promoted");
    let failover_took = killed_at.elapsed();
    let handled_at_failover: u64 = handled.lock().unwrap().values().map(|&t| t as u64).sum();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        tokio::time::timeout(Duration::from_secs(30), p)
            .await
            .expect("producers stop")
            .unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "durable={durable}: master {master} killed, replica {promoted} promoted after \
         {failover_took:?}; {} enqueues acknowledged ({before_kill} before the kill), {} failed",
        acked.len(),
        failed.load(Ordering::Relaxed)
    );
    // Everything acknowledged and kept is handled; wait for it, bounded. Without durability
    // some may be gone for good: then wait until the queue is idle (nothing ready, nothing
    // pending: entries whose ack the dead primary took are reclaimed after 3 s), after which
    // nothing more will run.
    let admin = Admin::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing = {
            let h = handled.lock().unwrap();
            acked.keys().filter(|n| !h.contains_key(n)).count()
        };
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        if !durable && admin.stats("failover").await.is_ok_and(|s| s.is_idle()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in workers {
        w.stop().await;
    }
    let handled = std::mem::take(&mut *handled.lock().unwrap());
    let total: u64 = handled.values().map(|&t| t as u64).sum();
    Outcome {
        acked,
        failed: failed.load(Ordering::Relaxed) as usize,
        killed_at,
        handled_after_failover: total - handled_at_failover,
        handled,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durable_enqueue_no_acknowledged_task_is_lost_in_a_failover() {
    let o = run(true).await;
    let lost: Vec<u64> = o
        .acked
        .keys()
        .filter(|n| !o.handled.contains_key(n))
        .copied()
        .collect();
    let duplicates = o.handled.values().filter(|&&t| t > 1).count();
    eprintln!(
        "durable: {} acknowledged, {} handled ({duplicates} more than once), {} lost, {} \
         enqueues failed during the failover",
        o.acked.len(),
        o.handled.len(),
        lost.len(),
        o.failed
    );
    assert!(lost.is_empty(), "acknowledged durable tasks lost: {lost:?}");
    assert!(
        o.handled_after_failover > 0,
        "workers went on after the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durable_enqueue_only_tasks_acknowledged_just_before_the_kill_can_be_lost() {
    let o = run(false).await;
    let lost: Vec<(u64, Duration)> = o
        .acked
        .iter()
        .filter(|(n, _)| !o.handled.contains_key(n))
        .map(|(&n, &at)| {
            (
                n,
                o.killed_at
                    .checked_duration_since(at)
                    .unwrap_or(Duration::ZERO),
            )
        })
        .collect();
    let oldest = lost.iter().map(|(_, before)| *before).max();
    eprintln!(
        "not durable: {} acknowledged, {} handled, {} lost (acknowledged at most {oldest:?} \
         before the kill), {} enqueues failed during the failover",
        o.acked.len(),
        o.handled.len(),
        lost.len(),
        o.failed
    );
    // Asynchronous replication loses only the writes the replica had not received when its
    // master died: the last moments before the kill, never older ones, never later ones.
    // (A reply the primary sent just before it died may reach the producer a moment after
    // the test noted the kill: 200 ms of slack.)
    for (n, before) in &lost {
        let after = o.acked[n].saturating_duration_since(o.killed_at);
        assert!(
            *before < Duration::from_secs(1) && after < Duration::from_millis(200),
            "task {n} lost though acknowledged {before:?} before the kill or {after:?} after it"
        );
    }
    assert!(
        o.handled_after_failover > 0,
        "workers went on after the failover"
    );
}
