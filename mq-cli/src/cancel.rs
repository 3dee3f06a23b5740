//! `mq cancel`: cancels a task by id (`Admin::cancel`); `mq status`: what is known of a task by
//! id (`Admin::progress`).

use mq_core::CancelOutcome;
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

/// Prints the progress task `id` of `queue` last reported, or that none is recorded.
pub(crate) async fn status(ctx: &Ctx, queue: &str, id: &str) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let progress = admin.progress(queue, id).await?;
    if ctx.json {
        output::print_json(&json!({ "queue": queue, "id": id, "progress": progress }))
    } else {
        match progress {
            Some(p) => output::print(&format!("{id}: progress {p}\n")),
            None => output::print(&format!(
                "{id}: no progress recorded (none reported yet, or expired)\n"
            )),
        }
    }
}
