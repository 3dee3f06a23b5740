//! Worker settings and their defaults. Every default is a named constant.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use crate::redis::keys;

/// Default global in-flight limit per worker process: 64.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default grace period for in-flight tasks at shutdown: 30 s.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Default `BLOCK` time of a fetcher's `XREADGROUP` when its queue is empty: 1 s.
pub const DEFAULT_BLOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Default longest sleep of the promoter, which moves due delayed tasks to the stream: 1 s.
/// It sleeps until the earliest delayed task is due and is woken when an earlier one is
/// scheduled, so this bounds only the lateness when a wake-up is missed (Pub/Sub connection
/// lost) and how often an idle worker looks.
pub const DEFAULT_PROMOTE_INTERVAL: Duration = Duration::from_secs(1);
/// Most entries one `XREADGROUP` asks for: 512.
pub const MAX_FETCH_BATCH: usize = 512;
/// Most ids one ack script call (`XACK` + `XDEL`) carries: 2,048.
pub const MAX_ACK_BATCH: usize = 2_048;
/// Most delayed tasks one promote script moves: 1,000.
pub const PROMOTE_BATCH: usize = 1_000;
/// Member bytes after which one promote script stops (it always moves at least one member), so
/// that large payloads cannot block Redis for long: 4 MiB.
pub const PROMOTE_MAX_BYTES: usize = 4 << 20;

