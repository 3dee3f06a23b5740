//! ACL users: producer, worker and CLI run under users with exactly README's ACL lines
//! (made by `mq_core::redis::acl::Role::setuser_line`, which a unit test checks against
//! README), a user missing one command fails at `build()` / `connect()` naming it, and each
//! role is refused what its flows do not need: a producer cannot pause, cancel, forge a status
//! or result, or touch cron, slot, rate or dead keys; the read-only CLI runs no script and
//! writes nothing.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use mq_core::{
    redis::acl::{self, Role},
    Error, Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, redis, run_worker, wait_until, LocalRedis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "acl", max_retries = 1, backoff = "fixed(100ms)")]
struct Job {
    /// 0: succeeds, 1: fails once then succeeds, 2: fails for good.
    kind: u8,
}

/// A unique task: 0 succeeds (its key kept 1 s: `PEXPIRE`), 1 fails for good (key deleted
/// with the dead letter, taken again by a replay).
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "aclu", unique = "n", unique_for = "1s", max_retries = 0)]
struct UniqueJob {
    n: u8,
}

/// A rate-limited task: 4 per second, so a burst of them is held back for its slots.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "aclr", rate = "4/s")]
struct RatedJob {
    n: u8,
}

const WAIT: Duration = Duration::from_secs(30);

/// Creates `user` (password `pw`) with the ACL line of `role`, minus the rule `without`, and
/// returns its URL.
async fn user(server: &LocalRedis, name: &str, role: Role, without: Option<&str>) -> String {
    let line = role.setuser_line_as(name, "mq").replace("<password>", "pw");
    let mut args: Vec<&str> = line.split(' ').skip(2).collect();
    if let Some(rule) = without {
        let plus = format!("+{rule}");
        args.retain(|a| *a != plus);
    }
    let mut c = conn(server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&args)
        .query_async(&mut c)
        .await
        .expect("ACL SETUSER");
    format!("redis://{name}:pw@127.0.0.1:{}/", server.port())
}

/// Commands refused to any user since the server started (`ACL LOG`), without
/// `client|setinfo` (the redis crate sends it at connect and ignores the answer).
async fn refused(server: &LocalRedis) -> Vec<String> {
    let mut c = conn(server).await;
    let log: Vec<Vec<redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut c)
        .await
        .expect("ACL LOG");
    log.into_iter()
        .map(|e| format!("{e:?}"))
        .filter(|e| !e.contains("setinfo"))
        .collect()
}

