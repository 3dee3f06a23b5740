//! Which Redis errors are worth waiting for (a restart, a failover, a replica promoted) and how
//! the callers wait them out: retrying transient errors, and dropping connections that landed
//! on a read-only replica.

use super::conn::{Conn, ControlConn};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// Whether `e` is the kind of error a Redis that is starting, restarting, loading its data,
/// running a long script, failing over or briefly unreachable gives: worth waiting for,
/// unlike a refused command.
pub(crate) fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY")
        )
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `limit` has passed since
/// `started`, backing off between attempts and logging each wait. Used at start-up, so that a
/// worker started a moment before Redis (or while it loads its data) waits instead of dying.
pub(crate) async fn retry_transient<T, F, Fut>(
    what: &'static str,
    started: Instant,
    limit: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut failures = 0u32;
    loop {
        match op().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(what, "redis is reachable again");
                }
                return Ok(v);
            }
            Err(e) if is_transient_error(&e) && started.elapsed() < limit => {
                let delay = crate::retry::error_backoff(failures)
                    .min(limit.saturating_sub(started.elapsed()));
                failures += 1;
                tracing::warn!(what, error = %crate::error::chain(&e), retry_in = ?delay, waited = ?started.elapsed(), limit = ?limit, "waiting for redis");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient_error(e: &Error) -> bool {
    match e {
        Error::Redis { source, .. } => is_transient(source),
        Error::Pool(deadpool_redis::PoolError::Backend(e)) => is_transient(e),
        Error::Pool(deadpool_redis::PoolError::Timeout(_)) => true,
        _ => false,
    }
}

/// Whether `e` is `READONLY`: the connection reaches a replica, typically an old primary
/// after a failover behind the same address (DNS name, virtual IP, proxy).
pub(crate) fn is_readonly(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// After a failover, a connection still open to the old primary answers every write with
/// `READONLY`, and [`ConnectionManager`] reconnects only on I/O errors. If `e` is such an
/// error, this closes the connection (`QUIT`), so the next command reconnects and reaches
/// whatever now answers at the address. Otherwise it does nothing. At most one `QUIT` per
/// [`READONLY_QUIT_INTERVAL`] in the process: many tasks failing at once must not close the
/// fresh connection again (the others retry with backoff and get their turn).
pub(crate) async fn reconnect_if_readonly(conn: &Conn, e: &redis::RedisError) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_QUIT_MS: AtomicU64 = AtomicU64::new(0);
    // A cluster connection follows `MOVED` and refreshes its slot map by itself.
    let Conn::Single(conn) = conn else { return };
    if !is_readonly(e) {
        return;
    }
    let now = crate::envelope::now_ms();
    let last = LAST_QUIT_MS.load(Ordering::Relaxed);
    let interval = READONLY_QUIT_INTERVAL.as_millis() as u64;
    if now.saturating_sub(last) < interval
        || LAST_QUIT_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    tracing::warn!("redis answered READONLY (a replica: failover?); reconnecting");
    let _: redis::RedisResult<redis::Value> =
        redis::cmd("QUIT").query_async(&mut conn.clone()).await;
}

/// Shortest time between two `QUIT`s of [`reconnect_if_readonly`]: 500 ms.
pub(crate) const READONLY_QUIT_INTERVAL: Duration = Duration::from_millis(500);

/// A pooled connection that answered `READONLY` (see [`reconnect_if_readonly`]) is taken out
/// of the pool and closed: the pool checks connections only with `PING`, which a replica
/// answers, so it would hand the same connection out forever.
pub(crate) fn discard_if_readonly(conn: ControlConn, e: &redis::RedisError) {
    let ControlConn::Pooled(conn) = conn else {
        return;
    };
    if is_readonly(e) {
        tracing::warn!(
            "redis answered READONLY (a replica: failover?); dropping the pooled connection"
        );
        drop(deadpool_redis::Connection::take(conn));
    }
}
