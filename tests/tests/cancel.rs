//! Cancellation where it used to go wrong (issue 21, items 2, 4 and 5): workers in another
//! consumer group, cancellation marks that outlive their task, and a delayed set that the
//! promoter shrinks while a cancel pages through it.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use mq_core::{
    redis::keys::QueueKeys, Admin, CancelOutcome, Producer, Task, TaskContext, TaskError, Worker,
};
use mq_tests::{conn, run_worker, server, wait_until, xlen, Conn};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-group", unique = "key")]
struct Held {
    key: u32,
}

/// Workers in group `other`: a producer's cancel of a running unique task signals it (it used
/// to read "no group mq" as "never delivered", delete the running entry, answer `Queued` and
/// free the unique key, so a second task with that key ran beside it); an admin told group
/// `mq` is refused with NOGROUP and changes nothing.
#[tokio::test]
async fn cancel_finds_a_running_task_of_workers_in_another_group() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let started = Arc::new(AtomicU32::new(0));
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let (s, seen) = (started.clone(), saw_cancel.clone());
    let worker = Worker::builder(&url)
        .group("other")
        .reclaim_timeout(Duration::from_millis(1_500))
        .handle::<Held, _>(move |_t: Held, ctx: TaskContext| {
            let (s, seen) = (s.clone(), seen.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = ctx.cancelled() => seen.store(true, Ordering::SeqCst),
                    _ = tokio::time::sleep(Duration::from_secs(20)) => {}
                }
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Held { key: 1 }).await.unwrap();
    wait_until(WAIT, "the task started", || {
        let s = started.clone();
        async move { s.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let admin = Admin::connect(&url).await.unwrap();
    let refused = admin.cancel(Held::QUEUE, &id).await;
    assert!(
        matches!(&refused, Err(e) if format!("{e:?}").contains("NOGROUP")),
        "an admin of group mq must be refused: {refused:?}"
    );
    let keys = QueueKeys::new("mq", Held::QUEUE);
    assert_eq!(
        xlen(&mut c, &keys.stream).await,
        1,
        "the running entry is gone"
    );
    assert_eq!(
        producer.enqueue(Held { key: 1 }).await.unwrap(),
        id,
        "the unique key was released while its task runs"
    );
    let outcome = producer.cancel(Held::QUEUE, &id).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Running { .. }),
        "{outcome:?}"
    );
    wait_until(WAIT, "the handler saw its cancellation", || {
        let seen = saw_cancel.clone();
        async move { seen.load(Ordering::SeqCst) }
    })
    .await;
    worker.stop().await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "it ran twice");
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-stale", max_retries = 0)]
struct Doomed {
    n: u32,
}

/// A cancellation that reaches a task which then dies before its worker's next lease renewal
/// is forgotten with it: the task's replay later runs to the end, uncancelled (the mark used to
/// stay, and the replay was cancelled though nobody cancelled it).
#[tokio::test]
async fn a_replayed_task_is_not_cancelled_by_its_dead_runs_mark() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let runs = Arc::new(AtomicU32::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let cancelled_runs = Arc::new(AtomicU32::new(0));
    let handler = {
        let (runs, go, cancelled_runs) = (runs.clone(), go.clone(), cancelled_runs.clone());
        move |_t: Doomed, ctx: TaskContext| {
            let (runs, go, cancelled_runs) = (runs.clone(), go.clone(), cancelled_runs.clone());
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    // First run: die as soon as the test has cancelled it (long before a
                    // renewal of this worker's leases, every 10 s).
                    for _ in 0..600 {
                        if go.load(Ordering::SeqCst) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    return Err(TaskError::permanent("first run dies"));
                }
                // The replay: several lease renewals (every 500 ms) while it runs.
                tokio::select! {
                    _ = ctx.cancelled() => { cancelled_runs.fetch_add(1, Ordering::SeqCst); }
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {}
                }
                Ok(())
            }
        }
    };
    let slow = Worker::builder(&url)
        .reclaim_timeout(Duration::from_secs(30))
        .handle::<Doomed, _>(handler.clone())
        .build()
        .await
        .unwrap();
    let slow = run_worker(slow);
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Doomed { n: 1 }).await.unwrap();
    wait_until(WAIT, "the first run started", || {
        let runs = runs.clone();
        async move { runs.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let outcome = producer.cancel(Doomed::QUEUE, &id).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Running { .. }),
        "{outcome:?}"
    );
    go.store(true, Ordering::SeqCst);
    let keys = QueueKeys::new("mq", Doomed::QUEUE);
    let dead = keys.dead.clone();
    wait_until(WAIT, "the first run dead-lettered", || {
        let (mut c, dead) = (c.clone(), dead.clone());
        async move { xlen(&mut c, &dead).await == 1 }
    })
    .await;
    slow.stop().await;
    let admin = Admin::connect(&url).await.unwrap();
    admin.dead_replay_all(Doomed::QUEUE).await.unwrap();
    let fast = Worker::builder(&url)
        .reclaim_timeout(Duration::from_millis(1_500))
        .handle::<Doomed, _>(handler)
        .build()
        .await
        .unwrap();
    let fast = run_worker(fast);
    let stream = keys.stream.clone();
    wait_until(WAIT, "the replay finished", || {
        let (mut c, stream, runs) = (c.clone(), stream.clone(), runs.clone());
        async move { runs.load(Ordering::SeqCst) == 2 && xlen(&mut c, &stream).await == 0 }
    })
    .await;
    fast.stop().await;
    assert_eq!(
        cancelled_runs.load(Ordering::SeqCst),
        0,
        "the replay was cancelled by the dead run's mark"
    );
    assert_eq!(xlen(&mut c, &keys.dead).await, 0, "the replay died");
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-bound")]
struct Long {
    n: u32,
}

/// Marks of tasks that ended unseen (a plain task acked before its worker's next renewal)
/// do not pile up: each cancellation of a running task forgets a sample of marks older than
/// `CANCEL_TTL` (they used to stay for as long as cancellations kept pushing the hash's
/// expiry out).
#[tokio::test]
async fn stale_cancel_marks_are_forgotten() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Long::QUEUE);
    // 300 marks of runs that ended a day and more ago.
    let mut cmd = redis::cmd("HSET");
    cmd.arg(&keys.cancel);
    for i in 0..300 {
        cmd.arg(format!("gone-{i}")).arg(format!("1-{i} 1000"));
    }
    let _: () = cmd.query_async(&mut c).await.unwrap();
    let started = Arc::new(AtomicU32::new(0));
    let s = started.clone();
    let worker = Worker::builder(&url)
        .reclaim_timeout(Duration::from_secs(30))
        .handle::<Long, _>(move |_t: Long, _ctx: TaskContext| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let producer = Producer::connect(&url).await.unwrap();
    let id = producer.enqueue(Long { n: 1 }).await.unwrap();
    wait_until(WAIT, "the task started", || {
        let s = started.clone();
        async move { s.load(Ordering::SeqCst) == 1 }
    })
    .await;
    for _ in 0..100 {
        let outcome = producer.cancel(Long::QUEUE, &id).await.unwrap();
        assert!(
            matches!(outcome, CancelOutcome::Running { .. }),
            "{outcome:?}"
        );
    }
    let marks: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(&keys.cancel)
        .query_async(&mut c)
        .await
        .unwrap();
    worker.stop().await;
    assert_eq!(
        marks.keys().cloned().collect::<Vec<_>>(),
        vec![id],
        "stale marks stayed"
    );
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-paging")]
struct Later {
    n: u32,
}

/// A delayed member is found however the set shrinks below it while the cancel pages through
/// it (the promoter removes due members between two script calls): paging by rank used to skip
/// the members that moved down into ranks already looked at.
#[tokio::test]
async fn a_delayed_task_is_found_while_the_set_shrinks_below_it() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Later::QUEUE);
    // 20,000 members {"id": ..} with scores 1..=20,000 (no worker runs: nothing is promoted but
    // by this test); the target's score is 20,000.
    for start in (1..=20_000u32).step_by(1_000) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&keys.delayed);
        for i in start..start + 1_000 {
            let mut m = BTreeMap::new();
            m.insert("id", format!("task-{i}"));
            cmd.arg(i).arg(rmp_serde::to_vec_named(&m).unwrap());
        }
        let _: () = cmd.query_async(&mut c).await.unwrap();
    }
    let producer = Producer::connect(&url).await.unwrap();
    let target = "task-20000".to_owned();
    // Members go from the low end all the while the cancel pages (as a busy promoter's would),
    // one per round trip, at most 19,000 of them: never the target, the highest.
    let done = Arc::new(AtomicBool::new(false));
    let mut remover: Conn = c.clone();
    let delayed = keys.delayed.clone();
    let stop = done.clone();
    let shrink = tokio::spawn(async move {
        let mut removed = 0u32;
        while !stop.load(Ordering::SeqCst) && removed < 19_000 {
            let _: redis::Value = redis::cmd("ZPOPMIN")
                .arg(&delayed)
                .query_async(&mut remover)
                .await
                .unwrap();
            removed += 1;
        }
        removed
    });
    let outcome = producer.cancel(Later::QUEUE, &target).await.unwrap();
    done.store(true, Ordering::SeqCst);
    let removed = shrink.await.unwrap();
    assert_eq!(
        outcome,
        CancelOutcome::Delayed,
        "missed after {removed} removals"
    );
    let left: u64 = redis::cmd("ZCARD")
        .arg(&keys.delayed)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        u64::from(removed) + left,
        20_000 - 1,
        "the target is still there"
    );
}

