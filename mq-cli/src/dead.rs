//! `mq dead list|show|replay|purge`: the dead-letter stream of a queue.

use std::io::{BufRead, IsTerminal, Write};

use mq_core::admin::{DeadLetter, ReplayReport};
use serde_json::json;

use crate::{
    cli::DeadCommand,
    error::CliError,
    output::{self, Align, Table},
    Ctx,
};

/// Fields shown first by `mq dead show`, in this order.
const SHOW_ORDER: &[&str] = &[
    "id",
    "name",
    "error",
    "attempts",
    "failed_at",
    "worker",
    "enqueued_at",
];

/// Skipped dead ids listed by `mq dead replay` (all of them with `--json`): 10.
const SKIPPED_SHOWN: usize = 10;

/// Longest error text in `mq dead list` (the whole text is in `show` and `--json`): 60.
const LIST_ERROR_WIDTH: usize = 60;

pub(crate) async fn run(ctx: &Ctx, cmd: DeadCommand) -> Result<(), CliError> {
    match cmd {
        DeadCommand::List { queue, count } => list(ctx, &queue, count).await,
        DeadCommand::Show { queue, dead_id } => show(ctx, &queue, &dead_id).await,
        DeadCommand::Replay {
            queue,
            dead_ids,
            all,
            yes,
        } => replay(ctx, &queue, &dead_ids, all, yes).await,
        DeadCommand::Purge { queue, yes } => purge(ctx, &queue, yes).await,
    }
}

/// Checks that `id` is a stream id: `<ms>` or `<ms>-<seq>`, both decimal.
fn check_id(id: &str) -> Result<(), CliError> {
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match id.split_once('-') {
        Some((ms, seq)) => number(ms) && number(seq),
        None => number(id),
    };
    if ok {
        Ok(())
    } else {
        Err(CliError::BadId(id.to_owned()))
    }
}

/// A dead letter as JSON: every field as text (a v2 entry's `t` and `r` as the v1 fields they
/// hold, see [`DeadLetter::task_fields`]), `payload` decoded, `dead_id` added.
pub(crate) fn to_json(task: &DeadLetter) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("dead_id".into(), task.dead_id().into());
    if let Some(q) = task.queue() {
        obj.insert("queue".into(), q.into());
    }
    for (k, v) in task.task_fields() {
        let value = if k == "payload" {
            mq_core::admin::payload_to_json(&v)
        } else {
            String::from_utf8_lossy(&v).into_owned().into()
        };
        obj.insert(k, value);
    }
    obj.into()
}

async fn list(ctx: &Ctx, queue: &str, count: usize) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, queue).await?;
    let tasks = admin.dead_list(queue, count).await?;
    if ctx.json {
        return output::print_json(&tasks.iter().map(to_json).collect());
    }
    let total = admin.stats(queue).await?.dead;
    if tasks.is_empty() {
        return output::print(&format!("no dead tasks in queue {queue:?}\n"));
    }
    // A partitioned or prioritized queue's dead letters come from several streams: say which.
    let several = tasks.iter().any(|t| t.queue() != Some(queue));
    let mut columns = vec![("DEAD ID", Align::Left)];
    if several {
        columns.push(("QUEUE", Align::Left));
    }
    columns.extend([
        ("TASK ID", Align::Left),
        ("NAME", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("FAILED", Align::Left),
        ("ERROR", Align::Left),
    ]);
    let mut table = Table::new(&columns);
    for t in &tasks {
        let mut row = vec![t.dead_id().to_owned()];
        if several {
            row.push(t.queue().unwrap_or_default().to_owned());
        }
        row.extend([
            t.task_id().unwrap_or_default().to_owned(),
            t.name().unwrap_or_default().to_owned(),
            t.attempts().map(|n| n.to_string()).unwrap_or_default(),
            t.failed_at().map(output::ago).unwrap_or_default(),
            output::truncate(t.error().unwrap_or_default(), LIST_ERROR_WIDTH),
        ]);
        table.row(row);
    }
    let mut text = table.render();
    if (tasks.len() as u64) < total {
        text.push_str(&format!(
            "({} of {total} dead tasks shown; --count N shows more)\n",
            tasks.len()
        ));
    }
    output::print(&text)
}

async fn show(ctx: &Ctx, queue: &str, dead_id: &str) -> Result<(), CliError> {
    check_id(dead_id)?;
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, queue).await?;
    let task = admin
        .dead_show(queue, dead_id)
        .await?
        .ok_or_else(|| CliError::NoSuchDeadTask {
            queue: queue.to_owned(),
            dead_id: dead_id.to_owned(),
        })?;
    if ctx.json {
        return output::print_json(&to_json(&task));
    }
    let mut rows: Vec<(String, String)> = vec![("dead_id".into(), task.dead_id().to_owned())];
    // The fields an operator looks for first, then the rest in stored order.
    let rank = |k: &str| {
        SHOW_ORDER
            .iter()
            .position(|f| *f == k)
            .unwrap_or(SHOW_ORDER.len())
    };
    let mut fields = task.task_fields();
    fields.sort_by_key(|(k, _)| rank(k));
    for (k, v) in fields {
        if k == "payload" {
            continue;
        }
        let text = String::from_utf8_lossy(&v).into_owned();
        let text = match (k.as_str(), text.parse::<u64>()) {
            ("enqueued_at" | "failed_at", Ok(ms)) => {
                format!("{}  ({})", output::timestamp(ms), output::ago(ms))
            }
            _ => text,
        };
        rows.push((k, text));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (k, v) in rows {
        text.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
    }
    match task.payload_json() {
        Some(payload) => {
            let pretty = serde_json::to_string_pretty(&payload).unwrap_or_default();
            text.push_str(&format!("payload:\n{pretty}\n"));
        }
        None => text.push_str("payload: (none)\n"),
    }
    output::print(&text)
}

