//! Cron schedules: [`Schedule`] (set on a worker with
//! [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule)) and the loop that enqueues each
//! tick exactly once however many workers run the same schedule.
//!
//! Every worker with the schedule sleeps until the next tick, then calls `lua/cron_tick.lua`,
//! which enqueues the task only if its `SET {prefix}:{queue}:cron:<name>:<tick> NX PX` succeeds
//! and the tick is later than the schedule's last recorded one: one worker wins each tick, no
//! leader is elected and nothing is held between ticks, so a worker killed at any moment leaves
//! nothing behind. The schedule's expression, time zone, last and next tick are kept in the
//! hash `{prefix}:{queue}:cron` for `mq schedules`.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;

use crate::{
    envelope::{now_ms, Envelope},
    error::{self, Error, Result},
    producer::{new_envelope, push_entry_fields, DEFAULT_MAX_PAYLOAD},
    redis::{keys::QueueKeys, scripts},
    task::Task,
};

use super::{error_backoff, sleep_or_cancel, Shared};

/// How long the key that marks a tick as enqueued lives: 10 minutes, far longer than the clock
/// skew between two workers (a worker whose clock is behind tries the tick later and must
/// still find the key).
pub const TICK_KEY_TTL: Duration = Duration::from_secs(600);

/// What a schedule does about ticks that passed while no worker ran it (all were down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTicks {
    /// Forget them: the next task is the next tick's (the default).
    #[default]
    Skip,
    /// Enqueue one task for the latest missed tick when a worker starts (exactly once,
    /// whatever the number of workers starting), then go on with the next ticks. Only once a
    /// schedule has run before: its first start catches nothing up.
    RunOnce,
}

/// A cron schedule: a task enqueued at every tick of a cron expression. Pass it to
/// [`WorkerBuilder::schedule_with`](crate::WorkerBuilder::schedule_with), or use
/// [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule) for the defaults (named after the
/// task type, UTC, [`MissedTicks::Skip`]).
///
/// The expression has 5 fields (`minute hour day-of-month month day-of-week`) or 6 with
/// seconds first (`second minute ...`); ranges, steps (`*/5`), lists, names (`MON`, `JAN`),
/// `L`, `#` and `W` work as in the [`croner`] crate, which parses them. Ticks are computed in
/// UTC unless [`timezone`](Self::timezone) says otherwise.
///
/// # Examples
///
/// ```no_run
/// use std::time::{SystemTime, UNIX_EPOCH};
/// use mq_core::{MissedTicks, Schedule, Task, TaskContext, TaskError, Worker};
/// # use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(queue = "reports")]
/// struct DailyReport {
///     /// The tick the report is for, unix ms.
///     day: u64,
/// }
///
/// async fn report(task: DailyReport, _ctx: TaskContext) -> Result<(), TaskError> {
///     println!("report for {}", task.day);
///     Ok(())
/// }
///
/// # async fn run() -> mq_core::Result<()> {
/// let at_9 = chrono::FixedOffset::east_opt(2 * 3600).expect("a valid offset"); // or a chrono-tz zone
/// Worker::builder("redis://127.0.0.1/")
///     .handle(report)
///     // Every 5 minutes, in UTC.
///     .schedule("*/5 * * * *", |_tick| DailyReport { day: 0 })
///     // At 09:00 in UTC+2, named, with a catch-up run after an outage.
///     .schedule_with(
///         Schedule::new("0 9 * * *", |tick: SystemTime| DailyReport {
///             day: tick.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
///         })
///         .name("daily-report")
///         .timezone(at_9)
///         .missed_ticks(MissedTicks::RunOnce),
///     )
///     .build()
///     .await?
///     .run_until_signal()
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Schedule {
    name: String,
    expr: String,
    queue: &'static str,
    make: Arc<dyn Fn(SystemTime) -> Result<Envelope> + Send + Sync>,
    zone: Arc<dyn Zone>,
    missed: MissedTicks,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("expr", &self.expr)
            .field("queue", &self.queue)
            .field("timezone", &self.zone.name())
            .field("missed", &self.missed)
            .finish()
    }
}

