//! Chaos: worker processes consume 20,000 tasks while the driver SIGKILLs and restarts random
//! workers every few hundred ms and restarts redis-server (AOF, appendfsync always) once
//! mid-run. Every task must complete at least once; duplicates stay within the tasks that were
//! in flight at the kills.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use mq_core::Producer;
use mq_examples::jobs::{Job, HANDLED_KEY};
use mq_tests::{conn, example_bin, redis_with, ChildGuard};

const TASKS: u64 = 20_000;
const WORKERS: usize = 4;
const CONCURRENCY: usize = 8;
const DEADLINE: Duration = Duration::from_secs(240);

/// A small deterministic PRNG (xorshift64*), so a failing run can be replayed with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigkills_and_a_redis_restart_lose_nothing() {
    let mut server = redis_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    let bin = example_bin("jobs-worker");
    let seed = std::env::var("MQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(7)
        });
    eprintln!("chaos seed {seed} (MQ_CHAOS_SEED to replay)");
    let mut rng = Rng(seed);
    let concurrency = CONCURRENCY.to_string();
    let args = [
        "--concurrency",
        concurrency.as_str(),
        "--reclaim-timeout-ms",
        "1000",
        "--grace-ms",
        "2000",
    ];
    let spawn = || ChildGuard::spawn(&bin, &url, &args);
    let mut workers: Vec<ChildGuard> = (0..WORKERS).map(|_| spawn()).collect();

    let producer = Producer::connect(&url).await.unwrap();
    producer
        .enqueue_many((0..TASKS).map(|n| Job {
            n,
            sleep_ms: 3,
            spin: false,
        }))
        .await
        .unwrap();
    let started = Instant::now();
    let mut c = conn(&server).await;
    let (mut kills, mut restarts) = (0u64, 0u64);
    let mut done = 0u64;
    while started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(300))).await;
        // Progress; during the Redis restart this may fail, then keep the last value.
        if let Ok(n) = redis::cmd("HLEN")
            .arg(HANDLED_KEY)
            .query_async::<u64>(&mut c)
            .await
        {
            done = n;
        }
        if done >= TASKS {
            break;
        }
        if restarts == 0 && done >= TASKS / 2 {
            server.restart().expect("redis restarts");
            restarts += 1;
            eprintln!("restarted redis at {done} tasks done");
            continue;
        }
        // Bring back workers that exited (e.g. started while Redis was down), kill one.
        for w in workers.iter_mut() {
            if let Ok(Some(_)) = w.0.try_wait() {
                *w = spawn();
            }
        }
        if done < TASKS * 9 / 10 {
            let i = rng.below(WORKERS as u64) as usize;
            workers[i].signal("KILL");
            workers[i].wait_exit(Duration::from_secs(10)).await;
            workers[i] = spawn();
            kills += 1;
        }
    }
    let wall = started.elapsed();
    for w in &workers {
        w.signal("TERM");
    }
    for w in &mut workers {
        w.wait_exit(Duration::from_secs(30)).await;
    }
    let handled: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(HANDLED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    let lost = (0..TASKS).filter(|n| !handled.contains_key(n)).count();
    let duplicates: u64 = handled.values().map(|v| v - 1).sum();
    println!(
        "chaos: tasks={TASKS} workers={WORKERS} kills={kills} redis_restarts={restarts} duplicates={duplicates} lost={lost} wall={:.1}s",
        wall.as_secs_f64()
    );
    assert_eq!(lost, 0, "every task completed at least once");
    assert_eq!(restarts, 1, "redis was restarted mid-run");
    assert!(kills >= 5, "the driver killed workers ({kills})");
    // A kill can duplicate at most the tasks that worker had in flight; the Redis restart at
    // most those in flight everywhere.
    let bound = (kills + WORKERS as u64) * CONCURRENCY as u64;
    assert!(
        duplicates <= bound,
        "duplicates {duplicates} > in-flight bound {bound}"
    );
}
