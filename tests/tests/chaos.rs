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

const WORKERS: usize = 4;
const CONCURRENCY: usize = 8;
/// Longest a run may take after its kill phase.
const DEADLINE: Duration = Duration::from_secs(240);
/// Longest a worker may take to exit after SIGTERM (grace 2 s plus bounded shutdown).
const EXIT_AFTER_TERM: Duration = Duration::from_secs(15);

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
    chaos(20_000, Duration::ZERO).await;
}

/// The same for longer: 200,000 tasks and SIGKILLs for at least `MQ_SOAK_SECS` (default 60).
/// Not run by CI; run it with `cargo test -p mq-tests --test chaos -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of a few minutes"]
async fn soak_many_sigkills_lose_nothing() {
    let secs = std::env::var("MQ_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    chaos(200_000, Duration::from_secs(secs)).await;
}

/// Runs `tasks` jobs on worker processes while SIGKILLing a random worker every few hundred
/// ms (until 90 % are done and at least `kill_for` passed) and restarting Redis once.
async fn chaos(tasks: u64, kill_for: Duration) {
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
        .enqueue_many((0..tasks).map(|n| Job {
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
    while started.elapsed() < kill_for + DEADLINE {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(300))).await;
        // Progress; during the Redis restart this may fail, then keep the last value.
        if let Ok(n) = redis::cmd("HLEN")
            .arg(HANDLED_KEY)
            .query_async::<u64>(&mut c)
            .await
        {
            done = n;
        }
        if done >= tasks {
            break;
        }
        if restarts == 0 && done >= tasks / 2 {
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
        if done < tasks * 9 / 10 || started.elapsed() < kill_for {
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
    let term = Instant::now();
    for w in &mut workers {
        w.wait_exit(EXIT_AFTER_TERM).await;
    }
    let exit_time = term.elapsed();
    let handled: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(HANDLED_KEY)
        .query_async(&mut c)
        .await
        .unwrap();
    // A task delivered more than max_deliveries times (killed with its worker again and again)
    // is dead-lettered as abandoned: accounted for, with its reason, not lost.
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    let dead_jobs: std::collections::HashSet<u64> = admin
        .dead_list("jobs", 1_000_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|d| rmp_serde::from_slice::<Job>(d.payload()?).ok())
        .map(|j| j.n)
        .collect();
    let dead = dead_jobs.len();
    let lost = (0..tasks)
        .filter(|n| !handled.contains_key(n) && !dead_jobs.contains(n))
        .count();
    let duplicates: u64 = handled.values().map(|v| v - 1).sum();
    println!(
        "chaos: tasks={tasks} workers={WORKERS} kills={kills} redis_restarts={restarts} duplicates={duplicates} dead={dead} lost={lost} wall={:.1}s exit_after_term={:.1}s",
        wall.as_secs_f64(),
        exit_time.as_secs_f64()
    );
    assert_eq!(
        lost, 0,
        "every task completed at least once or was dead-lettered"
    );
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
