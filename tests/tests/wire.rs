//! The wire format against a real redis-server (docs/wire-format.md): the Producer writes v2
//! entries (one field `t` for a first attempt), workers still consume v1 entries written by hand
//! as `redis-cli` or an older producer would, a retry carries `r` and keeps the task's id and
//! enqueue time, dead letters of both versions decode, a v2 dead letter replays, and malformed
//! v2 entries are dead-lettered with a reason naming the problem.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{
    admin::Admin,
    redis::{keys::QueueKeys, scripts},
    Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, redis, run_worker, wait_until, xlen, Conn, RunningWorker};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

/// A stream entry as `XRANGE` gives it: id and field/value pairs in stored order.
type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Fields to `XADD`.
type Fields = Vec<(&'static str, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Task)]
#[task(queue = "wire", max_retries = 3, backoff = "none")]
struct Note {
    n: u32,
    text: String,
}

/// What a handler saw of one run.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    task: Note,
    id: String,
    attempt: u32,
    enqueued_at: u64,
    last_error: Option<String>,
    /// The stream entry's fields as stored, read while the task runs.
    fields: HashMap<String, Vec<u8>>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A worker on `wire` that records every run; it fails the first run of a task with `n` in
/// `retry_once` (retryable), then fails a task with `n` in `fail` permanently.
async fn worker(
    url: &str,
    log: Log,
    fail: &'static [u32],
    retry_once: &'static [u32],
) -> RunningWorker {
    let client = redis::Client::open(url).expect("url");
    let c = client
        .get_connection_manager()
        .await
        .expect("connection for the handler");
    let w = Worker::builder(url)
        .handle::<Note, _>(move |t: Note, ctx: TaskContext| {
            let (log, mut c) = (log.clone(), c.clone());
            async move {
                let entry: Vec<(String, HashMap<String, redis::Value>)> = redis::cmd("XRANGE")
                    .arg(QueueKeys::new("mq", "wire").stream)
                    .arg(ctx.entry_id())
                    .arg(ctx.entry_id())
                    .query_async(&mut c)
                    .await
                    .map_err(TaskError::retry)?;
                let fields = entry
                    .into_iter()
                    .next()
                    .map(|(_, f)| {
                        f.into_iter()
                            .map(|(k, v)| match v {
                                redis::Value::BulkString(b) => (k, b),
                                other => (k, format!("{other:?}").into_bytes()),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let n = t.n;
                log.lock().unwrap().push(Seen {
                    task: t,
                    id: ctx.id().to_owned(),
                    attempt: ctx.attempt(),
                    enqueued_at: ctx.enqueued_at(),
                    last_error: ctx.last_error().map(str::to_owned),
                    fields,
                });
                if retry_once.contains(&n) && ctx.attempt() == 0 {
                    return Err(TaskError::retry(format!("note {n} failed once")));
                }
                if fail.contains(&n) {
                    return Err(TaskError::permanent(format!("note {n} is refused")));
                }
                Ok(())
            }
        })
        .concurrency(8)
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("build worker");
    run_worker(w)
}

fn note(n: u32) -> Note {
    Note {
        n,
        text: format!("note {n}"),
    }
}

/// `XADD`s the fields as given (a hand-written entry).
async fn xadd(c: &mut Conn, fields: &[(&str, &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(QueueKeys::new("mq", "wire").stream).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(c).await.expect("XADD")
}

async fn wait_runs(log: &Log, n: usize) {
    wait_until(WAIT, &format!("{n} runs"), || {
        let log = log.clone();
        async move { log.lock().unwrap().len() >= n }
    })
    .await;
}

async fn wait_dead(admin: &Admin, n: u64) {
    wait_until(WAIT, &format!("{n} dead letters"), || {
        let admin = admin.clone();
        async move { admin.stats("wire").await.ok().map(|s| s.dead) == Some(n) }
    })
    .await;
}

/// The v2 `t` value of a task, built by hand as docs/wire-format.md describes it.
fn v2_blob(id: &str, name: &str, enqueued_at: u64, payload: &[u8], tp: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    rmp::encode::write_array_len(&mut b, 6).unwrap();
    rmp::encode::write_uint(&mut b, 2).unwrap();
    rmp::encode::write_str(&mut b, id).unwrap();
    rmp::encode::write_str(&mut b, name).unwrap();
    rmp::encode::write_uint(&mut b, enqueued_at).unwrap();
    rmp::encode::write_bin(&mut b, payload).unwrap();
    match tp {
        Some(tp) => rmp::encode::write_str(&mut b, tp).unwrap(),
        None => rmp::encode::write_nil(&mut b).unwrap(),
    }
    b
}

/// Entries in the 5-field form, as `redis-cli` or an older producer writes them (one with a
/// traceparent, one a retry with `error`), are consumed by the current worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_v1_entries_are_consumed() {
    let server = redis();
    let mut c = conn(&server).await;
    let payload = |n| rmp_serde::to_vec_named(&note(n)).unwrap();
    xadd(
        &mut c,
        &[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5Y1"),
            ("name", b"Note"),
            ("payload", &payload(1)),
            ("attempt", b"0"),
            ("enqueued_at", b"1764000000123"),
        ],
    )
    .await;
    xadd(
        &mut c,
        &[
            ("enqueued_at", b"1764000000456"),
            ("attempt", b"2"),
            ("error", b"earlier failure"),
            (
                "traceparent",
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("payload", &payload(2)),
            ("name", b"Note"),
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5Y2"),
        ],
    )
    .await;
    let log = Log::default();
    let w = worker(&server.url(), log.clone(), &[], &[]).await;
    wait_runs(&log, 2).await;
    let stream = QueueKeys::new("mq", "wire").stream;
    wait_until(WAIT, "both acked", || {
        let mut c = c.clone();
        let stream = stream.clone();
        async move { xlen(&mut c, &stream).await == 0 }
    })
    .await;
    w.stop().await;
    let mut seen = log.lock().unwrap().clone();
    seen.sort_by_key(|s| s.task.n);
    assert_eq!(seen[0].task, note(1));
    assert_eq!(seen[0].id, "01JD3ZK1Q7W9V3T1B0N2C4X5Y1");
    assert_eq!(
        (seen[0].attempt, seen[0].enqueued_at),
        (0, 1_764_000_000_123)
    );
    assert_eq!(seen[0].last_error, None);
    assert_eq!(seen[1].task, note(2));
    assert_eq!(
        (seen[1].attempt, seen[1].enqueued_at),
        (2, 1_764_000_000_456)
    );
    assert_eq!(seen[1].last_error.as_deref(), Some("earlier failure"));
}

/// A task from the Producer is one stream field, `t`, holding `[2, id, name, enqueued_at,
/// payload, traceparent]`; a delayed one is a member `{"t": <the same bytes>}` that the
/// promoter turns into a byte-identical entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_writes_one_field_v2_entries() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.expect("producer");
    let before = mq_core::envelope::now_ms();
    let id = producer.enqueue(note(7)).await.expect("enqueue");
    let k = QueueKeys::new("mq", "wire");
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(&k.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("XRANGE");
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].1;
    assert_eq!(fields.len(), 1, "one field: {fields:?}");
    assert_eq!(fields[0].0, b"t");
    let t = &fields[0].1;
    // Decode it with a generic MessagePack reader: an array of 6, payload as bin.
    let (version, tid, name, enqueued_at, payload, tp): (
        u8,
        String,
        String,
        u64,
        serde_bytes_like::Bin,
        Option<String>,
    ) = rmp_serde::from_slice(t).expect("t is a MessagePack array");
    assert_eq!(
        (version, &tid[..], &name[..], tp),
        (2, &id[..], "Note", None)
    );
    assert!(enqueued_at >= before && enqueued_at <= mq_core::envelope::now_ms());
    assert_eq!(payload.0, rmp_serde::to_vec_named(&note(7)).unwrap());
    assert_eq!(t[0], 0x96, "fixarray of 6");
    assert_eq!(t[1], 0x02, "version 2");
    assert!(t.windows(2).any(|w| w[0] == 0xc4), "payload is bin8");

    // Delayed: a map with the one field, the blob as a str; the promoter keeps it byte-exact.
    let id = producer
        .enqueue_in(Duration::from_millis(1), note(8))
        .await
        .expect("enqueue_in");
    let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(&k.delayed)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .expect("ZRANGE");
    assert_eq!(members.len(), 1);
    let member: HashMap<String, serde_bytes_like::Bin> =
        rmp_serde::from_slice(&members[0]).expect("member is a map");
    assert_eq!(member.keys().collect::<Vec<_>>(), ["t"]);
    let blob = member["t"].0.clone();
    let m = &members[0];
    assert_eq!(&m[..3], b"\x81\xa1t", "map of 1, key fixstr \"t\"");
    assert!(
        matches!(m[3], 0xa0..=0xbf | 0xd9..=0xdb),
        "the blob is a MessagePack str, not bin: {:#x}",
        m[3]
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _: redis::Value = scripts::PROMOTE
        .key(&k.delayed)
        .key(&k.stream)
        .key(&k.dead)
        .arg(1000)
        .arg(4 << 20)
        .arg(1_000_000)
        .invoke_async(&mut c)
        .await
        .expect("promote");
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(&k.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("XRANGE");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].1, vec![(b"t".to_vec(), blob.clone())]);
    let (_, tid, ..): (
        u8,
        String,
        String,
        u64,
        serde_bytes_like::Bin,
        Option<String>,
    ) = rmp_serde::from_slice(&blob).expect("promoted t");
    assert_eq!(tid, id);

    // And the worker runs both.
    let log = Log::default();
    let w = worker(&server.url(), log.clone(), &[], &[]).await;
    wait_runs(&log, 2).await;
    w.stop().await;
}

/// A retried task's next entry is `t` unchanged (same id and enqueue time) plus `r` =
/// `[attempt, last error]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_carries_r_and_keeps_the_task() {
    let server = redis();
    let producer = Producer::connect(&server.url()).await.expect("producer");
    let id = producer.enqueue(note(3)).await.expect("enqueue");
    let log = Log::default();
    let w = worker(&server.url(), log.clone(), &[], &[3]).await;
    wait_runs(&log, 2).await;
    w.stop().await;
    let seen = log.lock().unwrap().clone();
    let (first, second) = (&seen[0], &seen[1]);
    assert_eq!((first.attempt, second.attempt), (0, 1));
    assert_eq!((&first.id[..], &second.id[..]), (&id[..], &id[..]));
    assert_eq!(first.enqueued_at, second.enqueued_at);
    assert_eq!(second.last_error.as_deref(), Some("note 3 failed once"));
    assert_eq!(second.task, note(3));
    let mut keys: Vec<_> = first.fields.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["t"]);
    let mut keys: Vec<_> = second.fields.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["r", "t"]);
    assert_eq!(
        first.fields["t"], second.fields["t"],
        "t unchanged by the retry"
    );
    let (attempt, error): (u32, Option<String>) =
        rmp_serde::from_slice(&second.fields["r"]).expect("r is [attempt, error]");
    assert_eq!((attempt, error.as_deref()), (1, Some("note 3 failed once")));
}

/// Dead letters of a v2 entry (from the Producer, after a retry) and of a hand-written v1
/// entry both decode through `DeadLetter`; replaying the v2 one runs it again from attempt 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_both_versions_decode_and_v2_replays() {
    let server = redis();
    let mut c = conn(&server).await;
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    let admin = Admin::connect(&url).await.expect("admin");
    let v2_id = producer.enqueue(note(10)).await.expect("enqueue");
    xadd(
        &mut c,
        &[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5Y9"),
            ("name", b"Note"),
            ("payload", &rmp_serde::to_vec_named(&note(11)).unwrap()),
            ("attempt", b"0"),
            ("enqueued_at", b"1764000000999"),
        ],
    )
    .await;
    let log = Log::default();
    // 10 fails once (retry), then is refused on its second run; 11 is refused at once.
    let w = worker(&url, log.clone(), &[10, 11], &[10]).await;
    wait_dead(&admin, 2).await;
    w.stop().await;
    let dead = admin.dead_list("wire", 10).await.expect("dead_list");
    let by_n: HashMap<u32, _> = dead
        .iter()
        .map(|d| (d.decode::<Note>().expect("decodes").n, d))
        .collect();
    let v2 = by_n[&10];
    let v1 = by_n[&11];
    assert_eq!(v2.task_id(), Some(&v2_id[..]));
    assert_eq!(v2.name(), Some("Note"));
    assert_eq!(v2.attempts(), Some(2));
    assert_eq!(v2.error(), Some("permanent failure: note 10 is refused"));
    assert!(v2.enqueued_at().is_some_and(|ms| ms > 1_764_000_000_000));
    assert_eq!(
        v2.payload(),
        Some(&rmp_serde::to_vec_named(&note(10)).unwrap()[..])
    );
    assert_eq!(v1.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5Y9"));
    assert_eq!(v1.name(), Some("Note"));
    assert_eq!(v1.enqueued_at(), Some(1_764_000_000_999));
    assert_eq!(v1.attempts(), Some(1));

    let report = admin
        .dead_replay("wire", &[v2.dead_id().to_owned(), v1.dead_id().to_owned()])
        .await
        .expect("replay");
    assert_eq!((report.replayed, report.skipped.len()), (2, 0));
    let log = Log::default();
    let w = worker(&url, log.clone(), &[], &[]).await;
    wait_runs(&log, 2).await;
    w.stop().await;
    let mut seen = log.lock().unwrap().clone();
    seen.sort_by_key(|s| s.task.n);
    assert_eq!((seen[0].task.n, &seen[0].id[..]), (10, &v2_id[..]));
    assert_eq!((seen[0].attempt, seen[0].last_error.as_deref()), (0, None));
    let mut keys: Vec<_> = seen[0].fields.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["t"], "a replayed v2 entry is `t` alone again");
    assert_eq!((seen[1].task.n, seen[1].attempt), (11, 0));
    assert_eq!(seen[1].enqueued_at, 1_764_000_000_999);
}

/// A `t` that is not a valid v2 task is dead-lettered at once with a reason naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_v2_entries_are_dead_lettered_with_the_problem() {
    let server = redis();
    let mut c = conn(&server).await;
    let url = server.url();
    let admin = Admin::connect(&url).await.expect("admin");
    let payload = rmp_serde::to_vec_named(&note(1)).unwrap();
    let good = v2_blob("01JD3ZK1Q7W9V3T1B0N2C4X5Y1", "Note", 1, &payload, None);
    let mut v3 = good.clone();
    v3[1] = 3;
    let mut arity = Vec::new();
    rmp::encode::write_array_len(&mut arity, 3).unwrap();
    rmp::encode::write_uint(&mut arity, 2).unwrap();
    rmp::encode::write_str(&mut arity, "01JD3ZK1Q7W9V3T1B0N2C4X5Y1").unwrap();
    rmp::encode::write_str(&mut arity, "Note").unwrap();
    let mut id_int = Vec::new();
    rmp::encode::write_array_len(&mut id_int, 6).unwrap();
    rmp::encode::write_uint(&mut id_int, 2).unwrap();
    rmp::encode::write_uint(&mut id_int, 42).unwrap();
    id_int.extend_from_slice(&good[29..]);
    let payload_str = v2_blob("a", "Note", 1, b"", None);
    let mut payload_str = payload_str[..payload_str.len() - 3].to_vec(); // drop bin8 0 and nil
    rmp::encode::write_str(&mut payload_str, "x").unwrap();
    rmp::encode::write_nil(&mut payload_str).unwrap();
    let mut trailing = good.clone();
    trailing.push(0xc0);
    let cases: Vec<(&str, Fields, &str)> = vec![
        ("version", vec![("t", v3)], "version 3"),
        ("arity", vec![("t", arity)], "6 elements"),
        ("id type", vec![("t", id_int)], "id"),
        ("payload type", vec![("t", payload_str)], "payload"),
        ("not msgpack", vec![("t", vec![0xc1])], "array"),
        ("trailing", vec![("t", trailing)], "trailing"),
        (
            "bad r",
            vec![("t", good.clone()), ("r", b"\x92\xa1x\xc0".to_vec())],
            "`r`",
        ),
    ];
    let n = cases.len();
    for (_, fields, _) in &cases {
        let fields: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, &v[..])).collect();
        xadd(&mut c, &fields).await;
    }
    let log = Log::default();
    let w = worker(&url, log.clone(), &[], &[]).await;
    wait_dead(&admin, n as u64).await;
    w.stop().await;
    assert!(log.lock().unwrap().is_empty(), "no malformed entry ran");
    let dead = admin.dead_list("wire", 100).await.expect("dead_list");
    assert_eq!(dead.len(), n);
    for (what, fields, expected) in &cases {
        let d = dead
            .iter()
            .find(|d| d.get("t") == Some(&fields[0].1[..]))
            .unwrap_or_else(|| panic!("{what}: no dead entry"));
        let error = d.error().unwrap_or_default();
        assert!(
            error.starts_with("malformed entry: ") && error.contains(expected),
            "{what}: {error:?} should name {expected:?}"
        );
    }
}

