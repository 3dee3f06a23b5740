//! Partitioned queues against real servers: tasks spread over `{q#0}`..`{q#N-1}` (round-robin
//! or by key), every partition read fairly, delays, retries and dead letters per partition and
//! aggregated per queue, the count guarded; on a 3-master cluster, the partitions land on
//! every master and every task runs exactly once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{
    redis::{
        conn::Conn,
        keys::{partition_of, QueueKeys},
    },
    Admin, Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{cluster, redis, run_worker, wait_until};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(60);

/// A task of a queue of 4 partitions, spread round-robin.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "spread", partitions = 4, backoff = "none", max_retries = 1)]
struct Spread {
    n: u32,
}

/// A task of a queue of 4 partitions, by account.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "keyed", partitions = 4, partition_by = "account")]
struct Keyed {
    account: String,
    seq: u32,
}

fn parts(queue: &str) -> Vec<QueueKeys> {
    QueueKeys::partitions("mq", queue, 4)
}

async fn xlen(c: &mut Conn, key: &str) -> usize {
    redis::cmd("XLEN").arg(key).query_async(c).await.unwrap()
}

/// Runs a worker for `Spread` that records every task it runs (and fails `fail`), enqueues
/// `n` tasks, checks they were spread round-robin over the 4 streams before the worker reads,
/// and waits until each ran exactly once.
async fn spread_and_drain(url: &str, n: u32) -> Conn {
    let producer = Producer::connect(url).await.unwrap();
    let mut c = Conn::connect(url).await.unwrap();
    producer
        .enqueue_many((0..n).map(|n| Spread { n }))
        .await
        .unwrap();
    for k in parts("spread") {
        assert_eq!(
            xlen(&mut c, &k.stream).await,
            n as usize / 4,
            "{} holds a quarter",
            k.stream
        );
    }
    let seen: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let seen2 = seen.clone();
    let worker = Worker::builder(url)
        .concurrency(16)
        .handle::<Spread, _>(move |t: Spread, _ctx: TaskContext| {
            let seen = seen2.clone();
            async move {
                *seen.lock().unwrap().entry(t.n).or_default() += 1;
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let admin = Admin::connect(url).await.unwrap();
    wait_until(WAIT, "every task handled and the queue idle", || {
        let (seen, admin) = (seen.clone(), admin.clone());
        async move {
            seen.lock().unwrap().len() == n as usize
                && admin.stats("spread").await.unwrap().is_idle()
        }
    })
    .await;
    running.stop().await;
    let twice: Vec<(u32, u32)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, &t)| t != 1)
        .map(|(&n, &t)| (n, t))
        .collect();
    assert!(twice.is_empty(), "tasks ran more than once: {twice:?}");
    assert_eq!(
        admin.partitions("spread").await.unwrap(),
        ["spread#0", "spread#1", "spread#2", "spread#3"]
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_round_robin_and_each_runs_exactly_once() {
    let server = redis();
    spread_and_drain(&server.url(), 4_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_partitions_land_on_every_master_and_each_task_runs_once() {
    let cl = cluster();
    let masters: HashSet<u16> = parts("spread")
        .iter()
        .map(|k| cl.master_for_key(&k.stream))
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "the 4 partitions of `spread` lie on all 3 masters"
    );
    let started = std::time::Instant::now();
    spread_and_drain(&cl.url(), 8_000).await;
    eprintln!(
        "cluster: 8000 tasks over 4 partitions in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_with_one_key_share_a_partition_and_keep_their_order() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let accounts: Vec<String> = (0..20).map(|i| format!("account-{i}")).collect();
    let tasks: Vec<Keyed> = (0..10)
        .flat_map(|seq| {
            accounts.iter().map(move |a| Keyed {
                account: a.clone(),
                seq,
            })
        })
        .collect();
    producer.enqueue_many(tasks).await.unwrap();
    // Each account's tasks are in the partition its key maps to, and only there.
    let mut c = Conn::connect(&url).await.unwrap();
    let mut used = HashSet::new();
    for (i, k) in parts("keyed").iter().enumerate() {
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(&k.stream)
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        let expected = accounts
            .iter()
            .filter(|a| partition_of(a, 4) as usize == i)
            .count();
        assert_eq!(entries.len(), expected * 10, "{}", k.stream);
        if expected > 0 {
            used.insert(i);
        }
    }
    assert!(
        used.len() >= 3,
        "20 keys spread over the partitions: {used:?}"
    );

    // One task at a time: each account's tasks run in enqueue order.
    let order: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let order2 = order.clone();
    let worker = Worker::builder(&url)
        .concurrency(1)
        .handle::<Keyed, _>(move |t: Keyed, _ctx: TaskContext| {
            let order = order2.clone();
            async move {
                order.lock().unwrap().push((t.account, t.seq));
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "200 keyed tasks handled", || {
        let order = order.clone();
        async move { order.lock().unwrap().len() == 200 }
    })
    .await;
    running.stop().await;
    let order = order.lock().unwrap();
    for a in &accounts {
        let seqs: Vec<u32> = order
            .iter()
            .filter(|(acc, _)| acc == a)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "order of {a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_every_partition_fairly() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    // 3,000 tasks in partition 0, 50 in each other one.
    let payload = rmp_serde::to_vec_named(&Spread { n: 0 }).unwrap();
    for (p, count) in [(0, 3_000), (1, 50), (2, 50), (3, 50)] {
        for _ in 0..count {
            producer
                .enqueue_raw(&format!("spread#{p}"), "Spread", payload.clone())
                .await
                .unwrap();
        }
    }
    let worker = Worker::builder(&url)
        .concurrency(2)
        .handle::<Spread, _>(|_t: Spread, _ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, TaskError>(())
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let mut c = Conn::connect(&url).await.unwrap();
    let k = parts("spread");
    wait_until(WAIT, "the small partitions drained", || {
        let (mut c, k) = (c.clone(), k.clone());
        async move {
            let mut small = 0;
            for p in &k[1..] {
                small += xlen(&mut c, &p.stream).await;
            }
            small == 0
        }
    })
    .await;
    let left = xlen(&mut c, &k[0].stream).await;
    eprintln!("partition 0 holds {left} of 3000 when the others are drained");
    running.stop().await;
    // Fair reads take about as many from partition 0 as from each other one (50) while
    // those last; a reader that drained partition 0 first would have nothing left there.
    assert!(
        left > 2_000,
        "partition 0 still holds most of its 3,000 tasks when the others are done: {left}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_dead_letters_stay_in_their_partition_and_aggregate_per_queue() {
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let runs: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let runs2 = runs.clone();
    let worker = Worker::builder(&url)
        .handle::<Spread, _>(move |t: Spread, _ctx: TaskContext| {
            let runs = runs2.clone();
            async move {
                *runs.lock().unwrap().entry(t.n).or_default() += 1;
                if t.n % 2 == 1 {
                    return Err(TaskError::retry("odd"));
                }
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    producer
        .enqueue_many((0..8).map(|n| Spread { n }))
        .await
        .unwrap();
    producer
        .enqueue_in(Duration::from_millis(300), Spread { n: 100 })
        .await
        .unwrap();
    let admin = Admin::connect(&url).await.unwrap();
    wait_until(
        WAIT,
        "4 odd tasks dead after a retry, the rest done",
        || {
            let admin = admin.clone();
            async move {
                let s = admin.stats("spread").await.unwrap();
                s.dead == 4 && s.is_idle()
            }
        },
    )
    .await;
    running.stop().await;
    {
        let runs = runs.lock().unwrap();
        for n in 0..8 {
            assert_eq!(runs[&n], if n % 2 == 1 { 2 } else { 1 }, "runs of {n}");
        }
        assert_eq!(runs[&100], 1, "the delayed task ran once");
    }
    // Dead letters: in the partition each task went to (round-robin: odd tasks in 1 and 3).
    let mut c = Conn::connect(&url).await.unwrap();
    let k = parts("spread");
    let dead: Vec<usize> = {
        let mut v = Vec::new();
        for p in &k {
            v.push(xlen(&mut c, &p.dead).await);
        }
        v
    };
    assert_eq!(dead, [0, 2, 0, 2]);
    assert_eq!(admin.dead_list("spread", 10).await.unwrap().len(), 4);
    assert_eq!(admin.stats("spread#1").await.unwrap().dead, 2);
    let replay = admin.dead_replay_all("spread").await.unwrap();
    assert_eq!(replay.replayed, 4);
    assert_eq!(admin.stats("spread").await.unwrap().length, 4);
    assert_eq!(admin.dead_purge("spread").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_fewer_partitions_than_recorded_is_refused() {
    let server = redis();
    let url = server.url();
    let build = |partitions: u16| {
        Worker::builder(&url)
            .queue_partitions("spread", partitions)
            .handle::<Spread, _>(
                |_t: Spread, _ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
            )
            .build()
    };
    build(4).await.unwrap();
    let err = build(2).await.unwrap_err().to_string();
    assert!(
        err.contains("has 4 partitions") && err.contains("would never run"),
        "{err}"
    );
    // More partitions is fine (the new ones start empty) and is recorded.
    build(6).await.unwrap();
    let admin = Admin::connect(&url).await.unwrap();
    assert_eq!(admin.partitions("spread").await.unwrap().len(), 6);
}
