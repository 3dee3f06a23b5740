//! `mq schedules`: the cron schedules recorded by workers (`Admin::schedules`).

use mq_core::admin::ScheduleInfo;
use serde_json::json;

use crate::{
    error::CliError,
    output::{self, Align, Table},
    Ctx,
};

pub(crate) fn to_json(s: &ScheduleInfo) -> serde_json::Value {
    json!({
        "name": s.name,
        "queue": s.queue,
        "expression": s.expression,
        "timezone": s.timezone,
        "last": s.last.map(output::timestamp),
        "last_ms": s.last,
        "next": s.next.map(output::timestamp),
        "next_ms": s.next,
    })
}

pub(crate) async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    let all = admin.schedules().await?;
    if ctx.json {
        return output::print_json(&all.iter().map(to_json).collect());
    }
    if all.is_empty() {
        return output::print("no schedules\n");
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("QUEUE", Align::Left),
        ("EXPRESSION", Align::Left),
        ("TIMEZONE", Align::Left),
        ("LAST", Align::Left),
        ("NEXT", Align::Left),
    ]);
    for s in &all {
        table.row(vec![
            s.name.clone(),
            s.queue.clone(),
            s.expression.clone(),
            s.timezone.clone(),
            s.last
                .map(|t| format!("{} ({})", output::timestamp(t), output::ago(t)))
                .unwrap_or_else(|| "-".into()),
            s.next.map(output::timestamp).unwrap_or_else(|| "-".into()),
        ]);
    }
    output::print(&table.render())
}
