//! [`ProducerBuilder`] and the ways to connect a [`Producer`]: the URL, the prefix, the
//! settings checked at connect (eviction policy, ACL, partitions, TLS).

use std::{collections::HashMap, sync::Arc};

use crate::{
    config::TlsOptions,
    error::{Error, Result},
    redis::{acl, conn, keys},
};

use super::{client::Producer, envelope::DEFAULT_MAX_PAYLOAD};

/// Settings of a [`Producer`] beyond the URL: `Producer::builder(url).prefix("app").connect()`.
pub struct ProducerBuilder {
    url: String,
    prefix: String,
    allow_eviction: bool,
    max_payload: usize,
    tls: TlsOptions,
    partitions: HashMap<String, u16>,
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("url", &conn::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("allow_eviction", &self.allow_eviction)
            .field("max_payload", &self.max_payload)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ProducerBuilder {
    /// Key prefix (must match the workers'). Default: `mq`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Connects even if Redis's `maxmemory-policy` may evict keys. By default `connect`
    /// refuses an evicting Redis: it drops streams and delayed sets, and the tasks in them.
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Largest MessagePack payload accepted, in bytes (see [`Producer::with_max_payload`]).
    /// Default: [`DEFAULT_MAX_PAYLOAD`].
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Spreads `queue`'s tasks over `partitions` streams, overriding the task's `partitions`
    /// (1 to [`MAX_PARTITIONS`](crate::task::MAX_PARTITIONS); the workers must use the same
    /// number, see [`WorkerBuilder::queue_partitions`](crate::WorkerBuilder::queue_partitions)).
    pub fn partitions(mut self, queue: &str, partitions: u16) -> Self {
        self.partitions.insert(queue.to_owned(), partitions);
        self
    }

    /// TLS settings for a `rediss://` URL: a CA file, and a client certificate and key for
    /// mutual TLS (see [`TlsOptions`]; [`TlsOptions::from_env`] reads them from `MQ_TLS_CA`,
    /// `MQ_TLS_CERT`, `MQ_TLS_KEY`). Default: none (a `rediss://` URL trusts the system's
    /// roots).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Connects and checks that Redis does not evict keys.
    ///
    /// # Errors
    ///
    /// As [`Producer::connect`]; [`Error::Config`] for an unreadable or empty PEM file or TLS
    /// settings with a `redis://` URL, [`Error::Tls`] for a certificate the server or the
    /// client does not accept.
    pub async fn connect(self) -> Result<Producer> {
        if let Some((q, n)) = self
            .partitions
            .iter()
            .find(|(_, n)| !(1..=crate::task::MAX_PARTITIONS).contains(*n))
        {
            return Err(Error::Config(format!(
                "partitions for {q} is {n}; it must be 1 to {}",
                crate::task::MAX_PARTITIONS
            )));
        }
        let endpoint = conn::Endpoint::open(&self.url, &self.tls)?;
        let mut conn = conn::managed(&endpoint, conn::COMMAND_TIMEOUT).await?;
        if !self.allow_eviction {
            crate::redis::server::check_eviction_policy(&mut conn).await?;
        }
        acl::check_producer(&mut conn, &self.prefix).await?;
        let server_version = crate::redis::server::server_version(&mut conn).await;
        Ok(Producer {
            conn,
            prefix: self.prefix,
            max_payload: self.max_payload,
            durability: None,
            server_version,
            next_partition: Arc::default(),
            partitions: Arc::new(self.partitions),
            duplicates: Arc::default(),
            priority: None,
            registered: Arc::default(),
            tracked_checked: Arc::default(),
        })
    }
}

impl Producer {
    /// Connects to Redis at `url` with the default key prefix (`mq`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or a Redis whose `maxmemory-policy` may evict keys
    /// (see [`ProducerBuilder::allow_eviction`]), [`Error::Redis`] if Redis cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, keys::DEFAULT_PREFIX).await
    }

    /// Connects with a key prefix of your own (must match the workers').
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        Self::builder(url).prefix(prefix).connect().await
    }

    /// A [`ProducerBuilder`] for settings beyond the URL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let producer = mq_core::Producer::builder("redis://127.0.0.1/")
    ///     .prefix("shop") // workers use `.prefix("shop")` too
    ///     .max_payload(4 * 1024 * 1024)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(url: &str) -> ProducerBuilder {
        ProducerBuilder {
            url: url.to_owned(),
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            allow_eviction: false,
            max_payload: DEFAULT_MAX_PAYLOAD,
            tls: TlsOptions::default(),
            partitions: HashMap::new(),
        }
    }
}