/// Default reclaim timeout: an in-flight task whose lease was not renewed for this long is
/// taken over by another worker: 30 s. Leases are renewed every third of it.
pub const DEFAULT_RECLAIM_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time between two reclaim checks of a fetcher: 5 s (shorter for short timeouts:
/// half the reclaim timeout).
pub const MAX_RECLAIM_INTERVAL: Duration = Duration::from_secs(5);
/// Default number of deliveries after which an entry that never finished is dead-lettered as
/// abandoned: 5.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default cap of a queue's dead-letter stream: 1,000,000 entries (approximate, see
/// [`WorkerConfig::dead_letter_max_len`]).
pub const DEFAULT_DEAD_LETTER_MAX_LEN: u64 = 1_000_000;
/// Default idle time after which a consumer with nothing pending is removed from the group:
/// 1 h.
pub const DEFAULT_CONSUMER_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest time between two looks for idle consumers to remove: 60 s (shorter for short idle
/// timeouts: half the timeout).
pub const MAX_REAP_INTERVAL: Duration = Duration::from_secs(60);

/// Default longest wait for Redis at start-up (`build()`): 60 s. A worker started while Redis
/// is down, restarting or loading its data waits this long before giving up.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a worker refreshes its heartbeat key: 5 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Heartbeat TTL: a worker silent this long counts as dead: 15 s.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// Settings of a [`Worker`](crate::Worker), set through its builder. Its `Debug` output hides
/// the password of the URL.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Redis URL.
    pub url: String,
    /// Key prefix. Default: [`keys::DEFAULT_PREFIX`].
    pub prefix: String,
    /// Consumer group. Default: [`keys::DEFAULT_GROUP`].
    pub group: String,
    /// Consumer name. Default: `{hostname}-{pid}-{random}`.
    pub consumer: String,
    /// Global in-flight limit. Default: [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// Per-queue in-flight limits set on the builder; they override the task options.
    pub queue_concurrency: HashMap<String, usize>,
    /// Per-queue partition counts set on the builder; they override the task options.
    pub queue_partitions: HashMap<String, u16>,
    /// Queues whose workers read the priority levels although no task type of theirs has a
    /// `priority` (set on the builder).
    pub queue_priorities: std::collections::HashSet<String>,
    /// Weights (High, Normal, Low) of queues whose levels are weighted, not strict.
    pub priority_weights: HashMap<String, [u32; 3]>,
    /// Queues in strict order: a queue's tasks start only while the queues before it have
    /// none ready. Empty: every queue independent.
    pub queue_order: Vec<String>,
    /// Grace period at shutdown. Default: [`DEFAULT_GRACE_PERIOD`].
    pub grace_period: Duration,
    /// Blocking read time. Default: [`DEFAULT_BLOCK_TIMEOUT`].
    pub block_timeout: Duration,
    /// Promoter interval. Default: [`DEFAULT_PROMOTE_INTERVAL`].
    pub promote_interval: Duration,
    /// Reclaim timeout. Default: [`DEFAULT_RECLAIM_TIMEOUT`].
    pub reclaim_timeout: Duration,
    /// Deliveries before an unfinished entry is dead-lettered. Default:
    /// [`DEFAULT_MAX_DELIVERIES`].
    pub max_deliveries: u32,
    /// Cap of each queue's dead-letter stream: after adding a dead letter, the oldest are
    /// trimmed with `XTRIM MAXLEN ~`, which removes whole stream nodes only, so the stream
    /// may hold up to `stream-node-max-entries` (100 by default) more. Default:
    /// [`DEFAULT_DEAD_LETTER_MAX_LEN`].
    pub dead_letter_max_len: u64,
    /// Idle time before an empty consumer is removed. Default:
    /// [`DEFAULT_CONSUMER_IDLE_TIMEOUT`].
    pub consumer_idle_timeout: Duration,
    /// Address of the `/metrics` and `/healthz` endpoint; `None` serves none. Default: `None`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Longest wait for Redis in `build()`. Default: [`DEFAULT_STARTUP_TIMEOUT`].
    pub startup_timeout: Duration,
    /// Run even if Redis may evict keys (`maxmemory-policy` other than `noeviction`).
    /// Default: `false`.
    pub allow_eviction: bool,
    /// TLS settings for a `rediss://` URL. Default: none (the system's root certificates).
    pub tls: TlsOptions,
    /// The daily deadline the `mq_workers_needed` gauge is computed for: minutes after
    /// midnight UTC (the next such time). Default: `None`, no such gauge.
    pub eta_deadline_utc_minutes: Option<u16>,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .field("queue_concurrency", &self.queue_concurrency)
            .field("queue_partitions", &self.queue_partitions)
            .field("queue_priorities", &self.queue_priorities)
            .field("priority_weights", &self.priority_weights)
            .field("queue_order", &self.queue_order)
            .field("grace_period", &self.grace_period)
            .field("block_timeout", &self.block_timeout)
            .field("promote_interval", &self.promote_interval)
            .field("reclaim_timeout", &self.reclaim_timeout)
            .field("max_deliveries", &self.max_deliveries)
            .field("consumer_idle_timeout", &self.consumer_idle_timeout)
            .field("metrics_addr", &self.metrics_addr)
            .field("startup_timeout", &self.startup_timeout)
            .field("allow_eviction", &self.allow_eviction)
            .field("eta_deadline_utc_minutes", &self.eta_deadline_utc_minutes)
            .field("tls", &self.tls)
            .finish()
    }
}

impl WorkerConfig {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            group: keys::DEFAULT_GROUP.to_owned(),
            consumer: default_consumer_name(),
            concurrency: DEFAULT_CONCURRENCY,
            queue_concurrency: HashMap::new(),
            queue_partitions: HashMap::new(),
            queue_priorities: Default::default(),
            priority_weights: HashMap::new(),
            queue_order: Vec::new(),
            grace_period: DEFAULT_GRACE_PERIOD,
            block_timeout: DEFAULT_BLOCK_TIMEOUT,
            promote_interval: DEFAULT_PROMOTE_INTERVAL,
            reclaim_timeout: DEFAULT_RECLAIM_TIMEOUT,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            dead_letter_max_len: DEFAULT_DEAD_LETTER_MAX_LEN,
            consumer_idle_timeout: DEFAULT_CONSUMER_IDLE_TIMEOUT,
            metrics_addr: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            allow_eviction: false,
            eta_deadline_utc_minutes: None,
            tls: TlsOptions::default(),
        }
    }

    /// How often in-flight leases are renewed: a third of the reclaim timeout.
    pub fn lease_renew_interval(&self) -> Duration {
        self.reclaim_timeout / 3
    }

    /// How often idle consumers are looked for: half the consumer idle timeout, at most
    /// [`MAX_REAP_INTERVAL`].
    pub fn reap_interval(&self) -> Duration {
        (self.consumer_idle_timeout / 2).min(MAX_REAP_INTERVAL)
    }

    /// How often a fetcher looks for entries to reclaim: half the reclaim timeout, at most
    /// [`MAX_RECLAIM_INTERVAL`].
    pub fn reclaim_interval(&self) -> Duration {
        (self.reclaim_timeout / 2).min(MAX_RECLAIM_INTERVAL)
    }
}

