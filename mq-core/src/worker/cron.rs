//! Cron schedules: [`Schedule`] (set on a worker with
//! [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule)) and the loop that enqueues each
//! tick exactly once however many workers run the same schedule.
//!
//! Every worker with the schedule sleeps until the next tick, then calls `lua/cron_tick.lua`,
//! which enqueues the task only if its `SET {prefix}:{queue}:cron:<name>:<tick> NX PX` succeeds
//! and the tick is later than the schedule's last recorded one: one worker wins each tick, no
//! leader is elected and nothing is held between ticks, so a worker killed at any moment leaves
//! nothing behind. The script judges ticks by the Redis server's clock: a tick more than
//! [`MAX_TICK_AHEAD`] ahead of it (a worker whose clock is ahead) is refused, so one wrong
//! clock cannot make the others skip their ticks. The schedule's expression, time zone, last and next tick are kept in the
//! hash `{prefix}:{queue}:cron` for `mq schedules`.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Offset, TimeZone, Utc};
use croner::{Cron, JobType};
use tokio_util::sync::CancellationToken;

use crate::{
    envelope::{now_ms, Envelope},
    error::{self, Error, Result},
    producer::{new_envelope, push_entry_fields, raw_envelope, DEFAULT_MAX_PAYLOAD},
    redis::{keys::QueueKeys, scripts},
    task::Task,
};

use super::state::{sleep_or_cancel, Shared};
use crate::retry::error_backoff;

/// How long the key that marks a tick as enqueued lives: 10 minutes, far longer than the clock
/// skew between two workers (a worker whose clock is behind tries the tick later and must
/// still find the key).
pub const TICK_KEY_TTL: Duration = Duration::from_secs(600);

