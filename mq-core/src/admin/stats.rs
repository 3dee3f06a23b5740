//! One queue's sizes and stream counters ([`Admin::stats`], [`Admin::stream_info`]), read with
//! plain commands: `XINFO STREAM`, `XINFO GROUPS`, `ZCARD`, `XLEN` per stream, in one `MULTI`
//! (one per slot on a cluster). [`overview`](super::overview) reads many queues with the same
//! reads. Also the workers' [`snapshot`] of a queue (`lua/stats.lua`).
//!
//! Why plain reads in a transaction, not a script: a `MULTI` of reads is as consistent as a
//! script (Redis runs it as one unit), needs no `EVAL`/`EVALSHA`/`SCRIPT LOAD` (so the
//! read-only ACL role runs no Lua at all: it cannot block Redis with a loop of its own), runs
//! at `maxmemory` (none of its commands is refused there), and costs nothing per unrelated key:
//! a few commands per queue, however large the keyspace. The worker's metrics sampler keeps
//! `lua/stats.lua` (workers may run scripts).

use redis::{aio::ConnectionLike, Cmd, RedisResult, Value};

use super::client::{flat_map, Admin};
use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys::QueueKeys, scripts},
};

/// Sizes of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue name.
    pub queue: String,
    /// Entries in the stream (ready + in flight).
    pub length: u64,
    /// Entries delivered to a worker and not acked yet (in flight).
    pub pending: u64,
    /// Ready entries not yet delivered: `length - pending`.
    pub backlog: u64,
    /// Scheduled and retrying tasks.
    pub delayed: u64,
    /// Dead-lettered tasks.
    pub dead: u64,
    /// Consumers in the group.
    pub consumers: u64,
    /// Whether the queue is paused ([`Admin::pause`]): workers start none of its tasks.
    pub paused: bool,
}

impl QueueStats {
    /// Whether the queue is idle: nothing in the stream (no task ready, none in flight: a
    /// finished task's entry is deleted when its ack reaches Redis) and nothing delayed (no
    /// scheduled task, no retry waiting for its backoff). Dead letters do not count: they
    /// wait for an operator, not for a worker.
    pub fn is_idle(&self) -> bool {
        self.length == 0 && self.pending == 0 && self.delayed == 0
    }
}

/// Monotonic counters of a queue's stream, for rates: sample twice and divide the deltas by
/// the time between the samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamInfo {
    /// The queue name.
    pub queue: String,
    /// Entries in the stream now (`XLEN`).
    pub length: u64,
    /// Entries ever added to the stream (`entries-added` of `XINFO STREAM`): new tasks,
    /// promoted delayed tasks and retries, replayed dead letters. `None` before Redis 7.0.
    pub entries_added: Option<u64>,
    /// Entries that left the stream: `entries_added - length` (acked, retried or
    /// dead-lettered; done entries are deleted). `None` before Redis 7.0.
    pub entries_removed: Option<u64>,
    /// Entries delivered to the consumer group (`entries-read` of `XINFO GROUPS`); `None`
    /// without the group or before Redis 7.0.
    pub entries_read: Option<u64>,
}

/// The sizes and stream counters of one queue, partition or priority level at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSample {
    /// Its sizes ([`Admin::stats`] of it). Zeros in [`Admin::counters`]'s samples, which read
    /// only the counters.
    pub stats: QueueStats,
    /// Its stream counters ([`Admin::stream_info`] of it); `None` if none of its streams
    /// exists.
    pub info: Option<StreamInfo>,
}

/// What a read of a stream asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Sizes and counters: `XINFO STREAM`, `XINFO GROUPS`, `ZCARD` of the delayed set, `XLEN`
    /// of the dead stream.
    Full,
    /// Counters only (for rates): `XINFO STREAM`.
    Counters,
}

/// The reads of one stream (`k`), in the order [`parse_stream`] takes their replies.
pub(crate) fn stream_reads(k: &QueueKeys, depth: Depth) -> Vec<Cmd> {
    let mut cmds = vec![redis::cmd("XINFO").arg("STREAM").arg(&k.stream).clone()];
    if depth == Depth::Full {
        cmds.push(redis::cmd("XINFO").arg("GROUPS").arg(&k.stream).clone());
        cmds.push(redis::cmd("ZCARD").arg(&k.delayed).clone());
        cmds.push(redis::cmd("XLEN").arg(&k.dead).clone());
    }
    cmds
}

