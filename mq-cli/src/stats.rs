//! `mq stats`: queue sizes from `Admin::stats` and rates from two samples of
//! `Admin::stream_info`.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use mq_core::{
    admin::{KeySlots, QueueStats, StreamInfo, UniqueStats},
    Admin,
};
use serde_json::json;

use crate::{
    cli::StatsArgs,
    error::{self, CliError},
    output::{self, Align, Table},
    Ctx,
};

/// Sizes and counters of the queues at one moment.
#[derive(Debug)]
struct Sample {
    at: Instant,
    at_ms: u64,
    queues: Vec<(QueueStats, Option<StreamInfo>)>,
    /// Unique keys held and duplicates refused, per queue (totals of partitioned ones).
    unique: Vec<(String, UniqueStats)>,
    /// Per-key concurrency slots in use, per queue (totals of partitioned ones).
    slots: Vec<(String, Vec<KeySlots>)>,
}

/// Per-second rates of one queue between two samples.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    enqueued: Option<f64>,
    done: Option<f64>,
}

pub(crate) async fn run(ctx: &Ctx, args: StatsArgs) -> Result<(), CliError> {
    let admin = ctx.admin().await?;
    for queue in &args.queues {
        ctx.require_queue(&admin, queue).await?;
    }
    let Some(every) = args.watch else {
        let first = if args.sample.is_zero() {
            None
        } else {
            let s = sample(&admin, &args.queues).await?;
            tokio::time::sleep(args.sample).await;
            Some(s)
        };
        let now = sample(&admin, &args.queues).await?;
        return show(ctx, &now, first.as_ref(), None);
    };
    let mut prev = None;
    if !args.sample.is_zero() {
        prev = Some(sample(&admin, &args.queues).await?);
        tokio::time::sleep(args.sample.min(every)).await;
    }
    loop {
        let next_at = Instant::now() + every;
        match sample(&admin, &args.queues).await {
            Ok(now) => {
                show(ctx, &now, prev.as_ref(), Some(every))?;
                prev = Some(now);
            }
            // Keep watching through a Redis outage; the error says what is wrong.
            Err(e) => eprintln!("error: {}", error::one_line(&e, &ctx.url)),
        }
        tokio::time::sleep_until(next_at.into()).await;
    }
}

async fn sample(admin: &Admin, only: &[String]) -> Result<Sample, CliError> {
    let names = if only.is_empty() {
        admin.queues().await?
    } else {
        only.to_vec()
    };
    let mut queues = Vec::with_capacity(names.len());
    let mut unique = Vec::with_capacity(names.len());
    let mut slots = Vec::with_capacity(names.len());
    for q in &names {
        unique.push((q.clone(), admin.unique_stats(q).await?));
        slots.push((q.clone(), admin.key_slots(q).await?));
        queues.push((admin.stats(q).await?, admin.stream_info(q).await?));
        // A partitioned queue: its total, then a row per partition.
        let parts = admin.partitions(q).await?;
        if parts.len() > 1 {
            for p in &parts {
                queues.push((admin.stats(p).await?, admin.stream_info(p).await?));
            }
        }
        // A queue with priority levels: a row per level (`q@high`, `q@normal`, `q@low`).
        for l in admin.levels(q).await? {
            queues.push((admin.stats(&l).await?, admin.stream_info(&l).await?));
        }
    }
    Ok(Sample {
        at: Instant::now(),
        at_ms: output::now_ms(),
        queues,
        unique,
        slots,
    })
}

fn rates(now: &Sample, prev: Option<&Sample>, queue: &str) -> Rates {
    let Some(prev) = prev else {
        return Rates::default();
    };
    let secs = now.at.duration_since(prev.at).as_secs_f64();
    let info = |s: &Sample| {
        s.queues
            .iter()
            .find(|(st, _)| st.queue == queue)
            .and_then(|(_, info)| info.clone())
    };
    let (Some(a), Some(b)) = (info(prev), info(now)) else {
        return Rates::default();
    };
    if secs <= 0.0 {
        return Rates::default();
    }
    // Counters restart when a stream is deleted and created again: no rate then.
    let per_sec = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(x), Some(y)) if y >= x => Some((y - x) as f64 / secs),
        _ => None,
    };
    Rates {
        enqueued: per_sec(a.entries_added, b.entries_added),
        done: per_sec(a.entries_removed, b.entries_removed),
    }
}

