//! The Redis commands each role of mq runs (the single source of README's `ACL SETUSER` lines),
//! and the check at connect time that the connected user may run them.
//!
//! The check is one read-only Lua script that asks `redis.acl_check_cmd` about every command
//! with the keys and channel it will really use. It needs nothing beyond what the roles need
//! anyway (`EVALSHA` and `SCRIPT LOAD`, for mq's scripts), unlike `ACL DRYRUN`, which would
//! need `+acl|dryrun` and `+acl|whoami` and lets a user read other users' permissions.

use std::sync::LazyLock;

use redis::Script;

use crate::{
    error::{Error, Result},
    redis::keys::{self, QueueKeys},
};

/// One command a role runs: its ACL rule (`xadd`, `client|id`) and an invocation with the
/// placeholders [`STREAM`], [`DELAYED`], [`DEAD`], [`WAKE`], [`WORKERS`], [`WORKER`],
/// [`PARTITIONS`], [`PAUSED`] for its keys
/// and channel.
#[derive(Debug, Clone, Copy)]
pub struct Needed {
    /// The ACL rule, without the `+`.
    pub rule: &'static str,
    /// The command and its arguments.
    pub args: &'static [&'static str],
}

/// Placeholder for a queue's stream key `<prefix>:{<queue>}:stream`.
pub const STREAM: &str = "<stream>";
/// Placeholder for a queue's delayed set `<prefix>:{<queue>}:delayed`.
pub const DELAYED: &str = "<delayed>";
/// Placeholder for a queue's dead-letter stream `<prefix>:{<queue>}:dead`.
pub const DEAD: &str = "<dead>";
/// Placeholder for a queue's wake-up channel `<prefix>:{<queue>}:wake`.
pub const WAKE: &str = "<wake>";
/// Placeholder for the worker registry hash `<prefix>:workers`.
pub const WORKERS: &str = "<workers>";
/// Placeholder for a worker's heartbeat key `<prefix>:worker:<consumer>`.
pub const WORKER: &str = "<worker>";
/// Placeholder for the hash of partition counts `<prefix>:partitions`.
pub const PARTITIONS: &str = "<partitions>";
/// Placeholder for a queue's pause flag `<prefix>:{<queue>}:paused`.
pub const PAUSED: &str = "<paused>";

const fn n(rule: &'static str, args: &'static [&'static str]) -> Needed {
    Needed { rule, args }
}

/// What every role that runs mq's Lua scripts needs: `EVALSHA`, and `SCRIPT LOAD` when the
/// server does not have a script yet.
const SCRIPTS: [Needed; 2] = [
    n(
        "evalsha",
        &["EVALSHA", "0000000000000000000000000000000000000000", "0"],
    ),
    n("script|load", &["SCRIPT", "LOAD", "return 1"]),
];

/// The commands of a producer (`Producer`, `mq enqueue`): `XADD`, the scheduling script
/// (`TIME`, `ZRANGE`, `ZADD`, `PUBLISH` to wake workers) and `INFO` (the eviction check).
pub const PRODUCER: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("info", &["INFO", "memory"]),
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
    n("time", &["TIME"]),
    n("zrange", &["ZRANGE", DELAYED, "0", "0"]),
    n("zadd", &["ZADD", DELAYED, "0", "m"]),
    n("publish", &["PUBLISH", WAKE, "x"]),
    // `Producer::durable` follows enqueues with `WAIT` (`durable_aof`, on 7.2+, needs
    // `+waitaof` too).
    n("wait", &["WAIT", "0", "0"]),
];

