//! `mq stats`: queue sizes from `Admin::overview` (the queues of the registry, a few plain reads
//! per queue, no keyspace scan) and rates from two samples of the streams' counters (the first
//! from `Admin::counters`); with `--keys`, the unique keys held and key slots in use, which
//! scan (bounded).

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use mq_core::{
    admin::{KeySlotsReport, QueueOverview, QueueStats, StreamInfo, UniqueStats},
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
    /// Duplicates refused, per queue (totals of partitioned ones).
    duplicates: Vec<(String, u64)>,
    /// With `--keys`: unique keys held, per queue (totals of partitioned ones).
    unique: Vec<(String, UniqueStats)>,
    /// With `--keys`: per-key concurrency slots in use, per queue (totals of partitioned ones).
    slots: Vec<(String, KeySlotsReport)>,
}

/// What one sample reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// The counters alone: the first sample of rates.
    Counters,
    /// Everything shown: sizes, counters, flags, and with `--keys` the scans.
    Full,
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
    let keys = args.keys;
    let Some(every) = args.watch else {
        // One set of queues for both samples.
        let names = names(&admin, &args.queues).await?;
        let first = if args.sample.is_zero() {
            None
        } else {
            let s = sample(&admin, &names, Depth::Counters, keys).await?;
            tokio::time::sleep(args.sample).await;
            Some(s)
        };
        let now = sample(&admin, &names, Depth::Full, keys).await?;
        return show(ctx, &now, first.as_ref(), None);
    };
    let mut prev = None;
    if !args.sample.is_zero() {
        let names = names(&admin, &args.queues).await?;
        prev = Some(sample(&admin, &names, Depth::Counters, keys).await?);
        tokio::time::sleep(args.sample.min(every)).await;
    }
    loop {
        let next_at = Instant::now() + every;
        // Queues created meanwhile show up at the next refresh.
        let now = match names(&admin, &args.queues).await {
            Ok(names) => sample(&admin, &names, Depth::Full, keys).await,
            Err(e) => Err(e),
        };
        match now {
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

/// The queues to show: those named, or every queue of the registry.
async fn names(admin: &Admin, only: &[String]) -> Result<Vec<String>, CliError> {
    Ok(if only.is_empty() {
        admin.queues().await?
    } else {
        only.to_vec()
    })
}

async fn sample(
    admin: &Admin,
    names: &[String],
    depth: Depth,
    keys: bool,
) -> Result<Sample, CliError> {
    let overview: Vec<QueueOverview> = match depth {
        Depth::Counters => admin.counters(names).await?,
        Depth::Full => admin.overview(names).await?,
    };
    let mut queues = Vec::with_capacity(names.len());
    let mut duplicates = Vec::with_capacity(names.len());
    let mut unique = Vec::new();
    let mut slots = Vec::new();
    for o in overview {
        let q = o.total.stats.queue.clone();
        if keys && depth == Depth::Full {
            unique.push((q.clone(), admin.unique_stats(&q).await?));
            slots.push((q.clone(), admin.key_slots(&q).await?));
        }
        duplicates.push((q, o.duplicates));
        // The queue's total, then a row per partition, then a row per priority level.
        queues.push((o.total.stats, o.total.info));
        for s in o.partitions.into_iter().chain(o.levels) {
            queues.push((s.stats, s.info));
        }
    }
    Ok(Sample {
        at: Instant::now(),
        at_ms: output::now_ms(),
        queues,
        duplicates,
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
                let d = now
                    .duplicates
                    .iter()
                    .find(|(q, _)| *q == s.queue)
                    .map(|(_, d)| *d);
                let report = now
                    .slots
                    .iter()
                    .find(|(q, _)| *q == s.queue)
                    .map(|(_, r)| r);
                let slots: Option<Vec<serde_json::Value>> = report.map(|r| {
                    r.keys
                        .iter()
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
                    "unique_keys_partial": u.map(|u| u.partial),
                    "duplicates_refused": d,
                    "key_slots": slots,
                    "key_slots_partial": report.map(|r| r.partial),
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
    // Unique tasks: only queues that have any. Keys held only with `--keys` (it scans).
    for (q, d) in &now.duplicates {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        match now.unique.iter().find(|(u, _)| u == q).map(|(_, u)| u) {
            Some(u) if u.held > 0 || *d > 0 => text.push_str(&format!(
                "{q}: {}{} unique key{} held, {d} duplicate{} refused\n",
                if u.partial { "at least " } else { "" },
                u.held,
                plural(u.held),
                plural(*d),
            )),
            None if *d > 0 => text.push_str(&format!("{q}: {d} duplicate{} refused\n", plural(*d))),
            _ => {}
        }
    }
    // Per-key concurrency (`--keys`): the keys with slots in use, most first.
    const SHOWN: usize = 10;
    for (q, report) in &now.slots {
        if report.keys.is_empty() && !report.partial {
            continue;
        }
        let listed: Vec<String> = report
            .keys
            .iter()
            .take(SHOWN)
            .map(|r| format!("{} {}", r.name, r.running))
            .collect();
        let more = match report.keys.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" (+{n} more)"),
        };
        let partial = if report.partial {
            " (partial: the keyspace is larger than the scan cap)"
        } else {
            ""
        };
        text.push_str(&format!(
            "{q}: key slots in use: {}{more}{partial}\n",
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