/// Runs `mq args...` as the user of `url`; (success, stdout, stderr).
async fn mq(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(mq_tests::workspace_bin("mq-cli", "mq"))
        .args(args)
        .env("MQ_REDIS_URL", url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .unwrap_or_else(|_| panic!("mq {args:?} did not finish within {WAIT:?}"))
        .expect("run mq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_acl_runs_producer_worker_and_cli() {
    let server = redis();
    let producer_url = user(&server, "mq-producer", acl::PRODUCER_ROLE, None).await;
    let worker_url = user(&server, "mq-worker", acl::WORKER_ROLE, None).await;
    let cli_url = user(&server, "mq-cli", acl::CLI_ROLE, None).await;
    let admin_url = user(&server, "mq-admin", acl::ADMIN_ROLE, None).await;

    let producer = Producer::connect(&producer_url)
        .await
        .expect("producer connects");
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = done.clone();
    let worker = Worker::builder(&worker_url)
        .handle::<Job, _>(move |job: Job, ctx: TaskContext| {
            let done = done2.clone();
            async move {
                match (job.kind, ctx.attempt()) {
                    (2, _) => Err(TaskError::permanent("broken for good")),
                    (1, 0) => Err(TaskError::retry("once")),
                    _ => {
                        done.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                }
            }
        })
        .build()
        .await
        .expect("worker builds");
    let running = run_worker(worker);
    producer.enqueue(Job { kind: 0 }).await.expect("enqueue");
    producer.enqueue(Job { kind: 1 }).await.expect("enqueue");
    producer.enqueue(Job { kind: 2 }).await.expect("enqueue");
    producer
        .enqueue_in(Duration::from_millis(300), Job { kind: 0 })
        .await
        .expect("enqueue_in");
    let out = mq(&producer_url, &["enqueue", "acl", "Job", r#"{"kind":0}"#]).await;
    assert!(out.0, "mq enqueue as mq-producer: {out:?}");
    let mut c = conn(&server).await;
    wait_until(WAIT, "4 tasks done and 1 dead letter", || {
        let done = done.clone();
        let mut c = c.clone();
        async move {
            let dead: usize = redis::cmd("XLEN")
                .arg("mq:{acl}:dead")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            done.load(Ordering::SeqCst) == 4 && dead == 1
        }
    })
    .await;

    let (ok, stats, err) = mq(&cli_url, &["stats"]).await;
    assert!(ok && stats.contains("acl"), "mq stats: {stats} {err}");
    let (ok, list, err) = mq(&cli_url, &["dead", "list", "acl"]).await;
    assert!(
        ok && list.contains("broken for good"),
        "mq dead list: {list} {err}"
    );
    let (ok, _, err) = mq(&cli_url, &["workers"]).await;
    assert!(ok, "mq workers: {err}");
    let (ok, _, err) = mq(&cli_url, &["pending", "acl"]).await;
    assert!(ok, "mq pending: {err}");
    assert_eq!(
        refused(&server).await,
        Vec::<String>::new(),
        "commands refused by ACL"
    );
    let (ok, _, _) = mq(&cli_url, &["dead", "purge", "acl", "--yes"]).await;
    assert!(!ok, "the read-only CLI user must not purge");
    let (ok, _, _) = mq(&cli_url, &["pause", "acl"]).await;
    assert!(!ok, "the read-only CLI user must not pause");
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut c)
        .await
        .unwrap();
    let (ok, out, err) = mq(&admin_url, &["dead", "replay", "acl", "--all", "--yes"]).await;
    assert!(ok, "mq dead replay as mq-admin: {out} {err}");
    wait_until(WAIT, "the replayed task dead again", || {
        let mut c = c.clone();
        async move {
            let dead: usize = redis::cmd("XLEN")
                .arg("mq:{acl}:dead")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            dead == 1
        }
    })
    .await;
    let (ok, out, err) = mq(&admin_url, &["dead", "purge", "acl", "--yes"]).await;
    assert!(ok, "mq dead purge as mq-admin: {out} {err}");
    for cmd in ["pause", "resume"] {
        let (ok, out, err) = mq(&admin_url, &[cmd, "acl"]).await;
        assert!(ok, "mq {cmd} as mq-admin: {out} {err}");
    }
    running.stop().await;
    assert_eq!(
        refused(&server).await,
        Vec::<String>::new(),
        "commands refused by ACL"
    );
}

/// Sum of the series of metric `name` in the Prometheus text `text`.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_acl_runs_unique_and_rate_limited_tasks() {
    let server = redis();
    let producer_url = user(&server, "mq-producer", acl::PRODUCER_ROLE, None).await;
    let worker_url = user(&server, "mq-worker", acl::WORKER_ROLE, None).await;
    let admin_url = user(&server, "mq-admin", acl::ADMIN_ROLE, None).await;

    let producer = Producer::connect(&producer_url)
        .await
        .expect("producer connects");
    let done = Arc::new(AtomicUsize::new(0));
    let (d1, d2) = (done.clone(), done.clone());
    let worker = Worker::builder(&worker_url)
        .handle::<UniqueJob, _>(move |job: UniqueJob, _: TaskContext| {
            let done = d1.clone();
            async move {
                if job.n == 1 {
                    return Err(TaskError::permanent("unique and broken"));
                }
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .handle::<RatedJob, _>(move |_: RatedJob, _: TaskContext| {
            let done = d2.clone();
            async move {
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .expect("worker builds");
    let metrics = worker.metrics();
    let running = run_worker(worker);
    for n in [0, 1] {
        let outcome = producer.submit(UniqueJob { n }).await.expect("submit");
        assert!(!outcome.is_duplicate(), "first UniqueJob {n}");
    }
    // While the first is queued or kept for `unique_for`, a second one is a duplicate.
    let again = producer.submit(UniqueJob { n: 0 }).await.expect("submit");
    assert!(again.is_duplicate(), "{again:?}");
    for n in 0..3 {
        producer.enqueue(RatedJob { n }).await.expect("enqueue");
    }
    let c = conn(&server).await;
    wait_until(WAIT, "4 tasks done and 1 dead letter", || {
        let done = done.clone();
        let mut c = c.clone();
        async move {
            let dead: usize = redis::cmd("XLEN")
                .arg("mq:{aclu}:dead")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            done.load(Ordering::SeqCst) == 4 && dead == 1
        }
    })
    .await;
    assert!(
        metric_sum(&metrics.render(), "mq_tasks_rate_limited_total") >= 1.0,
        "a burst of 3 at 4/s is held back"
    );
    let (ok, out, err) = mq(&admin_url, &["stats"]).await;
    assert!(
        ok && out.contains("aclu"),
        "mq stats as mq-admin: {out} {err}"
    );
    let (ok, out, err) = mq(&admin_url, &["dead", "replay", "aclu", "--all", "--yes"]).await;
    assert!(ok, "mq dead replay as mq-admin: {out} {err}");
    wait_until(WAIT, "the replayed unique task dead again", || {
        let mut c = c.clone();
        async move {
            let (dead, stream): (usize, usize) = redis::pipe()
                .cmd("XLEN")
                .arg("mq:{aclu}:dead")
                .cmd("XLEN")
                .arg("mq:{aclu}:stream")
                .query_async(&mut c)
                .await
                .unwrap_or((0, 1));
            dead == 1 && stream == 0
        }
    })
    .await;
    running.stop().await;
    assert_eq!(
        refused(&server).await,
        Vec::<String>::new(),
        "commands refused by ACL"
    );
}

/// A flow's child: 0 succeeds, 1 fails for good.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "aclf", max_retries = 0)]
struct FlowPart {
    n: u8,
}

/// A flow's parent.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "aclp", max_retries = 0)]
struct FlowParent {
    n: u8,
}

/// The documented roles run flows without a refusal: the producer writes one (`MULTI`), the
/// worker's child scripts report (ack and dead letter) and release the parent, the admin's
/// replay re-opens a dead child's report. A producer without the flow rules (`+hset`, as a
/// line older than flows has) is refused with `NOPERM` and writes nothing of the flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_acl_runs_flows_and_a_producer_without_them_writes_nothing() {
    let server = redis();
    let producer_url = user(&server, "mq-producer", acl::PRODUCER_ROLE, None).await;
    let old_url = user(&server, "old-producer", acl::PRODUCER_ROLE, Some("hset")).await;
    let worker_url = user(&server, "mq-worker", acl::WORKER_ROLE, None).await;
    let admin_url = user(&server, "mq-admin", acl::ADMIN_ROLE, None).await;
    let producer = Producer::connect(&producer_url).await.expect("producer");
    let parents = Arc::new(AtomicUsize::new(0));
    let p = parents.clone();
    let worker = Worker::builder(&worker_url)
        .handle::<FlowPart, _>(|part: FlowPart, _: TaskContext| async move {
            if part.n == 1 {
                return Err(TaskError::permanent("part 1 is broken"));
            }
            Ok(())
        })
        .handle::<FlowParent, _>(move |_: FlowParent, _: TaskContext| {
            let p = p.clone();
            async move {
                p.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .expect("worker builds");
    let running = run_worker(worker);
    // A run too: a flow and a task in it, and a completion task (a third parent).
    let run = producer.run("acl-run").await.expect("run as mq-producer");
    run.flow(FlowParent { n: 0 })
        .child(FlowPart { n: 0 })
        .child(FlowPart { n: 0 })
        .enqueue()
        .await
        .expect("flow as mq-producer");
    run.enqueue(FlowPart { n: 0 })
        .await
        .expect("run task as mq-producer");
    assert!(run
        .seal_with(FlowParent { n: 9 })
        .await
        .expect("seal as mq-producer"));
    producer
        .flow(FlowParent { n: 1 })
        .child(FlowPart { n: 1 })
        .enqueue()
        .await
        .expect("flow as mq-producer");
    let c = conn(&server).await;
    wait_until(WAIT, "one parent ran, the other is dead", || {
        let (parents, mut c) = (parents.clone(), c.clone());
        async move {
            let dead: usize = redis::cmd("XLEN")
                .arg("mq:{aclp}:dead")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            parents.load(Ordering::SeqCst) == 2 && dead == 1
        }
    })
    .await;
    running.stop().await;
    let admin = mq_core::Admin::connect(&admin_url).await.expect("admin");
    let r = admin
        .run("acl-run")
        .await
        .expect("run as mq-admin")
        .expect("run");
    assert_eq!((r.total, r.done, r.dead), (2, 2, 0), "{r:?}");
    assert!(r.ended_ms.is_some());
    // The read-only CLI reads runs.
    let cli_url = user(&server, "mq-cli", acl::CLI_ROLE, None).await;
    for args in [&["runs"][..], &["runs", "show", "acl-run"][..]] {
        let (ok, out, err) = mq(&cli_url, args).await;
        assert!(
            ok && out.contains("acl-run"),
            "mq {args:?} as mq-cli: {out} {err}"
        );
    }
    // The admin replays the dead part: nothing waits for it any more, it runs as a task.
    let (ok, out, err) = mq(&admin_url, &["dead", "replay", "aclf", "--all", "--yes"]).await;
    assert!(ok, "mq dead replay as mq-admin: {out} {err}");
    assert_eq!(
        refused(&server).await,
        Vec::<String>::new(),
        "commands refused by ACL"
    );
    // The old producer line: refused, and nothing of the flow is written.
    let old = Producer::connect(&old_url)
        .await
        .expect("old producer connects");
    let mut c = c.clone();
    let before: usize = redis::cmd("XLEN")
        .arg("mq:{aclf}:stream")
        .query_async(&mut c)
        .await
        .expect("XLEN");
    let err = old
        .flow(FlowParent { n: 2 })
        .child(FlowPart { n: 0 })
        .enqueue()
        .await
        .expect_err("refused");
    let why = mq_core::error::chain(&err);
    assert!(
        why.contains("no permissions") && why.contains("hset"),
        "{why}"
    );
    let after: usize = redis::cmd("XLEN")
        .arg("mq:{aclf}:stream")
        .query_async(&mut c)
        .await
        .expect("XLEN");
    assert_eq!(before, after, "no child written");
    let hashes: Vec<String> = redis::cmd("KEYS")
        .arg("mq:{aclp}:stream:flow:*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(hashes.is_empty(), "{hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_missing_one_command_fails_at_build_naming_it() {
    let server = redis();
    for rule in [
        "zadd",
        "xclaim",
        "subscribe",
        "client|unblock",
        "script|load",
        "pexpire",
        "get",
    ] {
        let url = user(&server, "w", acl::WORKER_ROLE, Some(rule)).await;
        let err = Worker::builder(&url)
            .handle::<Job, _>(|_: Job, _: TaskContext| async { Ok(()) })
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("a worker without +{rule} must not build"));
        assert!(
            matches!(&err, Error::Config(m) if m.contains(&format!("+{rule}"))),
            "without +{rule}: {err}"
        );
        if rule == "zadd" {
            assert!(err.to_string().contains("mq:{acl}:delayed"), "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_missing_xadd_fails_at_connect_naming_it() {
    let server = redis();
    let url = user(&server, "p", acl::PRODUCER_ROLE, Some("xadd")).await;
    let err = Producer::connect(&url)
        .await
        .expect_err("a producer without +xadd must not connect");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("+xadd (XADD mq:{acl-check}:stream")),
        "{err}"
    );
    let url = user(&server, "p3", acl::PRODUCER_ROLE, Some("incr")).await;
    let err = Producer::connect(&url).await.expect_err("no incr");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("+incr (INCR mq:{acl-check}:duplicates")),
        "{err}"
    );
    let url = user(&server, "p2", acl::PRODUCER_ROLE, Some("evalsha")).await;
    let err = Producer::connect(&url).await.expect_err("no evalsha");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("evalsha")),
        "{err}"
    );
}

/// A tracked task type: its producer writes its `queued` status.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "aclt", result_ttl = "1h")]
struct TrackedJob {
    n: u8,
}

/// Runs `cmd` as the user of `conn` and asserts Redis refuses it (`NOPERM`, also from inside a
/// script).
async fn assert_refused(conn: &mut mq_tests::Conn, who: &str, cmd: &redis::Cmd) {
    let r: redis::RedisResult<redis::Value> = cmd.query_async(conn).await;
    match r {
        Err(e) => assert!(
            e.code() == Some("NOPERM") || e.to_string().contains("NOPERM"),
            "{who}: {cmd:?} failed, but not for permissions: {e}"
        ),
        Ok(v) => panic!("{who} may run {cmd:?}: {v:?}"),
    }
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Each documented role is refused what its flows do not need: a producer cannot pause a
/// queue, write a cancel mark, a status or result hash, cron, key-slot, rate, dead-letter or
/// registry keys (not directly, not from a script); a producer without the tracked role is
/// refused a tracked task before anything is written; the read-only CLI runs no script
/// (`EVAL`, `SCRIPT LOAD`, `EVALSHA`) and writes nothing; a worker cannot pause. Each still
/// runs its own flows (the tests above, and `mq stats --keys` here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_refused_what_its_flows_do_not_need() {
    let server = redis();
    let producer_url = user(&server, "mq-producer", acl::PRODUCER_ROLE, None).await;
    let tracked_url = user(
        &server,
        "mq-producer-tracked",
        acl::PRODUCER_TRACKED_ROLE,
        None,
    )
    .await;
    let worker_url = user(&server, "mq-worker", acl::WORKER_ROLE, None).await;
    let cli_url = user(&server, "mq-cli", acl::CLI_ROLE, None).await;
    let mut root = conn(&server).await;

    let producer = Producer::connect(&producer_url).await.expect("producer");
    let id = producer.enqueue(Job { kind: 0 }).await.expect("enqueue");
    let mut p = mq_tests::Conn::connect(&producer_url).await.expect("conn");
    for args in [
        &["SET", "mq:{acl}:paused", "1"][..],
        &["HSET", "mq:{acl}:cancel", &id, "1-0"],
        &["HSET", &format!("mq:{{acl}}:task:{id}"), "status", "done"],
        &[
            "HSET",
            &format!("mq:{{acl}}:task:{id}"),
            "result",
            "\"forged\"",
        ],
        &["HSET", "mq:{acl}:cron", "daily:expr", "* * * * *"],
        &["SET", "mq:{acl}:cron:daily:1764000000000", "1"],
        &[
            "ZADD",
            "mq:{acl}:slots:Call:acct-1",
            "99999999999999",
            "1-0",
        ],
        &["SET", "mq:{acl}:rate:Call", "99999999999999999"],
        &["XADD", "mq:{acl}:dead", "*", "error", "forged"],
        &["HSET", "mq:workers", "ghost", "queues=acl"],
        &["HSET", "mq:partitions", "acl", "9"],
        &[
            "XADD",
            "mq:{acl}:events",
            "*",
            "id",
            "x",
            "event",
            "succeeded",
        ],
        &["DEL", "mq:{acl}:stream"],
        &["EVAL", "return 1", "0"],
    ] {
        assert_refused(&mut p, "the producer", &cmd(args)).await;
    }
    // Nor from a script of its own: scripts run under the caller's ACL.
    let sha: String = cmd(&["SCRIPT", "LOAD", "return redis.call('SET', KEYS[1], '1')"])
        .query_async(&mut p)
        .await
        .expect("SCRIPT LOAD");
    assert_refused(
        &mut p,
        "a producer's script",
        &cmd(&["EVALSHA", &sha, "1", "mq:{acl}:paused"]),
    )
    .await;
    assert!(
        producer.cancel("acl", &id).await.is_err(),
        "the producer role cannot cancel"
    );
    let admin = mq_core::Admin::connect(&producer_url).await.expect("admin");
    assert!(
        admin.pause("acl").await.is_err(),
        "the producer role cannot pause"
    );
    let exists: u32 = cmd(&[
        "EXISTS",
        "mq:{acl}:paused",
        "mq:{acl}:cancel",
        "mq:{acl}:dead",
    ])
    .query_async(&mut root)
    .await
    .expect("EXISTS");
    assert_eq!(exists, 0, "nothing written");

    // Tracked task types need the tracked role; without it nothing is written.
    let err = producer
        .enqueue(TrackedJob { n: 1 })
        .await
        .expect_err("a plain producer must not write a task's status hash");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("+hset (HSET mq:{acl-check}:task:")),
        "{err}"
    );
    let len: u64 = cmd(&["XLEN", "mq:{aclt}:stream"])
        .query_async(&mut root)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "refused before the XADD");
    let tracked = Producer::connect(&tracked_url)
        .await
        .expect("tracked producer");
    let tid = tracked
        .enqueue(TrackedJob { n: 1 })
        .await
        .expect("tracked enqueue");
    assert_eq!(
        tracked.status("aclt", &tid).await.expect("status"),
        mq_core::TaskStatus::Queued
    );

    // The read-only CLI: no script, no write.
    let mut c = mq_tests::Conn::connect(&cli_url).await.expect("conn");
    for args in [
        &["EVAL", "return 1", "0"][..],
        &["SCRIPT", "LOAD", "return 1"],
        &["EVALSHA", &sha, "1", "mq:{acl}:paused"],
        &["SET", "mq:{acl}:paused", "1"],
        &["XADD", "mq:{acl}:stream", "*", "f", "v"],
        &["DEL", "mq:{acl}:dead"],
        &["HSET", &format!("mq:{{acl}}:task:{id}"), "status", "done"],
        &["SADD", "mq:queues", "ghost"],
    ] {
        assert_refused(&mut c, "the read-only CLI", &cmd(args)).await;
    }
    let admin = mq_core::Admin::connect(&cli_url).await.expect("admin");
    assert!(
        admin.pause("acl").await.is_err(),
        "the read-only CLI cannot pause"
    );
    assert_eq!(admin.stats("acl").await.expect("stats").backlog, 1);
    let (ok, out, err) = mq(&cli_url, &["stats", "--keys"]).await;
    assert!(
        ok && out.contains("acl"),
        "mq stats --keys as mq-cli: {out} {err}"
    );

    // A worker runs the tracked task (its status, result and event writes) under its role,
    // and the read-only CLI reads the outcome.
    let worker = Worker::builder(&worker_url)
        .handle::<TrackedJob, _>(|_: TrackedJob, _: TaskContext| async { Ok(()) })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("worker builds");
    let running = run_worker(worker);
    wait_until(WAIT, "the tracked task succeeded", || {
        let admin = admin.clone();
        let tid = tid.clone();
        async move {
            matches!(
                admin.status("aclt", &tid).await,
                Ok(mq_core::TaskStatus::Succeeded { .. })
            )
        }
    })
    .await;
    running.stop().await;
    // The refusals so far are the ones asked for above, none of the worker's or the tracked
    // producer's flows.
    let log = refused(&server).await;
    assert!(
        !log.iter()
            .any(|e| e.contains("\"mq-worker\"") || e.contains("\"mq-producer-tracked\"")),
        "{log:?}"
    );

    // A worker reads the pause flag, never writes it.
    let mut w = mq_tests::Conn::connect(&worker_url).await.expect("conn");
    assert_refused(&mut w, "the worker", &cmd(&["SET", "mq:{acl}:paused", "1"])).await;
    assert_refused(&mut w, "the worker", &cmd(&["INCR", "mq:{acl}:duplicates"])).await;
}
