//! `mq pending`: a queue's pending entries list (delivered, not acked).

use std::time::Duration;

use serde_json::json;

use crate::{
    cli::PendingArgs,
    error::CliError,
    output::{self, Align, Table},
    Ctx,
};

pub(crate) async fn run(ctx: &Ctx, args: PendingArgs) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, &args.queue).await?;
    let entries = admin.pending(&args.queue, args.count).await?;
    if ctx.json {
        return output::print_json(
            &entries
                .iter()
                .map(|e| {
                    json!({
                        "entry_id": e.entry_id,
                        "task_id": e.task_id,
                        "name": e.task_name,
                        "consumer": e.consumer,
                        "idle_ms": e.idle_ms,
                        "deliveries": e.deliveries,
                    })
                })
                .collect(),
        );
    }
    if entries.is_empty() {
        return output::print(&format!("no pending entries in queue {:?}\n", args.queue));
    }
    let mut table = Table::new(&[
        ("ENTRY ID", Align::Left),
        ("TASK ID", Align::Left),
        ("NAME", Align::Left),
        ("CONSUMER", Align::Left),
        ("IDLE", Align::Right),
        ("DELIVERIES", Align::Right),
    ]);
    for e in &entries {
        table.row(vec![
            e.entry_id.clone(),
            e.task_id.clone().unwrap_or_else(|| "-".into()),
            e.task_name.clone().unwrap_or_else(|| "-".into()),
            e.consumer.clone(),
            output::duration(Duration::from_millis(e.idle_ms)),
            e.deliveries.to_string(),
        ]);
    }
    let mut text = table.render();
    if entries.len() == args.count {
        text.push_str(&format!(
            "(first {} shown; --count N shows more)\n",
            args.count
        ));
    }
    output::print(&text)
}
