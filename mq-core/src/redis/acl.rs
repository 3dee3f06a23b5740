//! The Redis commands and key patterns each role of mq needs (the single source of README's
//! `ACL SETUSER` lines: [`Role`]), and the check at connect time that the connected user may
//! run them.
//!
//! Each role gets the key patterns of its own flows only (Redis 7 `~` read and write, `%R~`
//! read only; `{` and `}` are plain characters in ACL globs): a producer may add tasks and
//! nothing else (no pause flag, cancel hash, task status hashes, cron, rate or slot keys), the
//! read-only CLI may read and run no script at all (`Admin`'s reads are plain commands and
//! `MULTI`s of them), the operator CLI adds the writes of its commands.
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

mod needed;
pub use needed::*;

mod flows;
pub use flows::{FLOWS_PRODUCER, FLOWS_REPORT, RUNS_PRODUCER, RUNS_REPORT};

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
/// (`TIME`, `ZRANGE`, `ZADD`, `PUBLISH` to wake workers), `INFO` (the eviction check) and the
/// unique enqueue script (`GET` and `SET` of the unique key, `INCR` of the duplicates counter).
/// A producer learns only at enqueue whether it enqueues unique tasks, and that script must not
/// fail half way (after its `XADD`), so every producer checks these at connect.
pub const PRODUCER: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("info", &["INFO", "memory"]),
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
    // The queue registry: a queue's first write adds it.
    n("sadd", &["SADD", QUEUES, "q"]),
    n("time", &["TIME"]),
    n("zrange", &["ZRANGE", DELAYED, "0", "0"]),
    n("zadd", &["ZADD", DELAYED, "0", "m"]),
    n("publish", &["PUBLISH", WAKE, "x"]),
    // `Producer::durable` follows enqueues with `WAIT` (`durable_aof`, on 7.2+, needs
    // `+waitaof` too).
    n("wait", &["WAIT", "0", "0"]),
    n("get", &["GET", UNIQUE]),
    n("set", &["SET", UNIQUE, "x"]),
    n("incr", &["INCR", DUPLICATES]),
    // `Producer::status`, `result`, `progress`, `wait`: reads of a task's hash (of its
    // partition's: the partition counts).
    n("hget", &["HGET", PARTITIONS, "q"]),
    n("hget", &["HGET", TASK, "progress"]),
    n("hgetall", &["HGETALL", TASK]),
];

/// What a producer needs on top of [`PRODUCER`] to enqueue tracked task types
/// ([`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl),
/// [`TaskOptions::events`](crate::TaskOptions::events)): their `queued` / `scheduled` status in
/// the task's hash and the event `enqueued` (or `scheduled`), in the enqueue's pipeline. Not
/// part of the plain producer role: with it a producer can write any task's status hash
/// (forge a result). A producer checks these once, before its first tracked task.
pub const PRODUCER_TRACKED: &[Needed] = &[
    n("hset", &["HSET", TASK, "status", "queued"]),
    n("pexpire", &["PEXPIRE", TASK, "1"]),
    n("xadd", &["XADD", EVENTS, "MAXLEN", "~", "1", "*", "f", "v"]),
];

