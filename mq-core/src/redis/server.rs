//! What mq checks and sets up on the server: consumer groups, the eviction policy, the
//! server's version.

use super::conn::Conn;
use crate::error::{Error, Result};
use redis::FromRedisValue;

/// Creates consumer group `group` on `stream` (and the stream) if missing, in one script that
/// first checks the stream has no other group: mq deletes done entries, so a second group would
/// lose every entry the first one finishes before it reads it (and both would share `delayed`
/// and `dead`). Safe to call from many workers at once. The group starts at id 0 so tasks
/// enqueued before the first worker started are delivered.
///
/// # Errors
///
/// [`Error::Config`] if the stream has another group, [`Error::Redis`] otherwise.
pub(crate) async fn ensure_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> Result<()> {
    let r: redis::RedisResult<Vec<String>> = crate::redis::scripts::ENSURE_GROUP
        .key(stream)
        .arg(group)
        .invoke_async(conn)
        .await;
    match r {
        Ok(others) if others.is_empty() => Ok(()),
        Ok(others) => Err(Error::Config(format!(
            "{stream} already has the consumer group(s) {others:?}, not {group:?}: mq runs one \
             group per queue (done entries are deleted, so a second group would miss tasks); \
             use the same group name everywhere, or delete the old group with \
             `XGROUP DESTROY {stream} <name>` once it has nothing pending"
        ))),
        Err(e) => Err(Error::Redis {
            op: "XGROUP CREATE",
            source: e,
        }),
    }
}

/// Reads `maxmemory-policy` (from `INFO memory`, which managed services allow where they
/// refuse `CONFIG`) and refuses the `allkeys-*` policies: such a Redis (one shared with a
/// cache, say) silently drops whole streams and delayed sets, and with them tasks.
/// `noeviction` and the `volatile-*` policies (they evict only keys with a TTL, and mq's
/// streams and sets have none) pass.
///
/// # Errors
///
/// [`Error::Config`] for an evicting policy or when the policy cannot be read (the message
/// says how to allow `INFO` or opt out), [`Error::Redis`] for other failures.
pub(crate) async fn check_eviction_policy(conn: &mut Conn) -> Result<()> {
    // Every primary of a cluster: each holds some queues.
    let infos = match conn
        .on_every_primary(redis::cmd("INFO").arg("memory"))
        .await
    {
        Ok(i) => i,
        Err(e) if e.code() == Some("NOPERM") => {
            return Err(Error::Config(format!(
                "cannot check that redis does not evict keys ({e}): allow the user `INFO` \
                 (`+info`), or opt out of the check (allow_eviction) if you know the policy"
            )))
        }
        Err(e) => return Err(Error::redis("INFO memory")(e)),
    };
    for (node, info) in infos {
        let info =
            String::from_redis_value(info).map_err(|e| Error::redis("INFO memory")(e.into()))?;
        let node = if node.is_empty() {
            String::new()
        } else {
            format!(" (node {node})")
        };
        let Some(policy) = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
        else {
            return Err(Error::Config(format!(
                "cannot check that redis{node} does not evict keys: `INFO memory` has no \
                 maxmemory_policy; opt out of the check (allow_eviction) if you know the policy"
            )));
        };
        // `volatile-*` policies evict only keys with a TTL; mq's streams and sets have none.
        if policy == "noeviction" || policy.starts_with("volatile-") {
            continue;
        }
        return Err(Error::Config(format!(
            "redis{node} runs with maxmemory-policy {policy}: it may evict mq's streams and \
             delayed sets when memory runs short, and the tasks in them are lost without a \
             trace. Set `maxmemory-policy noeviction` (CONFIG SET, or redis.conf), use a Redis \
             of its own for mq, or opt out of this check with allow_eviction(true) if you \
             accept losing tasks"
        )));
    }
    Ok(())
}

/// The server's `(major, minor)` version from `INFO server` (`redis_version`; Valkey reports
/// its Redis-compatible version there too), or `None` if it cannot be read.
///
/// On a cluster: the oldest version among the primaries.
pub(crate) async fn server_version(conn: &mut Conn) -> Option<(u32, u32)> {
    let infos = conn
        .on_every_primary(redis::cmd("INFO").arg("server"))
        .await
        .ok()?;
    let mut oldest: Option<(u32, u32)> = None;
    for (_, info) in infos {
        let v = parse_version(&String::from_redis_value(info).ok()?)?;
        oldest = Some(oldest.map_or(v, |o| o.min(v)));
    }
    oldest
}

fn parse_version(info: &str) -> Option<(u32, u32)> {
    let v = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_info_server() {
        let info = "# Server\r\nredis_version:8.2.1\r\nredis_mode:standalone\r\n";
        assert_eq!(parse_version(info), Some((8, 2)));
        assert_eq!(parse_version("redis_version:7.0.15\r\n"), Some((7, 0)));
        assert_eq!(parse_version("nothing"), None);
    }
}
