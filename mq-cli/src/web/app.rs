//! What every request of one `mq web` server shares: the admin handle, the producer for
//! "enqueue", the settings, and the last queue overviews (one Redis read per refresh interval
//! for every viewer).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use mq_core::{
    admin::{QueueOverview, StreamInfo},
    Admin, Producer,
};
use tokio::sync::{Mutex, OnceCell};

/// What every request of one `mq web` server shares.
pub(crate) struct App {
    /// The admin handle (one multiplexed connection).
    pub(super) admin: Admin,
    /// The producer for "enqueue", connected on first use.
    pub(super) producer: OnceCell<Producer>,
    /// Where Redis is, for connecting the producer and hiding the password in errors.
    pub(super) ctx: CtxCopy,
    /// `--auth-token`.
    pub(super) token: Option<String>,
    /// `--read-only`.
    pub(super) read_only: bool,
    /// How often the page refreshes, and how old a cached overview may be.
    pub(super) refresh: Duration,
    /// The last two overviews, for the rates (one Redis read per `refresh` for every viewer).
    pub(super) overview: Mutex<OverviewCache>,
}

/// The parts of `Ctx` the server keeps.
pub(super) struct CtxCopy {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) tls: mq_core::TlsOptions,
}

/// The last two overviews (rates come from their counters).
#[derive(Default)]
pub(crate) struct OverviewCache {
    pub(super) last: Option<Snapshot>,
    pub(super) prev_info: HashMap<String, StreamInfo>,
    pub(super) prev_at: Option<Instant>,
}

pub(super) struct Snapshot {
    pub(super) at: Instant,
    pub(super) at_ms: u64,
    pub(super) queues: Vec<QueueOverview>,
}
