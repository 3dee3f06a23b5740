//! Shared pieces of the mq examples: task types, a local `redis-server` launcher.

pub mod jobs;
pub mod local_redis;
pub mod pipeline;

pub use local_redis::{LocalRedis, LocalRedisError};

/// The Redis URL from `MQ_REDIS_URL`, if set.
pub fn env_url() -> Option<String> {
    std::env::var("MQ_REDIS_URL").ok().filter(|s| !s.is_empty())
}

/// `url` with its password replaced by `***`, for printing: `redis://user:pass@host/` becomes
/// `redis://user:***@host/`, `redis://:pass@host/` becomes `redis://:***@host/`. A URL without
/// a password is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_only_the_password() {
        for (url, shown) in [
            (
                "redis://user:pass@host:6379/0",
                "redis://user:***@host:6379/0",
            ),
            ("redis://:pass@127.0.0.1:1/", "redis://:***@127.0.0.1:1/"),
            ("rediss://u:p@ss:w@rd@host/", "rediss://u:***@host/"),
            ("redis://user@host/", "redis://user@host/"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
