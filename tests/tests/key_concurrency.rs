//! Per-key concurrency against a real redis-server, with worker processes of the
//! `flow-worker` example: at most 2 tasks of one account run at once across 3 workers, every
//! task runs once, a SIGKILLed worker's slots come back within the reclaim timeout, and a
//! retry and a dead letter free their slot at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::flow::{now_us, PerKey, PER_KEY_RUNS};
use mq_tests::{conn, example_bin, run_worker, server, wait_until, ChildGuard, Conn};
use serde::{Deserialize, Serialize};

/// One recorded run: account, task number, start and end (unix µs).
struct Run {
    account: String,
    n: u64,
    start: u64,
    end: u64,
}

async fn runs(conn: &mut Conn) -> Vec<Run> {
    let lines: Vec<String> = redis::cmd("LRANGE")
        .arg(PER_KEY_RUNS)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Run {
                account: f[0].to_owned(),
                n: f[1].parse().unwrap(),
                start: f[2].parse().unwrap(),
                end: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// The most runs of `account` that overlapped at any moment (an end at the same microsecond
/// as a start counts first).
fn max_overlap(runs: &[Run], account: &str) -> usize {
    let mut events: Vec<(u64, i32)> = runs
        .iter()
        .filter(|r| r.account == account)
        .flat_map(|r| [(r.start, 1), (r.end, -1)])
        .collect();
    events.sort_unstable();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn worker(url: &str, reclaim_ms: &str) -> ChildGuard {
    ChildGuard::spawn(
        &example_bin("flow-worker"),
        url,
        &["--concurrency", "16", "--reclaim-timeout-ms", reclaim_ms],
    )
}

/// `key_concurrency = 2` with 3 worker processes (16 tasks each at once): 40 tasks of each of
/// two accounts, 100 ms each. Never more than 2 of one account run at once, yet 2 do (the
/// limit is per key, not less), each task runs exactly once, and the waits are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_tasks_of_one_key_run_at_once_across_three_workers() {
    let server = server();
    let mut c = conn(&server).await;
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let accounts = ["a", "b"];
    producer
        .enqueue_many((0..80u64).map(|n| PerKey {
            n,
            account: accounts[(n % 2) as usize].to_owned(),
            sleep_ms: 100,
            gate: None,
        }))
        .await
        .unwrap();
    let _workers: Vec<ChildGuard> = (0..3).map(|_| worker(&url, "5000")).collect();
    wait_until(Duration::from_secs(60), "all 80 tasks ran", || {
        let mut c = c.clone();
        async move {
            let n: usize = redis::cmd("LLEN")
                .arg(PER_KEY_RUNS)
                .query_async(&mut c)
                .await
                .unwrap();
            n >= 80
        }
    })
    .await;
    // Anything run twice would show up meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = runs(&mut c).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for r in &runs {
        *seen.entry(r.n).or_default() += 1;
    }
    assert_eq!(seen.len(), 80, "every task ran");
    assert!(seen.values().all(|&k| k == 1), "a task ran twice");
    for account in accounts {
        let max = max_overlap(&runs, account);
        eprintln!("account {account}: at most {max} at once");
        assert!(max <= 2, "{max} tasks of account {account} ran at once");
        assert_eq!(max, 2, "the limit of account {account} was not used");
    }
    // Nothing is left holding a slot.
    let keys = QueueKeys::new("mq", "flow-conc");
    for account in accounts {
        let held: usize = redis::cmd("ZCARD")
            .arg(keys.slots_key("PerKey", Some(account)))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(
            held, 0,
            "slots of {account} still held after every task was acked"
        );
    }
}

/// A worker running 2 tasks of account `x` (waiting on a gate) is SIGKILLed; a third task of
/// `x` waits while their slots are leased, and runs once they expire: within the reclaim
/// timeout (2 s) after the kill, plus slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_workers_slots_come_back_within_the_reclaim_timeout() {
    let server = server();
    let mut c = conn(&server).await;
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let gate = "mq-examples:{flow-conc}:gate";
    let _: () = redis::cmd("SET")
        .arg(gate)
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut first = worker(&url, "2000");
    for n in 0..2 {
        producer
            .enqueue(PerKey {
                n,
                account: "x".into(),
                sleep_ms: 0,
                gate: Some(gate.into()),
            })
            .await
            .unwrap();
    }
    let keys = QueueKeys::new("mq", "flow-conc");
    let slots = keys.slots_key("PerKey", Some("x"));
    // Both run (waiting on the gate) once the first worker holds both slots; before the fix
    // nothing holds a slot, and the wait below is cut short when the tasks are pending.
    wait_until(Duration::from_secs(20), "both gated tasks running", || {
        let mut c = c.clone();
        let slots = slots.clone();
        async move {
            let pending: (u64, Option<String>, Option<String>, redis::Value) =
                redis::cmd("XPENDING")
                    .arg("mq:{flow-conc}:stream")
                    .arg("mq")
                    .query_async(&mut c)
                    .await
                    .unwrap_or((0, None, None, redis::Value::Nil));
            let held: usize = redis::cmd("ZCARD")
                .arg(&slots)
                .query_async(&mut c)
                .await
                .unwrap();
            pending.0 == 2 || held == 2
        }
    })
    .await;
    // Operators see the slots in use (what `mq stats` prints).
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "Admin::key_slots shows both slots",
        || {
            let admin = admin.clone();
            async move {
                admin.key_slots("flow-conc").await.unwrap().keys
                    == vec![mq_core::admin::KeySlots {
                        name: "PerKey:x".into(),
                        running: 2,
                    }]
            }
        },
    )
    .await;
    // Longer than the reclaim timeout: the slots live only because their leases are renewed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let killed_at = now_us();
    let killed = Instant::now();
    let _: () = redis::cmd("DEL")
        .arg(gate)
        .query_async(&mut c)
        .await
        .unwrap();
    let _second = worker(&url, "2000");
    producer
        .enqueue(PerKey {
            n: 2,
            account: "x".into(),
            sleep_ms: 0,
            gate: None,
        })
        .await
        .unwrap();
    wait_until(Duration::from_secs(15), "the third task ran", || {
        let mut c = c.clone();
        async move { runs(&mut c).await.iter().any(|r| r.n == 2) }
    })
    .await;
    let waited = killed.elapsed();
    let third = runs(&mut c).await.into_iter().find(|r| r.n == 2).unwrap();
    let after_kill_ms = third.start.saturating_sub(killed_at) / 1000;
    eprintln!("third task started {after_kill_ms} ms after the kill (seen after {waited:?})");
    // The killed worker renewed the slots at most a third of the reclaim timeout before the
    // kill, so they held for at least 2 s - 0.67 s after it.
    assert!(
        after_kill_ms >= 1000,
        "the third task started {after_kill_ms} ms after the kill: the killed worker's slots were not held"
    );
    assert!(
        after_kill_ms <= 2000 + 1500,
        "the third task started {after_kill_ms} ms after the kill: the slots did not come back within the reclaim timeout"
    );
    // The reclaimed tasks ran too (their gate is open), each once.
    wait_until(Duration::from_secs(15), "the reclaimed tasks ran", || {
        let mut c = c.clone();
        async move { runs(&mut c).await.len() >= 3 }
    })
    .await;
    let runs = runs(&mut c).await;
    assert!(max_overlap(&runs, "x") <= 2);
}

