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

/// Registers the worker and writes its first heartbeat.
pub(super) async fn register(shared: &Shared, queues: &[String]) -> Result<()> {
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
        .add_command(beat_cmd(shared))
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(Error::redis("register worker"))
}

/// Refreshes the heartbeat key.
pub(super) async fn beat(shared: &Shared, conn: &mut ConnectionManager) -> Result<()> {
    beat_cmd(shared)
        .query_async::<()>(conn)
        .await
        .map_err(Error::redis("heartbeat"))
}

fn beat_cmd(shared: &Shared) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(keys::worker_key(
        &shared.config.prefix,
        &shared.config.consumer,
    ))
    .arg(now_ms())
    .arg("EX")
    .arg(HEARTBEAT_TTL.as_secs());
    cmd
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
