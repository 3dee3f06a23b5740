//! Operations on queues for operators, the CLI and tests: queue statistics (one consistent
//! snapshot) and stream counters, waiting until a queue is idle, pausing and resuming a queue
//! ([`pause`](Admin::pause), [`resume`](Admin::resume)), pending entries, live workers
//! and the dead-letter stream ([`dead_list`](Admin::dead_list), [`dead_show`](Admin::dead_show),
//! [`dead_replay`](Admin::dead_replay), [`dead_replay_all`](Admin::dead_replay_all),
//! [`dead_purge`](Admin::dead_purge)), each entry a [`DeadLetter`] with typed accessors.
//!
//! One concern per file, in data-path order; the files with `impl Admin` blocks each add the
//! methods of their concern, and a file names only files above it here:
//! - `client.rs`: the [`Admin`] struct, connecting (plain, TLS, a worker's endpoint), a stream's
//!   keys by name, and reading replies;
//! - `queues.rs`: the queue registry and a queue's streams: its partitions and priority levels;
//! - `stats.rs`: one queue's sizes and stream counters ([`QueueStats`], [`StreamInfo`],
//!   [`QueueSample`]) read as one `MULTI` of plain reads, and the workers' snapshot script;
//! - `overview.rs`: many queues at once, with their partitions and levels ([`QueueOverview`]);
//! - `wait.rs`: waiting until a queue is idle, and whether it exists;
//! - `pending.rs`: a queue's pending entries ([`PendingEntry`]);
//! - `workers.rs`: the registered workers and their heartbeats ([`WorkerInfo`]);
//! - `eta.rs`: a queue's drain rate, time to empty and workers needed by a deadline
//!   ([`QueueEta`]), from the drain samples the workers record;
//! - `runs.rs`: runs' counters, drain rate and end ([`RunInfo`]);
//! - `tasks.rs`: one task: cancel it, read its progress, status, events and result;
//! - `pause.rs`: pausing and resuming a queue;
//! - `schedules.rs`: the cron schedules the workers recorded ([`ScheduleInfo`]);
//! - `slots.rs`: what is counted by scanning the keyspace: unique keys ([`UniqueStats`]) and
//!   per-key concurrency slots ([`KeySlotsReport`]);
//! - `letter.rs`: one dead letter and its typed accessors ([`DeadLetter`], [`DecodeError`]);
//! - `dead.rs`: listing, showing and purging a queue's dead stream;
//! - `replay.rs`: moving dead tasks back to the work stream ([`ReplayReport`]);
//! - `browse.rs`: a queue's tasks by state, one bounded page at a time ([`TaskPage`]), and
//!   one task by its entry id.

mod browse;
mod client;
mod dead;
mod eta;
mod letter;
mod overview;
mod pause;
mod pending;
mod queues;
mod replay;
mod runs;
mod schedules;
mod slots;
mod stats;
mod tasks;
mod wait;
mod workers;

pub use browse::{TaskPage, TaskRow, TaskState, MAX_PAGE};
pub use client::Admin;
pub(crate) use eta::record_drain;
pub use eta::{QueueEta, DRAIN_BUCKET, DRAIN_BUCKETS};
pub use letter::{payload_to_json, DeadLetter, DecodeError};
pub use overview::QueueOverview;
pub use pause::PAUSE_POLL;
pub use pending::PendingEntry;
pub use replay::ReplayReport;
pub use runs::{RunInfo, MAX_RUNS_LISTED, RUN_BUCKET, RUN_BUCKETS};
pub use schedules::ScheduleInfo;
pub use slots::{KeySlots, KeySlotsReport, UniqueStats, SCAN_MAX_CALLS};
pub(crate) use stats::snapshot;
pub use stats::{QueueSample, QueueStats, StreamInfo};
pub use wait::WAIT_IDLE_POLL;
pub use workers::WorkerInfo;
// The former name of `DeadLetter`: re-exporting it is a use of a deprecated item.
#[allow(deprecated)]
pub use letter::DeadTask;
