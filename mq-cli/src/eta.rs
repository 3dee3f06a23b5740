//! `mq eta`: a queue's drain rate (measured from Redis across all its workers), when it will
//! be empty, and how many worker processes would empty it by a deadline (`Admin::eta`).

use std::time::{Duration, SystemTime};

use chrono::{Local, NaiveTime, TimeZone};
use serde_json::json;

use crate::{cli::EtaArgs, error::CliError, output, Ctx};

/// Prints the ETA of `args.queue`, with the workers needed by `--by` / `--in` if given.
pub(crate) async fn run(ctx: &Ctx, args: EtaArgs) -> Result<(), CliError> {
    let deadline = match (&args.by, args.within) {
        (Some(by), _) => Some(parse_by(by, SystemTime::now())?),
        (None, Some(d)) => Some(SystemTime::now() + d),
        (None, None) => None,
    };
    let admin = ctx.admin().await?;
    ctx.require_queue(&admin, &args.queue).await?;
    let eta = admin.eta(&args.queue, deadline).await?;
    let deadline_ms = deadline.and_then(|d| {
        d.duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
    });
    if ctx.json {
        return output::print_json(&json!({
            "queue": eta.queue,
            "remaining": eta.remaining,
            "rate_per_sec": eta.rate_per_sec,
            "window_secs": eta.window.as_secs_f64(),
            "workers": eta.workers,
            "per_worker_per_sec": eta.per_worker_per_sec,
            "eta_secs": eta.eta_secs,
            "deadline_ms": deadline_ms,
            "workers_needed": eta.workers_needed,
        }));
    }
    let mut text = format!("{}: {} tasks left", eta.queue, eta.remaining);
    match eta.rate_per_sec {
        Some(r) => text.push_str(&format!(
            ", draining {r:.1}/s over the last {:.0} s ({} live worker{}{})",
            eta.window.as_secs_f64(),
            eta.workers,
            if eta.workers == 1 { "" } else { "s" },
            eta.per_worker_per_sec
                .map_or(String::new(), |p| format!(", {p:.1}/s each")),
        )),
        None => text.push_str(", no drain rate yet (workers record one every 5 s)"),
    }
    match eta.eta_secs {
        Some(s) => text.push_str(&format!(
            "; empty in {}",
            humantime::format_duration(Duration::from_secs(s.round() as u64))
        )),
        None if eta.remaining > 0 => text.push_str("; nothing drains: no end in sight"),
        None => {}
    }
    text.push('\n');
    if let (Some(by), Some(_)) = (&args.by, deadline) {
        match eta.workers_needed {
            Some(n) => text.push_str(&format!("workers needed to finish by {by}: {n}\n")),
            None => text.push_str(&format!(
                "workers needed to finish by {by}: unknown (no per-worker rate yet, or the \
                 deadline has passed)\n"
            )),
        }
    } else if let (Some(d), Some(n)) = (args.within, eta.workers_needed) {
        text.push_str(&format!(
            "workers needed to finish within {}: {n}\n",
            humantime::format_duration(d)
        ));
    }
    output::print(&text)
}

/// A deadline: `HH:MM` (the next such time on this machine's clock, in its time zone: today,
/// or tomorrow if it has passed) or an RFC 3339 time (`2026-12-08T06:00:00+01:00`).
fn parse_by(by: &str, now: SystemTime) -> Result<SystemTime, CliError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(by) {
        return Ok(t.into());
    }
    let time = NaiveTime::parse_from_str(by, "%H:%M").map_err(|_| {
        CliError::BadArgument(format!(
            "--by {by:?}: expected HH:MM (local time) or an RFC 3339 time"
        ))
    })?;
    let now = chrono::DateTime::<Local>::from(now);
    for day in 0..2 {
        let date = now.date_naive() + chrono::Duration::days(day);
        // A time skipped by a DST change has no local time: try the next day.
        if let Some(t) = Local.from_local_datetime(&date.and_time(time)).earliest() {
            if t > now {
                return Ok(t.into());
            }
        }
    }
    Err(CliError::BadArgument(format!(
        "--by {by:?}: no such local time in the next two days"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_the_next_such_time_or_an_exact_one() {
        let now = SystemTime::now();
        let t = parse_by("06:00", now).expect("HH:MM");
        assert!(t > now && t <= now + Duration::from_secs(24 * 3600 + 3600));
        let exact = parse_by("2030-01-01T06:00:00Z", now).expect("RFC 3339");
        assert_eq!(
            exact
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .ok(),
            Some(1_893_477_600)
        );
        for bad in ["6", "25:00", "06:00pm", "tomorrow"] {
            assert!(parse_by(bad, now).is_err(), "{bad}");
        }
    }
}
