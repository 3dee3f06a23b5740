//! Scripts during a resharding of a local Redis Cluster (issue 21, item 3): a script touches
//! only the keys it declares, or reads each key before its first write, so a key that a slot
//! migration already moved to another node makes the script fail with nothing changed (and
//! the worker try again) instead of failing half way. The ack of a unique task used to delete
//! its entry and then fail on its unique key, already moved and without an expiry: the key was
//! held for ever and every later enqueue with it was refused.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{cluster, run_worker, wait_until};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "reshard", unique = "key")]
struct Reshard {
    key: u32,
}

/// A connection to one node.
fn node(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to node");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    conn
}

fn myid(port: u16) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node(port))
        .expect("CLUSTER MYID")
}

fn migrate(from: u16, to: u16, keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(to)
        .arg("")
        .arg(0)
        .arg(5_000)
        .arg("KEYS")
        .arg(keys)
        .query(&mut node(from))
        .expect("MIGRATE");
}

#[tokio::test]
async fn a_unique_tasks_ack_during_a_slot_migration_never_leaves_its_key_held() {
    let cluster = cluster();
    let url = cluster.url();
    let keys = QueueKeys::new("mq", Reshard::QUEUE);
    let unique = keys.unique_key("1");
    let started = Arc::new(AtomicU32::new(0));
    let finish = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), finish.clone());
    let worker = Worker::builder(&url)
        .handle::<Reshard, _>(move |_t: Reshard, _ctx: TaskContext| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                for _ in 0..3_000 {
                    if f.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Reshard { key: 1 }).await.unwrap();
    wait_until(WAIT, "the task started", || {
        let s = started.clone();
        async move { s.load(Ordering::SeqCst) == 1 }
    })
    .await;

    // Start moving the queue's slot to another master, and move the unique key first.
    let source = cluster.master_for_key(&keys.stream);
    let target = cluster
        .master_ports()
        .into_iter()
        .find(|p| *p != source)
        .expect("a second master");
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&keys.stream)
        .query(&mut node(source))
        .unwrap();
    let (source_id, target_id) = (myid(source), myid(target));
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&source_id)
        .query(&mut node(target))
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&target_id)
        .query(&mut node(source))
        .unwrap();
    migrate(source, target, std::slice::from_ref(&unique));

    // The handler returns: the ack script runs while the unique key is on the target.
    finish.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_source: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1_000)
        .query(&mut node(source))
        .unwrap();
    assert!(
        on_source.contains(&keys.stream),
        "the stream left the source early: {on_source:?}"
    );
    // Finish the migration: the rest of the slot's keys, then the slot itself.
    migrate(source, target, &on_source);
    for port in cluster.master_ports() {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&target_id)
            .query(&mut node(port))
            .unwrap();
    }

    // The ack goes through on the new owner: entry gone, key released, and a new task with
    // the same key is taken.
    let t = target;
    let (stream, u) = (keys.stream.clone(), unique.clone());
    wait_until(WAIT, "the entry acked and its key released", || {
        let (stream, u) = (stream.clone(), u.clone());
        async move {
            let mut c = node(t);
            let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut c).unwrap_or(1);
            let held: bool = redis::cmd("EXISTS").arg(&u).query(&mut c).unwrap_or(true);
            len == 0 && !held
        }
    })
    .await;
    worker.stop().await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "the task ran again");
    let again = producer.enqueue(Reshard { key: 1 }).await.unwrap();
    assert_ne!(
        again, id,
        "the unique key is still held by the finished task"
    );
}
