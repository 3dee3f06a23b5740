//! `mq cancel`: cancels a task by id (`Admin::cancel`); `mq status`: what is known of a task by
//! id (`Admin::status`, `Admin::result`, `Admin::progress`).

use mq_core::{CancelOutcome, TaskStatus};
use serde_json::json;

use crate::{error::CliError, output, Ctx};

/// Cancels task `id` of `queue` and prints what happened: `queued`, `delayed`, `running`
/// (with the worker) or `not_found`. Exit status 0 in every case: an unknown or finished id is
/// an answer, not an error.
pub(crate) async fn run(ctx: &Ctx, queue: &str, id: &str) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let outcome = admin.cancel(queue, id).await?;
    if ctx.json {
        let (state, consumer) = match &outcome {
            CancelOutcome::Queued => ("queued", None),
            CancelOutcome::Delayed => ("delayed", None),
            CancelOutcome::Running { consumer } => ("running", Some(consumer.as_str())),
            CancelOutcome::NotFound => ("not_found", None),
        };
        output::print_json(&json!({
            "queue": queue,
            "id": id,
            "outcome": state,
            "consumer": consumer,
        }))
    } else {
        output::print(&format!("{id}: {outcome}\n"))
    }
}

/// Prints the status of task `id` of `queue` (tracked task types), its result if it has one,
/// and the progress it last reported, or that none is recorded.
pub(crate) async fn status(ctx: &Ctx, queue: &str, id: &str) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let status = admin.status(queue, id).await?;
    let result = admin.result(queue, id).await?;
    let progress = admin.progress(queue, id).await?;
    if ctx.json {
        output::print_json(&json!({
            "queue": queue,
            "id": id,
            "status": status_json(&status),
            "result": result,
            "progress": progress,
        }))
    } else {
        let mut text = format!("{id}: {status}\n");
        if let Some(r) = result {
            text.push_str(&format!("{id}: result {r}\n"));
        }
        match progress {
            Some(p) => text.push_str(&format!("{id}: progress {p}\n")),
            None => text.push_str(&format!(
                "{id}: no progress recorded (none reported yet, or expired)\n"
            )),
        }
        output::print(&text)
    }
}

/// A status as JSON: `{"state": ..., details}`.
pub(crate) fn status_json(status: &TaskStatus) -> serde_json::Value {
    match status {
        TaskStatus::Queued => json!({ "state": "queued" }),
        TaskStatus::Scheduled { due } => json!({ "state": "scheduled", "due": due }),
        TaskStatus::Running {
            consumer,
            attempt,
            since,
        } => {
            json!({ "state": "running", "consumer": consumer, "attempt": attempt, "since": since })
        }
        TaskStatus::Retrying { due, error } => {
            json!({ "state": "retrying", "due": due, "error": error })
        }
        TaskStatus::Succeeded { finished } => json!({ "state": "succeeded", "finished": finished }),
        TaskStatus::Failed { reason } => json!({ "state": "failed", "reason": reason }),
        TaskStatus::Cancelled => json!({ "state": "cancelled" }),
        TaskStatus::Unknown => json!({ "state": "unknown" }),
    }
}
