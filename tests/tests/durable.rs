//! Durable enqueue against a real primary and replica: `Producer::durable(1, ..)` returns only
//! once the replica has the tasks (they can be read there at once), returns `NotDurable` (the
//! tasks still on the primary) when the replica does not confirm in time, and without it (or
//! with `durable(0, ..)`) no `WAIT` is sent.

use std::time::{Duration, Instant, SystemTime};

use mq_core::{Error, Producer, Task};
use mq_tests::{conn, redis, redis_with, wait_until, xlen, Conn, LocalRedis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "orders")]
struct Order {
    n: u64,
}

/// A primary (full syncs without the default 5 s delay) and a replica of it (`DEBUG` allowed,
/// for `DEBUG SLEEP`), the replication link up.
async fn primary_and_replica() -> (LocalRedis, LocalRedis, Conn, Conn) {
    let primary = redis_with(&["--repl-diskless-sync-delay", "0"]);
    let replica = redis_with(&["--enable-debug-command", "yes"]);
    let p = conn(&primary).await;
    let mut r = conn(&replica).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async(&mut r)
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "replication link up", || {
        let mut r = r.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut r)
                .await
                .unwrap_or_default();
            info.contains("master_link_status:up")
        }
    })
    .await;
    (primary, replica, p, r)
}

/// A producer on `primary` that waits for 1 replica, at most 1 s, after each round trip.
async fn durable_producer(primary: &LocalRedis) -> Producer {
    Producer::connect(&primary.url())
        .await
        .unwrap()
        .durable(1, Duration::from_secs(1))
        .unwrap()
}

async fn zcard(c: &mut Conn, key: &str) -> usize {
    redis::cmd("ZCARD").arg(key).query_async(c).await.unwrap()
}

/// `cmdstat_<name>` calls from `INFO commandstats`, 0 if the command never ran.
async fn calls(c: &mut Conn, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{name}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn durable_enqueues_are_on_the_replica_when_they_return() {
    let (primary, _replica, mut p, mut r) = primary_and_replica().await;
    let producer = durable_producer(&primary).await;
    let keys = producer.keys::<Order>();

    // Each check reads the replica right after the call returns: no waiting.
    producer.enqueue(Order { n: 1 }).await.unwrap();
    assert_eq!(xlen(&mut r, &keys.stream).await, 1);
    let ids = producer
        .enqueue_many((0..2_500).map(|n| Order { n }))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2_500);
    assert_eq!(xlen(&mut r, &keys.stream).await, 2_501);
    producer
        .enqueue_raw(
            "orders",
            "Order",
            rmp_serde::to_vec_named(&Order { n: 9 }).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(xlen(&mut r, &keys.stream).await, 2_502);

    producer
        .enqueue_in(Duration::from_secs(600), Order { n: 2 })
        .await
        .unwrap();
    assert_eq!(zcard(&mut r, &keys.delayed).await, 1);
    producer
        .enqueue_at(SystemTime::now() + Duration::from_secs(600), Order { n: 3 })
        .await
        .unwrap();
    assert_eq!(zcard(&mut r, &keys.delayed).await, 2);
    producer
        .enqueue_many_in(Duration::from_secs(600), (0..1_500).map(|n| Order { n }))
        .await
        .unwrap();
    assert_eq!(zcard(&mut r, &keys.delayed).await, 1_502);
    producer
        .enqueue_many_at(
            SystemTime::now() + Duration::from_secs(600),
            (0..10).map(|n| Order { n }),
        )
        .await
        .unwrap();
    assert_eq!(zcard(&mut r, &keys.delayed).await, 1_512);

    // One WAIT per round trip: 1 + 3 batches + 1 + 2 (the first schedule call finds the
    // script missing: NOSCRIPT, load, send again) + 1 + 2 batches + 1.
    assert_eq!(calls(&mut p, "wait").await, 11);
}

/// `DEBUG SLEEP` on the replica keeps it from confirming for `secs` (in the background, so
/// the test goes on at once).
fn pause(replica: &Conn, secs: f64) -> tokio::task::JoinHandle<()> {
    let mut r = replica.clone();
    tokio::spawn(async move {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query_async(&mut r)
            .await
            .expect("DEBUG SLEEP on the replica");
    })
}

#[track_caller]
fn assert_not_durable<T: std::fmt::Debug>(r: mq_core::Result<T>, n_ids: usize) -> Vec<String> {
    match r {
        Err(Error::NotDurable {
            ids,
            acked_by,
            wanted,
            ..
        }) => {
            assert_eq!((acked_by, wanted, ids.len()), (0, 1, n_ids));
            ids
        }
        other => panic!("expected NotDurable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unconfirmed_enqueue_is_not_durable_but_on_the_primary() {
    let (primary, _replica, mut p, r) = primary_and_replica().await;
    let producer = Producer::connect(&primary.url())
        .await
        .unwrap()
        .durable(1, Duration::from_millis(200))
        .unwrap();
    let keys = producer.keys::<Order>();
    let sleeper = pause(&r, 2.0);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let ids = assert_not_durable(producer.enqueue(Order { n: 1 }).await, 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(1), "returned after {took:?}");
    let entries: Vec<(String, Vec<redis::Value>)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "the task is on the primary");
    let env = mq_core::envelope::Envelope::from_fields(entries[0].1.clone()).unwrap();
    assert_eq!(env.id, ids[0]);

    assert_not_durable(producer.enqueue(Order { n: 2 }).await, 1);
    let err = producer
        .enqueue_in(Duration::from_secs(60), Order { n: 3 })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("enqueued on the primary"),
        "message: {err}"
    );
    // Durable batches go one at a time, and none follows an unconfirmed one: only the first
    // 1,000 were written, and the error lists exactly those.
    let ids = assert_not_durable(
        producer.enqueue_many((0..2_500).map(|n| Order { n })).await,
        1_000,
    );
    assert_eq!(ids.len(), 1_000);
    assert_eq!(xlen(&mut p, &keys.stream).await, 1_002);
    assert_eq!(zcard(&mut p, &keys.delayed).await, 1);
    sleeper.await.unwrap();
}

#[tokio::test]
async fn without_durable_no_wait_is_sent() {
    let (primary, _replica, mut p, _r) = primary_and_replica().await;
    let plain = Producer::connect(&primary.url()).await.unwrap();
    let zero = plain.clone().durable(0, Duration::from_secs(1)).unwrap();
    for producer in [plain, zero] {
        producer.enqueue(Order { n: 1 }).await.unwrap();
        producer
            .enqueue_many((0..1_500).map(|n| Order { n }))
            .await
            .unwrap();
        producer
            .enqueue_raw(
                "orders",
                "Order",
                rmp_serde::to_vec_named(&Order { n: 9 }).unwrap(),
            )
            .await
            .unwrap();
        producer
            .enqueue_in(Duration::from_secs(60), Order { n: 2 })
            .await
            .unwrap();
        producer
            .enqueue_many_at(SystemTime::now(), (0..10).map(|n| Order { n }))
            .await
            .unwrap();
    }
    assert_eq!(calls(&mut p, "wait").await, 0);
    assert_eq!(calls(&mut p, "waitaof").await, 0);
    assert_eq!(xlen(&mut p, "mq:{orders}:stream").await, 2 * 1_502);
}

#[tokio::test]
async fn bad_durable_settings_are_refused() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.unwrap();
    for timeout in [Duration::ZERO, Duration::from_secs(60)] {
        match producer.clone().durable(1, timeout) {
            Err(Error::Config(m)) => assert!(m.contains("timeout"), "{m}"),
            other => panic!("expected Config, got {other:?}"),
        }
    }
    // The test server is Redis 7.0: no WAITAOF (7.2+).
    match producer.durable_aof(true, 1, Duration::from_secs(1)) {
        Err(Error::Config(m)) => assert!(m.contains("WAITAOF"), "{m}"),
        other => panic!("expected Config, got {other:?}"),
    }
}

