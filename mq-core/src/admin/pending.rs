//! A queue's pending entries list: entries delivered to a consumer and not acked yet
//! ([`Admin::pending`], [`PendingEntry`]).

use redis::Value;

use super::client::{flat_map, Admin};
use crate::{
    envelope::{field, PackedTask},
    error::{Error, Result},
};

/// One entry of a queue's pending entries list: delivered to a consumer, not acked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The stream entry id.
    pub entry_id: String,
    /// The consumer that holds it.
    pub consumer: String,
    /// Milliseconds since it was delivered or its lease was last renewed.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The task id (`id` field), if the entry is still in the stream.
    pub task_id: Option<String>,
    /// The task name (`name` field), if the entry is still in the stream.
    pub task_name: Option<String>,
}

impl Admin {
    /// Up to `count` entries of `queue`'s pending entries list (delivered, not acked), oldest
    /// first, with the task id and name of each (`XPENDING` extended form, then one pipelined
    /// `XRANGE` per entry). Empty if the queue or its consumer group does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn pending(&self, queue: &str, count: usize) -> Result<Vec<PendingEntry>> {
        let mut all = Vec::new();
        for p in self.streams(queue).await? {
            if all.len() >= count {
                break;
            }
            all.extend(self.pending_of(&p, count - all.len()).await?);
        }
        Ok(all)
    }

    /// [`pending`](Self::pending) of one stream.
    async fn pending_of(&self, queue: &str, count: usize) -> Result<Vec<PendingEntry>> {
        let k = self.keys(queue);
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&k.stream)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut conn)
            .await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(Error::redis("XPENDING")(e)),
        };
        let Value::Array(rows) = reply else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let Value::Array(row) = row else { continue };
            let mut it = row.into_iter();
            if let (Some(id), Some(consumer), Some(Value::Int(idle)), Some(Value::Int(n))) =
                (it.next(), it.next(), it.next(), it.next())
            {
                if let (Some(entry_id), Some(consumer)) = (text(id), text(consumer)) {
                    entries.push(PendingEntry {
                        entry_id,
                        consumer,
                        idle_ms: idle.max(0) as u64,
                        deliveries: n.max(0) as u64,
                        task_id: None,
                        task_name: None,
                    });
                }
            }
        }
        if entries.is_empty() {
            return Ok(entries);
        }
        let mut pipe = redis::pipe();
        for e in &entries {
            pipe.cmd("XRANGE")
                .arg(&k.stream)
                .arg(&e.entry_id)
                .arg(&e.entry_id);
        }
        let found: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("XRANGE"))?;
        for (e, reply) in entries.iter_mut().zip(found) {
            if let Some((_, fields)) = crate::envelope::parse_entries(reply).into_iter().next() {
                for (key, v) in flat_map(Value::Array(fields)) {
                    match (key.as_str(), v) {
                        (field::TASK, Value::BulkString(t)) => {
                            if let Ok(t) = PackedTask::decode(&t) {
                                e.task_id = Some(t.id.to_owned());
                                e.task_name = Some(t.name.to_owned());
                            }
                        }
                        (field::ID, v) if e.task_id.is_none() => e.task_id = text(v),
                        (field::NAME, v) if e.task_name.is_none() => e.task_name = text(v),
                        _ => {}
                    }
                }
            }
        }
        Ok(entries)
    }
}

/// A bulk or simple string reply as text.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}