impl Schedule {
    /// A schedule that enqueues `make(tick)` at every tick of `expr` (`tick` is the time the
    /// tick is for, not the time it runs), named after the task type, in UTC, skipping missed
    /// ticks. The expression is checked by [`WorkerBuilder::build`](crate::WorkerBuilder::build).
    pub fn new<T: Task>(
        expr: &str,
        make: impl Fn(SystemTime) -> T + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: T::NAME.to_owned(),
            expr: expr.to_owned(),
            queue: T::QUEUE,
            make: Arc::new(move |tick| {
                let task = make(tick);
                let mut env = new_envelope(&task, now_ms(), None, DEFAULT_MAX_PAYLOAD)?;
                // A tick is enqueued once already; the unique key is not taken.
                env.unique = None;
                Ok(env)
            }),
            zone: Arc::new(InZone::new(Utc)),
            missed: MissedTicks::Skip,
        }
    }

    /// Names the schedule (default: the task type's name). Workers that run a schedule of the
    /// same name on the same queue share its ticks: give each schedule of a queue its own name.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Computes the ticks in time zone `tz`: a `chrono_tz::Tz` such as
    /// `chrono_tz::Europe::Paris` (daylight saving time included), a `chrono::FixedOffset`, or
    /// `chrono::Utc` (the default).
    #[must_use]
    pub fn timezone<Z>(mut self, tz: Z) -> Self
    where
        Z: TimeZone + fmt::Debug + Send + Sync + 'static,
        Z::Offset: Send + Sync,
    {
        self.zone = Arc::new(InZone::new(tz));
        self
    }

    /// What to do about ticks missed while no worker ran the schedule (default
    /// [`MissedTicks::Skip`]).
    #[must_use]
    pub fn missed_ticks(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// The schedule's name.
    pub fn schedule_name(&self) -> &str {
        &self.name
    }

    /// The queue its task goes to.
    pub fn queue(&self) -> &str {
        self.queue
    }

    /// Parses the expression (5 fields, or 6 with seconds).
    pub(crate) fn parse(&self) -> std::result::Result<Cron, String> {
        parse(&self.expr).map_err(|e| {
            format!(
                "schedule {:?}: bad cron expression {:?}: {e}",
                self.name, self.expr
            )
        })
    }
}

/// Parses a cron expression of 5 fields, or 6 with seconds first.
fn parse(expr: &str) -> std::result::Result<Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
}

