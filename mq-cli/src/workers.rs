//! `mq workers`: workers registered in `{prefix}:workers`, live if their heartbeat key exists.

use mq_core::admin::WorkerInfo;
use serde_json::json;

use crate::{
    cli::WorkersArgs,
    error::CliError,
    output::{self, Align, Table},
    Ctx,
};

pub(crate) fn to_json(w: &WorkerInfo) -> serde_json::Value {
    json!({
        "consumer": w.consumer,
        "live": w.live,
        "queues": w.queues,
        "concurrency": w.concurrency,
        "started_at": w.started_at.map(output::timestamp),
        "started_at_ms": w.started_at,
        "last_beat_ms": w.last_beat,
        "heartbeat_ttl_ms": w.heartbeat_ttl_ms,
    })
}

pub(crate) async fn run(ctx: &Ctx, args: WorkersArgs) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let all = admin.workers().await?;
    let stale = all.iter().filter(|w| !w.live).count();
    let shown: Vec<&WorkerInfo> = all.iter().filter(|w| args.all || w.live).collect();
    if ctx.json {
        return output::print_json(&shown.iter().map(|w| to_json(w)).collect());
    }
    let mut text = String::new();
    if shown.is_empty() {
        text.push_str("no live workers\n");
    } else {
        let mut table = Table::new(&[
            ("CONSUMER", Align::Left),
            ("STATUS", Align::Left),
            ("QUEUES", Align::Left),
            ("CONCURRENCY", Align::Right),
            ("STARTED", Align::Left),
            ("LAST BEAT", Align::Left),
        ]);
        for w in &shown {
            table.row(vec![
                w.consumer.clone(),
                if w.live { "live" } else { "dead" }.into(),
                w.queues.join(","),
                w.concurrency.map(|c| c.to_string()).unwrap_or_default(),
                w.started_at
                    .map(|t| format!("{} ({})", output::timestamp(t), output::ago(t)))
                    .unwrap_or_default(),
                w.last_beat.map(output::ago).unwrap_or_default(),
            ]);
        }
        text.push_str(&table.render());
    }
    if stale > 0 && !args.all {
        text.push_str(&format!(
            "({stale} registered worker{} without a heartbeat hidden; --all shows them)\n",
            if stale == 1 { "" } else { "s" }
        ));
    }
    output::print(&text)
}