async fn replay(
    ctx: &Ctx,
    queue: &str,
    ids: &[String],
    all: bool,
    yes: bool,
) -> Result<(), CliError> {
    for id in ids {
        check_id(id)?;
    }
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, queue).await?;
    let report = if all {
        let n = admin.stats(queue).await?.dead;
        if n > 0 && !yes {
            confirm("replay", "not replayed", n, queue)?;
        }
        admin.dead_replay_all(queue).await?
    } else {
        admin.dead_replay(queue, ids).await?
    };
    let ReplayReport {
        replayed,
        skipped,
        duplicates,
        ..
    } = report;
    if ctx.json {
        output::print_json(&json!({
            "queue": queue,
            "requested": if all { None } else { Some(ids.len()) },
            "replayed": replayed,
            "skipped": skipped,
            "duplicates": duplicates,
        }))?;
    } else {
        let mut text = format!(
            "replayed {replayed} dead task{} to queue {queue:?}\n",
            if replayed == 1 { "" } else { "s" }
        );
        if !skipped.is_empty() {
            let shown = skipped[..skipped.len().min(SKIPPED_SHOWN)].join(" ");
            let more = skipped.len().saturating_sub(SKIPPED_SHOWN);
            text.push_str(&format!(
                "skipped {} dead entr{} not a task (no id, name, payload or enqueued_at): \
                 {shown}{}\n",
                skipped.len(),
                if skipped.len() == 1 {
                    "y that is"
                } else {
                    "ies that are"
                },
                if more > 0 {
                    format!(" and {more} more (--json lists all)")
                } else {
                    String::new()
                }
            ));
        }
        if !duplicates.is_empty() {
            text.push_str(&format!(
                "left {} unique task{} dead: another live task holds the unique key: {}\n",
                duplicates.len(),
                if duplicates.len() == 1 { "" } else { "s" },
                duplicates.join(" ")
            ));
        }
        output::print(&text)?;
    }
    if all {
        return Ok(());
    }
    let missing = ids
        .len()
        .saturating_sub(replayed + skipped.len() + duplicates.len());
    if missing > 0 {
        return Err(CliError::ReplayMissing {
            queue: queue.to_owned(),
            requested: ids.len(),
            missing,
        });
    }
    if !skipped.is_empty() {
        return Err(CliError::ReplaySkipped {
            requested: ids.len(),
            skipped,
        });
    }
    if !duplicates.is_empty() {
        return Err(CliError::ReplayDuplicates {
            requested: ids.len(),
            duplicates,
        });
    }
    Ok(())
}

async fn purge(ctx: &Ctx, queue: &str, yes: bool) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, queue).await?;
    if !yes {
        let n = admin.stats(queue).await?.dead;
        if n == 0 {
            return report_purged(ctx, queue, 0);
        }
        confirm("purge", "not purged", n, queue)?;
    }
    let purged = admin.dead_purge(queue).await?;
    report_purged(ctx, queue, purged)
}

/// Asks `{verb} {n} dead tasks of queue {queue}? [y/N]` on the terminal; fails with
/// [`CliError::NotConfirmed`] (`refusal` as the message) unless the answer is yes, and at once
/// when stdin is not a terminal.
fn confirm(verb: &str, refusal: &str, n: u64, queue: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NotConfirmed(format!(
            "refusing to {verb} {n} dead tasks of queue {queue:?} without --yes"
        )));
    }
    eprint!("{verb} {n} dead tasks of queue {queue:?}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::NotConfirmed(refusal.into()))
    }
}

fn report_purged(ctx: &Ctx, queue: &str, purged: u64) -> Result<(), CliError> {
    if ctx.json {
        output::print_json(&json!({ "queue": queue, "purged": purged }))
    } else {
        output::print(&format!(
            "purged {purged} dead task{} of queue {queue:?}\n",
            if purged == 1 { "" } else { "s" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_checked() {
        assert!(check_id("1764000000123-0").is_ok());
        assert!(check_id("1764000000123").is_ok());
        for bad in ["", "-", "12-", "-3", "abc", "1-2-3", "1.5-0", "+", "$"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dead_task_json_decodes_the_payload() {
        let payload = rmp_serde::to_vec_named(&serde_json::json!({"a": 1})).unwrap_or_default();
        let t = DeadLetter::new(
            "1-0",
            vec![
                ("name".into(), b"T".to_vec()),
                ("payload".into(), payload),
                ("error".into(), b"boom".to_vec()),
            ],
        );
        assert_eq!(
            to_json(&t),
            json!({"dead_id": "1-0", "name": "T", "payload": {"a": 1}, "error": "boom"})
        );
    }
}