/// The commands of a worker: reading and settling tasks, its scripts (group creation, lease
/// renewal, reclaiming, retries, dead letters, promotion of delayed tasks, consumer cleanup,
/// queue sizes), the wake-up channel, its registry entry and heartbeat, `CLIENT ID` and
/// `CLIENT UNBLOCK` (shutdown wakes its blocked reads), `INFO` (eviction check, server version),
/// and `PING` and `UNWATCH` (the connection pool checks connections with them), and releasing
/// unique keys (`GET`, `DEL`, `PEXPIRE`: the ack, dead-letter and reclaim scripts release the
/// key of any entry with field `u`, whatever its handler, so every worker needs them). On
/// Redis 8.2+ also [`XACKDEL`]; with a rate-limited task type also [`RATE_LIMITED`].
pub const WORKER_COMMANDS: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("info", &["INFO", "memory"]),
    n("ping", &["PING"]),
    // The sampler's ETA gauges read the worker registry as `Admin::workers` does.
    n("pttl", &["PTTL", WORKER]),
    // The sampler's drain samples (`Admin::eta`).
    n("hsetnx", &["HSETNX", DRAIN, "1", "x"]),
    n("hlen", &["HLEN", DRAIN]),
    n("hkeys", &["HKEYS", DRAIN]),
    n("hdel", &["HDEL", DRAIN, "1"]),
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
    // The queue registry: a worker adds its queues when it starts.
    n("sadd", &["SADD", QUEUES, "q"]),
    n("hget", &["HGET", PARTITIONS, "q"]),
    n("hdel", &["HDEL", WORKERS, "c"]),
    n("hkeys", &["HKEYS", WORKERS]),
    n("set", &["SET", WORKER, "x"]),
    n("del", &["DEL", WORKER]),
    n("get", &["GET", UNIQUE]),
    n("del", &["DEL", UNIQUE]),
    n("pexpire", &["PEXPIRE", UNIQUE, "1"]),
    // The metrics sampler reads the counter of refused duplicates.
    n("get", &["GET", DUPLICATES]),
    // ... and every queue's sizes as `Admin::overview` does: the partition counts, then one
    // transaction of plain reads.
    n("hgetall", &["HGETALL", PARTITIONS]),
    n("multi", &["MULTI"]),
    n("exec", &["EXEC"]),
    n("xinfo|stream", &["XINFO", "STREAM", STREAM]),
    n("mget", &["MGET", PAUSED, DUPLICATES]),
    // Cancellation: the lease renewal and the promoter look at the cancel hash (`EXISTS`,
    // and while it exists `HEXISTS` / `HDEL`), the settling of a cancelled task `HDEL`s.
    n("exists", &["EXISTS", CANCEL]),
    n("hexists", &["HEXISTS", CANCEL, "x"]),
    n("hdel", &["HDEL", CANCEL, "x"]),
    // A task's progress (`TaskContext::progress`).
    n("hset", &["HSET", TASK, "progress", "x"]),
    n("pexpire", &["PEXPIRE", TASK, "1"]),
    // Tracked task types: their state changes (status.lua) append to the event stream.
    n("xadd", &["XADD", EVENTS, "MAXLEN", "~", "1", "*", "f", "v"]),
];

/// What a worker needs on top of [`WORKER_COMMANDS`] on the keys of a queue with a
/// rate-limited task type ([`TaskOptions::rate`](crate::TaskOptions::rate)): the retry script
/// reads and writes the limit's state (`GET`, `SET`, and `TYPE`, which every worker has).
/// The rules are among [`WORKER_COMMANDS`]' already; a worker checks these keys only for such
/// queues.
pub const RATE_LIMITED: &[Needed] = &[
    n("get", &["GET", RATE]),
    n("set", &["SET", RATE, "0", "PX", "1"]),
];

/// `XACKDEL`, which a worker uses instead of `XDEL` + `XACK` on Redis 8.2+ (older servers do not
/// know the name, so it is not part of [`WORKER_COMMANDS`]).
pub const XACKDEL: Needed = n("xackdel", &["XACKDEL", STREAM, "g", "IDS", "1", "0-1"]);

/// The commands of the read-only CLI commands (`mq stats`, `mq workers`, `mq pending`,
/// `mq dead list`, `mq dead show`, `mq status`, `mq events`, `mq schedules`) and of `Admin`'s
/// reads: plain reads only, no script (`mq stats --keys`' counts: `SCAN` of the unique and
/// slot keys, `ZCOUNT` and `TIME` of the slots).
pub const CLI: &[Needed] = &[
    n("scan", &["SCAN", "0"]),
    n("zcount", &["ZCOUNT", SLOTS, "-inf", "+inf"]),
    n("time", &["TIME"]),
    n("hgetall", &["HGETALL", CRON]),
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
    // `Admin::queues`, `Admin::overview` (`mq stats`): the queue registry, the partition
    // counts, then one transaction of plain reads.
    n("smembers", &["SMEMBERS", QUEUES]),
    n("hgetall", &["HGETALL", PARTITIONS]),
    // `Admin::run`, `Admin::runs`.
    n("hgetall", &["HGETALL", RUNS]),
    n("hget", &["HGET", RUNS, "name"]),
    n("hmget", &["HMGET", RUN, "total"]),
    n("multi", &["MULTI"]),
    n("exec", &["EXEC"]),
    n("mget", &["MGET", PAUSED, DUPLICATES]),
    n("xlen", &["XLEN", DEAD]),
    n("get", &["GET", WORKER]),
    n("pttl", &["PTTL", WORKER]),
    n("get", &["GET", DUPLICATES]),
    // `mq status`: a task's progress.
    n("hget", &["HGET", TASK, "progress"]),
    // `mq status` of a tracked task, and `mq events`.
    n("hgetall", &["HGETALL", TASK]),
    n("xread", &["XREAD", "COUNT", "1", "STREAMS", EVENTS, "0"]),
    n("xrevrange", &["XREVRANGE", EVENTS, "+", "-"]),
];

