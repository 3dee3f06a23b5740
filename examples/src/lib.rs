//! Shared pieces of the mq examples: task types, a local `redis-server` launcher, a local
//! Redis Cluster launcher.

pub mod child;
pub mod control;
pub mod flow;
pub mod jobs;
pub mod local_cluster;
pub mod local_redis;
pub mod pipeline;
pub mod unique;

pub use local_cluster::LocalCluster;
pub use local_redis::{LocalRedis, LocalRedisError};

/// The Redis URL from `MQ_REDIS_URL`, if set.
pub fn env_url() -> Option<String> {
    std::env::var("MQ_REDIS_URL").ok().filter(|s| !s.is_empty())
}

pub use mq_core::redis::conn::redact_url;

/// The flags every example worker takes: the Redis URL and the reclaim timeout
/// (`#[command(flatten)]` it into a binary's own `clap` arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Redis URL (`redis+cluster://h1:p1,h2:p2/` for a Redis Cluster).
    #[arg(
        long,
        env = "MQ_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub url: String,
    /// Reclaim timeout in milliseconds: how long a dead worker's tasks (and per-key
    /// concurrency slots) wait to be taken over; leases are renewed every third of it, and a
    /// running task's cancellation is seen at the next renewal.
    #[arg(long, default_value_t = 30_000)]
    pub reclaim_timeout_ms: u64,
    /// The daily deadline, HH:MM UTC, for which the worker exports `mq_workers_needed` (what
    /// an autoscaler scales the consumers on; see deploy/k8s).
    #[arg(long, value_parser = parse_utc_time)]
    pub eta_deadline: Option<(u8, u8)>,
}

/// `HH:MM` as (hour, minute).
fn parse_utc_time(s: &str) -> Result<(u8, u8), String> {
    let bad = || format!("{s:?}: expected HH:MM (UTC), such as 06:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || s.len() != 5 {
        return Err(bad());
    }
    Ok((h, m))
}

impl WorkerArgs {
    /// A worker builder for [`url`](Self::url) with the reclaim timeout (and the ETA deadline,
    /// if given) set.
    pub fn builder(&self) -> mq_core::WorkerBuilder {
        let b = mq_core::Worker::builder(&self.url)
            .reclaim_timeout(std::time::Duration::from_millis(self.reclaim_timeout_ms));
        match self.eta_deadline {
            Some((h, m)) => b.eta_deadline_utc(h, m),
            None => b,
        }
    }

    /// The whole run of a small example worker: a data connection for its handlers (a
    /// reconnecting one, to one server or a cluster), a worker of `concurrency` with the
    /// handlers `handlers` adds to [`builder`](Self::builder), run until SIGINT or SIGTERM.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached or the worker cannot be built or fails.
    pub async fn run_with(
        &self,
        concurrency: usize,
        handlers: impl FnOnce(
            mq_core::WorkerBuilder,
            mq_core::redis::conn::Conn,
        ) -> mq_core::WorkerBuilder,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let conn = mq_core::redis::conn::Conn::connect(&self.url).await?;
        let worker = handlers(self.builder().concurrency(concurrency), conn)
            .build()
            .await?;
        worker.run_until_signal().await?;
        Ok(())
    }
}

/// The Redis an example program runs against: the one at `--url`, or a `redis-server` of its
/// own on a free port (stopped when this is dropped).
#[derive(Debug)]
pub struct Redis {
    /// Its URL.
    pub url: String,
    /// The server started for it, if no URL was given.
    pub local: Option<LocalRedis>,
}

impl Redis {
    /// `url`, or a new local `redis-server` when it is `None`.
    ///
    /// # Errors
    ///
    /// When no `redis-server` can be started.
    pub fn url_or_local(url: Option<&str>) -> Result<Self, LocalRedisError> {
        Ok(match url {
            Some(u) => Redis {
                url: u.to_owned(),
                local: None,
            },
            None => {
                let server = LocalRedis::start()?;
                Redis {
                    url: server.url(),
                    local: Some(server),
                }
            }
        })
    }

    /// Whether the server was started for this program.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }
}

/// Installs a `tracing` subscriber writing to stderr: `RUST_LOG` filter (default `info`), JSON
/// lines when `MQ_LOG_FORMAT=json`.
pub fn init_tracing() {
    init_tracing_with("info");
}

/// [`init_tracing`] with another default level, e.g. `warn` for programs whose own output
/// (progress bars, benchmark lines) should stand out.
pub fn init_tracing_with(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("MQ_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
