//! [`Error`] and [`Result`] of mq-core.

use std::time::Duration;

/// Errors returned by the producer, the worker builder and the admin API.
///
/// `Display` names what failed; the cause is the [`source`](std::error::Error::source), so log
/// errors with [`chain`] (or `{:#}` of `anyhow`) to see both.
///
/// # Examples
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, mq_core::Task)]
/// # struct Upload { bytes: Vec<u8> }
/// # async fn demo() -> mq_core::Result<()> {
/// use mq_core::Error;
///
/// let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
/// match producer.enqueue(Upload { bytes: vec![0; 2 << 20] }).await {
///     Ok(id) => println!("enqueued {id}"),
///     Err(Error::PayloadTooLarge { size, limit, .. }) => {
///         eprintln!("{size} bytes is over {limit}: store the file elsewhere, enqueue its key");
///     }
///     Err(e) if e.redis_error().is_some() => {
///         eprintln!("Redis failed, try again later: {}", mq_core::error::chain(&e));
///     }
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Redis command failed (connection lost, timeout, server error).
    #[error("redis {op} failed")]
    Redis {
        /// The operation that failed, e.g. `XADD` or `promote`.
        op: &'static str,
        /// The error from the redis crate.
        #[source]
        source: redis::RedisError,
    },
    /// No connection could be taken from the pool.
    #[error("no redis connection available")]
    Pool(#[source] deadpool_redis::PoolError),
    /// A TLS connection to Redis failed for a reason retrying cannot fix (wrong CA, a
    /// certificate for another host, no client certificate); the message names the cause.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A task could not be serialized to MessagePack.
    #[error("cannot encode task {task} as MessagePack")]
    Encode {
        /// The task type name.
        task: &'static str,
        /// The serializer's error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// A task's MessagePack payload is larger than the producer's cap
    /// ([`Producer::with_max_payload`](crate::Producer::with_max_payload)); nothing was
    /// enqueued.
    #[error("payload of task {task} is {size} bytes, over the producer's limit of {limit} bytes")]
    PayloadTooLarge {
        /// The task name.
        task: String,
        /// The payload's size in bytes.
        size: usize,
        /// The producer's cap in bytes.
        limit: usize,
    },
    /// A task was to be enqueued at a priority level other than Normal
    /// ([`Producer::with_priority`](crate::Producer::with_priority)) but its type has no
    /// `priority`: its workers would not read that level's stream. Nothing was enqueued. Give
    /// the type `#[task(priority = "normal")]` (and its workers read the levels).
    #[error(
        "task {task} of queue {queue} has no priority levels (no #[task(priority = ..)]): \
         cannot enqueue it at {priority}"
    )]
    NotPrioritized {
        /// The task type name.
        task: &'static str,
        /// Its queue.
        queue: &'static str,
        /// The level asked for.
        priority: crate::Priority,
    },
    /// A durable producer ([`Producer::durable`](crate::Producer::durable)) wrote the tasks on
    /// the primary, but fewer replicas than asked confirmed them within the timeout (or, with
    /// [`durable_aof`](crate::Producer::durable_aof), the primary did not fsync its AOF in
    /// time). The tasks ARE enqueued and will run; they may be lost if the primary fails
    /// before the replicas catch up. Enqueue them again to rule out loss at the risk of
    /// running them twice, or accept the risk.
    #[error(
        "{} task(s) enqueued on the primary but confirmed by {acked_by} of {wanted} replica(s){} \
         in time: they may be lost in a failover",
        .ids.len(),
        if *.local_missing { " and not fsynced to the primary's AOF" } else { "" }
    )]
    NotDurable {
        /// The ids of the tasks the call wrote to the primary, in order. For the `_many`
        /// methods, a prefix of the input: the call stops after the first batch that was not
        /// confirmed, and the tasks after `ids` were not enqueued.
        ids: Vec<String>,
        /// How many replicas confirmed (received the writes; with `durable_aof`, fsynced them
        /// to their AOF). For the `_many` methods, the fewest of any batch.
        acked_by: u32,
        /// How many replicas were asked for.
        wanted: u32,
        /// With `durable_aof(true, ..)`: the primary did not fsync its own AOF in time.
        local_missing: bool,
    },
    /// The URL or a setting is invalid; the message says which.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Data read from Redis does not decode as expected (e.g. a task's progress that is not
    /// JSON, or not of the type asked for); the message says which.
    #[error("cannot decode {0}")]
    Decode(String),
    /// [`Producer::wait`](crate::Producer::wait) gave up: the task had not finished when the
    /// timeout passed (its last status is given).
    #[error("task {id} did not finish within {timeout:?} (last status: {status})")]
    WaitTimeout {
        /// The task id.
        id: String,
        /// The time waited.
        timeout: Duration,
        /// Its last status.
        status: crate::TaskStatus,
    },
    /// [`Producer::wait`](crate::Producer::wait): the task ended without a result (dead,
    /// cancelled).
    #[error("task {id} has no result: {status}")]
    TaskFailed {
        /// The task id.
        id: String,
        /// Its status.
        status: crate::TaskStatus,
    },
    /// A graceful shutdown did not finish within the grace period (or was cut short by a
    /// second signal): the tasks still running were aborted and handed back to the group.
    #[error("{in_flight} tasks still running at the end of the {grace:?} grace period (or at a second signal) were aborted and handed back for another worker to run")]
    ShutdownTimeout {
        /// Tasks aborted when the grace period ended.
        in_flight: usize,
        /// The grace period.
        grace: Duration,
    },
}

