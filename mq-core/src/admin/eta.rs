//! The daily run's deadline questions for a queue: how fast it drains, measured from Redis
//! across all its workers (not one process's view), when it will be empty at that rate, and
//! how many worker processes would empty it by a given time ([`Admin::eta`], [`QueueEta`]).
//!
//! The rate comes from the queue's *drain samples*: every worker's metrics sampler (every
//! [`SAMPLE_INTERVAL`](crate::metrics::SAMPLE_INTERVAL)) records the queue's count of entries
//! that left its streams (`entries-added - length`, summed over partitions and levels) in
//! the hash `{prefix}:{queue}:drain`, one field per [`DRAIN_BUCKET`] of the server's time
//! (`HSETNX` in a script that reads `TIME`: the first worker of a bucket writes it, and no
//! worker's clock is trusted), the oldest pruned beyond [`DRAIN_BUCKETS`]. Any reader
//! (the CLI, the web, a worker's gauges) then computes the same rate over the same window.

use std::time::{Duration, SystemTime};

use super::{client::Admin, stats::QueueSample, workers::WorkerInfo};
use crate::{
    error::{Error, Result},
    redis::keys,
};

/// The width of one drain sample's bucket: 10 s.
pub const DRAIN_BUCKET: Duration = Duration::from_secs(10);

/// Drain samples kept per queue: 30, the rate's window is up to 5 minutes.
pub const DRAIN_BUCKETS: u64 = 30;

/// A queue's drain rate, time to empty, and the workers needed to empty it by a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEta {
    /// The queue.
    pub queue: String,
    /// Tasks still to run: ready, in flight and delayed (retries included), over every
    /// partition and level.
    pub remaining: u64,
    /// Entries that left the queue's streams per second over the window (acked, retried,
    /// dead-lettered); `None` until two samples a second apart exist.
    pub rate_per_sec: Option<f64>,
    /// The window the rate was measured over.
    pub window: Duration,
    /// Live workers that serve the queue (their heartbeat exists).
    pub workers: u64,
    /// The rate per live worker; `None` without a rate or a worker.
    pub per_worker_per_sec: Option<f64>,
    /// Seconds until the queue is empty at the measured rate: `Some(0.0)` when nothing
    /// remains, `None` when tasks remain but nothing drains.
    pub eta_secs: Option<f64>,
    /// With a deadline: worker processes needed to empty the queue by then at the measured
    /// per-worker rate (at least 1 while tasks remain, 0 when none do); `None` without a
    /// per-worker rate, or with a deadline already past while tasks remain.
    pub workers_needed: Option<u64>,
}

/// The rate of the drain points `(unix ms, entries removed)`: from the oldest point within
/// `DRAIN_BUCKETS` buckets of the newest to the newest, and the window it spans.
pub(crate) fn drain_rate(points: &[(u64, u64)]) -> (Option<f64>, Duration) {
    let Some(&(t1, r1)) = points.iter().max_by_key(|p| p.0) else {
        return (None, Duration::ZERO);
    };
    let span = DRAIN_BUCKET.as_millis() as u64 * DRAIN_BUCKETS;
    let Some(&(t0, r0)) = points
        .iter()
        .filter(|p| p.0 + span >= t1)
        .min_by_key(|p| p.0)
    else {
        return (None, Duration::ZERO);
    };
    let window = Duration::from_millis(t1 - t0);
    if window < Duration::from_secs(1) {
        return (None, window);
    }
    // A counter that went back (the stream was deleted and made again) gives no rate.
    if r1 < r0 {
        return (None, window);
    }
    (Some((r1 - r0) as f64 / window.as_secs_f64()), window)
}

/// Workers needed to run `remaining` tasks in `left` at `per_worker` tasks/s each.
pub(crate) fn workers_needed(remaining: u64, per_worker: f64, left: Duration) -> Option<u64> {
    if remaining == 0 {
        return Some(0);
    }
    let secs = left.as_secs_f64();
    if secs <= 0.0 || per_worker <= 0.0 {
        return None;
    }
    Some(((remaining as f64 / (per_worker * secs)).ceil() as u64).max(1))
}

impl Admin {
    /// The drain rate, time to empty and (with `deadline`) workers needed of `queue` (its own
    /// name; partitions and levels are summed). Reads the queue's sizes and counters, its drain
    /// samples and the worker registry: 3 round trips, whatever the queue's size. The rate is
    /// that of entries leaving the queue's streams, so a task retried twice counts three
    /// times; it is measured between the oldest sample of the window and now.
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// let six = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    /// let eta = admin.eta("texts", Some(six)).await?;
    /// println!("{} left, {:?} s to go, {:?} workers needed", eta.remaining, eta.eta_secs, eta.workers_needed);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad queue name, [`Error::Redis`].
    pub async fn eta(&self, queue: &str, deadline: Option<SystemTime>) -> Result<QueueEta> {
        keys::validate_queue_name(queue).map_err(Error::Config)?;
        let overview = self.overview(&[queue.to_owned()]).await?;
        let total = overview
            .into_iter()
            .next()
            .map(|o| o.total)
            .unwrap_or_default();
        let workers = self.workers().await?;
        self.eta_of(&total, &workers, deadline).await
    }

