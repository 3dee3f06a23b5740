//! What a role's command is ([`Needed`]) and the placeholders its invocations name keys by,
//! below the lists of `acl.rs` and `acl/flows.rs`.

/// One command a role runs: its ACL rule (`xadd`, `client|id`) and an invocation with the
/// placeholders [`STREAM`], [`DELAYED`], [`DEAD`], [`WAKE`], [`WORKERS`], [`WORKER`],
/// [`PARTITIONS`], [`PAUSED`], [`UNIQUE`], [`DUPLICATES`], [`RATE`], [`CANCEL`], [`TASK`], [`EVENTS`] for its keys
/// and channel.
#[derive(Debug, Clone, Copy)]
pub struct Needed {
    /// The ACL rule, without the `+`.
    pub rule: &'static str,
    /// The command and its arguments.
    pub args: &'static [&'static str],
}

/// Placeholder for a queue's stream key `<prefix>:{<queue>}:stream`.
pub const STREAM: &str = "<stream>";
/// Placeholder for a queue's delayed set `<prefix>:{<queue>}:delayed`.
pub const DELAYED: &str = "<delayed>";
/// Placeholder for a queue's dead-letter stream `<prefix>:{<queue>}:dead`.
pub const DEAD: &str = "<dead>";
/// Placeholder for a queue's wake-up channel `<prefix>:{<queue>}:wake`.
pub const WAKE: &str = "<wake>";
/// Placeholder for the worker registry hash `<prefix>:workers`.
pub const WORKERS: &str = "<workers>";
/// Placeholder for a worker's heartbeat key `<prefix>:worker:<consumer>`.
pub const WORKER: &str = "<worker>";
/// Placeholder for the queue registry set `<prefix>:queues`.
pub const QUEUES: &str = "<queues>";
/// Placeholder for the hash of partition counts `<prefix>:partitions`.
pub const PARTITIONS: &str = "<partitions>";
/// Placeholder for a queue's pause flag `<prefix>:{<queue>}:paused`.
pub const PAUSED: &str = "<paused>";
/// Placeholder for one of a queue's unique keys `<prefix>:{<queue>}:unique:<key>`.
pub const UNIQUE: &str = "<unique>";
/// Placeholder for a queue's counter of refused duplicates `<prefix>:{<queue>}:duplicates`.
pub const DUPLICATES: &str = "<duplicates>";
/// Placeholder for one of a queue's rate-limit states `<prefix>:{<queue>}:rate:<task>`.
pub const RATE: &str = "<rate>";
/// Placeholder for a queue's cancel hash `<prefix>:{<queue>}:cancel`.
pub const CANCEL: &str = "<cancel>";
/// Placeholder for one of a queue's task hashes `<prefix>:{<queue>}:task:<id>`.
pub const TASK: &str = "<task>";
/// Placeholder for a queue's event stream `<prefix>:{<queue>}:events`.
pub const EVENTS: &str = "<events>";
/// Placeholder for one of a queue's key-slot sets `<prefix>:{<queue>}:slots:<task>`.
pub const SLOTS: &str = "<slots>";
/// Placeholder for a queue's schedules hash `<prefix>:{<queue>}:cron`.
pub const CRON: &str = "<cron>";
/// A flow's pending-parent hash (`{prefix}:{queue}:stream[:level]:flow:<id>`).
pub const FLOW: &str = "<flow>";
/// A queue's drain samples (`{prefix}:{queue}:drain`).
pub const DRAIN: &str = "<drain>";
/// A run's hash (`{prefix}:run:<n>`).
pub const RUN: &str = "<run>";
/// The runs hash, name -> number (`{prefix}:runs`).
pub const RUNS: &str = "<runs>";

/// A [`Needed`] (short, for the lists).
pub(super) const fn n(rule: &'static str, args: &'static [&'static str]) -> Needed {
    Needed { rule, args }
}