/// What `mq dead replay`, `mq dead purge`, `mq pause`, `mq resume` and `mq cancel` need on
/// top of [`CLI`]: mq's scripts (`EVALSHA`, `SCRIPT LOAD`),
/// moving dead letters back to the stream (`XADD`, `XDEL`), deleting the dead-letter stream
/// (`UNLINK`), setting and deleting the pause flag (`SET`, `DEL`), and the replay of a dead
/// unique task taking its key again (`GET`, `SET`).
pub const CLI_ADMIN: &[Needed] = &[
    SCRIPTS[0],
    SCRIPTS[1],
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
    n("xdel", &["XDEL", DEAD, "0-1"]),
    n("unlink", &["UNLINK", DEAD]),
    n("set", &["SET", PAUSED, "1"]),
    n("del", &["DEL", PAUSED]),
    n("get", &["GET", UNIQUE]),
    n("set", &["SET", UNIQUE, "x"]),
    // `mq cancel` (`Admin::cancel`): the cancel script looks through the stream and the
    // delayed set, deletes a queued entry or a delayed member (releasing its unique key) or
    // records a running task in the cancel hash.
    n("type", &["TYPE", STREAM]),
    n("xrange", &["XRANGE", STREAM, "-", "+"]),
    n("xdel", &["XDEL", STREAM, "0-1"]),
    n("zrange", &["ZRANGE", DELAYED, "0", "0"]),
    n("zrem", &["ZREM", DELAYED, "m"]),
    n("del", &["DEL", UNIQUE]),
    n("hset", &["HSET", CANCEL, "x", "0-1"]),
    n("pexpire", &["PEXPIRE", CANCEL, "1"]),
    // It asks the stream's own group whether the entry is pending, pages the delayed set by
    // member, and forgets a sample of stale marks (HLEN, HRANDFIELD, HDEL) before a new one.
    n("xinfo|groups", &["XINFO", "GROUPS", STREAM]),
    n("xpending", &["XPENDING", STREAM, "g", "-", "+", "1"]),
    n("zrank", &["ZRANK", DELAYED, "m"]),
    n("zcount", &["ZCOUNT", DELAYED, "-inf", "+inf"]),
    n("hlen", &["HLEN", CANCEL]),
    n("hrandfield", &["HRANDFIELD", CANCEL, "1"]),
    n("hexists", &["HEXISTS", CANCEL, "x"]),
    n("hdel", &["HDEL", CANCEL, "x"]),
    // ... and records a tracked task it removed as cancelled (lua/status.lua).
    n("time", &["TIME"]),
    n("hset", &["HSET", TASK, "status", "cancelled"]),
    n("pexpire", &["PEXPIRE", TASK, "1"]),
    n("xadd", &["XADD", EVENTS, "MAXLEN", "~", "1", "*", "f", "v"]),
    // A cancelled task that waited for its rate slot gives the slot back to the limit's state.
    n("get", &["GET", RATE]),
    n("set", &["SET", RATE, "0", "PX", "1"]),
];

/// A role of mq as an ACL user: its commands and the patterns of the keys and Pub/Sub channels
/// its flows touch, `<p>` standing for the key prefix. [`setuser_line`](Self::setuser_line)
/// gives README's line.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// The user name README gives it (`mq-producer`).
    pub name: &'static str,
    /// Its commands.
    pub commands: &'static [&'static [Needed]],
    /// Its key patterns (`~` read and write, `%R~` read only).
    pub keys: &'static [&'static str],
    /// Its channel patterns (`&`).
    pub channels: &'static [&'static str],
}

