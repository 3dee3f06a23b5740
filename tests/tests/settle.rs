//! Settling a task never loses it, whatever other languages' producers or other users of the
//! Redis put beside it: a dead letter of an entry whose optional fields (`tr`, `ev`, `u`) are
//! malformed or whose status, event or unique key holds the wrong type still lands in the dead
//! stream with its reason (the optional writes are skipped, never half done).

use std::time::Duration;

use mq_core::{envelope::new_task_id, redis::keys::QueueKeys, Task, TaskContext, Worker};
use mq_tests::{conn, run_worker, server, wait_until, xlen, Conn};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "settle", max_retries = 0, backoff = "none")]
struct Settle {
    n: u32,
}

/// `XADD`s a hand-written v1 entry of `Settle` with a payload that does not decode (a
/// MessagePack string, not a map), so the worker dead-letters it, plus `extra` fields.
async fn add_undecodable(c: &mut Conn, stream: &str, id: &str, extra: &[(&str, &str)]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    cmd.arg("id").arg(id).arg("name").arg(Settle::NAME);
    cmd.arg("payload").arg(&[0xa3u8, b'b', b'a', b'd'][..]);
    cmd.arg("attempt").arg(0).arg("enqueued_at").arg(1);
    for (k, v) in extra {
        cmd.arg(*k).arg(*v);
    }
    let _: String = cmd.query_async(c).await.expect("XADD");
}

async fn set_wrong_type(c: &mut Conn, key: &str) {
    let _: () = redis::cmd("RPUSH")
        .arg(key)
        .arg("not mq's")
        .query_async(c)
        .await
        .expect("RPUSH");
}

/// A stream entry as `XRANGE` gives it: id, then its fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// The ids of the task entries in the dead stream, with their `error` field.
async fn dead_ids(c: &mut Conn, dead: &str) -> Vec<(String, String)> {
    let rows: Vec<Entry> = redis::cmd("XRANGE")
        .arg(dead)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .expect("XRANGE");
    rows.into_iter()
        .map(|(_, fields)| {
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            (get("id"), get("error"))
        })
        .collect()
}

/// Five entries whose dead letter once failed half way (acked and deleted, then a status or
/// event write failed before the dead copy: the task was nowhere): a `tr` that is not an
/// integer, one too large for PEXPIRE, a status hash, an event stream and a unique key of the
/// wrong type. Each ends in the dead stream with its reason; nothing stays pending.
#[tokio::test]
async fn a_dead_letter_with_malformed_fields_or_wrong_type_keys_is_never_lost() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Settle::QUEUE);
    let ids: Vec<String> = (0..5).map(|_| new_task_id()).collect();
    set_wrong_type(&mut c, &format!("{}{}", keys.task, ids[2])).await;
    set_wrong_type(&mut c, &keys.events).await;
    set_wrong_type(&mut c, &keys.unique_key("k4")).await;
    let extras: [&[(&str, &str)]; 5] = [
        &[("tr", "1.5")],
        &[("tr", "10000000000000000000")],
        &[("tr", "60000")],
        &[("ev", "1")],
        &[("u", "k4")],
    ];
    for (id, extra) in ids.iter().zip(extras) {
        add_undecodable(&mut c, &keys.stream, id, extra).await;
    }
    let worker = Worker::builder(&url)
        .handle::<Settle, _>(|_t: Settle, _ctx: TaskContext| async { Ok(()) })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let dead = keys.dead.clone();
    wait_until(WAIT, "5 dead letters", || {
        let mut c = c.clone();
        let dead = dead.clone();
        async move { xlen(&mut c, &dead).await >= 5 }
    })
    .await;
    // Give a half-done script time to show: nothing else may arrive or stay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    let mut found = dead_ids(&mut c, &keys.dead).await;
    found.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        found.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        want,
        "every task is in the dead stream exactly once"
    );
    for (id, error) in &found {
        assert!(!error.is_empty(), "dead letter {id} has no reason");
    }
    assert_eq!(xlen(&mut c, &keys.stream).await, 0, "an entry stayed");
    // The wrong-type keys are left as they were.
    let kind: String = redis::cmd("TYPE")
        .arg(keys.unique_key("k4"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(kind, "list");
}
