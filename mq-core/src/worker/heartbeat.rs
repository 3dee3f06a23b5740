//! Worker registry: each running worker has a field in `{prefix}:workers` (consumer name ->
//! JSON-free `key=value` description) and a key `{prefix}:worker:{consumer}` with a TTL that it
//! refreshes. A worker whose key expired is dead; the CLI and metrics list the live ones.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{error_backoff, sleep_or_cancel, Shared};
use crate::{
    config::{HEARTBEAT_INTERVAL, HEARTBEAT_TTL},
    envelope::now_ms,
    error::Error,
    redis::keys,
};

/// Registers the worker; returns once the first heartbeat is written.
pub(super) async fn register(shared: &Shared, queues: &[String]) -> Result<(), Error> {
    let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
    let info = format!(
        "queues={} concurrency={} started_at={}",
        queues.join(","),
        shared.config.concurrency,
        now_ms()
    );
    redis::pipe()
        .hset(
            keys::workers_key(&shared.config.prefix),
            &shared.config.consumer,
            info,
        )
        .ignore()
        .set_ex(
            keys::worker_key(&shared.config.prefix, &shared.config.consumer),
            now_ms(),
            HEARTBEAT_TTL.as_secs(),
        )
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(Error::redis("register worker"))
}

/// Refreshes the heartbeat until `token` is cancelled, then unregisters.
pub(super) async fn run(shared: Arc<Shared>, token: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            HEARTBEAT_INTERVAL
        } else {
            error_backoff(failures)
        };
        if !sleep_or_cancel(wait, &token).await {
            break;
        }
        let r = async {
            let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
            redis::cmd("SET")
                .arg(keys::worker_key(
                    &shared.config.prefix,
                    &shared.config.consumer,
                ))
                .arg(now_ms())
                .arg("EX")
                .arg(HEARTBEAT_TTL.as_secs())
                .query_async::<()>(&mut conn)
                .await
                .map_err(Error::redis("heartbeat"))
        }
        .await;
        match r {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
    let r = async {
        let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
        redis::pipe()
            .hdel(
                keys::workers_key(&shared.config.prefix),
                &shared.config.consumer,
            )
            .ignore()
            .del(keys::worker_key(
                &shared.config.prefix,
                &shared.config.consumer,
            ))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(Error::redis("unregister worker"))
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot unregister worker; its entry expires by itself");
    }
}