/// The commands of a worker: reading and settling tasks, its scripts (group creation, lease
/// renewal, reclaiming, retries, dead letters, promotion of delayed tasks, consumer cleanup,
/// queue sizes), the wake-up channel, its registry entry and heartbeat, `CLIENT ID` and
/// `CLIENT UNBLOCK` (shutdown wakes its blocked reads), `INFO` (eviction check, server version),
/// and `PING` and `UNWATCH` (the connection pool checks connections with them). On Redis 8.2+
/// also [`XACKDEL`].
pub const WORKER_COMMANDS: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("info", &["INFO", "memory"]),
    n("ping", &["PING"]),
    n("unwatch", &["UNWATCH"]),
    n("client|id", &["CLIENT", "ID"]),
    n("client|unblock", &["CLIENT", "UNBLOCK", "1"]),
    n(
        "xreadgroup",
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", STREAM, ">"],
    ),
    n("xack", &["XACK", STREAM, "g", "0-1"]),
    n("xdel", &["XDEL", STREAM, "0-1"]),
    n("xadd", &["XADD", DEAD, "*", "f", "v"]),
    n("xtrim", &["XTRIM", DEAD, "MAXLEN", "~", "1"]),
    n("xrange", &["XRANGE", STREAM, "-", "+"]),
    n("xlen", &["XLEN", DEAD]),
    n("xpending", &["XPENDING", STREAM, "g", "-", "+", "1"]),
    n("xclaim", &["XCLAIM", STREAM, "g", "c", "0", "0-1"]),
    n("xinfo|groups", &["XINFO", "GROUPS", STREAM]),
    n("xinfo|consumers", &["XINFO", "CONSUMERS", STREAM, "g"]),
    n(
        "xgroup|create",
        &["XGROUP", "CREATE", STREAM, "g", "0", "MKSTREAM"],
    ),
    n(
        "xgroup|delconsumer",
        &["XGROUP", "DELCONSUMER", STREAM, "g", "c"],
    ),
    n("exists", &["EXISTS", STREAM]),
    n("exists", &["EXISTS", PAUSED]),
    n("type", &["TYPE", DEAD]),
    n("time", &["TIME"]),
    n("zadd", &["ZADD", DELAYED, "0", "m"]),
    n("zrange", &["ZRANGE", DELAYED, "0", "0"]),
    n("zrangebyscore", &["ZRANGEBYSCORE", DELAYED, "-inf", "0"]),
    n("zcount", &["ZCOUNT", DELAYED, "-inf", "0"]),
    n("zrem", &["ZREM", DELAYED, "m"]),
    n("zcard", &["ZCARD", DELAYED]),
    // Per-key concurrency slots (sorted sets under the queue's tag, like `delayed`).
    n(
        "zremrangebyscore",
        &["ZREMRANGEBYSCORE", DELAYED, "-inf", "0"],
    ),
    n("zscore", &["ZSCORE", DELAYED, "m"]),
    n("publish", &["PUBLISH", WAKE, "x"]),
    n("subscribe", &["SUBSCRIBE", WAKE]),
    n("hset", &["HSET", WORKERS, "c", "x"]),
    n("hget", &["HGET", PARTITIONS, "q"]),
    n("hdel", &["HDEL", WORKERS, "c"]),
    n("hkeys", &["HKEYS", WORKERS]),
    n("set", &["SET", WORKER, "x"]),
    n("del", &["DEL", WORKER]),
];

/// `XACKDEL`, which a worker uses instead of `XDEL` + `XACK` on Redis 8.2+ (older servers do not
/// know the name, so it is not part of [`WORKER_COMMANDS`]).
pub const XACKDEL: Needed = n("xackdel", &["XACKDEL", STREAM, "g", "IDS", "1", "0-1"]);

/// The commands of the read-only CLI commands (`mq stats`, `mq workers`, `mq pending`,
/// `mq dead list`, `mq dead show`) and of `Admin`'s reads.
pub const CLI: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("eval", &["EVAL", "return 1", "0"]),
    n("scan", &["SCAN", "0"]),
    n("exists", &["EXISTS", STREAM]),
    n("exists", &["EXISTS", PAUSED]),
    n("xlen", &["XLEN", STREAM]),
    n("zcard", &["ZCARD", DELAYED]),
    n("xinfo|stream", &["XINFO", "STREAM", STREAM]),
    n("xinfo|groups", &["XINFO", "GROUPS", STREAM]),
    n("xpending", &["XPENDING", STREAM, "g", "-", "+", "1"]),
    n("xrange", &["XRANGE", DEAD, "-", "+"]),
    n("xrevrange", &["XREVRANGE", DEAD, "+", "-"]),
    n("hgetall", &["HGETALL", WORKERS]),
    n("hget", &["HGET", PARTITIONS, "q"]),
    n("get", &["GET", WORKER]),
    n("pttl", &["PTTL", WORKER]),
];

/// What `mq dead replay`, `mq dead purge`, `mq pause` and `mq resume` need on top of [`CLI`]:
/// moving dead letters back to the stream (`XADD`, `XDEL`), deleting the dead-letter stream
/// (`UNLINK`), setting and deleting the pause flag (`SET`, `DEL`).
pub const CLI_ADMIN: &[Needed] = &[
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
    n("xdel", &["XDEL", DEAD, "0-1"]),
    n("unlink", &["UNLINK", DEAD]),
    n("set", &["SET", PAUSED, "1"]),
    n("del", &["DEL", PAUSED]),
];

/// The `ACL SETUSER` line of a user named `user` allowed exactly `lists` on the keys and
/// channels of `prefix` (`~<prefix>:*`, `&<prefix>:*`); `<password>` is left for the reader.
pub fn setuser_line(user: &str, prefix: &str, lists: &[&[Needed]]) -> String {
    let mut line = format!(
        "ACL SETUSER {user} on ><password> resetkeys ~{prefix}:* resetchannels &{prefix}:* -@all"
    );
    let mut seen = Vec::new();
    for need in lists.iter().flat_map(|l| l.iter()) {
        if !seen.contains(&need.rule) {
            seen.push(need.rule);
            line.push_str(" +");
            line.push_str(need.rule);
        }
    }
    line
}

