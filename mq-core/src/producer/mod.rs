//! [`Producer`]: enqueue tasks, one at a time, pipelined in batches, or delayed.
//!
//! The files, in the order a task goes through them:
//!
//! - `builder.rs`: [`ProducerBuilder`] and the connect variants (checks at connect).
//! - `client.rs`: the [`Producer`] struct, its payload cap and prefix, a new task's envelope.
//! - `priority.rs`: the priority level of a producer's tasks.
//! - `durable.rs`: making a producer durable ([`Producer::durable`], `durable_aof`).
//! - `partition.rs`: the partition, stream and keys a task goes to.
//! - `tracked.rs`: tracked task types: the ACL check, the status and event writes.
//! - `envelope.rs`: building an envelope, [`DEFAULT_MAX_PAYLOAD`], the entry's `XADD`.
//! - `enqueue.rs`: one task now: `enqueue`, `submit`, `enqueue_raw`.
//! - `raw.rs`: tasks of types known at run time, with options: [`RawTask`], `submit_raw`.
//! - `unique.rs`: unique tasks: [`Enqueued`], the `enqueue_unique.lua` call.
//! - `delayed.rs`: delayed tasks: `enqueue_in`, `enqueue_at` and their batches.
//! - `batch.rs`: many tasks in pipelines: `enqueue_many`, `submit_many`.
//! - `flow.rs`: a parent and its children in one `MULTI`: [`Producer::flow`], [`Flow`].
//! - `run.rs`: a named, counted group of tasks with a completion task: [`Producer::run`],
//!   [`Run`].
//! - `send.rs`: sending a pipeline: queue registry, `READONLY` reconnect, script loads.
//! - `durability.rs`: [`Durability`], the wait sent with each pipeline and its shortfall.
//! - `control.rs`: control of enqueued tasks: cancel, progress, status, result, wait.

mod batch;
mod builder;
mod client;
mod control;
mod delayed;
mod durability;
mod durable;
mod enqueue;
mod envelope;
mod flow;
mod partition;
mod priority;
mod raw;
mod run;
mod send;
mod tracked;
mod unique;

pub use batch::{ENQUEUE_BATCH, ENQUEUE_PIPELINES_IN_FLIGHT};
pub use builder::ProducerBuilder;
pub use client::Producer;
pub use durability::Durability;
pub use durable::MAX_DURABLE_TIMEOUT;
pub use envelope::DEFAULT_MAX_PAYLOAD;
pub use flow::{Flow, FlowIds, MAX_FLOW_CHILDREN};
pub use raw::RawTask;
pub use run::{Run, MAX_RUN_NAME};
pub use unique::Enqueued;

pub(crate) use envelope::{new_envelope, push_entry_fields, raw_envelope};
