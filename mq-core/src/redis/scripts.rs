//! Every Lua script mq runs. Each touches the keys of one queue only (one hash slot).
//!
//! The scripts that end a task's life (ack of a unique task, dead letter, reclaim, replay) start
//! with `lua/unique.lua`, the helpers that release or take a unique task's key, and those that
//! change a task's state (ack of a unique or tracked task, retry, dead letter, reclaim,
//! cancelled, started) then with `lua/status.lua`, the one helper that records a state change
//! of a tracked task (status hash, event); the scripts that schedule a task start with
//! `lua/delay.lua`.

use std::sync::LazyLock;

use redis::Script;

/// Moves due delayed tasks into the stream (`lua/promote.lua`).
pub static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/promote.lua")
    ))
});
/// Schedules a task relative to the server clock (`lua/schedule.lua`).
pub static SCHEDULE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/delay.lua"),
        include_str!("lua/schedule.lua")
    ))
});
/// Acks a failed attempt and schedules the next one (`lua/retry.lua`).
pub static RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/rate.lua"),
        include_str!("lua/retry.lua")
    ))
});
/// Acks a task and moves it to the dead-letter stream (`lua/dead.lua`).
pub static DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/dead.lua")
    ))
});
/// Renews the leases of in-flight tasks this consumer still owns (`lua/renew.lua`).
/// While the queue's cancel hash exists, it also reports the entries of cancelled tasks.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/renew.lua")
    ))
});
/// Renews the concurrency slots of running tasks with per-key concurrency
/// (`lua/renew_slots.lua`).
pub static RENEW_SLOTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/renew_slots.lua")));
/// Takes over entries of dead workers, dead-lettering abandoned ones (`lua/reclaim.lua`).
pub static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/reclaim.lua")
    ))
});
/// Removes idle consumers with nothing pending (`lua/reap_consumers.lua`).
pub static REAP_CONSUMERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/reap_consumers.lua")));
/// Moves dead-lettered tasks back to the stream (`lua/replay.lua`).
pub static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/replay.lua")
    ))
});
/// Creates the consumer group unless the stream has another one (`lua/ensure_group.lua`).
pub static ENSURE_GROUP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ensure_group.lua")));
/// Hands entries this consumer holds but does not run back to the group (`lua/release.lua`).
pub static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
/// Reads a queue's sizes as one consistent snapshot (`lua/stats.lua`).
/// One drain sample of a queue, timed by the server (`lua/drain.lua`; `Admin::eta`).
/// Opens a run by name, making it if needed (`lua/run_open.lua`).
pub static RUN_OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/run.lua"),
        include_str!("lua/run_open.lua")
    ))
});
/// Seals a run, with its completion task (`lua/run_seal.lua`).
pub static RUN_SEAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/run.lua"),
        include_str!("lua/run_seal.lua")
    ))
});
pub static DRAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/drain.lua")));

pub static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/stats.lua")));
/// Enqueues a unique task unless its key is held (`lua/enqueue_unique.lua`).
pub static ENQUEUE_UNIQUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/delay.lua"),
        include_str!("lua/enqueue_unique.lua")
    ))
});
/// Enqueues one tick of a cron schedule, exactly once (`lua/cron_tick.lua`).
pub static CRON_TICK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cron_tick.lua")));
/// Acks unique tasks and tasks with per-key concurrency, releasing their keys and slots
/// (`lua/unique.lua` + `lua/ack_unique.lua`).
pub static ACK_UNIQUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/ack_unique.lua")
    ))
});
/// Acks a batch of flow children and tasks of runs, reporting their ends
/// (`lua/ack_report.lua`).
pub static ACK_REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/ack_report.lua")
    ))
});
/// Finds a task by id in one chunk of a queue's stream or delayed set and cancels it
/// (`lua/cancel.lua`).
pub static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/rate.lua"),
        include_str!("lua/cancel.lua")
    ))
});
/// Settles a task whose cancellation reached its handler (`lua/cancelled.lua`).
pub static CANCELLED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/cancelled.lua")
    ))
});
/// Records the start of a tracked task's attempt (`lua/started.lua`).
pub static STARTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/unique.lua"),
        include_str!("lua/run.lua"),
        include_str!("lua/status.lua"),
        include_str!("lua/started.lua")
    ))
});