    /// [`eta`](Self::eta) of a queue whose sample (sizes and counters, every partition and
    /// level) and the worker registry were read already: one round trip (its drain samples).
    pub(crate) async fn eta_of(
        &self,
        total: &QueueSample,
        workers: &[WorkerInfo],
        deadline: Option<SystemTime>,
    ) -> Result<QueueEta> {
        let queue = total.stats.queue.as_str();
        let s = &total.stats;
        let remaining = s.backlog + s.pending + s.delayed;
        let (mut points, now) = self.drain_points(queue).await?;
        if let Some(removed) = total.info.as_ref().and_then(|i| i.entries_removed) {
            points.push((now, removed));
        }
        let (rate, window) = drain_rate(&points);
        let workers = workers
            .iter()
            .filter(|w| w.live && w.queues.iter().any(|q| keys::base_queue(q) == queue))
            .count() as u64;
        let per_worker = rate.filter(|_| workers > 0).map(|r| r / workers as f64);
        let eta_secs = match rate {
            _ if remaining == 0 => Some(0.0),
            Some(r) if r > 0.0 => Some(remaining as f64 / r),
            _ => None,
        };
        let workers_needed = deadline.and_then(|d| {
            let left = d
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            match per_worker {
                _ if remaining == 0 => Some(0),
                Some(p) => workers_needed(remaining, p, left),
                None => None,
            }
        });
        Ok(QueueEta {
            queue: queue.to_owned(),
            remaining,
            rate_per_sec: rate,
            window,
            workers,
            per_worker_per_sec: per_worker,
            eta_secs,
            workers_needed,
        })
    }

    /// The drain samples of `queue`, `(unix ms, entries removed)` per bucket, and the
    /// server's time (unix ms). Samples that do not parse, or lie ahead of the server's time
    /// (written by hand, or by something with another clock), are left out.
    async fn drain_points(&self, queue: &str) -> Result<(Vec<(u64, u64)>, u64)> {
        let (fields, (secs, micros)): (Vec<(String, String)>, (u64, u64)) = redis::pipe()
            .cmd("HGETALL")
            .arg(self.keys(queue).drain)
            .cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGETALL drain"))?;
        let now = secs * 1000 + micros / 1000;
        let points = fields
            .iter()
            .filter_map(|(_, v)| {
                let (ms, removed) = v.split_once(' ')?;
                Some((ms.parse().ok()?, removed.parse().ok()?))
            })
            .filter(|(ms, _)| *ms <= now)
            .collect();
        Ok((points, now))
    }
}

/// Records one drain sample of a queue, `removed` entries at the server's time, into its
/// bucket if the bucket has none yet, pruning buckets older than [`DRAIN_BUCKETS`]: one script
/// call (`lua/drain.lua`).
pub(crate) async fn record_drain(
    conn: &crate::redis::conn::Conn,
    key: &str,
    removed: u64,
) -> Result<()> {
    let _: u64 = crate::redis::scripts::DRAIN
        .key(key)
        .arg(removed)
        .arg(DRAIN_BUCKET.as_millis() as u64)
        .arg(DRAIN_BUCKETS)
        .invoke_async(&mut conn.clone())
        .await
        .map_err(Error::redis("drain sample"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_spans_the_window_and_refuses_what_it_cannot_know() {
        assert_eq!(drain_rate(&[]).0, None);
        assert_eq!(drain_rate(&[(1_000, 5)]).0, None, "one point");
        assert_eq!(drain_rate(&[(1_000, 5), (1_500, 50)]).0, None, "under 1 s");
        let (rate, window) = drain_rate(&[(0, 0), (10_000, 1_000), (20_000, 3_000)]);
        assert_eq!((rate, window), (Some(150.0), Duration::from_secs(20)));
        // Points older than the window are left out.
        let late = 400_000;
        let (rate, _) = drain_rate(&[(0, 0), (late - 100_000, 0), (late, 10_000)]);
        assert_eq!(rate, Some(100.0));
        assert_eq!(
            drain_rate(&[(0, 10), (5_000, 2)]).0,
            None,
            "a counter reset"
        );
    }

    #[test]
    fn workers_needed_rounds_up_and_is_never_zero_while_tasks_remain() {
        let hour = Duration::from_secs(3600);
        assert_eq!(workers_needed(0, 1.0, hour), Some(0));
        assert_eq!(workers_needed(1, 100.0, hour), Some(1));
        assert_eq!(workers_needed(720_000, 100.0, hour), Some(2));
        assert_eq!(workers_needed(720_001, 100.0, hour), Some(3));
        assert_eq!(
            workers_needed(5, 1.0, Duration::ZERO),
            None,
            "deadline past"
        );
        assert_eq!(workers_needed(5, 0.0, hour), None, "nothing drains");
    }
}