/// One pass of the cancel script over the delayed set misses no member when members below the
/// cursor are removed between two calls (the promoter's work): the member at rank 1,000 (just
/// past the first chunk) moves to rank 990 meanwhile, and the second call still finds it. With
/// a cursor by rank, the second call started at rank 1,000 and skipped it.
#[tokio::test]
async fn one_cancel_pass_over_the_delayed_set_skips_nothing() {
    let server = server();
    let mut c = conn(&server).await;
    let keys = QueueKeys::new("mq", Later::QUEUE);
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(&keys.delayed);
    for i in 0..2_000u32 {
        let mut m = BTreeMap::new();
        m.insert("id", format!("task-{i}"));
        cmd.arg(i).arg(rmp_serde::to_vec_named(&m).unwrap());
    }
    let _: () = cmd.query_async(&mut c).await.unwrap();
    let base = c.clone();
    let call = |cursor: Vec<u8>, score: Vec<u8>| {
        let mut c = base.clone();
        let keys = keys.clone();
        async move {
            let reply: Vec<Vec<u8>> = mq_core::redis::scripts::CANCEL
                .key(&keys.stream)
                .key(&keys.delayed)
                .key(&keys.cancel)
                .arg("")
                .arg("task-1000")
                .arg(&keys.unique)
                .arg("d")
                .arg(cursor)
                .arg(mq_core::control::CANCEL_SCAN_CHUNK)
                .arg(mq_core::control::CANCEL_TTL.as_millis() as u64)
                .arg(score)
                .arg(mq_core::control::CANCEL_MAX_MARKS)
                .invoke_async(&mut c)
                .await
                .unwrap();
            reply
        }
    };
    let first = call(Vec::new(), Vec::new()).await;
    assert_eq!(first[0], b"next");
    let _: redis::Value = redis::cmd("ZPOPMIN")
        .arg(&keys.delayed)
        .arg(10)
        .query_async(&mut c)
        .await
        .unwrap();
    let second = call(first[1].clone(), first[2].clone()).await;
    assert_eq!(
        String::from_utf8_lossy(&second[0]),
        "delayed",
        "the member that moved below the cursor was skipped"
    );
}

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cancel-buffered", priority = "normal", concurrency = 1)]
struct Buffered {
    n: u32,
}

