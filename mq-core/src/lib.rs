#![doc = include_str!("../../README.md")]

pub mod admin;
pub mod batch;
pub mod config;
pub mod control;
pub mod dynamic;
pub mod enqueue;
// The wire format's encoder and decoder: public for mq's own tests, hidden from the docs
// (docs/wire-format.md describes the format).
#[doc(hidden)]
pub mod envelope;
pub mod error;
pub mod flow;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod producer;
pub mod redis;
pub mod retry;
pub mod task;
pub mod testing;
pub mod trace;
pub mod worker;

pub use admin::Admin;
pub use async_trait::async_trait;
pub use batch::{batch, BatchHandler, Batched};
pub use config::{TlsOptions, WorkerConfig};
pub use control::{CancelOutcome, EventCursor, TaskEvent, TaskStatus};
pub use dynamic::DynTask;
pub use enqueue::Enqueue;
pub use error::{Error, Result};
pub use flow::{FailedChild, FlowChild, FlowPolicy};
pub use handler::{blocking, Handler, ProgressHandle, TaskContext, TaskError};
pub use metrics::Metrics;
pub use mq_macros::Task;
pub use producer::{Enqueued, Flow, FlowIds, Producer, ProducerBuilder, RawTask, Run};
pub use retry::Backoff;
pub use task::{Priority, Rate, Task, TaskOptions};
pub use tokio_util::sync::CancellationToken;
pub use worker::{
    cron::{MissedTicks, Schedule},
    Worker, WorkerBuilder,
};

/// The names most programs need: `use mq_core::prelude::*;`.
///
/// [`Result`] is mq's (`Result<T, E = Error>`), so `Result<(), TaskError>` still works.
///
/// # Examples
///
/// ```no_run
/// use mq_core::prelude::*;
/// # #[derive(serde::Serialize, serde::Deserialize, Task)]
/// # struct Ping;
///
/// async fn ping(_task: Ping, _ctx: TaskContext) -> Result<(), TaskError> {
///     Ok(())
/// }
///
/// # async fn demo() -> Result<()> {
/// let worker = Worker::builder("redis://127.0.0.1/").handle(ping).build().await?;
/// let stop: CancellationToken = worker.shutdown_token();
/// let admin = Admin::connect("redis://127.0.0.1/").await?;
/// println!("{:?}", admin.stats(Ping::QUEUE).await?);
/// stop.cancel();
/// worker.run().await
/// # }
/// ```
pub mod prelude {
    pub use crate::batch::batch;
    pub use crate::{
        async_trait, blocking, Admin, Backoff, BatchHandler, CancellationToken, Handler, Producer,
        Result, Task, TaskContext, TaskError, TaskOptions, Worker,
    };
}