/// `Admin::pending` names the task of a pending v2 entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_of_v2_tasks_name_their_task() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.expect("producer");
    let admin = Admin::connect(&server.url()).await.expect("admin");
    let id = producer.enqueue(note(5)).await.expect("enqueue");
    let stream = QueueKeys::new("mq", "wire").stream;
    mq_tests::create_group(&mut c, &stream).await;
    mq_tests::read_as(&mut c, &stream, "someone").await;
    let pending = admin.pending("wire", 10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].task_id.as_deref(), Some(&id[..]));
    assert_eq!(pending[0].task_name.as_deref(), Some("Note"));
}

/// The reclaimer's abandoned dead letter counts the runs of a v2 retry from its `r`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_v2_retry_counts_its_attempts_from_r() {
    let server = redis();
    let mut c = conn(&server).await;
    let url = server.url();
    let stream = QueueKeys::new("mq", "wire").stream;
    let payload = rmp_serde::to_vec_named(&note(4)).unwrap();
    let t = v2_blob("01JD3ZK1Q7W9V3T1B0N2C4X5Y4", "Note", 1, &payload, None);
    xadd(&mut c, &[("t", &t), ("r", b"\x92\x02\xa4boom")]).await;
    // Delivered once to a worker that died with it.
    mq_tests::create_group(&mut c, &stream).await;
    mq_tests::read_as(&mut c, &stream, "crashed").await;
    let w = Worker::builder(&url)
        .reclaim_timeout(Duration::from_millis(200))
        .max_deliveries(1)
        .handle::<Note, _>(|_n: Note, _ctx: TaskContext| async { Ok::<_, TaskError>(()) })
        .build()
        .await
        .expect("build worker");
    let running = run_worker(w);
    let admin = Admin::connect(&url).await.expect("admin");
    wait_dead(&admin, 1).await;
    running.stop().await;
    let dead = admin.dead_list("wire", 10).await.expect("dead_list");
    let d = &dead[0];
    assert!(
        d.error()
            .is_some_and(|e| e.starts_with("abandoned: delivered 2 times")),
        "{d:?}"
    );
    assert_eq!(d.attempts(), Some(3), "attempt 2 in `r`: the third run");
    assert_eq!(d.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5Y4"));
    assert_eq!(d.get("t"), Some(&t[..]), "`t` kept byte for byte");
}

mod serde_bytes_like {
    use serde::de::{Deserializer, Visitor};

    /// A MessagePack bin or str, as bytes.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Bin(pub(crate) Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bin {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bin;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bin or str")
                }
                fn visit_bytes<E>(self, b: &[u8]) -> Result<Bin, E> {
                    Ok(Bin(b.to_vec()))
                }
                fn visit_str<E>(self, s: &str) -> Result<Bin, E> {
                    Ok(Bin(s.as_bytes().to_vec()))
                }
            }
            d.deserialize_any(V)
        }
    }
}
