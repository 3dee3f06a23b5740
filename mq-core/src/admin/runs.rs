//! Runs as operators see them ([`Admin::run`], [`Admin::runs`], [`RunInfo`]): a run's
//! counters, its drain rate over a sliding window of the server's time, and when it will end
//! at that rate. The counters and samples are written by the run's tasks' own scripts (see
//! `redis/lua/run.lua`); reading a run is one round trip, whatever its size.

use std::{collections::HashMap, time::Duration};

use super::client::Admin;
use crate::{
    error::{Error, Result},
    redis::keys,
};

/// The width of a run's drain bucket (`b<i>` fields of its hash): 10 s.
pub const RUN_BUCKET: Duration = Duration::from_secs(10);

/// Buckets a run keeps: 30, so its rate's window is up to 5 minutes.
pub const RUN_BUCKETS: u64 = 30;

/// The most runs [`Admin::runs`] lists: the newest 1,000.
pub const MAX_RUNS_LISTED: usize = 1_000;

/// One run's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// The run's name.
    pub name: String,
    /// The key of its hash (`{prefix}:run:<n>`).
    pub key: String,
    /// When it was opened (server unix ms).
    pub created_ms: u64,
    /// Tasks counted in it.
    pub total: u64,
    /// Tasks that succeeded.
    pub done: u64,
    /// Tasks dead-lettered or cancelled (a replayed one is taken off again).
    pub dead: u64,
    /// Failed attempts that were retried (one task may count several times).
    pub failed: u64,
    /// Tasks counted that have not ended: queued, running or waiting for a retry.
    pub remaining: u64,
    /// When it was sealed (server unix ms): no task is to be added.
    pub sealed_ms: Option<u64>,
    /// When it ended (server unix ms): sealed, and every task ended; its completion task was
    /// enqueued then.
    pub ended_ms: Option<u64>,
    /// Tasks that ended per second over the window; `None` with less than a second of window.
    pub rate_per_sec: Option<f64>,
    /// The window of the rate: from the oldest bucket kept (or the run's start) to now (or
    /// the run's end).
    pub window: Duration,
    /// Seconds until every task counted so far has ended at that rate: `Some(0.0)` once none
    /// remain, `None` when some remain and nothing ends.
    pub eta_secs: Option<f64>,
}

impl RunInfo {
    /// Reads a run's hash (its fields and values) at server time `now_ms`.
    fn from_hash(key: String, h: &HashMap<String, String>, now_ms: u64) -> RunInfo {
        let num = |f: &str| h.get(f).and_then(|v| v.parse::<u64>().ok());
        let (total, done, dead) = (
            num("total").unwrap_or(0),
            num("done").unwrap_or(0),
            num("dead").unwrap_or(0),
        );
        let created_ms = num("created").unwrap_or(0);
        let ended_ms = num("ended");
        let end = ended_ms.unwrap_or(now_ms).min(now_ms);
        let width = RUN_BUCKET.as_millis() as u64;
        let last = end / width;
        // Buckets within the window, ahead of the server's clock left out.
        let samples: Vec<(u64, u64)> = (0..RUN_BUCKETS)
            .filter_map(|i| {
                let (b, n) = h.get(&format!("b{i}"))?.split_once(' ')?;
                Some((b.parse::<u64>().ok()?, n.parse::<u64>().ok()?))
            })
            .filter(|&(b, _)| b <= last && b + RUN_BUCKETS > last)
            .collect();
        let (rate, window) = match samples.iter().map(|s| s.0).min() {
            None => (None, Duration::ZERO),
            Some(first) => {
                let from = (first * width).max(created_ms).min(end);
                let window = Duration::from_millis(end - from);
                let ended: u64 = samples.iter().map(|s| s.1).sum();
                let rate =
                    (window >= Duration::from_secs(1)).then(|| ended as f64 / window.as_secs_f64());
                (rate, window)
            }
        };
        let remaining = total.saturating_sub(done + dead);
        let eta_secs = match rate {
            _ if remaining == 0 => Some(0.0),
            Some(r) if r > 0.0 => Some(remaining as f64 / r),
            _ => None,
        };
        RunInfo {
            name: h.get("name").cloned().unwrap_or_default(),
            key,
            created_ms,
            total,
            done,
            dead,
            failed: num("failed").unwrap_or(0),
            remaining,
            sealed_ms: num("sealed"),
            ended_ms,
            rate_per_sec: rate,
            window,
            eta_secs,
        }
    }
}

