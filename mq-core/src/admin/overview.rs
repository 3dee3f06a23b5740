//! Queue sizes read with plain commands, for [`Admin`]: the queue registry (`SMEMBERS`), then
//! one `MULTI` of reads (`XINFO STREAM`, `XINFO GROUPS`, `ZCARD`, `XLEN`, `MGET`, `EXISTS`) for
//! every queue at once on one server, or per slot on a cluster ([`Admin::overview`],
//! [`Admin::counters`]). The reads of one stream and why they are plain reads: see
//! [`stats`](super::stats).

use std::collections::HashMap;

use redis::Value;

use super::{
    client::Admin,
    stats::{add, int, parse_stream, stream_reads, Depth, QueueSample, QueueStats},
};
use crate::{
    error::{Error, Result},
    redis::keys,
    task::Priority,
};

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
