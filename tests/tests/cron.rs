//! Cron schedules against a real Redis, with worker processes (`cron-worker`, which records
//! each run's task id and tick in the hash `cron-test:runs`): three workers running the same
//! every-second schedule, one SIGKILLed midway, enqueue each tick exactly once; ticks that pass
//! while every worker is down are skipped ([`MissedTicks::Skip`]) or caught up exactly once
//! ([`MissedTicks::RunOnce`]), however many workers start. In-process workers with a skewed
//! clock (`Schedule::test_clock_offset_ms`): a worker whose clock is ahead does not stop the
//! others' ticks, and a worker whose clock is inside the hour repeated by the autumn daylight
//! saving change neither enqueues past ticks nor calls Redis in a loop.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use mq_core::{Admin, Schedule, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, example_bin, run_worker, server, wait_until, ChildGuard, Conn};
use serde::{Deserialize, Serialize};

/// Longest wait for anything in these tests: 60 s.
const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Task ids recorded by the handlers, by tick (unix ms).
async fn runs(conn: &mut Conn) -> BTreeMap<u64, Vec<String>> {
    let all: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg("cron-test:runs")
        .query_async(conn)
        .await
        .unwrap();
    let mut by_tick: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (id, tick) in all {
        by_tick.entry(tick).or_default().push(id);
    }
    by_tick
}

fn spawn(url: &str, missed: &str, expr: &str) -> ChildGuard {
    let bin = example_bin("cron-worker");
    ChildGuard::spawn(
        &bin,
        url,
        &[
            "--expr",
            expr,
            "--missed",
            missed,
            "--reclaim-timeout-ms",
            "1000",
        ],
    )
}

async fn stop(workers: &mut [ChildGuard]) {
    for w in workers.iter() {
        w.signal("TERM");
    }
    for w in workers.iter_mut() {
        w.wait_exit(WAIT).await;
    }
}

/// Runs every task still in the `cron` queue (left by stopped or killed workers) with a worker
/// whose own schedule never ticks during the test, so every enqueued task gets recorded.
async fn drain(url: &str) {
    let bin = example_bin("cron-worker");
    let mut w = ChildGuard::spawn(
        &bin,
        url,
        &[
            "--expr",
            "0 0 1 1 *",
            "--name",
            "drain",
            "--reclaim-timeout-ms",
            "1000",
        ],
    );
    let admin = Admin::connect(url).await.unwrap();
    assert!(
        admin.wait_idle("cron", WAIT).await.unwrap(),
        "the cron queue did not drain"
    );
    w.signal("TERM");
    w.wait_exit(WAIT).await;
}

/// Sleeps until `offset_ms` past the next multiple of `period_ms` of the wall clock.
async fn align(period_ms: u64, offset_ms: u64) {
    let now = now_ms();
    let target = (now / period_ms + 1) * period_ms + offset_ms;
    tokio::time::sleep(Duration::from_millis(target - now)).await;
}

