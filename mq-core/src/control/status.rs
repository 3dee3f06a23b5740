//! Reading a tracked task: its status hash ([`TaskStatus`](super::TaskStatus)), its result,
//! waiting for it to finish, and the queue's event streams.

use super::streams::streams;
use super::types::{EventCursor, TaskEvent, TaskStatus};
use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys::QueueKeys},
};
use std::time::{Duration, Instant};

/// Cap of a queue's event stream `{prefix}:{queue}:events` (`XADD ... MAXLEN ~`): 10,000
/// events (whole macro nodes are trimmed, so it may hold a few more). The same number is
/// `MQ_EVENTS_MAXLEN` in `lua/status.lua`.
pub const EVENTS_MAXLEN: u64 = 10_000;

/// The status hash of task `id` of `queue` (in the first partition that has one), as a map;
/// empty if none.
async fn task_hash(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<std::collections::HashMap<String, String>> {
    for stream in streams(conn, prefix, queue).await? {
        let key = format!("{}{id}", QueueKeys::new(prefix, &stream).task);
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("HGETALL task"))?;
        if h.contains_key("status") {
            return Ok(h);
        }
    }
    Ok(Default::default())
}

/// The status of task `id` of `queue` (see [`TaskStatus`]).
pub(crate) async fn status(conn: &Conn, prefix: &str, queue: &str, id: &str) -> Result<TaskStatus> {
    Ok(TaskStatus::from_hash(
        &task_hash(conn, prefix, queue, id).await?,
    ))
}

fn decode_result<V: serde::de::DeserializeOwned>(
    h: &std::collections::HashMap<String, String>,
    id: &str,
) -> Result<Option<V>> {
    match h.get("result") {
        Some(json) => serde_json::from_str(json)
            .map(Some)
            .map_err(|e| Error::Decode(format!("the result of task {id}: {e}"))),
        None => Ok(None),
    }
}

/// The stored result of task `id` of `queue`, decoded as `V`.
pub(crate) async fn result<V: serde::de::DeserializeOwned>(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<Option<V>> {
    decode_result(&task_hash(conn, prefix, queue, id).await?, id)
}

/// First and last pause between two polls of [`wait`]: 10 ms, doubling up to 500 ms.
const WAIT_POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(500));

/// Polls the status of task `id` until it finished or `timeout` passed (see
/// [`Producer::wait`](crate::Producer::wait)).
pub(crate) async fn wait<V: serde::de::DeserializeOwned>(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
    timeout: Duration,
) -> Result<V> {
    let deadline = Instant::now() + timeout;
    let mut pause = WAIT_POLL.0;
    loop {
        let h = task_hash(conn, prefix, queue, id).await?;
        let status = TaskStatus::from_hash(&h);
        match status {
            TaskStatus::Succeeded { .. } => {
                // A handler returning `()` stores `null`; a missing result decodes from null too.
                return match decode_result(&h, id)? {
                    Some(v) => Ok(v),
                    None => serde_json::from_value(serde_json::Value::Null)
                        .map_err(|e| Error::Decode(format!("the result of task {id}: {e}"))),
                };
            }
            // `Unknown` is polled on: the status of a unique task starts at `running`, and that
            // of a task queued longer than its ttl is gone until it starts.
            TaskStatus::Failed { .. } | TaskStatus::Cancelled => {
                return Err(Error::TaskFailed {
                    id: id.to_owned(),
                    status,
                })
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::WaitTimeout {
                id: id.to_owned(),
                timeout,
                status,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(WAIT_POLL.1);
    }
}

/// One stream of an `XREAD` reply: its key and its entries `(id, [(field, value)])`.
type XreadStream = (String, Vec<(String, Vec<(String, String)>)>);

/// The events after `cursor` in every event stream of `queue`, at most `count` per stream,
/// oldest first per stream; `block`: with one stream, wait up to that long for one (`XREAD
/// BLOCK`), with several, read each without blocking and sleep that long when none came.
pub(crate) async fn events(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    cursor: &mut EventCursor,
    count: usize,
    block: Option<Duration>,
) -> Result<Vec<TaskEvent>> {
    if cursor.positions.is_empty() {
        cursor.positions = streams(conn, prefix, queue)
            .await?
            .iter()
            .map(|s| (QueueKeys::new(prefix, s).events, "0-0".to_owned()))
            .collect();
    }
    let single = cursor.positions.len() == 1;
    let mut out = Vec::new();
    for (key, last) in &mut cursor.positions {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let (Some(b), true) = (block, single) {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&*key).arg(&*last);
        let reply: Option<Vec<XreadStream>> = cmd
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("XREAD events"))?;
        for (_, entries) in reply.unwrap_or_default() {
            for (entry_id, fields) in entries {
                *last = entry_id.clone();
                out.push(to_event(entry_id, fields));
            }
        }
    }
    if let (Some(b), false, true) = (block, single, out.is_empty()) {
        tokio::time::sleep(b).await;
    }
    Ok(out)
}

/// An event stream entry as a [`TaskEvent`]: `id` and `event` fields by name, the rest as
/// details in their order.
fn to_event(entry_id: String, fields: Vec<(String, String)>) -> TaskEvent {
    let mut id = String::new();
    let mut event = String::new();
    let mut details = Vec::new();
    for (k, v) in fields {
        match k.as_str() {
            "id" => id = v,
            "event" => event = v,
            _ => details.push((k, v)),
        }
    }
    TaskEvent {
        entry_id,
        id,
        event,
        details,
    }
}

/// How many of a stream's newest events [`Admin::task_events`](crate::Admin::task_events) looks through.
pub const TASK_EVENTS_WINDOW: usize = 1_000;

/// The events of task `id` among the newest [`TASK_EVENTS_WINDOW`] of `stream`'s event stream
/// (one `XREVRANGE`), oldest first, and whether that window held the whole stream (`true`: these
/// are all of the task's events still kept; `false`: older ones may lie beyond the window).
pub(crate) async fn task_events(
    conn: &Conn,
    prefix: &str,
    stream: &str,
    id: &str,
) -> Result<(Vec<TaskEvent>, bool)> {
    let key = QueueKeys::new(prefix, stream).events;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(&key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(TASK_EVENTS_WINDOW)
        .query_async(&mut conn.clone())
        .await
        .map_err(Error::redis("XREVRANGE events"))?;
    let complete = entries.len() < TASK_EVENTS_WINDOW;
    let mut out: Vec<TaskEvent> = entries
        .into_iter()
        .map(|(entry_id, fields)| to_event(entry_id, fields))
        .filter(|e| e.id == id)
        .collect();
    out.reverse();
    Ok((out, complete))
}
