//! The JSON the web API answers with: a queue's sizes and rates, a task row (short in lists,
//! complete in the task view). The names are the CLI's `--json` names where both show a thing.

use std::collections::HashMap;

use mq_core::admin::{payload_to_json, QueueSample, StreamInfo, TaskRow};
use serde_json::{json, Value};

/// How much of a payload a list row shows.
const PREVIEW_CHARS: usize = 160;

/// One queue, partition or level: sizes, and rates over `secs` since `prev` (by name).
pub(crate) fn sample(s: &QueueSample, prev: &HashMap<String, StreamInfo>, secs: f64) -> Value {
    let st = &s.stats;
    let before = prev.get(&st.queue);
    let rate = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(x), Some(y)) if y >= x && secs > 0.0 => Some((y - x) as f64 / secs),
        _ => None,
    };
    let (enq, done) = match (before, &s.info) {
        (Some(a), Some(b)) => (
            rate(a.entries_added, b.entries_added),
            rate(a.entries_removed, b.entries_removed),
        ),
        _ => (None, None),
    };
    json!({
        "queue": st.queue,
        "length": st.length,
        "backlog": st.backlog,
        "pending": st.pending,
        "delayed": st.delayed,
        "dead": st.dead,
        "consumers": st.consumers,
        "paused": st.paused,
        "enqueued_per_sec": enq,
        "done_per_sec": done,
    })
}

/// A task row; `full` adds the whole payload (decoded from MessagePack) and every field of a
/// dead letter, a list row has a short preview instead.
pub(crate) fn row(r: &TaskRow, full: bool) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("stream".into(), r.stream.clone().into());
    obj.insert("entry_id".into(), r.entry_id.clone().into());
    obj.insert("due_ms".into(), r.due_ms.into());
    obj.insert("consumer".into(), r.consumer.clone().into());
    obj.insert("idle_ms".into(), r.idle_ms.into());
    obj.insert("deliveries".into(), r.deliveries.into());
    match &r.task {
        Ok(t) => {
            obj.insert("task_id".into(), t.id.clone().into());
            obj.insert("name".into(), t.name.clone().into());
            obj.insert("attempt".into(), t.attempt.into());
            obj.insert("enqueued_at_ms".into(), t.enqueued_at.into());
            obj.insert("error".into(), t.error.clone().into());
            obj.insert("unique".into(), t.unique.clone().into());
            obj.insert("tracked".into(), t.track.is_some().into());
            let payload = payload_to_json(&t.payload);
            if full {
                obj.insert("payload".into(), payload);
                obj.insert("payload_bytes".into(), t.payload.len().into());
            } else {
                obj.insert("payload_preview".into(), preview(&payload).into());
            }
        }
        Err(problem) => {
            obj.insert("problem".into(), problem.clone().into());
        }
    }
    if let Some(d) = &r.dead {
        // A dead letter's own accessors read both wire versions and the raw entries of
        // undecodable members: they win over the envelope.
        obj.remove("problem");
        obj.insert("reason".into(), d.error().into());
        obj.insert("failed_at_ms".into(), d.failed_at().into());
        obj.insert("worker".into(), d.worker().into());
        obj.insert("task_id".into(), d.task_id().into());
        obj.insert("name".into(), d.name().into());
        obj.insert("attempt".into(), d.attempts().into());
        obj.insert("enqueued_at_ms".into(), d.enqueued_at().into());
        match d.payload_json() {
            Some(payload) if full => {
                obj.insert(
                    "payload_bytes".into(),
                    d.payload().map_or(0, <[u8]>::len).into(),
                );
                obj.insert("payload".into(), payload);
            }
            Some(payload) => {
                obj.insert("payload_preview".into(), preview(&payload).into());
            }
            None => {
                obj.insert("problem".into(), "not a task: no payload".into());
            }
        }
        if full {
            obj.insert("dead".into(), crate::dead::to_json(d));
        }
    }
    obj.into()
}

/// The first [`PREVIEW_CHARS`] characters of `payload` as compact JSON.
fn preview(payload: &Value) -> String {
    let text = payload.to_string();
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_cut_on_a_character() {
        let long = Value::String("é".repeat(400));
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