/// Every tick has exactly one task, and none is missing between the first and the last.
fn assert_each_tick_once(by_tick: &BTreeMap<u64, Vec<String>>, period_ms: u64) {
    for (tick, ids) in by_tick {
        assert_eq!(
            ids.len(),
            1,
            "tick {tick} was enqueued {} times: {ids:?}",
            ids.len()
        );
    }
    let ticks: Vec<u64> = by_tick.keys().copied().collect();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            period_ms,
            "ticks missing between {} and {}: {ticks:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_enqueue_each_tick_once_even_when_one_is_killed() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let mut workers: Vec<ChildGuard> = (0..3).map(|_| spawn(&url, "skip", "* * * * * *")).collect();
    wait_until(WAIT, "a first tick", || {
        let mut c = c.clone();
        async move { !runs(&mut c).await.is_empty() }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    workers[0].signal("KILL");
    workers[0].wait_exit(WAIT).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop(&mut workers[1..]).await;
    drain(&url).await;

    let by_tick = runs(&mut c).await;
    assert!(
        by_tick.len() >= 9,
        "only {} ticks in ~10 s: {by_tick:?}",
        by_tick.len()
    );
    assert_each_tick_once(&by_tick, 1000);

    // `mq schedules` reads what the workers recorded.
    let admin = Admin::connect(&url).await.unwrap();
    let schedules = admin.schedules().await.unwrap();
    let tick = schedules
        .iter()
        .find(|s| s.name == "tick")
        .expect("the tick schedule is listed");
    assert_eq!(tick.queue, "cron");
    assert_eq!(tick.expression, "* * * * * *");
    assert_eq!(tick.timezone, "UTC");
    let last = *by_tick.keys().last().unwrap();
    assert_eq!(tick.last, Some(last));
    assert_eq!(tick.next, Some(last + 1000));
}

/// Runs the schedule every 2 s with one worker, stops it, leaves it down for a few ticks, then
/// starts `restarted` workers at once. Returns the ticks recorded, the time the first worker
/// was started, the time it had exited and the time the others were started.
async fn outage(missed: &str, restarted: usize) -> (BTreeMap<u64, Vec<String>>, u64, u64, u64) {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    let expr = "*/2 * * * * *";
    // Start 100 ms after a tick: a worker is up well before the next one.
    align(2000, 100).await;
    let first_start = now_ms();
    let mut first = vec![spawn(&url, missed, expr)];
    wait_until(WAIT, "two ticks", || {
        let mut c = c.clone();
        async move { runs(&mut c).await.len() >= 2 }
    })
    .await;
    stop(&mut first).await;
    let exited = now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    align(2000, 100).await;
    let restart = now_ms();
    let mut again: Vec<ChildGuard> = (0..restarted).map(|_| spawn(&url, missed, expr)).collect();
    wait_until(WAIT, "a tick after the restart", || {
        let mut c = c.clone();
        async move { runs(&mut c).await.keys().any(|&t| t > restart) }
    })
    .await;
    stop(&mut again).await;
    drain(&url).await;
    (runs(&mut c).await, first_start, exited, restart)
}

/// [`outage`], checked for what both policies share (every tick enqueued once, no tick before
/// the first start caught up): the ticks enqueued for the outage, its end and the restart.
async fn missed_in_outage(missed: &str, restarted: usize) -> (Vec<u64>, u64, u64) {
    let (by_tick, first_start, exited, restart) = outage(missed, restarted).await;
    for (tick, ids) in &by_tick {
        assert_eq!(ids.len(), 1, "tick {tick} enqueued {} times", ids.len());
    }
    assert!(
        by_tick.keys().all(|&t| t > first_start),
        "a first start caught up a tick: {by_tick:?}"
    );
    let missed = by_tick
        .keys()
        .copied()
        .filter(|&t| t > exited && t <= restart)
        .collect();
    (missed, exited, restart)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_by_default() {
    let (missed, exited, restart) = missed_in_outage("skip", 1).await;
    assert!(
        missed.is_empty(),
        "ticks missed between {exited} and {restart} were enqueued: {missed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_catches_up_one_missed_tick_once_with_two_workers() {
    let (missed, exited, restart) = missed_in_outage("run-once", 2).await;
    // The latest tick due when the workers started: the one 100 ms before the restart.
    assert_eq!(
        missed,
        [restart / 2000 * 2000],
        "ticks missed between {exited} and {restart}: exactly the latest must be caught up"
    );
}

/// The scheduled task of the in-process tests: the tick it is for (unix ms).
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "cron-skew", max_retries = 0)]
struct SkewTick {
    tick_ms: u64,
}

fn tick_ms(tick: SystemTime) -> u64 {
    tick.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An in-process worker running `schedule` whose handler records each task's tick in `log`.
async fn skew_worker(url: &str, schedule: Schedule, log: Arc<Mutex<Vec<u64>>>) -> Worker {
    Worker::builder(url)
        .handle(move |t: SkewTick, _ctx: TaskContext| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(t.tick_ms);
                Ok::<(), TaskError>(())
            }
        })
        .schedule_with(schedule)
        .build()
        .await
        .unwrap()
}

/// Calls of `EVALSHA` so far (every mq script), from `INFO commandstats`.
async fn evalsha_calls(c: &mut Conn) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One worker's clock is an hour ahead, another's is right, both run an every-second schedule.
/// The ticks enqueued are those of the right clock (the Redis server's): the worker ahead has
/// its ticks refused, and the last tick it would have recorded does not stop the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_is_ahead_does_not_stop_the_others_ticks() {
    let server = server();
    let url = server.url();
    let log: Arc<Mutex<Vec<u64>>> = Arc::default();
    let every_second = |ahead_ms: i64| {
        Schedule::new("* * * * * *", |tick| SkewTick {
            tick_ms: tick_ms(tick),
        })
        .name("skew")
        .test_clock_offset_ms(ahead_ms)
    };
    // The worker ahead starts first: its ticks come before any of the right clock's.
    let ahead = run_worker(skew_worker(&url, every_second(3_600_000), log.clone()).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let right = run_worker(skew_worker(&url, every_second(0), log.clone()).await);
    let started = now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stopped = now_ms();
    ahead.stop().await;
    right.stop().await;
    let admin = Admin::connect(&url).await.unwrap();
    assert!(admin.wait_idle("cron-skew", WAIT).await.unwrap());

    let ticks = log.lock().unwrap().clone();
    let future: Vec<u64> = ticks
        .iter()
        .copied()
        .filter(|&t| t > stopped + 60_000)
        .collect();
    let right_ticks = ticks
        .iter()
        .filter(|&&t| t > started && t <= stopped)
        .count();
    eprintln!(
        "{} ticks enqueued, {right_ticks} of the right clock, {} an hour ahead",
        ticks.len(),
        future.len()
    );
    assert!(
        right_ticks >= 3,
        "the worker with the right clock enqueued {right_ticks} ticks in 5 s; ticks enqueued: {ticks:?}"
    );
    assert!(
        future.is_empty(),
        "ticks an hour ahead of the server's clock were enqueued: {future:?}"
    );
}

/// A worker whose clock reads 01:30 UTC on 2026-10-25, inside the hour Europe/Paris repeats
/// (02:00-03:00 local happens twice), runs an every-5-minutes schedule in that zone. Its next
/// tick is 01:35 UTC, five minutes ahead: it enqueues no tick of its past and does not call
/// the tick script over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_inside_the_repeated_autumn_hour_waits_for_its_next_tick() {
    let server = server();
    let url = server.url();
    let mut c = conn(&server).await;
    // 2026-10-25T01:30:00Z: 02:30 CET, the second 02:30 of that night in Paris.
    let inside: i64 = 1_792_891_800_000;
    let skew = inside - now_ms() as i64;
    let log: Arc<Mutex<Vec<u64>>> = Arc::default();
    let schedule = Schedule::new("*/5 * * * *", |tick| SkewTick {
        tick_ms: tick_ms(tick),
    })
    .name("paris")
    .timezone(chrono_tz::Europe::Paris)
    .test_clock_offset_ms(skew);
    let worker = skew_worker(&url, schedule, log.clone()).await;
    let before = evalsha_calls(&mut c).await;
    let running = run_worker(worker);
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    let calls = evalsha_calls(&mut c).await - before;
    let admin = Admin::connect(&url).await.unwrap();
    assert!(admin.wait_idle("cron-skew", WAIT).await.unwrap());
    let ticks = log.lock().unwrap().clone();
    eprintln!("{calls} script calls in 3 s; ticks enqueued: {ticks:?}");
    assert!(
        ticks.is_empty(),
        "ticks before the worker's clock (01:30 UTC, {inside}) were enqueued: {ticks:?}"
    );
    // An idle worker's own loops (promoter, lease, reclaimer, heartbeat) call a few scripts a
    // second; a tick script in a loop calls thousands.
    assert!(calls < 200, "{calls} script calls in 3 s");
}