/// Enqueue rates with and without `durable(1, ..)` against a primary and a replica on this
/// machine: `cargo test --release -p mq-tests --test durable -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_durable_enqueue() {
    let (primary, _replica, mut p, _r) = primary_and_replica().await;
    let plain = Producer::connect(&primary.url()).await.unwrap();
    let durable = plain.clone().durable(1, Duration::from_secs(1)).unwrap();
    const MANY: u64 = 200_000;
    const SINGLE: u64 = 5_000;
    for (name, producer) in [
        ("plain", &plain),
        ("durable(1)", &durable),
        ("plain", &plain),
    ] {
        let started = Instant::now();
        producer
            .enqueue_many((0..MANY).map(|n| Order { n }))
            .await
            .unwrap();
        let many = MANY as f64 / started.elapsed().as_secs_f64();
        // Single enqueues from 32 concurrent tasks sharing the producer's connection.
        let started = Instant::now();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let producer = producer.clone();
                tokio::spawn(async move {
                    for n in 0..SINGLE / 32 {
                        producer.enqueue(Order { n }).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let single = (SINGLE / 32 * 32) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{name}: enqueue_many {many:.0} tasks/s, enqueue x32 concurrent {single:.0} tasks/s"
        );
        let _: () = redis::cmd("DEL")
            .arg("mq:{orders}:stream")
            .query_async(&mut p)
            .await
            .unwrap();
    }
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "order_totals")]
struct Total {
    n: u64,
}

/// A durable producer's flow: the `MULTI`, then its own `WAIT` (a `WAIT` inside the `MULTI`
/// would not wait): when `enqueue` returns, the replica has the children and the parent's
/// pending-parent hash.
#[tokio::test]
async fn a_durable_flow_is_on_the_replica_when_it_returns() {
    let (primary, _replica, mut p, mut r) = primary_and_replica().await;
    let producer = durable_producer(&primary).await;
    let ids = producer
        .flow(Total { n: 1 })
        .child(Order { n: 1 })
        .child(Order { n: 2 })
        .enqueue()
        .await
        .unwrap();
    let keys = producer.keys::<Order>();
    assert_eq!(xlen(&mut r, &keys.stream).await, 2);
    let hash = format!("{}:flow:{}", producer.keys::<Total>().stream, ids.parent);
    let left: Option<u64> = redis::cmd("HGET")
        .arg(&hash)
        .arg("left")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(left, Some(2));
    assert_eq!(calls(&mut p, "wait").await, 1, "one WAIT, after the EXEC");
}