/// A reply as an integer (0 for an error or anything else).
pub(super) fn int(v: &RedisResult<Value>) -> u64 {
    match v {
        Ok(Value::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    }
}

/// The sample of stream `name` from the replies of its [`stream_reads`]. A stream that does
/// not exist (`XINFO` fails) has length 0 and no counters.
pub(crate) fn parse_stream(
    name: &str,
    group: &str,
    depth: Depth,
    replies: &mut impl Iterator<Item = RedisResult<Value>>,
) -> QueueSample {
    let mut sample = QueueSample {
        stats: QueueStats {
            queue: name.to_owned(),
            ..QueueStats::default()
        },
        info: None,
    };
    if let Some(Ok(stream)) = replies.next() {
        let mut info = StreamInfo {
            queue: name.to_owned(),
            ..StreamInfo::default()
        };
        for (key, v) in flat_map(stream) {
            match (key.as_str(), v) {
                ("length", Value::Int(n)) => info.length = n.max(0) as u64,
                ("entries-added", Value::Int(n)) => info.entries_added = Some(n.max(0) as u64),
                _ => {}
            }
        }
        info.entries_removed = info.entries_added.map(|a| a.saturating_sub(info.length));
        sample.stats.length = info.length;
        sample.info = Some(info);
    }
    if depth == Depth::Counters {
        return sample;
    }
    if let Some(Ok(Value::Array(groups))) = replies.next() {
        for g in groups {
            let fields = flat_map(g);
            let ours = fields.iter().any(|(k, v)| {
                k == "name" && matches!(v, Value::BulkString(b) if *b == group.as_bytes())
            });
            if !ours {
                continue;
            }
            for (key, v) in fields {
                match (key.as_str(), v) {
                    ("pending", Value::Int(n)) => sample.stats.pending = n.max(0) as u64,
                    ("consumers", Value::Int(n)) => sample.stats.consumers = n.max(0) as u64,
                    ("entries-read", Value::Int(n)) => {
                        if let Some(info) = &mut sample.info {
                            info.entries_read = Some(n.max(0) as u64);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    sample.stats.delayed = replies.next().map_or(0, |r| int(&r));
    sample.stats.dead = replies.next().map_or(0, |r| int(&r));
    sample.stats.backlog = sample.stats.length.saturating_sub(sample.stats.pending);
    sample
}

/// Adds `s` to `total`: sizes and counters summed (a counter is `None` if any part lacks it
/// while its stream exists), `consumers` the largest of one stream.
pub(crate) fn add(total: &mut QueueSample, s: &QueueSample) {
    let (t, x) = (&mut total.stats, &s.stats);
    t.length += x.length;
    t.pending += x.pending;
    t.backlog += x.backlog;
    t.delayed += x.delayed;
    t.dead += x.dead;
    t.consumers = t.consumers.max(x.consumers);
    let Some(i) = &s.info else { return };
    let sum = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
    total.info = Some(match total.info.take() {
        None => StreamInfo {
            queue: t.queue.clone(),
            ..i.clone()
        },
        Some(t) => StreamInfo {
            queue: t.queue,
            length: t.length + i.length,
            entries_added: sum(t.entries_added, i.entries_added),
            entries_removed: sum(t.entries_removed, i.entries_removed),
            entries_read: sum(t.entries_read, i.entries_read),
        },
    });
}

impl Admin {
    /// Runs each group of `units` (the commands of one group name keys of one slot) as one
    /// `MULTI` of plain reads: all groups in one transaction on one server, one transaction
    /// per group (concurrently) on a cluster. Returns each group's replies; a command that
    /// failed (e.g. `XINFO` of a stream that does not exist) gives its error, not the call.
    pub(crate) async fn read_units(
        &self,
        units: Vec<Vec<Cmd>>,
    ) -> Result<Vec<Vec<RedisResult<Value>>>> {
        let atomic = |cmds: &mut dyn Iterator<Item = &Cmd>| {
            let mut pipe = redis::pipe();
            pipe.atomic().ignore_errors();
            for cmd in cmds {
                pipe.add_command(cmd.clone());
            }
            pipe
        };
        match &self.conn {
            Conn::Single(_) => {
                if units.iter().all(Vec::is_empty) {
                    return Ok(units.iter().map(|_| Vec::new()).collect());
                }
                let pipe = atomic(&mut units.iter().flatten());
                let replies: Vec<RedisResult<Value>> = pipe
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(Error::redis("MULTI"))?;
                let mut replies = replies.into_iter();
                Ok(units
                    .iter()
                    .map(|u| replies.by_ref().take(u.len()).collect())
                    .collect())
            }
            Conn::Cluster(_) => {
                futures::future::try_join_all(units.iter().map(|u| {
                    let pipe = atomic(&mut u.iter());
                    let mut conn = self.conn.clone();
                    async move {
                        if u.is_empty() {
                            return Ok(Vec::new());
                        }
                        pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn)
                            .await
                            .map_err(Error::redis("MULTI"))
                    }
                }))
                .await
            }
        }
    }

    /// The samples of `streams` (names as [`Admin`] resolves them: a queue, a partition, a
    /// level `q@high`), read in one transaction (one per slot on a cluster).
    pub(crate) async fn read_streams(
        &self,
        streams: &[String],
        depth: Depth,
    ) -> Result<Vec<QueueSample>> {
        let units = streams
            .iter()
            .map(|s| stream_reads(&self.keys(s), depth))
            .collect();
        let replies = self.read_units(units).await?;
        Ok(streams
            .iter()
            .zip(replies)
            .map(|(s, r)| parse_stream(s, &self.group, depth, &mut r.into_iter()))
            .collect())
    }

    /// Sizes of `queue` as one consistent snapshot: every count is read in one transaction
    /// (`MULTI` of plain reads: `XINFO STREAM`, `XINFO GROUPS`, `ZCARD`, `XLEN`, and `EXISTS`
    /// of the pause flag), so a task moving between the stream, the delayed set and the dead
    /// stream meanwhile is counted exactly once (a task being promoted is never missing from
    /// both `length` and `delayed`). Two round trips: the queue's partition count and
    /// priority streams (`HGET`, `EXISTS`), then the snapshot. For a partitioned queue: the
    /// sum of its partitions and of its own stream (one transaction per slot on a cluster,
    /// read concurrently, each consistent; `consumers` is the largest count of one stream),
    /// and `stats("hot#2")` gives one partition's. No script: the read-only ACL role needs no
    /// `EVAL`. [`overview`](Self::overview) reads many queues at once.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let parts = self.streams(queue).await?;
        let mut units: Vec<Vec<redis::Cmd>> = parts
            .iter()
            .map(|p| stream_reads(&self.keys(p), Depth::Full))
            .collect();
        // The pause flag, in the same transaction on one server.
        units.push(vec![redis::cmd("EXISTS")
            .arg(self.keys(queue).paused)
            .clone()]);
        let mut replies = self.read_units(units).await?;
        let paused = replies
            .pop()
            .and_then(|r| r.into_iter().next())
            .is_some_and(|r| matches!(r, Ok(Value::Int(1))));
        let mut total = QueueSample::default();
        total.stats.queue = queue.to_owned();
        for (p, r) in parts.iter().zip(replies) {
            let s = parse_stream(p, &self.group, Depth::Full, &mut r.into_iter());
            add(&mut total, &s);
        }
        total.stats.paused = paused;
        Ok(total.stats)
    }

    /// The counters of `queue`'s stream (`XINFO STREAM` and `XINFO GROUPS` in one
    /// transaction, after the partition count); `None` if the stream does not exist. For a
    /// partitioned queue, the sums of its streams' counters (a counter is `None` if any
    /// existing stream lacks it).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn stream_info(&self, queue: &str) -> Result<Option<StreamInfo>> {
        let parts = self.streams(queue).await?;
        let mut total = QueueSample::default();
        total.stats.queue = queue.to_owned();
        for s in self.read_streams(&parts, Depth::Full).await? {
            add(&mut total, &s);
        }
        Ok(total.info)
    }
}

/// Reads the sizes of the queue of `keys` for consumer group `group` as one consistent
/// snapshot (`lua/stats.lua`, one round trip): [`Admin::stats`] and the worker share it.
/// `pending` and `consumers` are 0 when the stream or the group does not exist.
///
/// # Errors
///
/// [`Error::Redis`].
pub(crate) async fn snapshot<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    group: &str,
) -> Result<QueueStats> {
    let (length, pending, delayed, dead, consumers): (u64, u64, u64, u64, u64) = scripts::STATS
        .key(&keys.stream)
        .key(&keys.delayed)
        .key(&keys.dead)
        .arg(group)
        .invoke_async(conn)
        .await
        .map_err(Error::redis("stats"))?;
    Ok(QueueStats {
        queue: keys.queue.clone(),
        length,
        pending,
        backlog: length.saturating_sub(pending),
        delayed,
        dead,
        consumers,
        paused: false,
    })
}
