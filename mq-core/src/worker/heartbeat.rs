//! Worker registry: each running worker has a field in `{prefix}:workers` (consumer name ->
//! `key=value` description) and a key `{prefix}:worker:{consumer}` with a TTL that it refreshes
//! from the lease thread. A worker whose key expired is dead; the CLI and metrics list the live
//! ones.

use redis::aio::ConnectionManager;

use super::Shared;
use crate::{
    config::HEARTBEAT_TTL,
    envelope::now_ms,
    error::{Error, Result},
    redis::keys,
};

/// The worker's entry in the registry: `queues=a,b concurrency=64 started_at=<unix ms>`.
pub(super) fn info(shared_config: &crate::config::WorkerConfig, queues: &[String]) -> String {
    format!(
        "queues={} concurrency={} started_at={}",
        queues.join(","),
        shared_config.concurrency,
        now_ms()
    )
}

/// Registers the worker and writes its first heartbeat.
pub(super) async fn register(shared: &Shared) -> Result<()> {
    let mut conn = shared.pool.get().await.map_err(Error::Pool)?;
    let r = beat(shared, &mut conn).await;
    if let Err(Error::Redis { source, .. }) = &r {
        crate::redis::conn::discard_if_readonly(conn, source);
    }
    r
}

/// Refreshes the heartbeat key and the registry entry (which a sampler may have removed
/// while this worker could not reach Redis for longer than the heartbeat TTL).
pub(super) async fn beat<C: redis::aio::ConnectionLike>(
    shared: &Shared,
    conn: &mut C,
) -> Result<()> {
    let prefix = &shared.config.prefix;
    let consumer = &shared.config.consumer;
    redis::pipe()
        .hset(keys::workers_key(prefix), consumer, &shared.registry_info)
        .ignore()
        .cmd("SET")
        .arg(keys::worker_key(prefix, consumer))
        .arg(now_ms())
        .arg("EX")
        .arg(HEARTBEAT_TTL.as_secs())
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(Error::redis("heartbeat"))
}

/// Removes the worker from the registry (clean shutdown).
pub(super) async fn unregister(shared: &Shared, conn: &mut ConnectionManager) -> Result<()> {
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
        .query_async::<()>(conn)
        .await
        .map_err(Error::redis("unregister worker"))
}