/// The fields of a run's hash that [`RunInfo`] reads (not the completion task's `f:*`).
fn run_fields() -> Vec<String> {
    [
        "name", "created", "total", "done", "dead", "failed", "sealed", "ended",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain((0..RUN_BUCKETS).map(|i| format!("b{i}")))
    .collect()
}

/// `HMGET` of [`run_fields`] of the run `key`.
fn hmget(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("HMGET").arg(key).arg(run_fields());
}

/// The reply of [`hmget`] as a map of the fields present (and valid UTF-8).
fn fields_of(reply: Vec<Option<Vec<u8>>>) -> HashMap<String, String> {
    run_fields()
        .into_iter()
        .zip(reply)
        .filter_map(|(f, v)| Some((f, String::from_utf8(v?).ok()?)))
        .collect()
}

impl Admin {
    /// The run `name`'s progress, or `None` if there is no such run (or it expired, a week
    /// after it ended). One round trip.
    ///
    /// ```no_run
    /// # async fn demo() -> mq_core::Result<()> {
    /// let admin = mq_core::Admin::connect("redis://127.0.0.1/").await?;
    /// if let Some(run) = admin.run("products-2026-12-06").await? {
    ///     println!("{} of {} done, {} dead, ends in {:?} s", run.done, run.total, run.dead, run.eta_secs);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn run(&self, name: &str) -> Result<Option<RunInfo>> {
        let (n, now): (Option<String>, (u64, u64)) = redis::pipe()
            .cmd("HGET")
            .arg(keys::runs_key(&self.prefix))
            .arg(name)
            .cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGET runs"))?;
        let Some(n) = n else {
            return Ok(None);
        };
        let key = format!("{}{n}", keys::run_key_prefix(&self.prefix));
        let mut pipe = redis::pipe();
        hmget(&mut pipe, &key);
        let (reply,): (Vec<Option<Vec<u8>>>,) = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HMGET run"))?;
        let h = fields_of(reply);
        if !h.contains_key("total") {
            return Ok(None);
        }
        Ok(Some(RunInfo::from_hash(
            key,
            &h,
            now.0 * 1000 + now.1 / 1000,
        )))
    }

    /// Every run (the newest [`MAX_RUNS_LISTED`]), newest first. Two round trips.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn runs(&self) -> Result<Vec<RunInfo>> {
        let index: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::runs_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGETALL runs"))?;
        let mut numbers: Vec<u64> = index.values().filter_map(|n| n.parse().ok()).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        numbers.truncate(MAX_RUNS_LISTED);
        let prefix = keys::run_key_prefix(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for n in &numbers {
            hmget(&mut pipe, &format!("{prefix}{n}"));
        }
        let mut replies: Vec<redis::Value> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HMGET run"))?;
        if replies.is_empty() {
            return Ok(Vec::new());
        }
        let parse = |e: redis::ParsingError| Error::redis("HMGET run")(e.into());
        let (secs, micros): (u64, u64) =
            redis::FromRedisValue::from_redis_value(replies.remove(0)).map_err(parse)?;
        let now = secs * 1000 + micros / 1000;
        let mut out = Vec::new();
        for (n, reply) in numbers.iter().zip(replies) {
            let h = fields_of(redis::FromRedisValue::from_redis_value(reply).map_err(parse)?);
            if h.contains_key("total") {
                out.push(RunInfo::from_hash(format!("{prefix}{n}"), &h, now));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_rate_counts_the_buckets_of_the_window_only() {
        // Now: 1,000,000 s. Buckets 99,998 and 99,999 (the last 20 s) hold 100 and 50 ends;
        // bucket 99,000 is far older than the window, bucket 100,001 ahead of the clock.
        let now = 1_000_000_000;
        let h = hash(&[
            ("name", "r"),
            ("created", "1"),
            ("total", "1000"),
            ("done", "140"),
            ("dead", "10"),
            ("b8", "99998 100"),
            ("b9", "99999 50"),
            ("b0", "99000 7000"),
            ("b1", "100001 9000"),
        ]);
        let r = RunInfo::from_hash("mq:run:1".into(), &h, now);
        assert_eq!(r.window, Duration::from_secs(20));
        assert_eq!(r.rate_per_sec, Some(7.5));
        assert_eq!(r.remaining, 850);
        assert_eq!(r.eta_secs, Some(850.0 / 7.5));
        assert_eq!((r.sealed_ms, r.ended_ms), (None, None));
    }

    #[test]
    fn a_run_with_nothing_left_has_an_eta_of_zero_and_one_with_no_ends_none() {
        let done = hash(&[("total", "2"), ("done", "1"), ("dead", "1"), ("ended", "5")]);
        assert_eq!(
            RunInfo::from_hash("k".into(), &done, 10).eta_secs,
            Some(0.0)
        );
        let stuck = hash(&[("total", "2"), ("done", "0")]);
        let r = RunInfo::from_hash("k".into(), &stuck, 10_000_000);
        assert_eq!((r.rate_per_sec, r.eta_secs), (None, None));
    }
}