/// Environment variable of [`TlsOptions::from_env`]: the CA file.
pub const ENV_TLS_CA: &str = "MQ_TLS_CA";
/// Environment variable of [`TlsOptions::from_env`]: the client certificate file.
pub const ENV_TLS_CERT: &str = "MQ_TLS_CERT";
/// Environment variable of [`TlsOptions::from_env`]: the client key file.
pub const ENV_TLS_KEY: &str = "MQ_TLS_KEY";

/// TLS settings for a `rediss://` URL (Redis with `tls-port`), shared by the worker, the
/// producer, the admin API and the CLI. All files are PEM. Without any setting a `rediss://`
/// URL trusts the system's root certificates, which is what a managed Redis with a public
/// certificate needs; a `redis://` URL with any setting is refused (TLS would silently not be
/// used).
///
/// A certificate the CA did not sign, or one that does not name the URL's host, fails the
/// connection with [`TlsError`](crate::redis::conn::TlsError) (no retry: waiting does not fix
/// it).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> mq_core::Result<()> {
/// use mq_core::TlsOptions;
///
/// let tls = TlsOptions::ca_file("/etc/mq/ca.pem")
///     .client_auth("/etc/mq/client.pem", "/etc/mq/client.key"); // mutual TLS, if required
/// let producer = mq_core::Producer::builder("rediss://redis.internal:6380/")
///     .tls(tls)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificate(s) that signed the server's certificate. `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) for mutual TLS; needs [`client_key`](Self::client_key).
    pub client_cert: Option<PathBuf>,
    /// Private key of [`client_cert`](Self::client_cert).
    pub client_key: Option<PathBuf>,
}

impl TlsOptions {
    /// Trusts the CA certificate(s) in `path` (instead of the system's roots).
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: Some(path.into()),
            ..Self::default()
        }
    }

    /// Presents the client certificate `cert` with its private key `key` (mutual TLS:
    /// `tls-auth-clients yes` on the server).
    pub fn client_auth(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// The settings named by the environment variables `MQ_TLS_CA`, `MQ_TLS_CERT` and
    /// `MQ_TLS_KEY` ([`ENV_TLS_CA`], [`ENV_TLS_CERT`], [`ENV_TLS_KEY`]); unset or empty ones
    /// stay `None`.
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            ca_file: path(ENV_TLS_CA),
            client_cert: path(ENV_TLS_CERT),
            client_key: path(ENV_TLS_KEY),
        }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `{hostname}-{pid}-{4 random hex digits}`: unique per process, readable in `XINFO`.
pub fn default_consumer_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// `url` with its password replaced by `***`, for logs and errors:
/// `redis://app:s3cret@host:6379/0` becomes `redis://app:***@host:6379/0`. A user name alone
/// (`redis://app@host/`) is kept; a string that is not a URL is hidden whole.
///
/// ```
/// use mq_core::redis::conn::redact_url;
/// assert_eq!(redact_url("redis://app:s3cret@h:6379/0"), "redis://app:***@h:6379/0");
/// assert_eq!(redact_url("rediss://:s3cret@h/"), "rediss://:***@h/");
/// assert_eq!(redact_url("rediss://u:p@ss:w@rd@h/"), "rediss://u:***@h/");
/// assert_eq!(redact_url("redis://app@h/"), "redis://app@h/");
/// assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
/// assert_eq!(redact_url("not a url :secret"), "<unparsable url>");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL: it may be anything, a password included.
        return "<unparsable url>".to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => return url.to_owned(), // a user name, no password
    };
    format!("{}{user}{}", &url[..scheme_end], &rest[at..])
}
