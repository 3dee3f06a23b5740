//! Samples the queue gauges (depth, pending, delayed, dead-letter size, duplicates refused, ETA
//! and workers needed) and the number of live workers from Redis every [`SAMPLE_INTERVAL`],
//! off the task path, and records each queue's drain sample (see [`Admin::eta`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::{
    admin::Admin,
    error::{Error, Result},
    metrics::SAMPLE_INTERVAL,
    redis::keys,
};

pub(super) async fn run(
    shared: Arc<Shared>,
    queues: Vec<Arc<QueueState>>,
    stop: CancellationToken,
) {
    let c = &shared.config;
    let mut admin = None;
    loop {
        if admin.is_none() {
            match Admin::with_endpoint(&shared.endpoint, &c.prefix, &c.group).await {
                Ok(a) => admin = Some(a),
                Err(e) => tracing::debug!(error = %e, "metrics sampler cannot connect yet"),
            }
        }
        if let Some(admin) = &admin {
            if let Err(e) = sample(&shared, admin, &queues).await {
                shared.metrics.redis_error("sample");
                tracing::debug!(error = %e, "sampling queue metrics failed");
            }
        }
        if !sleep_or_cancel(SAMPLE_INTERVAL, &stop).await {
            return;
        }
    }
}

async fn sample(shared: &Shared, admin: &Admin, queues: &[Arc<QueueState>]) -> Result<()> {
    let m = &shared.metrics;
    // The partitions and levels of a queue share its name: one aggregate sample per queue,
    // all queues read in one transaction of plain reads (`Admin::overview`), the counters of
    // refused duplicates (`mq:{q}:duplicates`, summed over partitions) among them.
    let mut names: Vec<String> = queues.iter().map(|q| q.queue.to_string()).collect();
    names.sort();
    names.dedup();
    let overview = admin.overview(&names).await?;
    let registry = admin.workers().await?;
    let deadline = shared.config.eta_deadline_utc_minutes.map(next_utc_time);
    for o in overview {
        // The drain sample `Admin::eta` measures the rate from (one write per bucket).
        if let Some(removed) = o.total.info.as_ref().and_then(|i| i.entries_removed) {
            let key = keys::QueueKeys::new(&shared.config.prefix, &o.total.stats.queue).drain;
            if let Err(e) = crate::admin::record_drain(&shared.data, &key, removed).await {
                tracing::debug!(queue = %o.total.stats.queue, error = %e, "cannot record a drain sample");
            }
        }
        let s = &o.total.stats;
        let label = [s.queue.as_str()];
        m.depth.with_label_values(&label).set(s.backlog as i64);
        m.pending.with_label_values(&label).set(s.pending as i64);
        m.delayed.with_label_values(&label).set(s.delayed as i64);
        m.dead_letters.with_label_values(&label).set(s.dead as i64);
        m.duplicates_refused
            .with_label_values(&label)
            .set(i64::try_from(o.duplicates).unwrap_or(i64::MAX));
        // The ETA gauges, from the drain samples just recorded (one more round trip).
        match admin.eta_of(&o.total, &registry, deadline).await {
            Ok(eta) => {
                match eta.eta_secs {
                    Some(secs) => m.eta_seconds.with_label_values(&label).set(secs),
                    None => drop(m.eta_seconds.remove_label_values(&label)),
                }
                match eta.workers_needed {
                    Some(n) => m
                        .workers_needed
                        .with_label_values(&label)
                        .set(i64::try_from(n).unwrap_or(i64::MAX)),
                    None => drop(m.workers_needed.remove_label_values(&label)),
                }
            }
            Err(e) => tracing::debug!(queue = %s.queue, error = %e, "cannot compute the ETA"),
        }
    }
    m.workers.set(live_workers(shared).await? as i64);
    Ok(())
}

/// The next time that is `minutes` after midnight UTC (later today, or tomorrow).
fn next_utc_time(minutes: u16) -> std::time::SystemTime {
    let day = 24 * 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = now - now % day + u64::from(minutes) * 60;
    let at = if at <= now { at + day } else { at };
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)
}

/// Workers in the registry whose heartbeat key still exists.
async fn live_workers(shared: &Shared) -> Result<usize> {
    let prefix = &shared.config.prefix;
    let mut conn = shared.data.clone();
    let names: Vec<String> = redis::cmd("HKEYS")
        .arg(keys::workers_key(prefix))
        .query_async(&mut conn)
        .await
        .map_err(Error::redis("HKEYS"))?;
    if names.is_empty() {
        return Ok(0);
    }
    let cmds = names
        .iter()
        .map(|n| {
            redis::cmd("EXISTS")
                .arg(keys::worker_key(prefix, n))
                .clone()
        })
        .collect();
    let alive = conn.query_all(cmds).await.map_err(Error::redis("EXISTS"))?;
    let alive: Vec<bool> = redis::FromRedisValue::from_redis_value(redis::Value::Array(alive))
        .map_err(|e| Error::redis("EXISTS")(e.into()))?;
    // Forget workers whose heartbeat expired (SIGKILLed, lost): a live one that was only cut
    // off from Redis puts itself back with its next heartbeat.
    let dead: Vec<&String> = names
        .iter()
        .zip(&alive)
        .filter(|(_, a)| !**a)
        .map(|(n, _)| n)
        .collect();
    if !dead.is_empty() {
        let r: redis::RedisResult<()> = redis::cmd("HDEL")
            .arg(keys::workers_key(prefix))
            .arg(&dead)
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            crate::redis::transient::reconnect_if_readonly(&conn, &e).await;
            return Err(Error::redis("HDEL")(e));
        }
    }
    Ok(alive.into_iter().filter(|a| *a).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_utc_time_is_within_a_day_at_that_minute() {
        let now = std::time::SystemTime::now();
        for minutes in [0, 359, 1439] {
            let at = next_utc_time(minutes);
            let ahead = at.duration_since(now).expect("ahead of now");
            assert!(ahead <= std::time::Duration::from_secs(24 * 3600));
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after the epoch")
                .as_secs();
            assert_eq!(secs % (24 * 3600), u64::from(minutes) * 60);
        }
    }
}