/// The wake-up channels of every queue and level, `<p>:{<queue>}:wake[:<level>]`.
const WAKE_CHANNELS: &[&str] = &["&<p>:{*}:wake", "&<p>:{*}:wake:*"];

/// A producer (`Producer`, `mq enqueue`): it adds tasks to streams and delayed sets (every
/// priority level), takes unique keys and counts duplicates, adds its queues to the registry,
/// and reads task hashes and partition counts (`Producer::status`, `result`, `wait`). Nothing else: not the pause
/// flag, the cancel hash, the dead stream, cron, rate or slot keys, task hashes' writes.
pub const PRODUCER_ROLE: Role = Role {
    name: "mq-producer",
    commands: &[PRODUCER, FLOWS_PRODUCER, RUNS_PRODUCER],
    keys: &[
        "~<p>:{*}:stream",
        "~<p>:{*}:stream:*",
        "~<p>:{*}:delayed",
        "~<p>:{*}:delayed:*",
        "~<p>:{*}:unique:*",
        "~<p>:{*}:duplicates",
        "~<p>:queues",
        "~<p>:runs",
        "~<p>:run:*",
        "%R~<p>:partitions",
        "%R~<p>:{*}:task:*",
    ],
    channels: WAKE_CHANNELS,
};

/// A producer of tracked task types: [`PRODUCER_ROLE`] plus [`PRODUCER_TRACKED`] on the task
/// hashes and event streams.
pub const PRODUCER_TRACKED_ROLE: Role = Role {
    name: "mq-producer-tracked",
    commands: &[PRODUCER, PRODUCER_TRACKED, FLOWS_PRODUCER, RUNS_PRODUCER],
    keys: &[
        "~<p>:{*}:stream",
        "~<p>:{*}:stream:*",
        "~<p>:{*}:delayed",
        "~<p>:{*}:delayed:*",
        "~<p>:{*}:unique:*",
        "~<p>:{*}:duplicates",
        "~<p>:queues",
        "~<p>:runs",
        "~<p>:run:*",
        "%R~<p>:partitions",
        "~<p>:{*}:task:*",
        "~<p>:{*}:events",
    ],
    channels: WAKE_CHANNELS,
};

/// A worker: every key of its queues' flows (streams, delayed sets and dead streams of every
/// level, unique keys, rate states, key slots, the cancel hash, task hashes, events, cron),
/// the pause flag and duplicates counter read only, and the registries (workers, heartbeats,
/// partition counts, queues).
pub const WORKER_ROLE: Role = Role {
    name: "mq-worker",
    commands: &[WORKER_COMMANDS, RATE_LIMITED, FLOWS_REPORT, RUNS_REPORT],
    keys: &[
        "~<p>:{*}:stream",
        "~<p>:{*}:stream:*",
        "~<p>:{*}:delayed",
        "~<p>:{*}:delayed:*",
        "~<p>:{*}:dead",
        "~<p>:{*}:dead:*",
        "~<p>:{*}:unique:*",
        "~<p>:{*}:rate:*",
        "~<p>:{*}:slots:*",
        "~<p>:{*}:cancel",
        "~<p>:{*}:task:*",
        "~<p>:{*}:events",
        "~<p>:{*}:cron",
        "~<p>:{*}:cron:*",
        "~<p>:{*}:drain",
        "%R~<p>:{*}:paused",
        "%R~<p>:{*}:duplicates",
        "~<p>:workers",
        "~<p>:worker:*",
        "~<p>:partitions",
        "~<p>:queues",
        "~<p>:run:*",
    ],
    channels: WAKE_CHANNELS,
};

/// The keys the read-only CLI reads.
const CLI_KEYS: &[&str] = &[
    "%R~<p>:{*}:stream",
    "%R~<p>:{*}:stream:*",
    "%R~<p>:{*}:delayed",
    "%R~<p>:{*}:delayed:*",
    "%R~<p>:{*}:dead",
    "%R~<p>:{*}:dead:*",
    "%R~<p>:{*}:paused",
    "%R~<p>:{*}:duplicates",
    "%R~<p>:{*}:slots:*",
    "%R~<p>:{*}:task:*",
    "%R~<p>:{*}:events",
    "%R~<p>:{*}:cron",
    "%R~<p>:{*}:drain",
    "%R~<p>:workers",
    "%R~<p>:worker:*",
    "%R~<p>:partitions",
    "%R~<p>:queues",
    "%R~<p>:runs",
    "%R~<p>:run:*",
];