/// Asks `redis.acl_check_cmd` about each command (ARGV: for each, its argument count then its
/// arguments); returns the 1-based positions of the refused ones.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "#!lua flags=no-writes
local refused, i, at = {}, 1, 1
while i <= #ARGV do
  local len = tonumber(ARGV[i])
  local ok, allowed = pcall(redis.acl_check_cmd, unpack(ARGV, i + 1, i + len))
  if not (ok and allowed) then table.insert(refused, at) end
  i, at = i + len + 1, at + 1
end
return refused",
    )
});

/// Checks that the connected user may run every command of `needs` on the keys of each queue
/// of `queues` (the placeholders filled in for `prefix` and `consumer`).
///
/// # Errors
///
/// [`Error::Config`] naming each refused command with its key or channel (or the script
/// commands, if the check itself is refused), [`Error::Redis`] if the check cannot run.
pub(crate) async fn check<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    role: &str,
    needs: &[Needed],
    prefix: &str,
    consumer: &str,
    queues: &[&str],
) -> Result<()> {
    let mut commands: Vec<(&str, Vec<String>)> = Vec::new();
    for queue in queues {
        let k = QueueKeys::new(prefix, queue);
        for need in needs {
            let cmd: Vec<String> = need
                .args
                .iter()
                .map(|a| match *a {
                    STREAM => k.stream.clone(),
                    DELAYED => k.delayed.clone(),
                    DEAD => k.dead.clone(),
                    WAKE => k.wake.clone(),
                    WORKERS => keys::workers_key(prefix),
                    WORKER => keys::worker_key(prefix, consumer),
                    PARTITIONS => keys::partitions_key(prefix),
                    PAUSED => k.paused.clone(),
                    a => a.to_owned(),
                })
                .collect();
            if !commands.iter().any(|(_, c)| *c == cmd) {
                commands.push((need.rule, cmd));
            }
        }
    }
    let mut inv = CHECK.prepare_invoke();
    for (_, cmd) in &commands {
        inv.arg(cmd.len()).arg(cmd);
    }
    let refused: Vec<usize> = match inv.invoke_async(conn).await {
        Ok(r) => r,
        Err(e) if e.code() == Some("NOPERM") => {
            return Err(Error::Config(format!(
                "cannot check the redis user's permissions ({e}): a {role} needs at least \
                 `+evalsha +script|load` (mq runs Lua scripts); see README \"ACL users\""
            )))
        }
        Err(e) => return Err(Error::redis("check ACL permissions")(e)),
    };
    if refused.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> = refused
        .iter()
        .filter_map(|i| commands.get(i.checked_sub(1)?))
        .map(|(rule, cmd)| format!("+{rule} ({})", cmd.join(" ")))
        .collect();
    Err(Error::Config(format!(
        "the redis user may not run commands a {role} needs: {}; allow them (see README \
         \"ACL users\" for the exact ACL of a {role}, keys `~{prefix}:*`, channels `&{prefix}:*`)",
        missing.join(", ")
    )))
}

/// The queue whose keys a producer's check uses: a producer learns its queues only when it
/// enqueues, so it checks [`PRODUCER`] on the keys of this one, `<prefix>:{acl-check}:*`.
pub const PRODUCER_CHECK_QUEUE: &str = "acl-check";

/// [`check`] of [`PRODUCER`] on the keys of [`PRODUCER_CHECK_QUEUE`].
pub(crate) async fn check_producer<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    prefix: &str,
) -> Result<()> {
    check(
        conn,
        "producer",
        PRODUCER,
        prefix,
        "",
        &[PRODUCER_CHECK_QUEUE],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README's `ACL SETUSER` lines are the ones these lists make.
    #[test]
    fn readme_has_the_acl_lines_of_every_role() {
        let readme = include_str!("../../../README.md");
        for (user, lists) in [
            ("mq-producer", &[PRODUCER][..]),
            ("mq-worker", &[WORKER_COMMANDS][..]),
            ("mq-cli", &[CLI][..]),
            ("mq-admin", &[CLI, CLI_ADMIN][..]),
        ] {
            let line = setuser_line(user, "mq", lists);
            assert!(readme.contains(&line), "README lacks `{line}`");
        }
        assert!(readme.contains(&format!("+{}", XACKDEL.rule)));
    }

    #[test]
    fn lines_name_each_rule_once() {
        let line = setuser_line("u", "app", &[CLI, CLI_ADMIN]);
        assert!(line.starts_with(
            "ACL SETUSER u on ><password> resetkeys ~app:* resetchannels &app:* -@all +evalsha"
        ));
        assert_eq!(line.matches(" +xrange ").count(), 1, "{line}");
    }
}