/// How far ahead of the Redis server's clock a tick may be: 60 s. A worker whose clock is
/// further ahead has its ticks refused (and says so in its log) instead of recording a
/// future last tick that would make every other worker skip its ticks.
pub const MAX_TICK_AHEAD: Duration = Duration::from_secs(60);

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
    queue: Arc<str>,
    make: Arc<dyn Fn(SystemTime) -> Result<Envelope> + Send + Sync>,
    zone: Arc<dyn Zone>,
    missed: MissedTicks,
    /// Added to this worker's clock for this schedule: zero but in clock-skew tests.
    skew: chrono::TimeDelta,
    /// The name it had before (see [`renamed_from`](Self::renamed_from)).
    renamed_from: Option<String>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("expr", &self.expr)
            .field("queue", &self.queue)
            .field("timezone", &self.zone.name())
            .field("missed", &self.missed)
            .field("renamed_from", &self.renamed_from)
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
            queue: Arc::from(T::QUEUE),
            make: Arc::new(move |tick| {
                let task = make(tick);
                let mut env = new_envelope(&task, now_ms(), None, DEFAULT_MAX_PAYLOAD)?;
                // A tick is enqueued once already; the unique key is not taken.
                env.unique = None;
                Ok(env)
            }),
            zone: Arc::new(InZone::new(Utc)),
            missed: MissedTicks::Skip,
            skew: chrono::TimeDelta::zero(),
            renamed_from: None,
        }
    }

    /// A schedule of a task known only at run time (what mq-python registers): at every
    /// tick, `make(tick)` gives the MessagePack payload of a task named `name` for `queue`.
    /// Named `name` (see [`name`](Self::name)), in UTC, skipping missed ticks, as
    /// [`new`](Self::new). The queue is checked by [`WorkerBuilder::build`](crate::WorkerBuilder::build),
    /// the name and payload at each tick (an empty name or an oversized payload fails the tick,
    /// logged).
    pub fn raw(
        expr: &str,
        queue: &str,
        name: &str,
        make: impl Fn(SystemTime) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let task_name = name.to_owned();
        Self {
            name: name.to_owned(),
            expr: expr.to_owned(),
            queue: Arc::from(queue),
            make: Arc::new(move |tick| {
                raw_envelope(&task_name, make(tick), now_ms(), DEFAULT_MAX_PAYLOAD)
            }),
            zone: Arc::new(InZone::new(Utc)),
            missed: MissedTicks::Skip,
            skew: chrono::TimeDelta::zero(),
            renamed_from: None,
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

    /// Declares that the schedule was named `old` before (same queue, expression and time
    /// zone). Renaming alone makes two schedules: during a rolling deploy, old workers and
    /// new ones would each enqueue every tick, and the old name would stay listed by
    /// `mq schedules`. Renamed from `old`, a tick either name enqueued is not enqueued again
    /// under the other, and the new name's workers remove the old name's record (at start and
    /// with each tick they enqueue). Keep it until no worker runs the old name.
    #[must_use]
    pub fn renamed_from(mut self, old: &str) -> Self {
        self.renamed_from = Some(old.to_owned());
        self
    }

    /// Runs the schedule as if this worker's clock were `ms` milliseconds ahead (behind if
    /// negative): for tests of clock skew between workers, not for production.
    #[doc(hidden)]
    #[must_use]
    pub fn test_clock_offset_ms(mut self, ms: i64) -> Self {
        self.skew = chrono::TimeDelta::milliseconds(ms);
        self
    }

    /// The schedule's name.
    pub fn schedule_name(&self) -> &str {
        &self.name
    }

    /// The queue its task goes to.
    pub fn queue(&self) -> &str {
        &self.queue
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

    // croner searches wall-clock (local) times and maps a wall time that the autumn change
    // repeats to its first occurrence. Left at that, an every-N-minutes schedule skips the
    // repeated hour's second pass, and from inside that second pass the "next" tick is one
    // already past (a worker started then loops on it). Ticks are instants here: every
    // occurrence of a matching wall time ticks, in order, except that a job at a fixed time
    // of day runs once, at its first occurrence (croner's rule; so is the spring gap's).
    fn next_after(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = whole_second(t);
        let every_pass = cron.determine_job_type() == JobType::IntervalWildcard;
        let mut from = t.with_timezone(&self.0);
        // Each pass skips a fixed-time tick already run in the first pass of a repeated hour.
        for _ in 0..4 {
            let found = cron.find_next_occurrence(&from, false).ok()?;
            let second = self.0.from_local_datetime(&found.naive_local()).latest();
            let mut tick = found.with_timezone(&Utc);
            if tick <= t {
                // `t` is in the second pass of the repeated hour; `found` is the first pass's.
                match second {
                    Some(s) if every_pass && s.with_timezone(&Utc) > t => {
                        tick = s.with_timezone(&Utc);
                    }
                    _ => {
                        from = second.unwrap_or(found);
                        continue;
                    }
                }
            }
            if every_pass {
                if let Some(s) = self.second_pass_first(cron, t, tick) {
                    tick = tick.min(s);
                }
            }
            return Some(tick);
        }
        None
    }

    fn last_until(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = whole_second(t);
        let found = cron
            .find_previous_occurrence(&t.with_timezone(&self.0), true)
            .ok()?;
        let mut tick = found.with_timezone(&Utc);
        if cron.determine_job_type() == JobType::IntervalWildcard {
            // The second occurrence of the wall time found, if it is not after `t`.
            if let Some(s) = self.0.from_local_datetime(&found.naive_local()).latest() {
                let s = s.with_timezone(&Utc);
                if s <= t {
                    tick = tick.max(s);
                }
            }
            // From a second pass, the search goes back past the first pass's later ticks.
            if let Some(change) = self.fall_back_between(tick, t) {
                let before = (change - chrono::TimeDelta::seconds(1)).with_timezone(&self.0);
                if let Ok(p) = cron.find_previous_occurrence(&before, true) {
                    let p = p.with_timezone(&Utc);
                    if p > tick && p <= t {
                        tick = p;
                    }
                }
            }
        }
        Some(tick)
    }
}

impl<Z> InZone<Z>
where
    Z: TimeZone + fmt::Debug + Send + Sync + 'static,
    Z::Offset: Send + Sync,
{
    /// The zone's UTC offset at `t`, in seconds.
    fn offset_at(&self, t: DateTime<Utc>) -> i32 {
        t.with_timezone(&self.0).offset().fix().local_minus_utc()
    }

    /// The first instant after `a` and at or before `b` whose offset is lower than at `a`
    /// (a fall-back change, such as the autumn end of daylight saving time), if the offset at
    /// `b` is lower; found by bisection to the second.
    fn fall_back_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let before = self.offset_at(a);
        if self.offset_at(b) >= before {
            return None;
        }
        let (mut lo, mut hi) = (a, b);
        while hi - lo > chrono::TimeDelta::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if self.offset_at(mid) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(whole_second(hi))
    }

    /// The first tick of the second pass of a repeated hour that begins after `t` and before
    /// `tick` (which croner's wall-clock search reached by jumping past that second pass).
    fn second_pass_first(
        &self,
        cron: &Cron,
        t: DateTime<Utc>,
        tick: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let change = self.fall_back_between(t, tick)?;
        let found = cron
            .find_next_occurrence(&change.with_timezone(&self.0), true)
            .ok()?;
        let second = self
            .0
            .from_local_datetime(&found.naive_local())
            .latest()?
            .with_timezone(&Utc);
        (second > t && second >= change).then_some(second)
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
    /// This worker's clock (plus a test's skew, see [`Schedule::test_clock_offset_ms`]).
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.schedule.skew
    }

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
        if let Err(e) = crate::redis::keys::validate_queue_name(&schedule.queue) {
            problems.push(e);
            continue;
        }
        if !seen.insert((schedule.queue.clone(), schedule.name.clone())) {
            problems.push(format!(
                "two schedules named {:?} on queue {:?}: name them apart with Schedule::name",
                schedule.name, schedule.queue
            ));
            continue;
        }
        if schedule.renamed_from.as_deref() == Some(schedule.name.as_str()) {
            problems.push(format!(
                "schedule {:?} is renamed from its own name",
                schedule.name
            ));
            continue;
        }
        match schedule.parse() {
            Ok(cron) => plans.push(Arc::new(Planned {
                keys: QueueKeys::new(prefix, &schedule.queue),
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
    let now = plan.now();
    if let Err(e) = register(&shared, &plan, now).await {
        shared.metrics.redis_error("cron");
        tracing::warn!(schedule = %s.name, queue = %s.queue, error = %error::chain(&e), "cannot record the schedule yet; its first tick records it");
    }
    if s.missed == MissedTicks::RunOnce {
        if let Some(prev) = s.zone.last_until(&plan.cron, now) {
            fire(&shared, &plan, prev, true, &token).await;
        }
    }
    let mut after = now;
    // Whether this worker's last tick was refused as ahead of the server's clock.
    let mut clock_ahead = false;
    while let Some(tick) = plan.next_after(after) {
        loop {
            let left = (tick - plan.now()).to_std().unwrap_or(Duration::ZERO);
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
        let refused = fire(&shared, &plan, tick, false, &token).await;
        match refused {
            Some(server) if !clock_ahead => {
                clock_ahead = true;
                tracing::warn!(schedule = %s.name, queue = %s.queue, tick = %tick, server_time = %server, ahead_ms = (tick - server).num_milliseconds(), max_ahead_ms = MAX_TICK_AHEAD.as_millis() as u64, "this host's clock is ahead of the Redis server's: its ticks are refused until the clocks agree (other workers enqueue them)");
            }
            None if clock_ahead => {
                clock_ahead = false;
                tracing::info!(schedule = %s.name, queue = %s.queue, tick = %tick, "this host's clock agrees with the Redis server's again");
            }
            _ => {}
        }
        // Ticks that passed meanwhile (a stalled process) are skipped, as missed ticks are.
        after = tick.max(plan.now());
    }
    tracing::warn!(schedule = %s.name, queue = %s.queue, expr = %s.expr, "the schedule has no more ticks");
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
    let mut pipe = redis::pipe();
    pipe.add_command(cmd).ignore();
    if let Some(old) = &s.renamed_from {
        pipe.cmd("HDEL")
            .arg(&plan.keys.cron)
            .arg(format!("{old}:expr"))
            .arg(format!("{old}:tz"))
            .arg(format!("{old}:next"))
            .ignore();
    }
    pipe.query_async::<()>(&mut shared.data.clone())
        .await
        .map_err(Error::redis("HSET cron"))
}

/// Enqueues `tick` unless another worker did (or a later tick was), retrying Redis errors with
/// backoff until the next tick is due or the worker stops. Returns the server's time if the
/// tick was refused as more than [`MAX_TICK_AHEAD`] ahead of it.
async fn fire(
    shared: &Shared,
    plan: &Planned,
    tick: DateTime<Utc>,
    catch_up: bool,
    token: &CancellationToken,
) -> Option<DateTime<Utc>> {
    let s = &plan.schedule;
    let next = plan.next_after(tick);
    let give_up = next.unwrap_or(tick + chrono::Duration::minutes(1));
    let mut failures = 0;
    loop {
        let env = match (s.make)(SystemTime::from(tick)) {
            Ok(env) => env,
            Err(e) => {
                tracing::error!(schedule = %s.name, queue = %s.queue, error = %error::chain(&e), "cannot encode the scheduled task; tick skipped");
                return None;
            }
        };
        match enqueue_tick(shared, plan, &env, tick, next, catch_up).await {
            Ok(Ticked::Added) => {
                tracing::info!(schedule = %s.name, queue = %s.queue, id = %env.id, tick = %tick, catch_up, "scheduled task enqueued");
                return None;
            }
            Ok(Ticked::Taken) => {
                tracing::debug!(schedule = %s.name, queue = %s.queue, tick = %tick, "tick enqueued by another worker");
                return None;
            }
            Ok(Ticked::Ahead { server }) => {
                tracing::debug!(schedule = %s.name, queue = %s.queue, tick = %tick, server_time = %server, "tick refused: ahead of the Redis server's clock");
                return Some(server);
            }
            Err(e) => {
                failures += 1;
                shared.metrics.redis_error("cron");
                tracing::warn!(schedule = %s.name, queue = %s.queue, tick = %tick, error = %error::chain(&e), "cannot enqueue the tick; retrying");
                if plan.now() >= give_up || !sleep_or_cancel(error_backoff(failures), token).await {
                    tracing::warn!(schedule = %s.name, queue = %s.queue, tick = %tick, "tick not enqueued by this worker");
                    return None;
                }
            }
        }
    }
}

/// What one `cron_tick.lua` call did with a tick.
enum Ticked {
    /// This call enqueued it.
    Added,
    /// Another worker did, or a later tick was recorded (or a catch-up found nothing to do).
    Taken,
    /// Refused: more than [`MAX_TICK_AHEAD`] ahead of the server's clock, `server`.
    Ahead { server: DateTime<Utc> },
}

/// One `cron_tick.lua` call.
async fn enqueue_tick(
    shared: &Shared,
    plan: &Planned,
    env: &Envelope,
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    catch_up: bool,
) -> Result<Ticked> {
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
        .arg(if catch_up { "1" } else { "0" })
        .arg(MAX_TICK_AHEAD.as_millis() as u64)
        .arg(plan.schedule.renamed_from.as_deref().unwrap_or(""));
    if let Some(old) = &plan.schedule.renamed_from {
        inv.key(keys.cron_tick(old, tick_ms));
    }
    push_entry_fields(&mut inv, env);
    let (code, server_ms): (i64, i64) = inv
        .invoke_async(&mut shared.data.clone())
        .await
        .map_err(Error::redis("cron tick"))?;
    Ok(match code {
        1 => Ticked::Added,
        -1 => Ticked::Ahead {
            server: DateTime::from_timestamp_millis(server_ms).unwrap_or_default(),
        },
        _ => Ticked::Taken,
    })
}

#[cfg(test)]
mod tests;