/// A rolling deploy that renames a schedule: an old worker still runs it as `old`, a new one
/// as `new` (declared renamed from `old`), both every second for 5 s. Each tick is enqueued
/// once, and once the old worker is gone the listing shows only `new`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_schedule_enqueues_each_tick_once_during_a_rolling_deploy() {
    let server = server();
    let url = server.url();
    let log: Arc<Mutex<Vec<u64>>> = Arc::default();
    let every_second = |name: &str| {
        Schedule::new("* * * * * *", |tick| SkewTick {
            tick_ms: tick_ms(tick),
        })
        .name(name)
    };
    let old = run_worker(skew_worker(&url, every_second("old"), log.clone()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new =
        run_worker(skew_worker(&url, every_second("new").renamed_from("old"), log.clone()).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    old.stop().await;
    // A tick of the new worker alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    new.stop().await;
    let admin = Admin::connect(&url).await.unwrap();
    assert!(admin.wait_idle("cron-skew", WAIT).await.unwrap());
    let mut by_tick: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for t in log.lock().unwrap().iter() {
        by_tick.entry(*t).or_default().push(t.to_string());
    }
    assert!(by_tick.len() >= 6, "{} ticks: {by_tick:?}", by_tick.len());
    assert_each_tick_once(&by_tick, 1000);
    let names: Vec<String> = admin
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["new"], "schedules listed after the deploy");
}
