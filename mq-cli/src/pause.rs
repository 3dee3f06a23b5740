//! `mq pause` and `mq resume`: the pause flag of a queue (`Admin::pause`, `Admin::resume`).

use serde_json::json;

use crate::{error::CliError, output, Ctx};

/// Pauses (`pause = true`) or resumes `queue`, which must exist: a typo pauses nothing.
pub(crate) async fn run(ctx: &Ctx, queue: &str, pause: bool) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, queue).await?;
    if pause {
        admin.pause(queue).await?;
    } else {
        admin.resume(queue).await?;
    }
    if ctx.json {
        output::print_json(&json!({ "queue": queue, "paused": pause }))
    } else {
        let verb = if pause { "paused" } else { "resumed" };
        output::print(&format!("{verb} queue {queue:?}\n"))
    }
}
