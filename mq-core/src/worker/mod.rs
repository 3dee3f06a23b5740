//! The [`Worker`]: one fetcher, acker and promoter per queue, a global in-flight limit plus
//! optional per-queue limits, and graceful shutdown.
//!
//! ```text
//!  XREADGROUP ──> fetcher (buffer) ──spawn──> dispatcher (handler) ──ids──> acker ──> XDEL + XACK
//!                   ^ permits                 └── retry / dead-letter scripts
//!  delayed zset ──> promoter (Lua) ──> stream
//!  pause flags ──> pause watcher ──> fetchers start nothing of a paused queue
//! ```
//!
//! Files, in data-path order. The parts use `state.rs`'s shared state and never this module;
//! `run.rs` starts and stops them.
//! - `state.rs`: what the parts share: `Shared` (config, connections, metrics, health, the
//!   global limit) and one `QueueState` per stream (keys, handlers, tracked entries);
//! - `builder.rs`: [`WorkerBuilder`], checked and built into a [`Worker`];
//! - `run.rs`: [`Worker`]: starts the parts below, graceful shutdown in order;
//! - `arbiter.rs`, `permits.rs`: the order of a prioritized queue's fetchers, a task's share
//!   of the in-flight limits;
//! - `fetcher.rs`: `XREADGROUP` into a bounded buffer, hands entries to dispatchers;
//! - `admit.rs`: a task's key slot and rate token before it starts;
//! - `dispatcher.rs`: runs one task and settles it (retry, snooze, dead letter, cancelled);
//! - `acker.rs`: batched `XACK` + `XDEL` of finished entries;
//! - `promoter.rs`, `waker.rs`: delayed tasks into the stream when due, woken by Pub/Sub;
//! - `reclaimer.rs`, `release.rs`: taking over a dead worker's entries, handing entries back;
//! - `lease.rs`, `heartbeat.rs`: lease renewal on its own thread, the worker registry;
//! - `pause.rs`, `sampler.rs`, `cron.rs`: the pause flags, the queue gauges, cron schedules.

mod acker;
mod admit;
mod arbiter;
pub mod cron;
mod dispatcher;
mod fetcher;
mod heartbeat;
mod lease;
mod pause;
mod permits;
mod promoter;
mod reclaimer;
mod release;
mod sampler;
mod waker;

mod builder;
mod run;
mod state;

pub use builder::WorkerBuilder;
pub(crate) use dispatcher::{after_failure, guarded};
pub use run::{Worker, IDLE_POLL};