fn show(
    ctx: &Ctx,
    now: &Sample,
    prev: Option<&Sample>,
    watch: Option<Duration>,
) -> Result<(), CliError> {
    let window = prev.map(|p| now.at.duration_since(p.at).as_secs_f64());
    if ctx.json {
        let queues: Vec<serde_json::Value> = now
            .queues
            .iter()
            .map(|(s, info)| {
                let r = rates(now, prev, &s.queue);
                let u = now
                    .unique
                    .iter()
                    .find(|(q, _)| *q == s.queue)
                    .map(|(_, u)| *u);
                let slots: Option<Vec<serde_json::Value>> = now
                    .slots
                    .iter()
                    .find(|(q, _)| *q == s.queue)
                    .map(|(_, rows)| {
                        rows.iter()
                            .map(|r| json!({"key": r.name, "running": r.running}))
                            .collect()
                    });
                json!({
                    "queue": s.queue,
                    "length": s.length,
                    "backlog": s.backlog,
                    "pending": s.pending,
                    "delayed": s.delayed,
                    "dead": s.dead,
                    "consumers": s.consumers,
                    "paused": s.paused,
                    "entries_added": info.as_ref().and_then(|i| i.entries_added),
                    "entries_removed": info.as_ref().and_then(|i| i.entries_removed),
                    "enqueued_per_sec": r.enqueued,
                    "done_per_sec": r.done,
                    "unique_keys": u.map(|u| u.held),
                    "duplicates_refused": u.map(|u| u.duplicates),
                    "key_slots": slots,
                })
            })
            .collect();
        let doc = json!({
            "at": output::timestamp(now.at_ms),
            "rate_window_secs": window,
            "queues": queues,
        });
        return if watch.is_some() {
            output::print(&format!("{doc}\n"))
        } else {
            output::print_json(&doc)
        };
    }
    let mut text = String::new();
    if let Some(every) = watch {
        if std::io::stdout().is_terminal() {
            // Clear the screen and go home, like watch(1).
            text.push_str("\x1b[2J\x1b[H");
        } else {
            text.push('\n');
        }
        text.push_str(&format!(
            "mq stats  prefix {}  {}  every {}  (Ctrl-C to stop)\n\n",
            ctx.prefix,
            output::timestamp(now.at_ms),
            output::duration(every),
        ));
    }
    if now.queues.is_empty() {
        text.push_str(&format!("no queues under prefix {:?}\n", ctx.prefix));
        return output::print(&text);
    }
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("BACKLOG", Align::Right),
        ("PENDING", Align::Right),
        ("DELAYED", Align::Right),
        ("DEAD", Align::Right),
        ("CONSUMERS", Align::Right),
        ("ENQ/S", Align::Right),
        ("DONE/S", Align::Right),
        ("PAUSED", Align::Right),
    ]);
    for (s, _) in &now.queues {
        let r = rates(now, prev, &s.queue);
        table.row(vec![
            s.queue.clone(),
            s.backlog.to_string(),
            s.pending.to_string(),
            s.delayed.to_string(),
            s.dead.to_string(),
            s.consumers.to_string(),
            output::rate(r.enqueued),
            output::rate(r.done),
            if s.paused { "yes" } else { "no" }.to_owned(),
        ]);
    }
    text.push_str(&table.render());
    // Unique tasks: only queues that have any.
    for (q, u) in now
        .unique
        .iter()
        .filter(|(_, u)| u.held > 0 || u.duplicates > 0)
    {
        text.push_str(&format!(
            "{q}: {} unique key{} held, {} duplicate{} refused\n",
            u.held,
            if u.held == 1 { "" } else { "s" },
            u.duplicates,
            if u.duplicates == 1 { "" } else { "s" },
        ));
    }
    // Per-key concurrency: the keys with slots in use, most first.
    const SHOWN: usize = 10;
    for (q, rows) in now.slots.iter().filter(|(_, rows)| !rows.is_empty()) {
        let listed: Vec<String> = rows
            .iter()
            .take(SHOWN)
            .map(|r| format!("{} {}", r.name, r.running))
            .collect();
        let more = match rows.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" (+{n} more)"),
        };
        text.push_str(&format!(
            "{q}: key slots in use: {}{more}\n",
            listed.join(", ")
        ));
    }
    if let Some(w) = window {
        if watch.is_none() {
            text.push_str(&format!("(rates over {w:.1}s)\n"));
        }
    }
    output::print(&text)
}