/// `Result` with mq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn redis(op: &'static str) -> impl FnOnce(redis::RedisError) -> Error {
        move |source| Error::Redis { op, source }
    }

    /// The Redis error behind this one, if any.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            Error::Redis { source, .. } => Some(source),
            Error::Pool(deadpool_redis::PoolError::Backend(e)) => Some(e),
            _ => None,
        }
    }
}

/// `e` and its sources, joined with `": "`, for log lines (the `Display` of [`Error`] names
/// only the operation; the cause is its source).
///
/// ```
/// let e = mq_core::Error::Config("bad".into());
/// assert_eq!(mq_core::error::chain(&e), "invalid configuration: bad");
/// ```
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Why a TLS connection to Redis failed, for the failures that waiting and retrying cannot
/// fix (a wrong CA, a certificate for another host, a missing client certificate). Each
/// message starts with the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate is not signed by a trusted CA.
    #[error(
        "certificate signed by unknown authority: the certificate of {server} is not signed by \
         a trusted CA (the CA file of the TLS settings: ca_file, --tls-ca or MQ_TLS_CA; the \
         system's roots without one)"
    )]
    UnknownAuthority {
        /// `host:port` of the server.
        server: String,
    },
    /// The server's certificate does not name the host of the URL.
    #[error(
        "host name mismatch: the certificate of {server} is not valid for {host:?} ({detail}); \
         connect with a host name the certificate lists"
    )]
    HostNameMismatch {
        /// `host:port` of the server.
        server: String,
        /// The host of the URL.
        host: String,
        /// The names the certificate lists, as rustls reports them.
        detail: String,
    },
    /// The server's certificate is expired or not valid yet.
    #[error("certificate of {server} expired or not yet valid: {detail}")]
    NotValidNow {
        /// `host:port` of the server.
        server: String,
        /// The dates, as rustls reports them.
        detail: String,
    },
    /// The server refused the client: it requires a client certificate (mutual TLS) or does not
    /// trust the one given.
    #[error(
        "the server {server} refused the TLS client ({detail}): it requires a client \
         certificate (client_cert and client_key, --tls-cert and --tls-key, MQ_TLS_CERT and \
         MQ_TLS_KEY) or does not trust the one given"
    )]
    ClientRejected {
        /// `host:port` of the server.
        server: String,
        /// The TLS alert received.
        detail: String,
    },
    /// Any other TLS failure (e.g. a server that does not speak TLS on that port).
    #[error("TLS handshake with {server} failed: {detail}")]
    Handshake {
        /// `host:port` of the server.
        server: String,
        /// The rustls error.
        detail: String,
    },
}