/// One slot per account; fails when told to; retried after 3 s, then dead-lettered.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "one-slot",
    key_concurrency = 1,
    concurrency_key = "account",
    max_retries = 1,
    backoff = "fixed(3s)"
)]
struct OneSlot {
    account: String,
    fail: bool,
}

/// A task holding the only slot of its key fails: its retry script frees the slot, so the
/// next task of the key runs at once (not after the slot's lease of 20 s); when it fails
/// again, the dead-letter script frees it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_and_a_dead_letter_free_their_slot_at_once() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&url).await.unwrap();
    let ran: Arc<Mutex<Vec<(bool, u32, Instant)>>> = Arc::default();
    let log = ran.clone();
    let worker = Worker::builder(&url)
        .reclaim_timeout(Duration::from_secs(20))
        .handle(move |t: OneSlot, ctx: TaskContext| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push((t.fail, ctx.attempt(), Instant::now()));
                if t.fail {
                    return Err(TaskError::retry("told to fail"));
                }
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let slots = producer.keys::<OneSlot>().slots_key("OneSlot", Some("k"));
    producer
        .enqueue(OneSlot {
            account: "k".into(),
            fail: true,
        })
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the failing task ran", || {
        let ran = ran.clone();
        async move { !ran.lock().unwrap().is_empty() }
    })
    .await;
    producer
        .enqueue(OneSlot {
            account: "k".into(),
            fail: false,
        })
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(2),
        "the second task of the key ran",
        || {
            let ran = ran.clone();
            async move { ran.lock().unwrap().iter().any(|r| !r.0) }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the failing task dead-lettered",
        || {
            let mut c = c.clone();
            async move {
                let n: u64 = redis::cmd("XLEN")
                    .arg("mq:{one-slot}:dead")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                n == 1
            }
        },
    )
    .await;
    let held: u64 = redis::cmd("ZCARD")
        .arg(&slots)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(held, 0, "the dead-lettered task still holds its slot");
    let runs = ran.lock().unwrap().clone();
    assert_eq!(
        runs.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(true, 0), (false, 0), (true, 1)]
    );
    running.stop().await;
}

