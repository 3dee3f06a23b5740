//! Worker registry: each running worker has a field in `{prefix}:workers` (consumer name ->
//! `key=value` description) and a key `{prefix}:worker:{consumer}` with a TTL that it refreshes
//! from the lease thread. A worker whose key expired is dead; the CLI and metrics list the live
//! ones.

use crate::redis::conn::Conn;

use super::state::Shared;
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

/// Registers the worker, writes its first heartbeat and adds its queues to the queue registry
/// `{prefix}:queues` (where `Admin::queues` finds them without scanning), in one round trip.
pub(super) async fn register(shared: &Shared) -> Result<()> {
    let mut cmds = beat_commands(shared);
    if !shared.registered.is_empty() {
        cmds.push(
            redis::cmd("SADD")
                .arg(keys::queues_key(&shared.config.prefix))
                .arg(&shared.registered)
                .clone(),
        );
    }
    let r = shared
        .data
        .query_all(cmds)
        .await
        .map(drop)
        .map_err(Error::redis("register worker"));
    if let Err(Error::Redis { source, .. }) = &r {
        crate::redis::transient::reconnect_if_readonly(&shared.data, source).await;
    }
    r
}

/// Refreshes the heartbeat key and the registry entry (which a sampler may have removed
/// while this worker could not reach Redis for longer than the heartbeat TTL).
///
/// The registry hash and the heartbeat keys lie in different slots of a cluster: they are
/// written by separate commands, never by one script.
pub(super) async fn beat(shared: &Shared, conn: &Conn) -> Result<()> {
    conn.query_all(beat_commands(shared))
        .await
        .map(drop)
        .map_err(Error::redis("heartbeat"))
}

/// The registry entry and the heartbeat key, as two commands.
fn beat_commands(shared: &Shared) -> Vec<redis::Cmd> {
    let prefix = &shared.config.prefix;
    let consumer = &shared.config.consumer;
    vec![
        redis::cmd("HSET")
            .arg(keys::workers_key(prefix))
            .arg(consumer)
            .arg(&shared.registry_info)
            .clone(),
        redis::cmd("SET")
            .arg(keys::worker_key(prefix, consumer))
            .arg(now_ms())
            .arg("EX")
            .arg(HEARTBEAT_TTL.as_secs())
            .clone(),
    ]
}

/// Removes the worker from the registry (clean shutdown).
pub(super) async fn unregister(shared: &Shared, conn: &Conn) -> Result<()> {
    let (prefix, consumer) = (&shared.config.prefix, &shared.config.consumer);
    conn.query_all(vec![
        redis::cmd("HDEL")
            .arg(keys::workers_key(prefix))
            .arg(consumer)
            .clone(),
        redis::cmd("DEL")
            .arg(keys::worker_key(prefix, consumer))
            .clone(),
    ])
    .await
    .map(drop)
    .map_err(Error::redis("unregister worker"))
}