/// A time zone the ticks are computed in, its type erased.
trait Zone: Send + Sync {
    /// Its name as shown by `mq schedules`.
    fn name(&self) -> String;
    /// The first tick strictly after `t`.
    fn next_after(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// The last tick at or before `t`.
    fn last_until(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// A time zone and its name: its `Debug` form (`Europe/Paris` for a chrono-tz zone,
/// `+02:00` for a fixed offset), `UTC` for UTC (whose `Debug` form is `Z`).
struct InZone<Z>(Z, String);

impl<Z: fmt::Debug> InZone<Z> {
    fn new(tz: Z) -> Self {
        let name = format!("{tz:?}");
        let name = if name == "Z" { "UTC".to_owned() } else { name };
        Self(tz, name)
    }
}

impl<Z> Zone for InZone<Z>
where
    Z: TimeZone + fmt::Debug + Send + Sync + 'static,
    Z::Offset: Send + Sync,
{
    fn name(&self) -> String {
        self.1.clone()
    }

    fn next_after(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        cron.find_next_occurrence(&whole_second(t).with_timezone(&self.0), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    fn last_until(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        cron.find_previous_occurrence(&whole_second(t).with_timezone(&self.0), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// `t` without its fraction of a second. croner keeps the fraction of the time it starts from
/// in the ticks it finds; ticks must be whole seconds for every worker to name a tick alike.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A schedule a worker runs: checked, with its queue's keys.
pub(crate) struct Planned {
    pub(crate) schedule: Schedule,
    pub(crate) cron: Cron,
    pub(crate) keys: QueueKeys,
}

impl Planned {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.zone.next_after(&self.cron, t)
    }
}

/// Checks the schedules of a worker (expressions, queue names, one name per queue), adding
/// what is wrong to `problems`.
pub(crate) fn plan(
    schedules: Vec<Schedule>,
    prefix: &str,
    problems: &mut Vec<String>,
) -> Vec<Arc<Planned>> {
    let mut seen = std::collections::HashSet::new();
    let mut plans = Vec::new();
    for schedule in schedules {
        if let Err(e) = crate::redis::keys::validate_queue_name(schedule.queue) {
            problems.push(e);
            continue;
        }
        if !seen.insert((schedule.queue, schedule.name.clone())) {
            problems.push(format!(
                "two schedules named {:?} on queue {:?}: name them apart with Schedule::name",
                schedule.name, schedule.queue
            ));
            continue;
        }
        match schedule.parse() {
            Ok(cron) => plans.push(Arc::new(Planned {
                keys: QueueKeys::new(prefix, schedule.queue),
                schedule,
                cron,
            })),
            Err(e) => problems.push(e),
        }
    }
    plans
}

/// Runs one schedule until `token` is cancelled: catches up a missed tick if the schedule says
/// so, then enqueues each tick when it is due.
pub(crate) async fn run(shared: Arc<Shared>, plan: Arc<Planned>, token: CancellationToken) {
    let s = &plan.schedule;
    let now = Utc::now();
    if let Err(e) = register(&shared, &plan, now).await {
        shared.metrics.redis_error("cron");
        tracing::warn!(schedule = %s.name, queue = s.queue, error = %error::chain(&e), "cannot record the schedule yet; its first tick records it");
    }
    if s.missed == MissedTicks::RunOnce {
        if let Some(prev) = s.zone.last_until(&plan.cron, now) {
            fire(&shared, &plan, prev, true, &token).await;
        }
    }
    let mut after = now;
    while let Some(tick) = plan.next_after(after) {
        loop {
            let left = (tick - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            if !sleep_or_cancel(left, &token).await {
                return;
            }
        }
        if token.is_cancelled() {
            return;
        }
        fire(&shared, &plan, tick, false, &token).await;
        // Ticks that passed meanwhile (a stalled process) are skipped, as missed ticks are.
        after = tick.max(Utc::now());
    }
    tracing::warn!(schedule = %s.name, queue = s.queue, expr = %s.expr, "the schedule has no more ticks");
}

/// Records the schedule's expression, time zone and next tick in the queue's schedules hash.
async fn register(shared: &Shared, plan: &Planned, now: DateTime<Utc>) -> Result<()> {
    let s = &plan.schedule;
    let mut cmd = redis::cmd("HSET");
    cmd.arg(&plan.keys.cron)
        .arg(format!("{}:expr", s.name))
        .arg(&s.expr)
        .arg(format!("{}:tz", s.name))
        .arg(s.zone.name());
    if let Some(next) = plan.next_after(now) {
        cmd.arg(format!("{}:next", s.name))
            .arg(next.timestamp_millis());
    }
    cmd.query_async::<()>(&mut shared.data.clone())
        .await
        .map_err(Error::redis("HSET cron"))
}

/// Enqueues `tick` unless another worker did (or a later tick was), retrying Redis errors with
/// backoff until the next tick is due or the worker stops.
async fn fire(
    shared: &Shared,
    plan: &Planned,
    tick: DateTime<Utc>,
    catch_up: bool,
    token: &CancellationToken,
) {
    let s = &plan.schedule;
    let next = plan.next_after(tick);
    let give_up = next.unwrap_or(tick + chrono::Duration::minutes(1));
    let mut failures = 0;
    loop {
        let env = match (s.make)(SystemTime::from(tick)) {
            Ok(env) => env,
            Err(e) => {
                tracing::error!(schedule = %s.name, queue = s.queue, error = %error::chain(&e), "cannot encode the scheduled task; tick skipped");
                return;
            }
        };
        match enqueue_tick(shared, plan, &env, tick, next, catch_up).await {
            Ok(true) => {
                tracing::info!(schedule = %s.name, queue = s.queue, id = %env.id, tick = %tick, catch_up, "scheduled task enqueued");
                return;
            }
            Ok(false) => {
                tracing::debug!(schedule = %s.name, queue = s.queue, tick = %tick, "tick enqueued by another worker");
                return;
            }
            Err(e) => {
                failures += 1;
                shared.metrics.redis_error("cron");
                tracing::warn!(schedule = %s.name, queue = s.queue, tick = %tick, error = %error::chain(&e), "cannot enqueue the tick; retrying");
                if Utc::now() >= give_up || !sleep_or_cancel(error_backoff(failures), token).await {
                    tracing::warn!(schedule = %s.name, queue = s.queue, tick = %tick, "tick not enqueued by this worker");
                    return;
                }
            }
        }
    }
}

/// One `cron_tick.lua` call: whether this call enqueued the tick.
async fn enqueue_tick(
    shared: &Shared,
    plan: &Planned,
    env: &Envelope,
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    catch_up: bool,
) -> Result<bool> {
    let keys = &plan.keys;
    let tick_ms = tick.timestamp_millis().max(0) as u64;
    let mut inv = scripts::CRON_TICK.prepare_invoke();
    inv.key(keys.cron_tick(&plan.schedule.name, tick_ms))
        .key(&keys.cron)
        .key(&keys.stream)
        .arg(TICK_KEY_TTL.as_millis() as u64)
        .arg(&plan.schedule.name)
        .arg(tick_ms)
        .arg(next.map_or(String::new(), |n| n.timestamp_millis().to_string()))
        .arg(if catch_up { "1" } else { "0" });
    push_entry_fields(&mut inv, env);
    let added: i64 = inv
        .invoke_async(&mut shared.data.clone())
        .await
        .map_err(Error::redis("cron tick"))?;
    Ok(added == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_field_expressions() {
        let five = parse("*/5 * * * *").unwrap();
        let z = InZone::new(Utc);
        assert_eq!(
            z.next_after(&five, at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T10:05:00Z"))
        );
        let six = parse("*/10 * * * * *").unwrap();
        assert_eq!(
            z.next_after(&six, at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T10:02:40Z"))
        );
        // Strictly after; the last tick at or before includes `t`.
        assert_eq!(
            z.next_after(&six, at("2026-01-01T10:02:40Z")),
            Some(at("2026-01-01T10:02:50Z"))
        );
        assert_eq!(
            z.last_until(&six, at("2026-01-01T10:02:40Z")),
            Some(at("2026-01-01T10:02:40Z"))
        );
        // Ticks are whole seconds whatever the fraction of the time they are computed from.
        assert_eq!(
            z.next_after(&six, at("2026-01-01T10:02:40.292Z")),
            Some(at("2026-01-01T10:02:50Z"))
        );
        assert_eq!(
            z.last_until(&six, at("2026-01-01T10:02:49.999Z")),
            Some(at("2026-01-01T10:02:40Z"))
        );
        assert!(parse("not cron").is_err());
        assert!(parse("* * * *").is_err());
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        let nine = parse("0 9 * * *").unwrap();
        let plus2 = InZone::new(chrono::FixedOffset::east_opt(2 * 3600).unwrap());
        assert_eq!(
            plus2.next_after(&nine, at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T07:00:00Z"))
        );
        assert_eq!(
            InZone::new(Utc).next_after(&nine, at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T09:00:00Z"))
        );
        assert_eq!(plus2.name(), "+02:00");
        assert_eq!(InZone::new(Utc).name(), "UTC");
    }
}
