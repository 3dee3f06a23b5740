//! The [`Admin`] handle: its connection, key prefix and consumer group; connecting with a URL,
//! with TLS settings or to a worker's endpoint; and what the other files share: the keys of a
//! stream by the name `streams` gives it (a queue, a partition, a priority level) and reading a
//! reply's field pairs (`flat_map`).

use redis::Value;

#[cfg(doc)]
use crate::error::Error;
use crate::{
    config::TlsOptions,
    error::Result,
    redis::{conn, keys, keys::QueueKeys},
};

/// Separates a stream's name from its priority level in [`Admin`]'s internal stream names.
pub(super) const LEVEL_MARK: char = '@';

/// Administrative access to mq's queues: sizes, idleness, pending entries, workers and dead
/// letters. Cheap to clone (one multiplexed connection).
///
/// ```no_run
/// use std::time::Duration;
///
/// use mq_core::{Admin, Task};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Task)]
/// #[task(queue = "emails")]
/// struct SendEmail {
///     to: String,
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = Admin::connect("redis://127.0.0.1/").await?;
///
/// let stats = admin.stats("emails").await?;
/// println!("{} ready, {} in flight, {} delayed, {} dead",
///     stats.backlog, stats.pending, stats.delayed, stats.dead);
///
/// // Wait (at most a minute) until every task has run: nothing ready, in flight or delayed.
/// let idle = admin.wait_idle("emails", Duration::from_secs(60)).await?;
/// println!("idle: {idle}");
///
/// // Look at the dead letters, decode them back into tasks and replay those worth another go.
/// let mut retry = Vec::new();
/// for dead in admin.dead_list("emails", 100).await? {
///     println!("{} {:?} failed {:?} times: {}", dead.dead_id(), dead.name(),
///         dead.attempts(), dead.error().unwrap_or("?"));
///     if let Ok(task) = dead.decode::<SendEmail>() {
///         if task.to.ends_with("@example.com") {
///             retry.push(dead.dead_id().to_owned());
///         }
///     }
/// }
/// let report = admin.dead_replay("emails", &retry).await?;
/// println!("replayed {}, skipped {:?}", report.replayed, report.skipped);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    pub(crate) conn: conn::Conn,
    pub(crate) prefix: String,
    pub(crate) group: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Connects with the default prefix and group (`mq`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL, [`Error::Redis`] if Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, keys::DEFAULT_PREFIX, keys::DEFAULT_GROUP).await
    }

    /// Connects with a prefix and group of your own.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, prefix: &str, group: &str) -> Result<Self> {
        Self::connect_with_tls(url, prefix, group, &TlsOptions::default()).await
    }

    /// Connects with a prefix and group of your own and TLS settings for a `rediss://` URL
    /// (a CA file, a client certificate and key for mutual TLS).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let tls = mq_core::TlsOptions::ca_file("/etc/mq/ca.pem");
    /// let admin = mq_core::Admin::connect_with_tls("rediss://redis:6380/", "mq", "mq", &tls).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`Error::Config`] for an unreadable or empty PEM file or
    /// TLS settings with a `redis://` URL, [`Error::Tls`] for a certificate the server or the
    /// client does not accept.
    pub async fn connect_with_tls(
        url: &str,
        prefix: &str,
        group: &str,
        tls: &TlsOptions,
    ) -> Result<Self> {
        Self::with_endpoint(&conn::Endpoint::open(url, tls)?, prefix, group).await
    }

    /// Connects to `endpoint` (a worker's, with its TLS settings).
    pub(crate) async fn with_endpoint(
        endpoint: &conn::Endpoint,
        prefix: &str,
        group: &str,
    ) -> Result<Self> {
        Ok(Self {
            conn: conn::managed(endpoint, conn::COMMAND_TIMEOUT).await?,
            prefix: prefix.to_owned(),
            group: group.to_owned(),
        })
    }

    /// The keys of a stream named by [`streams`](Self::streams): a queue, a partition, or
    /// either at a priority level (`q@high`, `q#2@low`).
    pub(crate) fn keys(&self, queue: &str) -> QueueKeys {
        if let Some((q, level)) = queue.rsplit_once(LEVEL_MARK) {
            if let Ok(level) = level.parse::<crate::Priority>() {
                return QueueKeys::new(&self.prefix, q).level(level);
            }
        }
        QueueKeys::new(&self.prefix, queue)
    }
}

/// `[k1, v1, k2, v2, ...]` (or a RESP3 map) as (key, value) pairs with string keys.
pub(crate) fn flat_map(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match k {
                    Value::BulkString(k) => out.push((String::from_utf8_lossy(&k).into_owned(), v)),
                    Value::SimpleString(k) => out.push((k, v)),
                    _ => {}
                }
            }
            out
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(&k).into_owned(), v)),
                Value::SimpleString(k) => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A stream id as mq's admin calls take them: `<ms>-<seq>`, both decimal.
pub(crate) fn is_stream_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .is_some_and(|(ms, seq)| digits(ms) && digits(seq))
}
