//! `mq runs` and `mq runs show NAME`: runs' progress, drain rate and estimated end
//! (`Admin::runs`, `Admin::run`).

use std::time::Duration;

use mq_core::admin::RunInfo;
use serde_json::json;

use crate::{
    cli::RunsCmd,
    error::CliError,
    output::{self, Align, Table},
    Ctx,
};

/// A run as `--json` prints it.
pub(crate) fn to_json(r: &RunInfo) -> serde_json::Value {
    json!({
        "name": r.name,
        "key": r.key,
        "created_ms": r.created_ms,
        "total": r.total,
        "done": r.done,
        "dead": r.dead,
        "failed": r.failed,
        "remaining": r.remaining,
        "sealed_ms": r.sealed_ms,
        "ended_ms": r.ended_ms,
        "rate_per_sec": r.rate_per_sec,
        "window_secs": r.window.as_secs_f64(),
        "eta_secs": r.eta_secs,
    })
}

/// Where a run stands: `ended`, `sealed`, or `open` (tasks may still be added).
fn state(r: &RunInfo) -> &'static str {
    match (r.sealed_ms, r.ended_ms) {
        (_, Some(_)) => "ended",
        (Some(_), None) => "sealed",
        (None, None) => "open",
    }
}

/// The estimated end as text: `-` once ended, `unknown` with tasks left and no rate.
fn eta(r: &RunInfo) -> String {
    match (r.ended_ms, r.eta_secs) {
        (Some(_), _) => "-".into(),
        (None, Some(s)) => output::duration(Duration::from_secs(s.round() as u64)),
        (None, None) => "unknown".into(),
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: Option<RunsCmd>) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    match cmd {
        None => list(ctx, &admin.runs().await?),
        Some(RunsCmd::Show { name }) => {
            let r = admin
                .run(&name)
                .await?
                .ok_or_else(|| CliError::NoSuchRun(name.clone()))?;
            show(ctx, &r)
        }
    }
}

fn list(ctx: &Ctx, runs: &[RunInfo]) -> Result<(), CliError> {
    if ctx.json {
        return output::print_json(&runs.iter().map(to_json).collect());
    }
    if runs.is_empty() {
        return output::print("no runs\n");
    }
    let mut table = Table::new(&[
        ("RUN", Align::Left),
        ("STATE", Align::Left),
        ("TOTAL", Align::Right),
        ("DONE", Align::Right),
        ("DEAD", Align::Right),
        ("FAILED", Align::Right),
        ("REMAINING", Align::Right),
        ("RATE/S", Align::Right),
        ("ETA", Align::Right),
        ("STARTED", Align::Left),
    ]);
    for r in runs {
        table.row(vec![
            r.name.clone(),
            state(r).into(),
            r.total.to_string(),
            r.done.to_string(),
            r.dead.to_string(),
            r.failed.to_string(),
            r.remaining.to_string(),
            output::rate(r.rate_per_sec),
            eta(r),
            output::ago(r.created_ms),
        ]);
    }
    output::print(&table.render())
}

fn show(ctx: &Ctx, r: &RunInfo) -> Result<(), CliError> {
    if ctx.json {
        return output::print_json(&to_json(r));
    }
    let pct = if r.total == 0 {
        0.0
    } else {
        100.0 * (r.done + r.dead) as f64 / r.total as f64
    };
    let mut text = format!(
        "run {} ({}): {} of {} tasks ended ({pct:.1} %): {} done, {} dead; {} remaining; {} \
         failed attempts retried\n",
        r.name,
        state(r),
        r.done + r.dead,
        r.total,
        r.done,
        r.dead,
        r.remaining,
        r.failed,
    );
    text.push_str(&format!(
        "started {} ({})\n",
        output::timestamp(r.created_ms),
        output::ago(r.created_ms)
    ));
    if let Some(t) = r.sealed_ms {
        text.push_str(&format!("sealed {}\n", output::timestamp(t)));
    } else {
        text.push_str("not sealed: tasks may still be added, so it cannot end yet\n");
    }
    match r.ended_ms {
        Some(t) => text.push_str(&format!(
            "ended {} (after {})\n",
            output::timestamp(t),
            output::duration(Duration::from_millis(t.saturating_sub(r.created_ms)))
        )),
        None => text.push_str(&format!(
            "rate {}/s over the last {}; ends in {}\n",
            output::rate(r.rate_per_sec),
            output::duration(r.window),
            eta(r)
        )),
    }
    output::print(&text)
}
