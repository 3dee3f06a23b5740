//! Shared pieces of the mq examples: task types, a local `redis-server` launcher.

pub mod jobs;
pub mod local_redis;
pub mod pipeline;

pub use local_redis::{LocalRedis, LocalRedisError};

/// The Redis URL from `MQ_REDIS_URL`, if set.
pub fn env_url() -> Option<String> {
    std::env::var("MQ_REDIS_URL").ok().filter(|s| !s.is_empty())
}

/// Installs a `tracing` subscriber: `RUST_LOG` filter (default `info`), JSON when
/// `MQ_LOG_FORMAT=json`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("MQ_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
