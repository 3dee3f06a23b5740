//! Task control: cancelling a task by its id ([`Producer::cancel`](crate::Producer::cancel),
//! [`Admin::cancel`](crate::Admin::cancel), `mq cancel QUEUE ID`), and the progress a running
//! task reports ([`TaskContext::progress`](crate::TaskContext::progress), read with
//! [`Producer::progress`](crate::Producer::progress), [`Admin::progress`](crate::Admin::progress),
//! `mq status QUEUE ID`).
//!
//! A queued task (an entry not yet delivered) is deleted from its stream and a scheduled or
//! retrying one removed from the delayed set, each in the script that finds it: it never runs.
//! A running task's id goes into the hash `{prefix}:{queue}:cancel`; the lease renewal of the
//! worker that runs it reports it there (only while that hash exists), and the worker fires
//! the task's [`TaskContext::cancelled`](crate::TaskContext::cancelled) and settles it as
//! cancelled. Nothing is written or read per task while nothing is being cancelled.
//!
//! Files, in data-path order:
//! - `types.rs`: the plain types ([`CancelOutcome`], [`TaskStatus`], [`TaskEvent`],
//!   [`EventCursor`]), which [`Error`](crate::Error) can name without the Redis layer;
//! - `streams.rs`: the streams of a queue (partitions, levels) that the others look through;
//! - `cancel.rs`: cancelling a task by its id (`lua/cancel.lua`, a chunk per call);
//! - `progress.rs`: the progress a running task writes and its readers;
//! - `status.rs`: a tracked task's status, result, waiting for it, and event streams.

mod cancel;
mod progress;
mod status;
mod streams;
mod types;

pub(crate) use cancel::cancel;
pub use cancel::{CANCEL_MAX_MARKS, CANCEL_SCAN_CHUNK, CANCEL_TTL};
pub(crate) use progress::{progress, Progress};
pub use progress::{PROGRESS_EVERY, PROGRESS_TTL};
pub(crate) use status::{events, result, status, task_events, wait};
pub use status::{EVENTS_MAXLEN, TASK_EVENTS_WINDOW};
pub use types::{CancelOutcome, EventCursor, TaskEvent, TaskStatus};
