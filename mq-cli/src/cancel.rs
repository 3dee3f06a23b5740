//! `mq cancel`: cancels a task by id (`Admin::cancel`).

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
