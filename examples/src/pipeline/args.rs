//! The command-line flags shared by the image and text workers.

/// Command-line options of the image and text workers (`--url`, `--reclaim-timeout-ms`,
/// `--concurrency`, `--batch-size`, `--batch-wait-ms`, `--grace-ms`, `--metrics-addr`).
#[derive(Debug, Clone, clap::Args)]
// Its own group id: it flattens `mq_examples::WorkerArgs`, whose group has the same name.
#[group(id = "EmbedWorkerArgs")]
pub struct WorkerArgs {
    /// The Redis URL and reclaim timeout every example worker takes.
    #[command(flatten)]
    pub redis: crate::WorkerArgs,
    /// Global in-flight limit of this process (tasks, not batches).
    #[arg(long, env = "MQ_CONCURRENCY", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Largest batch handed to the model.
    #[arg(long, env = "MQ_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Longest time a batch waits to fill after its first task arrived, in milliseconds.
    #[arg(long, env = "MQ_BATCH_WAIT_MS", default_value_t = 20)]
    pub batch_wait_ms: u64,
    /// Grace period at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub grace_ms: u64,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (e.g. `0.0.0.0:9464`).
    #[arg(long, env = "MQ_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}