/// The read-only CLI (and `Admin`'s reads): reads of mq's keys only, no script, no write.
pub const CLI_ROLE: Role = Role {
    name: "mq-cli",
    commands: &[CLI],
    keys: CLI_KEYS,
    channels: &[],
};

/// The operator CLI: [`CLI_ROLE`] plus replaying and purging dead letters, pausing, resuming
/// and cancelling (writes of streams, dead streams, delayed sets, the pause flag, unique keys,
/// the cancel hash, rate states (a cancelled waiting task's slot), task hashes and events;
/// mq's scripts).
pub const ADMIN_ROLE: Role = Role {
    name: "mq-admin",
    commands: &[CLI, CLI_ADMIN, FLOWS_REPORT, RUNS_REPORT],
    keys: &[
        "%R~<p>:{*}:duplicates",
        "%R~<p>:{*}:slots:*",
        "%R~<p>:{*}:cron",
        "%R~<p>:{*}:drain",
        "%R~<p>:workers",
        "%R~<p>:worker:*",
        "%R~<p>:partitions",
        "%R~<p>:queues",
        "%R~<p>:runs",
        "~<p>:run:*",
        "~<p>:{*}:stream",
        "~<p>:{*}:stream:*",
        "~<p>:{*}:delayed",
        "~<p>:{*}:delayed:*",
        "~<p>:{*}:dead",
        "~<p>:{*}:dead:*",
        "~<p>:{*}:paused",
        "~<p>:{*}:unique:*",
        "~<p>:{*}:cancel",
        "~<p>:{*}:rate:*",
        "~<p>:{*}:task:*",
        "~<p>:{*}:events",
    ],
    channels: &[],
};

/// Every role, as README lists them.
pub const ROLES: [Role; 5] = [
    PRODUCER_ROLE,
    PRODUCER_TRACKED_ROLE,
    WORKER_ROLE,
    CLI_ROLE,
    ADMIN_ROLE,
];

impl Role {
    /// README's `ACL SETUSER` line of this role for `prefix` (`<password>` is left for the
    /// reader).
    pub fn setuser_line(&self, prefix: &str) -> String {
        self.setuser_line_as(self.name, prefix)
    }

    /// The `ACL SETUSER` line of this role for a user named `user`.
    pub fn setuser_line_as(&self, user: &str, prefix: &str) -> String {
        let mut line = format!("ACL SETUSER {user} on ><password> resetkeys");
        for k in self.keys {
            line.push(' ');
            line.push_str(&k.replace("<p>", prefix));
        }
        line.push_str(" resetchannels");
        for c in self.channels {
            line.push(' ');
            line.push_str(&c.replace("<p>", prefix));
        }
        line.push_str(" -@all");
        let mut seen = Vec::new();
        for need in self.commands.iter().flat_map(|l| l.iter()) {
            if !seen.contains(&need.rule) {
                seen.push(need.rule);
                line.push_str(" +");
                line.push_str(need.rule);
            }
        }
        line
    }
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
                    QUEUES => keys::queues_key(prefix),
                    PAUSED => k.paused.clone(),
                    UNIQUE => k.unique_key("acl-check"),
                    DUPLICATES => k.duplicates.clone(),
                    RATE => k.rate_state("acl-check", None),
                    CANCEL => k.cancel.clone(),
                    TASK => format!("{}acl-check", k.task),
                    EVENTS => k.events.clone(),
                    SLOTS => k.slots_key("acl-check", None),
                    CRON => k.cron.clone(),
                    FLOW => format!("{}:flow:acl-check", k.stream),
                    DRAIN => k.drain.clone(),
                    RUN => format!("{}acl-check", keys::run_key_prefix(prefix)),
                    RUNS => keys::runs_key(prefix),
                    a => a.to_owned(),
                })
                .collect();
            if !commands.iter().any(|(_, c)| *c == cmd) {
                commands.push((need.rule, cmd));
            }
        }
    }
    if commands.is_empty() {
        return Ok(());
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
         \"ACL users\" for the exact ACL of a {role}: its commands and its key and channel \
         patterns under `{prefix}:`)",
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
mod tests;
