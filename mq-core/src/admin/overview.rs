//! Queue sizes read with plain commands, for [`Admin`]: the queue registry (`SMEMBERS`), then
//! one `MULTI` of reads (`XINFO STREAM`, `XINFO GROUPS`, `ZCARD`, `XLEN`, `MGET`, `EXISTS`) for
//! every queue at once on one server, or per slot on a cluster.
//!
//! Why plain reads in a transaction, not a script: a `MULTI` of reads is as consistent as a
//! script (Redis runs it as one unit), needs no `EVAL`/`EVALSHA`/`SCRIPT LOAD` (so the
//! read-only ACL role runs no Lua at all: it cannot block Redis with a loop of its own), runs
//! at `maxmemory` (none of its commands is refused there), and costs nothing per unrelated key:
//! a few commands per queue, however large the keyspace. The worker's metrics sampler keeps
//! `lua/stats.lua` (workers may run scripts).

use std::collections::HashMap;

use redis::{Cmd, RedisResult, Value};

use crate::{
    admin::{Admin, QueueStats, StreamInfo},
    error::{Error, Result},
    redis::{conn::Conn, keys, keys::QueueKeys},
    task::Priority,
};

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

/// One queue in [`Admin::overview`]: its totals, and its partitions and priority levels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueOverview {
    /// The whole queue: every partition at every level.
    pub total: QueueSample,
    /// Enqueues of [unique](crate::Task::unique_key) tasks refused as duplicates (its
    /// `duplicates` counters; 0 in [`Admin::counters`]). The unique keys held are counted by
    /// [`Admin::unique_stats`], which scans.
    pub duplicates: u64,
    /// A partitioned queue's partitions (`hot#0`, `hot#1`, ...), each at all its levels; empty
    /// for a queue that is not partitioned.
    pub partitions: Vec<QueueSample>,
    /// A queue with priority levels: each level (`q@high`, `q@normal`, `q@low`) across its
    /// partitions; empty for a queue without levels.
    pub levels: Vec<QueueSample>,
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
fn int(v: &RedisResult<Value>) -> u64 {
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
        for (key, v) in crate::admin::flat_map(stream) {
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
            let fields = crate::admin::flat_map(g);
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

/// An empty sample named `name`.
fn named(name: &str) -> QueueSample {
    QueueSample {
        stats: QueueStats {
            queue: name.to_owned(),
            ..QueueStats::default()
        },
        info: None,
    }
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

    /// Sizes and stream counters of each of `queues` (queue names, as [`queues`](Self::queues)
    /// returns them): the whole queue, each partition and each priority level, the pause flag
    /// and the refused duplicates, for dashboards and `mq stats`. Each stream's counts are one
    /// consistent snapshot. Plain reads, no script and no `SCAN`: one `HGETALL` of
    /// `{prefix}:partitions`, then one `MULTI` with six reads per stream (`XINFO STREAM`,
    /// `XINFO GROUPS`, `ZCARD`, `XLEN`, then `MGET` of the pause flag and duplicates counter
    /// and `EXISTS` of the priority streams) for all queues at once (per slot, concurrently, on
    /// a cluster), and for queues with priority levels one more `MULTI` for their High and Low
    /// streams. Its cost grows with the number of queues, never with the keyspace.
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// for q in admin.overview(&admin.queues().await?).await? {
    ///     println!("{}: {} ready", q.total.stats.queue, q.total.stats.backlog);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn overview(&self, queues: &[String]) -> Result<Vec<QueueOverview>> {
        self.overview_at(queues, Depth::Full).await
    }

    /// The stream counters of [`overview`](Self::overview) alone (`info` of each sample; the
    /// sizes are zeros), for a first sample of rates: per stream one `XINFO STREAM`, per queue
    /// one `EXISTS` of its priority streams, plus the `HGETALL` of partition counts.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn counters(&self, queues: &[String]) -> Result<Vec<QueueOverview>> {
        self.overview_at(queues, Depth::Counters).await
    }

    async fn overview_at(&self, queues: &[String], depth: Depth) -> Result<Vec<QueueOverview>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let counts: HashMap<String, u16> = redis::cmd("HGETALL")
            .arg(keys::partitions_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGETALL partitions"))?;
        // Per queue, its streams at the Normal level: its partitions, then its own stream.
        let streams: Vec<Vec<String>> = queues
            .iter()
            .map(|q| match counts.get(q.as_str()) {
                Some(&n) if n > 1 => (0..n)
                    .map(|i| keys::partition_name(q, i))
                    .chain([q.clone()])
                    .collect(),
                _ => vec![q.clone()],
            })
            .collect();
        // One unit per stream; a queue's own stream also reads its flag, its priority streams.
        let mut units = Vec::new();
        for (q, parts) in queues.iter().zip(&streams) {
            for p in parts {
                let k = self.keys(p);
                let mut cmds = stream_reads(&k, depth);
                if depth == Depth::Full {
                    // The pause flag's value is `1` (`Admin::pause`); `MGET` gives nil for a
                    // missing key (and for a non-string one). A partition's flag is its
                    // queue's, in another slot: a partition reads only its counter.
                    let mut mget = redis::cmd("MGET");
                    if p == q {
                        mget.arg(&k.paused);
                    }
                    cmds.push(mget.arg(&k.duplicates).clone());
                }
                if p == q {
                    cmds.push(
                        redis::cmd("EXISTS")
                            .arg(k.level(Priority::High).stream)
                            .arg(k.level(Priority::Low).stream)
                            .clone(),
                    );
                }
                units.push(cmds);
            }
        }
        let mut replies = self.read_units(units).await?.into_iter();
        let mut out = Vec::with_capacity(queues.len());
        let mut with_levels = Vec::new();
        for (q, parts) in queues.iter().zip(&streams) {
            let mut o = QueueOverview {
                total: named(q),
                ..QueueOverview::default()
            };
            let mut normal = Vec::with_capacity(parts.len());
            for p in parts {
                let mut r = replies.next().unwrap_or_default().into_iter();
                normal.push(parse_stream(p, &self.group, depth, &mut r));
                if depth == Depth::Full {
                    if let Some(Ok(Value::Array(flags))) = r.next() {
                        let mut flags = flags.into_iter();
                        if p == q {
                            o.total.stats.paused = !matches!(flags.next(), Some(Value::Nil) | None);
                        }
                        if let Some(Value::BulkString(d)) = flags.next() {
                            o.duplicates += std::str::from_utf8(&d)
                                .ok()
                                .and_then(|d| d.parse::<u64>().ok())
                                .unwrap_or(0);
                        }
                    }
                }
                if p == q && int(&r.next().unwrap_or(Ok(Value::Nil))) > 0 {
                    with_levels.push(out.len());
                }
            }
            out.push((o, normal));
        }
        // Queues with levels: their High and Low streams too.
        let mut high_low: Vec<Vec<String>> = Vec::new();
        for &i in &with_levels {
            let parts = &streams[i];
            high_low.push(
                [Priority::High, Priority::Low]
                    .iter()
                    .flat_map(|l| parts.iter().map(move |p| format!("{p}@{l}")))
                    .collect(),
            );
        }
        let flat: Vec<String> = high_low.iter().flatten().cloned().collect();
        let mut read = self.read_streams(&flat, depth).await?.into_iter();
        let mut levels: HashMap<usize, Vec<QueueSample>> = HashMap::new();
        for (&i, names) in with_levels.iter().zip(&high_low) {
            levels.insert(i, read.by_ref().take(names.len()).collect());
        }
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, (mut o, normal))| {
                let q = o.total.stats.queue.clone();
                let paused = o.total.stats.paused;
                let parts = &streams[i];
                // Samples by (level, stream), Normal first.
                let mut at: Vec<(Priority, QueueSample)> =
                    normal.into_iter().map(|s| (Priority::Normal, s)).collect();
                if let Some(hl) = levels.remove(&i) {
                    let n = parts.len();
                    for (j, s) in hl.into_iter().enumerate() {
                        let l = if j < n { Priority::High } else { Priority::Low };
                        at.push((l, s));
                    }
                }
                for (_, s) in &at {
                    add(&mut o.total, s);
                }
                if parts.len() > 1 {
                    for (j, p) in parts.iter().enumerate().take(parts.len() - 1) {
                        let mut row = named(p);
                        for (k, (_, s)) in at.iter().enumerate() {
                            if k % parts.len() == j {
                                add(&mut row, s);
                            }
                        }
                        row.stats.paused = paused;
                        o.partitions.push(row);
                    }
                }
                if levels_present(&at) {
                    for l in Priority::ALL {
                        let mut row = named(&format!("{q}@{l}"));
                        for (level, s) in &at {
                            if *level == l {
                                add(&mut row, s);
                            }
                        }
                        row.stats.paused = paused;
                        o.levels.push(row);
                    }
                }
                o
            })
            .collect())
    }
}

/// Whether the samples include High or Low streams (the queue has priority levels).
fn levels_present(at: &[(Priority, QueueSample)]) -> bool {
    at.iter().any(|(l, _)| *l != Priority::Normal)
}
