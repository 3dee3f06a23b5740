//! The workers registered in `{prefix}:workers` and their heartbeats ([`Admin::workers`],
//! [`WorkerInfo`]).

use redis::Value;

use super::client::Admin;
use crate::{
    error::{Error, Result},
    redis::keys,
};

/// A worker registered in `{prefix}:workers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its consumer name.
    pub consumer: String,
    /// Whether its heartbeat key `{prefix}:worker:{consumer}` exists. A registered worker
    /// without one died without unregistering (e.g. SIGKILL).
    pub live: bool,
    /// The queues it handles.
    pub queues: Vec<String>,
    /// Its global in-flight limit.
    pub concurrency: Option<u64>,
    /// When it started, unix ms.
    pub started_at: Option<u64>,
    /// When it last wrote its heartbeat, unix ms (the heartbeat key's value).
    pub last_beat: Option<u64>,
    /// Milliseconds until its heartbeat key expires.
    pub heartbeat_ttl_ms: Option<u64>,
    /// The registration as stored (`queues=a,b concurrency=64 started_at=...`).
    pub description: String,
}

impl WorkerInfo {
    /// Parses a registration value (`key=value` pairs separated by spaces; unknown keys are
    /// kept in [`description`](Self::description) only).
    pub fn parse(consumer: &str, description: &str) -> Self {
        let mut info = WorkerInfo {
            consumer: consumer.to_owned(),
            live: false,
            queues: Vec::new(),
            concurrency: None,
            started_at: None,
            last_beat: None,
            heartbeat_ttl_ms: None,
            description: description.to_owned(),
        };
        for part in description.split_whitespace() {
            match part.split_once('=') {
                Some(("queues", v)) => {
                    info.queues = v
                        .split(',')
                        .filter(|q| !q.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                Some(("concurrency", v)) => info.concurrency = v.parse().ok(),
                Some(("started_at", v)) => info.started_at = v.parse().ok(),
                _ => {}
            }
        }
        info
    }
}

impl Admin {
    /// Every worker registered in `{prefix}:workers`, sorted by consumer name, each with
    /// [`live`](WorkerInfo::live) telling whether its heartbeat key still exists. Two round
    /// trips.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut conn = self.conn.clone();
        let registered: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(keys::workers_key(&self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("HGETALL"))?;
        let mut workers: Vec<WorkerInfo> = registered
            .iter()
            .map(|(consumer, desc)| WorkerInfo::parse(consumer, desc))
            .collect();
        workers.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        if workers.is_empty() {
            return Ok(workers);
        }
        let mut cmds = Vec::new();
        for w in &workers {
            let key = keys::worker_key(&self.prefix, &w.consumer);
            cmds.push(redis::cmd("GET").arg(&key).clone());
            cmds.push(redis::cmd("PTTL").arg(&key).clone());
        }
        let replies = self
            .conn
            .query_all(cmds)
            .await
            .map_err(Error::redis("heartbeats"))?;
        let beats: Vec<(Option<String>, i64)> =
            redis::FromRedisValue::from_redis_value(Value::Array(replies))
                .map_err(|e| Error::redis("heartbeats")(e.into()))?;
        for (w, (beat, ttl)) in workers.iter_mut().zip(beats) {
            // PTTL: -2 no key, -1 no expiry.
            w.live = ttl != -2;
            w.heartbeat_ttl_ms = u64::try_from(ttl).ok();
            w.last_beat = beat.and_then(|b| b.parse().ok());
        }
        Ok(workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_registration_is_parsed() {
        let w = WorkerInfo::parse(
            "host-1-ab",
            "queues=images,texts concurrency=64 started_at=1764000000123 extra=1",
        );
        assert_eq!(w.consumer, "host-1-ab");
        assert_eq!(w.queues, ["images", "texts"]);
        assert_eq!(w.concurrency, Some(64));
        assert_eq!(w.started_at, Some(1_764_000_000_123));
        assert!(!w.live);
        let w = WorkerInfo::parse("c", "garbage");
        assert!(w.queues.is_empty());
        assert_eq!(w.concurrency, None);
    }
}