/// One slot per account, a 300 ms timeout, one retry 100 ms later; the first attempt of a
/// task with `block` set runs 1.5 s of blocking work.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(
    queue = "slot-timeout",
    key_concurrency = 1,
    concurrency_key = "account",
    timeout = "300ms",
    max_retries = 1,
    backoff = "fixed(100ms)"
)]
struct SlowBlocking {
    account: String,
    n: u64,
    block: bool,
}

/// What ran: (task number, attempt, start, end), the end of blocking work included.
type Spans = Arc<Mutex<Vec<(u64, u32, Instant, Instant)>>>;

/// An attempt times out while the work it started with `ctx.blocking` still runs (a blocking
/// thread cannot be stopped). Neither its retry nor another task of its key starts before that
/// work has ended: the key's one slot stays taken, and the retry waits, until it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempts_blocking_work_keeps_its_key_slot_until_it_ends() {
    let server = server();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let spans: Spans = Arc::default();
    let log = spans.clone();
    let worker = Worker::builder(&url)
        .reclaim_timeout(Duration::from_secs(20))
        .handle(move |t: SlowBlocking, ctx: TaskContext| {
            let log = log.clone();
            async move {
                let (n, attempt, start) = (t.n, ctx.attempt(), Instant::now());
                if t.block && attempt == 0 {
                    let log = log.clone();
                    ctx.blocking(move || {
                        std::thread::sleep(Duration::from_millis(1500));
                        log.lock()
                            .unwrap()
                            .push((n, attempt, start, Instant::now()));
                    })
                    .await?;
                    return Ok(());
                }
                log.lock()
                    .unwrap()
                    .push((n, attempt, start, Instant::now()));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let slow = |n, block| SlowBlocking {
        account: "k".into(),
        n,
        block,
    };
    producer.enqueue(slow(0, true)).await.unwrap();
    // Task 1 of the same key is ready while task 0's first attempt runs and times out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    producer.enqueue(slow(1, false)).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "the blocking work, the retry and the other task ran",
        || {
            let spans = spans.clone();
            async move { spans.lock().unwrap().len() >= 3 }
        },
    )
    .await;
    running.stop().await;
    let spans = spans.lock().unwrap().clone();
    let blocking_end = spans
        .iter()
        .find(|s| s.0 == 0 && s.1 == 0)
        .expect("the blocking work ended")
        .3;
    for (n, attempt, start, _) in &spans {
        let d = start.saturating_duration_since(blocking_end);
        let e = blocking_end.saturating_duration_since(*start);
        eprintln!("task {n} attempt {attempt}: started {d:?} after / {e:?} before the blocking work ended");
    }
    for (n, attempt, start, _) in spans.iter().filter(|s| !(s.0 == 0 && s.1 == 0)) {
        let before = blocking_end.saturating_duration_since(*start);
        assert!(
            *start >= blocking_end,
            "task {n} attempt {attempt} started {before:?} before the timed-out attempt's blocking work ended"
        );
    }
    assert!(
        spans.iter().any(|s| s.0 == 0 && s.1 == 1),
        "task 0 was retried: {:?}",
        spans.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>()
    );
}
