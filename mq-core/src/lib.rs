#![doc = include_str!("../../README.md")]

pub mod admin;
pub mod batch;
pub mod config;
pub mod envelope;
pub mod error;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod producer;
pub mod redis;
pub mod retry;
pub mod task;
pub mod trace;
pub mod worker;

pub use admin::Admin;
pub use async_trait::async_trait;
pub use batch::{batch, BatchHandler, Batched};
pub use config::WorkerConfig;
pub use error::{Error, Result};
pub use handler::{blocking, Handler, TaskContext, TaskError};
pub use metrics::Metrics;
pub use mq_macros::Task;
pub use producer::{Producer, ProducerBuilder};
pub use retry::Backoff;
pub use task::{Task, TaskOptions};
pub use tokio_util::sync::CancellationToken;
pub use worker::{Worker, WorkerBuilder};

/// The names most programs need: `use mq_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        async_trait, batch, blocking, Backoff, BatchHandler, Handler, Producer, Task, TaskContext,
        TaskError, TaskOptions, Worker,
    };
}
