//! `mq events`: a queue's event stream (`Admin::events`), once or followed.

use std::time::Duration;

use mq_core::{EventCursor, TaskEvent};
use serde_json::json;

use crate::{error::CliError, output, Ctx};

/// Events read per stream per call: 1,000.
const BATCH: usize = 1_000;
/// How long one read waits for new events with `--follow`: 1 s (so each wait is bounded).
const FOLLOW_BLOCK: Duration = Duration::from_secs(1);

/// Prints every event kept for `queue`, oldest first; with `follow`, then new ones until the
/// process is interrupted. With `--json`, one JSON object per line.
pub(crate) async fn run(ctx: &Ctx, queue: &str, follow: bool) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let mut cursor = EventCursor::default();
    loop {
        let block = follow.then_some(FOLLOW_BLOCK);
        let events = admin.events(queue, &mut cursor, BATCH, block).await?;
        if !events.is_empty() {
            let text: String = events.iter().map(|e| line(ctx, e)).collect();
            output::print(&text)?;
        }
        if events.is_empty() && !follow {
            return Ok(());
        }
    }
}

fn line(ctx: &Ctx, e: &TaskEvent) -> String {
    if ctx.json {
        format!("{}\n", to_json(e))
    } else {
        let details: Vec<String> = e.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} {} {} {}\n",
            e.entry_id,
            e.id,
            e.event,
            details.join(" ")
        )
    }
}

/// An event as `mq events --json` prints it (and the web's task view shows it):
/// `{"at": entry id, "id", "event", "details": {...}}`.
pub(crate) fn to_json(e: &TaskEvent) -> serde_json::Value {
    let details: serde_json::Map<String, serde_json::Value> = e
        .details
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({ "at": e.entry_id, "id": e.id, "event": e.event, "details": details })
}