/// A task fetched but not started yet (buffered by its level's fetcher while the queue is at
/// its in-flight limit) whose cancellation the lease renewal reports never starts: it used to
/// start first and learn it only at the next renewal.
#[tokio::test]
async fn a_cancelled_task_that_waits_in_a_fetchers_buffer_never_starts() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let starts = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let s = starts.clone();
    let worker = Worker::builder(&url)
        .reclaim_timeout(Duration::from_millis(1_500))
        .handle::<Buffered, _>(move |t: Buffered, _ctx: TaskContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(t.n);
                if t.n == 1 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let worker = run_worker(worker);
    let producer = Producer::connect(&url).await.unwrap();
    producer
        .clone()
        .with_priority(mq_core::Priority::High)
        .enqueue(Buffered { n: 1 })
        .await
        .unwrap();
    wait_until(WAIT, "the first task started", || {
        let s = starts.clone();
        async move { s.lock().unwrap().len() == 1 }
    })
    .await;
    let id = producer.enqueue(Buffered { n: 2 }).await.unwrap();
    // The Normal level's fetcher takes it (the queue is at its limit: it waits in the buffer).
    let stream = QueueKeys::new("mq", Buffered::QUEUE).stream;
    wait_until(WAIT, "the second task delivered", || {
        let (mut c, stream) = (c.clone(), stream.clone());
        async move { mq_tests::pending(&mut c, &stream, "mq").await == 1 }
    })
    .await;
    let outcome = producer.cancel(Buffered::QUEUE, &id).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Running { .. }),
        "{outcome:?}"
    );
    wait_until(WAIT, "the cancelled task settled", || {
        let (mut c, stream) = (c.clone(), stream.clone());
        async move { xlen(&mut c, &stream).await == 0 }
    })
    .await;
    worker.stop().await;
    assert_eq!(
        *starts.lock().unwrap(),
        vec![1],
        "the cancelled task started"
    );
    assert_eq!(xlen(&mut c, &stream).await, 0);
}
