//! Operations on queues for operators, the CLI and tests: queue statistics and the dead-letter
//! stream (list, show with the payload as JSON, replay, purge).

use redis::{aio::ConnectionManager, Value};

use crate::{
    error::{Error, Result},
    redis::{conn, keys, keys::QueueKeys, scripts},
};

/// Dead entries replayed per script call by [`Admin::replay_all`]: 500.
const REPLAY_BATCH: usize = 500;

/// Administrative access to mq's queues.
#[derive(Clone)]
pub struct Admin {
    conn: ConnectionManager,
    prefix: String,
    group: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

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
}

/// One dead-lettered task.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadTask {
    /// Its id in the dead stream (use it to show or replay).
    pub dead_id: String,
    /// All fields of the dead entry, in order.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl DeadTask {
    /// The value of a field as text (lossy UTF-8), if present.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The raw MessagePack payload, if the entry had one.
    pub fn payload(&self) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| &v[..])
    }

    /// The payload decoded to JSON for display (`None` without a payload; an error string
    /// value if it is not valid MessagePack).
    pub fn payload_json(&self) -> Option<serde_json::Value> {
        self.payload().map(payload_to_json)
    }
}

/// Decodes a MessagePack payload into JSON for display; invalid bytes give a JSON string that
/// says so.
pub fn payload_to_json(payload: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(payload).unwrap_or_else(|e| {
        serde_json::Value::String(format!(
            "<undecodable MessagePack ({} bytes): {e}>",
            payload.len()
        ))
    })
}

impl Admin {
    /// Connects with the default prefix and group (`mq`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL, [`Error::Redis`] if Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, keys::DEFAULT_PREFIX, keys::DEFAULT_GROUP).await
    }

    /// Connects with a prefix and group of your own.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, prefix: &str, group: &str) -> Result<Self> {
        let client = conn::client(url)?;
        Ok(Self {
            conn: conn::managed(&client, conn::COMMAND_TIMEOUT).await?,
            prefix: prefix.to_owned(),
            group: group.to_owned(),
        })
    }

    fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// Names of the queues that have a stream, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn queues(&self) -> Result<Vec<String>> {
        let pattern = format!("{}:{{*}}:stream", self.prefix);
        let mut conn = self.conn.clone();
        let mut names = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("stream")
                .query_async(&mut conn)
                .await
                .map_err(Error::redis("SCAN"))?;
            for k in keys {
                let start = self.prefix.len() + 2;
                if let Some(q) = k.get(start..k.len().saturating_sub(8)) {
                    names.push(q.to_owned());
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Sizes of `queue`, in one pipelined round trip.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.keys(queue);
        let (length, delayed, dead, groups): (u64, u64, u64, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(&k.stream)
            .cmd("ZCARD")
            .arg(&k.delayed)
            .cmd("XLEN")
            .arg(&k.dead)
            .cmd("EVAL")
            .arg("if redis.call('EXISTS', KEYS[1]) == 0 then return {} end return redis.call('XINFO', 'GROUPS', KEYS[1])")
            .arg(1)
            .arg(&k.stream)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("stats"))?;
        let (mut pending, mut consumers) = (0, 0);
        if let Value::Array(groups) = groups {
            for g in groups {
                let info = flat_map(g);
                if info.iter().any(|(k, v)| {
                    k == "name" && matches!(v, Value::BulkString(b) if *b == self.group.as_bytes())
                }) {
                    for (k, v) in info {
                        match (k.as_str(), v) {
                            ("pending", Value::Int(n)) => pending = n.max(0) as u64,
                            ("consumers", Value::Int(n)) => consumers = n.max(0) as u64,
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(QueueStats {
            queue: queue.to_owned(),
            length,
            pending,
            backlog: length.saturating_sub(pending),
            delayed,
            dead,
            consumers,
        })
    }

    /// Up to `count` dead tasks of `queue`, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_list(&self, queue: &str, count: usize) -> Result<Vec<DeadTask>> {
        self.dead_range(queue, "-", "+", count).await
    }

    /// One dead task by its dead-stream id.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_show(&self, queue: &str, dead_id: &str) -> Result<Option<DeadTask>> {
        Ok(self.dead_range(queue, dead_id, dead_id, 1).await?.pop())
    }

    async fn dead_range(
        &self,
        queue: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadTask>> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(self.keys(queue).dead)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XRANGE"))?;
        Ok(crate::worker::parse_entries(reply)
            .into_iter()
            .map(|(dead_id, fields)| DeadTask {
                dead_id,
                fields: flat_map(Value::Array(fields))
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::BulkString(b) => (k, b),
                        other => (k, format!("{other:?}").into_bytes()),
                    })
                    .collect(),
            })
            .collect())
    }

    /// Moves the given dead tasks back to the work stream with attempt 0 (atomically per
    /// call); returns how many were found and replayed.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn replay(&self, queue: &str, dead_ids: &[String]) -> Result<usize> {
        if dead_ids.is_empty() {
            return Ok(0);
        }
        let k = self.keys(queue);
        scripts::REPLAY
            .key(&k.dead)
            .key(&k.stream)
            .arg(dead_ids)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("replay"))
    }

    /// Replays every dead task of `queue`; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; tasks replayed before the error stay replayed.
    pub async fn replay_all(&self, queue: &str) -> Result<usize> {
        let mut total = 0;
        loop {
            let batch = self.dead_list(queue, REPLAY_BATCH).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            let ids: Vec<String> = batch.into_iter().map(|d| d.dead_id).collect();
            total += self.replay(queue, &ids).await?;
        }
    }

    /// Deletes every dead task of `queue`; returns how many there were.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        let k = self.keys(queue);
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .cmd("XLEN")
            .arg(&k.dead)
            .cmd("DEL")
            .arg(&k.dead)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("purge"))?;
        Ok(n)
    }
}

/// `[k1, v1, k2, v2, ...]` (or a RESP3 map) as (key, value) pairs with string keys.
fn flat_map(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match k {
                    Value::BulkString(k) => out.push((String::from_utf8_lossy(&k).into_owned(), v)),
                    Value::SimpleString(k) => out.push((k, v)),
                    _ => {}
                }
            }
            out
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(&k).into_owned(), v)),
                Value::SimpleString(k) => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
