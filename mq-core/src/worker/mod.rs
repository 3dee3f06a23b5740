//! The [`Worker`]: one fetcher, acker and promoter per queue, a global in-flight limit plus
//! optional per-queue limits, and graceful shutdown.
//!
//! ```text
//!  XREADGROUP ──> fetcher (buffer) ──spawn──> dispatcher (handler) ──ids──> acker ──> XDEL + XACK
//!                   ^ permits                 └── retry / dead-letter scripts
//!  delayed zset ──> promoter (Lua) ──> stream
//!  pause flags ──> pause watcher ──> fetchers start nothing of a paused queue
//! ```

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
