//! The [`Worker`]: one fetcher, acker and promoter per queue, a global in-flight limit plus
//! optional per-queue limits, and graceful shutdown.
//!
//! ```text
//!  XREADGROUP ──> fetcher (buffer) ──spawn──> dispatcher (handler) ──ids──> acker ──> XDEL + XACK
//!                   ^ permits                 └── retry / dead-letter scripts
//!  delayed zset ──> promoter (Lua) ──> stream
//!  pause flags ──> pause watcher ──> fetchers start nothing of a paused queue
//! ```

mod acker;
mod arbiter;
pub mod cron;
mod dispatcher;
mod fetcher;
mod heartbeat;
mod lease;
mod pause;
mod permits;
mod promoter;
mod reclaimer;
mod release;
mod sampler;
mod waker;

pub(crate) use dispatcher::{after_failure, guarded};

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::Duration,
};

use crate::redis::conn::Conn;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::WorkerConfig,
    error::{self, Error, Result},
    handler::{ErasedHandler, Handler, Typed},
    health::Health,
    metrics::{Metrics, QueueMetrics},
    redis::{acl, conn, keys::validate_queue_name, keys::QueueKeys},
    task::Task,
};

/// How often [`Worker::run_until_idle`] checks whether its queues are idle: 50 ms.
pub const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long the ackers get to flush after the grace period: 10 s.
const ACK_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the background loops (promoters, reapers, sampler, metrics server, lease thread)
/// get to stop at shutdown before they are abandoned: 3 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

type Handlers = HashMap<String, Arc<dyn ErasedHandler>>;

/// Builds a [`Worker`]: register handlers, set limits, then [`build`](Self::build).
///
/// # Examples
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # use mq_core::{TaskContext, TaskError};
/// # #[derive(Serialize, Deserialize, mq_core::Task)]
/// # struct EmbedText { product_id: u64, text: String }
/// async fn embed(task: EmbedText, _ctx: TaskContext) -> Result<(), TaskError> {
///     Ok(())
/// }
/// # async fn run() -> mq_core::Result<()> {
/// mq_core::Worker::builder("redis://127.0.0.1/")
///     .handle(embed)
///     .concurrency(64)
///     .build()
///     .await?
///     .run_until_signal()
///     .await?;
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    config: WorkerConfig,
    handlers: HashMap<String, Handlers>,
    schedules: Vec<cron::Schedule>,
    problems: Vec<String>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("config", &self.config)
            .field("queues", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WorkerBuilder {
    /// Handles tasks of type `T` (on queue `T::QUEUE`) with `handler`: a [`Handler`] or an
    /// async fn / closure `Fn(T, TaskContext) -> Future<Output = Result<(), TaskError>>`.
    /// Several task types may share a queue.
    pub fn handle<T: Task, H: Handler<T>>(mut self, handler: H) -> Self {
        let queue = self.handlers.entry(T::QUEUE.to_owned()).or_default();
        if queue
            .insert(T::NAME.to_owned(), Arc::new(Typed::<T, H>::new(handler)))
            .is_some()
        {
            self.problems.push(format!(
                "two handlers for task {} on queue {}",
                T::NAME,
                T::QUEUE
            ));
        }
        self
    }

    /// Enqueues a task made by `make` at every tick of the cron expression `expr` (5 fields,
    /// or 6 with seconds first), in UTC, skipping ticks missed while no worker ran: a
    /// [`Schedule`](cron::Schedule) named after the task type (see
    /// [`schedule_with`](Self::schedule_with) for a name, a time zone or a catch-up policy).
    /// `make` gets the time of the tick. Every worker may run the same schedule: each tick is
    /// enqueued exactly once (README "Cron schedules"). The task goes to its queue's stream
    /// (of a partitioned queue, the queue's own stream, which its workers read too); a
    /// [unique](Task::unique_key) task's key is not taken.
    pub fn schedule<T: Task>(
        self,
        expr: &str,
        make: impl Fn(std::time::SystemTime) -> T + Send + Sync + 'static,
    ) -> Self {
        self.schedule_with(cron::Schedule::new(expr, make))
    }

    /// Runs a [`Schedule`](cron::Schedule) (see [`schedule`](Self::schedule)).
    pub fn schedule_with(mut self, schedule: cron::Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Global in-flight limit of this process (all queues). Default:
    /// [`DEFAULT_CONCURRENCY`](crate::config::DEFAULT_CONCURRENCY).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.config.concurrency = limit;
        self
    }

    /// In-flight limit for one queue in this process; overrides the task's `concurrency`.
    /// For a partitioned queue the limit covers all its partitions.
    pub fn queue_concurrency(mut self, queue: &str, limit: usize) -> Self {
        self.config
            .queue_concurrency
            .insert(queue.to_owned(), limit);
        self
    }

    /// Number of partitions of `queue` (1 to [`MAX_PARTITIONS`](crate::task::MAX_PARTITIONS));
    /// overrides the task's `partitions`. Producers must spread the queue's tasks over the
    /// same number ([`ProducerBuilder::partitions`](crate::producer::ProducerBuilder::partitions)).
    pub fn queue_partitions(mut self, queue: &str, partitions: u16) -> Self {
        self.config
            .queue_partitions
            .insert(queue.to_owned(), partitions);
        self
    }

    /// Reads the priority levels of `queue` (its `high`, normal and `low` streams, see
    /// [`Priority`](crate::Priority)) although none of its task types has a `priority`: for
    /// tasks that other producers (other languages, raw enqueues) write at other levels.
    pub fn queue_priorities(mut self, queue: &str) -> Self {
        self.config.queue_priorities.insert(queue.to_owned());
        self
    }

    /// Makes the priority levels of `queue` weighted instead of strict: among the levels with
    /// tasks ready, each starts tasks in proportion to its weight (`[high, normal, low]`, each
    /// at least 1), so lower levels never starve. Default: strict (a lower level's task starts
    /// only while no higher level's task of the queue is ready). Enables the levels like
    /// [`queue_priorities`](Self::queue_priorities).
    pub fn priority_weights(mut self, queue: &str, weights: [u32; 3]) -> Self {
        self.config.queue_priorities.insert(queue.to_owned());
        self.config
            .priority_weights
            .insert(queue.to_owned(), weights);
        self
    }

    /// Orders queues of this worker strictly: a task of a queue starts only while every queue
    /// before it in `queues` has no task ready (as strict priority levels do within a queue,
    /// and within each queue its levels still go first). A queue waiting at its own
    /// [`queue_concurrency`](Self::queue_concurrency) does not hold back the queues after it:
    /// they use the capacity it cannot. Queues not named are independent.
    /// Default: none, every queue independent.
    pub fn queue_order(mut self, queues: &[&str]) -> Self {
        self.config.queue_order = queues.iter().map(|q| (*q).to_owned()).collect();
        self
    }

    /// Key prefix (must match the producers'). Default: `mq`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.config.prefix = prefix.to_owned();
        self
    }

    /// Consumer group name. Default: `mq`. This names the one group of every queue of the
    /// worker; it is not a way to fan tasks out to several groups (mq deletes finished entries,
    /// so a second group would miss them): `build()` fails if a queue's stream already has a
    /// group of another name.
    pub fn group(mut self, group: &str) -> Self {
        self.config.group = group.to_owned();
        self
    }

    /// Consumer name of this worker in the group. Default: `{hostname}-{pid}-{random}`.
    pub fn consumer(mut self, name: &str) -> Self {
        self.config.consumer = name.to_owned();
        self
    }

    /// Time in-flight tasks get to finish at shutdown. Default:
    /// [`DEFAULT_GRACE_PERIOD`](crate::config::DEFAULT_GRACE_PERIOD).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period = grace;
        self
    }

    /// `BLOCK` time of a read on an empty queue (also the longest a shutdown waits for a read
    /// in progress). Default: [`DEFAULT_BLOCK_TIMEOUT`](crate::config::DEFAULT_BLOCK_TIMEOUT).
    pub fn block_timeout(mut self, block: Duration) -> Self {
        self.config.block_timeout = block;
        self
    }

    /// Longest time between two looks at the delayed set. The promoter sleeps until the
    /// earliest delayed task is due and is woken when an earlier one is scheduled, so this
    /// matters only when a wake-up is missed. Default:
    /// [`DEFAULT_PROMOTE_INTERVAL`](crate::config::DEFAULT_PROMOTE_INTERVAL).
    pub fn promote_interval(mut self, interval: Duration) -> Self {
        self.config.promote_interval = interval;
        self
    }

    /// Time after which an in-flight task whose lease was not renewed (its worker died or
    /// hangs) is taken over by another worker. Leases of running tasks are renewed every third
    /// of it from a thread of their own, so tasks may run far longer. Default:
    /// [`DEFAULT_RECLAIM_TIMEOUT`](crate::config::DEFAULT_RECLAIM_TIMEOUT).
    pub fn reclaim_timeout(mut self, timeout: Duration) -> Self {
        self.config.reclaim_timeout = timeout;
        self
    }

    /// Deliveries after which an entry that never finished (it probably crashes its worker) is
    /// dead-lettered as abandoned. Default:
    /// [`DEFAULT_MAX_DELIVERIES`](crate::config::DEFAULT_MAX_DELIVERIES).
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.config.max_deliveries = n;
        self
    }

    /// Cap of each queue's dead-letter stream: the oldest dead letters beyond it are trimmed
    /// (`XTRIM MAXLEN ~`: whole stream nodes, so up to `stream-node-max-entries`, 100 by
    /// default, more may stay) and counted in `mq_dead_letters_trimmed_total`. Default:
    /// [`DEFAULT_DEAD_LETTER_MAX_LEN`](crate::config::DEFAULT_DEAD_LETTER_MAX_LEN).
    pub fn dead_letter_max_len(mut self, n: u64) -> Self {
        self.config.dead_letter_max_len = n;
        self
    }

    /// Idle time after which a consumer with nothing pending is removed from the group.
    /// Default: [`DEFAULT_CONSUMER_IDLE_TIMEOUT`](crate::config::DEFAULT_CONSUMER_IDLE_TIMEOUT).
    pub fn consumer_idle_timeout(mut self, idle: Duration) -> Self {
        self.config.consumer_idle_timeout = idle;
        self
    }

    /// Serves Prometheus metrics at `GET /metrics` (and `GET /healthz`) on `addr`, e.g.
    /// `0.0.0.0:9464`. Without it the metrics are still kept: see [`Worker::metrics`].
    pub fn metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.config.metrics_addr = Some(addr);
        self
    }

    /// Longest time [`build`](Self::build) waits for Redis to be reachable and ready (it
    /// retries with backoff while Redis refuses connections or loads its data, logging each
    /// wait). Default: [`DEFAULT_STARTUP_TIMEOUT`](crate::config::DEFAULT_STARTUP_TIMEOUT).
    pub fn startup_timeout(mut self, limit: Duration) -> Self {
        self.config.startup_timeout = limit;
        self
    }

    /// TLS settings for a `rediss://` URL: a CA file, and a client certificate and key for
    /// mutual TLS (see [`TlsOptions`](crate::TlsOptions); [`TlsOptions::from_env`](crate::TlsOptions::from_env)
    /// reads them from `MQ_TLS_CA`, `MQ_TLS_CERT`, `MQ_TLS_KEY`). Every connection of the
    /// worker uses them. Default: none (a `rediss://` URL trusts the system's roots).
    pub fn tls(mut self, tls: crate::TlsOptions) -> Self {
        self.config.tls = tls;
        self
    }

    /// Runs even if Redis's `maxmemory-policy` may evict keys. By default `build()` refuses an
    /// evicting Redis: eviction drops whole streams and delayed sets, and the tasks in them
    /// are lost without a trace. Only for a Redis whose memory cannot run out.
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.config.allow_eviction = allow;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Checks the settings, connects to Redis and creates the consumer groups (idempotent).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no handlers, a zero limit, a limit for a queue without handlers, a
    /// bad queue name, two handlers for one task, a bad URL, an evicting Redis (see
    /// [`allow_eviction`](Self::allow_eviction)), a queue whose stream has a consumer group
    /// of another name, a bad cron expression or two [schedules](Self::schedule) of one name
    /// on one queue; [`Error::Redis`] if Redis is not reachable within the
    /// [`startup_timeout`](Self::startup_timeout) or refuses a command; [`Error::Tls`] at once
    /// for a TLS certificate the server or the worker refuses (see [`tls`](Self::tls)).
    pub async fn build(self) -> Result<Worker> {
        let WorkerBuilder {
            config,
            handlers,
            schedules,
            mut problems,
        } = self;
        let schedules = cron::plan(schedules, &config.prefix, &mut problems);
        if handlers.is_empty() {
            problems.push("no handlers registered".into());
        }
        if config.concurrency == 0 {
            problems.push("concurrency must be at least 1".into());
        }
        if config.block_timeout < Duration::from_millis(1) {
            problems.push("block_timeout must be at least 1 ms".into());
        }
        if config.reclaim_timeout < Duration::from_millis(30) {
            problems.push("reclaim_timeout must be at least 30 ms".into());
        }
        if config.consumer_idle_timeout < Duration::from_millis(100) {
            problems.push("consumer_idle_timeout must be at least 100 ms".into());
        }
        if config.dead_letter_max_len == 0 {
            problems.push("dead_letter_max_len must be at least 1".into());
        }
        if config.max_deliveries == 0 {
            problems.push("max_deliveries must be at least 1".into());
        }
        if config.promote_interval.is_zero() {
            problems.push("promote_interval must be positive".into());
        }
        for (q, limit) in &config.queue_concurrency {
            if *limit == 0 {
                problems.push(format!("queue_concurrency for {q} must be at least 1"));
            }
            if !handlers.contains_key(q) {
                let mut known: Vec<&String> = handlers.keys().collect();
                known.sort();
                problems.push(format!(
                    "queue_concurrency for {q:?}, which has no handler (queues with handlers: {known:?})"
                ));
            }
        }
        for (q, h) in &handlers {
            if let Err(e) = validate_queue_name(q) {
                problems.push(e);
            }
            let mut counts: Vec<u16> = h.values().map(|h| h.options().partitions).collect();
            counts.sort_unstable();
            counts.dedup();
            if counts.len() > 1 && !config.queue_partitions.contains_key(q) {
                problems.push(format!(
                    "the task types of queue {q:?} disagree on its partitions ({counts:?}): \
                     give them the same `partitions`, or set queue_partitions"
                ));
            }
        }
        for (q, w) in &config.priority_weights {
            if w.contains(&0) {
                problems.push(format!("priority_weights for {q} must be at least 1 each"));
            }
            if config.queue_order.contains(q) {
                problems.push(format!(
                    "queue {q:?} is in queue_order, which orders its levels strictly: drop its \
                     priority_weights or take it out of queue_order"
                ));
            }
        }
        for q in config.queue_priorities.iter().chain(&config.queue_order) {
            if !handlers.contains_key(q) {
                problems.push(format!(
                    "queue_priorities, priority_weights or queue_order name {q:?}, which has no handler"
                ));
            }
        }
        for (q, n) in &config.queue_partitions {
            if !(1..=crate::task::MAX_PARTITIONS).contains(n) {
                problems.push(format!(
                    "queue_partitions for {q} must be 1 to {}",
                    crate::task::MAX_PARTITIONS
                ));
            }
            if !handlers.contains_key(q) {
                problems.push(format!("queue_partitions for {q:?}, which has no handler"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Config(problems.join("; ")));
        }

        let metrics = Arc::new(Metrics::new());
        let endpoint = conn::Endpoint::open(&config.url, &config.tls)?;
        // A worker started a moment before Redis (or while it restarts or loads its data)
        // waits for it instead of dying.
        let started = std::time::Instant::now();
        let wait = config.startup_timeout;
        let data = conn::retry_transient("connect", started, wait, || {
            conn::managed(&endpoint, conn::COMMAND_TIMEOUT)
        })
        .await?;
        let pool =
            conn::retry_transient("connect", started, wait, || conn::pool(&endpoint, 4)).await?;
        if !config.allow_eviction {
            conn::retry_transient("check maxmemory-policy", started, wait, || {
                let mut c = data.clone();
                async move { conn::check_eviction_policy(&mut c).await }
            })
            .await?;
        }
        let xackdel = conn::server_version(&mut data.clone())
            .await
            .is_some_and(|v| v >= (8, 2));
        let queue_list: Vec<&str> = handlers.keys().map(String::as_str).collect();
        // Queues with a rate-limited task type: their rate states are checked too.
        let rate_queues: Vec<&str> = handlers
            .iter()
            .filter(|(_, h)| h.values().any(|h| h.options().rate.is_some()))
            .map(|(q, _)| q.as_str())
            .collect();
        conn::retry_transient("check ACL permissions", started, wait, || {
            let (mut c, cfg) = (data.clone(), &config);
            let (queues, rate_queues) = (&queue_list, &rate_queues);
            let needs = [
                acl::WORKER_COMMANDS,
                if xackdel { &[acl::XACKDEL] } else { &[] },
            ]
            .concat();
            async move {
                let (prefix, consumer) = (&cfg.prefix, &cfg.consumer);
                acl::check(&mut c, "worker", &needs, prefix, consumer, queues).await?;
                let rate = acl::RATE_LIMITED;
                acl::check(&mut c, "worker", rate, prefix, consumer, rate_queues).await
            }
        })
        .await?;
        let mut queues = Vec::new();
        // Queues in strict order share one arbiter; the levels of each other prioritized queue
        // have one of their own.
        let ordered = (!config.queue_order.is_empty()).then(|| arbiter::Arbiter::new(None));
        for (name, handlers) in handlers {
            let partitions = config
                .queue_partitions
                .get(&name)
                .copied()
                .unwrap_or_else(|| {
                    handlers
                        .values()
                        .map(|h| h.options().partitions)
                        .max()
                        .unwrap_or(1)
                });
            check_partitions(&data, &config.prefix, &name, partitions).await?;
            let limit = config.queue_concurrency.get(&name).copied().or_else(|| {
                handlers
                    .values()
                    .filter_map(|h| h.options().concurrency)
                    .min()
            });
            let names: Vec<&str> = handlers.keys().map(String::as_str).collect();
            let in_flight_limit = limit.unwrap_or(config.concurrency).min(config.concurrency);
            let queue_metrics = Arc::new(metrics.queue(&name, &names, in_flight_limit));
            // The partitions of a queue share its limit, handlers and metrics; each has its
            // own stream, fetcher, promoter and reclaimer.
            let limit = limit.map(|n| Arc::new(Semaphore::new(n)));
            // A partitioned queue's workers also read the queue's own stream `{q}`: what a
            // producer that does not know the partitions (an older one, another language, a
            // raw enqueue) wrote there, or what was there before the queue was partitioned,
            // still runs.
            let mut streams = QueueKeys::partitions(&config.prefix, &name, partitions);
            if partitions > 1 {
                streams.push(QueueKeys::new(&config.prefix, &name));
            }
            let shares = streams.len();
            // A prioritized queue: each stream at each level, ordered by an arbiter. A plain
            // queue: its streams alone, no arbiter.
            let prioritized = config.queue_priorities.contains(&name)
                || handlers.values().any(|h| h.options().priority.is_some());
            let position = config.queue_order.iter().position(|q| *q == name);
            let (levels, arbiter): (&[crate::Priority], _) = match (prioritized, position) {
                (true, Some(_)) => (&crate::Priority::ALL, ordered.clone()),
                (true, None) => (
                    &crate::Priority::ALL,
                    Some(arbiter::Arbiter::new(
                        config.priority_weights.get(&name).map(|w| &w[..]),
                    )),
                ),
                (false, Some(_)) => (&[crate::Priority::Normal], ordered.clone()),
                (false, None) => (&[crate::Priority::Normal], None),
            };
            let streams: Vec<QueueKeys> = levels
                .iter()
                .flat_map(|&l| streams.iter().map(move |k| k.level(l)))
                .collect();
            for keys in streams {
                // Rank: the queue's place in the order, then the level.
                let rank = position.unwrap_or(0) * crate::Priority::ALL.len() + keys.level.index();
                let seat = arbiter
                    .as_ref()
                    .map(|a| a.seat(rank, position.unwrap_or(0)));
                conn::retry_transient("create consumer group", started, wait, || {
                    let (mut c, stream, group) = (data.clone(), &keys.stream, &config.group);
                    async move {
                        let r = conn::ensure_group(&mut c, stream, group).await;
                        if let Err(Error::Redis { source, .. }) = &r {
                            conn::reconnect_if_readonly(&c, source).await;
                        }
                        r
                    }
                })
                .await?;
                let fetch = conn::retry_transient("connect", started, wait, || {
                    conn::managed(&endpoint, config.block_timeout + conn::COMMAND_TIMEOUT)
                })
                .await?;
                queues.push(QueueRuntime {
                    state: Arc::new(QueueState {
                        metrics: queue_metrics.clone(),
                        keys,
                        queue: Arc::from(name.as_str()),
                        handlers: handlers.clone(),
                        limit: limit.clone(),
                        partitions,
                        in_flight: Mutex::new(HashSet::new()),
                        slots: Mutex::new(HashMap::new()),
                        running: Mutex::new(HashMap::new()),
                        wake: tokio::sync::Notify::new(),
                        paused: AtomicBool::new(false),
                        pause_changed: tokio::sync::Notify::new(),
                    }),
                    fetch,
                    // The partitions share the queue's limit: each buffers its share, so a
                    // worker holds about what it can run, not N times that.
                    prefetch: in_flight_limit.div_ceil(shares).max(1),
                    seat,
                });
            }
        }
        queues.sort_by(|a, b| a.state.keys.queue.cmp(&b.state.keys.queue));
        let mut queue_names: Vec<String> =
            queues.iter().map(|q| q.state.keys.queue.clone()).collect();
        queue_names.dedup();
        // The queue registry (`{prefix}:queues`): the queues' own names, not their
        // partitions', and the queues the schedules enqueue to.
        let mut registered: Vec<String> = queue_names
            .iter()
            .map(|q| crate::redis::keys::base_queue(q).to_owned())
            .chain(schedules.iter().map(|p| p.keys.queue.clone()))
            .collect();
        registered.sort();
        registered.dedup();
        tracing::info!(
            consumer = %config.consumer,
            queues = ?queues.iter().map(|q| &q.state.keys.queue).collect::<Vec<_>>(),
            concurrency = config.concurrency,
            "worker ready"
        );
        Ok(Worker {
            shared: Arc::new(Shared {
                registry_info: heartbeat::info(&config, &queue_names),
                registered,
                endpoint,
                metrics,
                health: Arc::new(Health::default()),
                xackdel,
                global: Arc::new(Semaphore::new(config.concurrency)),
                config,
                data,
                pool,
            }),
            queues,
            schedules,
            token: CancellationToken::new(),
            abort: CancellationToken::new(),
        })
    }
}

/// What every part of a running worker shares.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    /// For connections made on other threads (the lease thread), Pub/Sub and the sampler.
    pub(crate) endpoint: conn::Endpoint,
    /// This worker's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// What `/healthz` reports.
    pub(crate) health: Arc<Health>,
    /// Whether the server has `XACKDEL` (Redis 8.2+): then acks use it.
    pub(crate) xackdel: bool,
    /// This worker's entry in the `{prefix}:workers` registry.
    pub(crate) registry_info: String,
    /// The queues this worker adds to the `{prefix}:queues` registry when it starts.
    pub(crate) registered: Vec<String>,
    /// Multiplexed connection for acks, retries and dead letters.
    pub(crate) data: Conn,
    /// Connections for control commands (promote, reap).
    pub(crate) pool: conn::Control,
    /// The global in-flight limit.
    pub(crate) global: Arc<Semaphore>,
}

/// One queue's handlers and limit.
pub(crate) struct QueueState {
    pub(crate) keys: QueueKeys,
    pub(crate) queue: Arc<str>,
    pub(crate) handlers: Handlers,
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// Partitions of the queue (1 if not partitioned): a rate limit without a rate key is
    /// split evenly across them.
    pub(crate) partitions: u16,
    /// Entry ids this worker is running or has not settled yet: their leases are renewed.
    pub(crate) in_flight: Mutex<HashSet<String>>,
    /// Running tasks with per-key concurrency: entry id -> its slots key. The lease thread
    /// renews these slots with the leases.
    pub(crate) slots: Mutex<HashMap<String, String>>,
    /// Running tasks: entry id -> the cancellation token of its `TaskContext`, fired when a
    /// lease renewal reports the task cancelled. An entry reported cancelled while tracked but
    /// not started yet (buffered by a priority level's fetcher, or waiting for its key slot or
    /// rate token) gets a fired token here, so it is settled as cancelled without running.
    pub(crate) running: Mutex<HashMap<String, CancellationToken>>,
    /// Metric handles of this queue (shared by its partitions).
    pub(crate) metrics: Arc<QueueMetrics>,
    /// Wakes the queue's promoter: an earlier delayed task was scheduled.
    pub(crate) wake: tokio::sync::Notify,
    /// Whether the queue is paused: its fetcher starts and reads nothing (set by `pause.rs`).
    pub(crate) paused: AtomicBool,
    /// Wakes the queue's fetcher when `paused` changed.
    pub(crate) pause_changed: tokio::sync::Notify,
}

impl QueueState {
    pub(crate) fn track(&self, entry_id: &str) {
        lock(&self.in_flight).insert(entry_id.to_owned());
    }

    pub(crate) fn untrack<'a>(&self, entry_ids: impl IntoIterator<Item = &'a String>) {
        let ids: Vec<&String> = entry_ids.into_iter().collect();
        {
            let mut set = lock(&self.in_flight);
            for id in &ids {
                set.remove(*id);
            }
        }
        // A cancellation that reached an entry which never started (see `running`).
        let mut running = lock(&self.running);
        for id in ids {
            running.remove(id);
        }
    }

    pub(crate) fn is_tracked(&self, entry_id: &str) -> bool {
        lock(&self.in_flight).contains(entry_id)
    }

    /// How many entries are tracked (buffered, running or waiting for their ack).
    pub(crate) fn tracked_len(&self) -> usize {
        lock(&self.in_flight).len()
    }

    pub(crate) fn in_flight_ids(&self) -> Vec<String> {
        lock(&self.in_flight).iter().cloned().collect()
    }

    /// The stream's name in logs and health reports: `q`, `q#2`, or with its level `q:high`.
    pub(crate) fn label(&self) -> String {
        match self.keys.level {
            crate::Priority::Normal => self.keys.queue.clone(),
            l => format!("{}:{l}", self.keys.queue),
        }
    }

    /// Fires the cancellation tokens of the running tasks of these entries; an entry tracked
    /// but not started yet keeps a fired token for its start (see `running`).
    pub(crate) fn signal_cancelled(&self, entry_ids: &[String]) {
        let tracked: Vec<bool> = {
            let set = lock(&self.in_flight);
            entry_ids.iter().map(|id| set.contains(id)).collect()
        };
        let mut running = lock(&self.running);
        for (id, tracked) in entry_ids.iter().zip(tracked) {
            match running.get(id) {
                Some(token) => token.cancel(),
                None if tracked => {
                    let token = CancellationToken::new();
                    token.cancel();
                    running.insert(id.clone(), token);
                }
                None => {}
            }
        }
    }
}

/// Records `queue`'s number of partitions in `{prefix}:partitions` (where admin tools find
/// it), refusing fewer than recorded: tasks in the partitions left out would never run.
async fn check_partitions(data: &Conn, prefix: &str, queue: &str, partitions: u16) -> Result<()> {
    let key = crate::redis::keys::partitions_key(prefix);
    // Records the count unless a larger one is, atomically: two workers starting with
    // different counts never lower it.
    let recorded: u16 = redis::Script::new(
        "local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '1') \
         local want = tonumber(ARGV[2]) \
         if cur >= want then return cur end \
         redis.call('HSET', KEYS[1], ARGV[1], want) return want",
    )
    .key(&key)
    .arg(queue)
    .arg(partitions)
    .invoke_async(&mut data.clone())
    .await
    .map_err(Error::redis("record partitions"))?;
    if recorded > partitions {
        return Err(Error::Config(format!(
            "queue {queue:?} has {recorded} partitions (recorded in {key}), this worker is set \
             up for {partitions}: the tasks of partitions {partitions}..{recorded} would never \
             run. Use partitions = {recorded}; to shrink a queue, drain it first and delete \
             the field (HDEL {key} {queue})"
        )));
    }
    Ok(())
}

/// Locks a mutex, ignoring poisoning (the data, a set of ids, stays consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct QueueRuntime {
    state: Arc<QueueState>,
    /// The fetcher's own connection: a blocking read must not hold up other commands.
    fetch: Conn,
    /// The queue's in-flight limit in this process: the fetcher buffers at most that many.
    prefetch: usize,
    /// The fetcher's place in its arbiter, if its queue is prioritized or ordered.
    seat: Option<arbiter::Seat>,
}

/// A built worker, ready to [`run`](Self::run).
pub struct Worker {
    shared: Arc<Shared>,
    queues: Vec<QueueRuntime>,
    /// The cron schedules this worker runs.
    schedules: Vec<Arc<cron::Planned>>,
    token: CancellationToken,
    abort: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts building a worker that connects to `url`.
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder {
            config: WorkerConfig::new(url),
            handlers: HashMap::new(),
            schedules: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.shared.config.consumer
    }

    /// This worker's metrics (also served at `/metrics` with
    /// [`WorkerBuilder::metrics_addr`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// This worker's health, as `GET /healthz` reports it.
    pub fn health(&self) -> Arc<Health> {
        self.shared.health.clone()
    }

    /// The token that stops this worker when cancelled (see [`run`](Self::run)). Take it
    /// before `run` consumes the worker; cancelling it again, or after `run` returned, does
    /// nothing.
    ///
    /// # Examples
    ///
    /// Stop the worker from elsewhere in the program, here after an hour:
    ///
    /// ```no_run
    /// # use mq_core::{Task, TaskContext, TaskError, Worker};
    /// # #[derive(serde::Serialize, serde::Deserialize, Task)]
    /// # struct Ping;
    /// # async fn ping(_task: Ping, _ctx: TaskContext) -> Result<(), TaskError> { Ok(()) }
    /// # async fn demo() -> mq_core::Result<()> {
    /// let worker = Worker::builder("redis://127.0.0.1/").handle(ping).build().await?;
    /// let stop = worker.shutdown_token();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    ///     stop.cancel(); // graceful: in-flight tasks get the grace period
    /// });
    /// worker.run().await
    /// # }
    /// ```
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The token that ends the grace period at once when cancelled during a shutdown: running
    /// tasks are aborted and handed back (see [`run`](Self::run)). Cancelled earlier, it takes
    /// effect when the shutdown begins (no grace period). A second SIGINT or SIGTERM in
    /// [`run_until_signal`](Self::run_until_signal) cancels it.
    pub fn abort_token(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully; a second signal during the
    /// drain aborts the tasks still running (see [`run`](Self::run)).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until_signal(self) -> Result<()> {
        let (token, abort) = (self.token.clone(), self.abort.clone());
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: draining (a second signal stops at once)");
            token.cancel();
            wait_for_signal().await;
            tracing::warn!("second shutdown signal: aborting the tasks still running");
            abort.cancel();
        });
        let r = self.run().await;
        signals.abort();
        r
    }

    /// Runs until every queue of this worker is idle, then shuts down gracefully: for batch
    /// jobs, scripts and tests that enqueue, process and stop. Idle means, in one consistent
    /// snapshot per queue ([`QueueStats::is_idle`](crate::admin::QueueStats::is_idle)): no
    /// entry in the stream (so nothing ready, nothing running and every ack flushed), and
    /// nothing delayed or waiting for a retry. Dead letters do not count. Checked every
    /// [`IDLE_POLL`]; a queue that is empty when the worker starts stops it at once, so enqueue
    /// first. The shutdown token and signals still work as with [`run`](Self::run).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # use mq_core::{Producer, TaskContext, TaskError, Worker};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Email { to: String }
    /// async fn send(email: Email, _ctx: TaskContext) -> Result<(), TaskError> {
    ///     println!("sending to {}", email.to);
    ///     Ok(())
    /// }
    /// # async fn job() -> mq_core::Result<()> {
    /// let producer = Producer::connect("redis://127.0.0.1/").await?;
    /// producer.enqueue_many((0..100).map(|i| Email { to: format!("user{i}@example.com") })).await?;
    /// Worker::builder("redis://127.0.0.1/")
    ///     .handle(send)
    ///     .build()
    ///     .await?
    ///     .run_until_idle() // returns once all 100 are done (or dead-lettered)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until_idle(self) -> Result<()> {
        let (shared, token) = (self.shared.clone(), self.token.clone());
        let keys: Vec<QueueKeys> = self.queues.iter().map(|q| q.state.keys.clone()).collect();
        let watcher = tokio::spawn(async move {
            let mut conn = shared.data.clone();
            while sleep_or_cancel(IDLE_POLL, &token).await {
                let mut idle = true;
                for k in &keys {
                    match crate::admin::snapshot(&mut conn, k, &shared.config.group).await {
                        Ok(s) if s.is_idle() => {}
                        Ok(_) => idle = false,
                        Err(e) => {
                            tracing::debug!(queue = %k.queue, error = %error::chain(&e), "idle check failed");
                            idle = false;
                        }
                    }
                    if !idle {
                        break;
                    }
                }
                if idle {
                    tracing::info!("every queue is idle: stopping");
                    token.cancel();
                }
            }
        });
        let r = self.run().await;
        watcher.abort();
        r
    }

    /// Runs until the [`shutdown_token`](Self::shutdown_token) is cancelled, then stops
    /// fetching at once, lets in-flight tasks finish within the grace period and flushes their
    /// acks. Tasks still running when the grace period ends (or when the
    /// [`abort_token`](Self::abort_token) is cancelled) are aborted: their handler futures are
    /// dropped and their entries handed back to the group, so another worker runs them at its
    /// next reclaim instead of after the reclaim timeout. Entries fetched but not started are
    /// handed back the same way, without counting that delivery. Work started with
    /// [`TaskContext::blocking`](crate::TaskContext::blocking) cannot be stopped: it runs to
    /// its end and its result is dropped.
    ///
    /// Redis being unreachable never ends `run`: every part retries with backoff and
    /// `/healthz` reports the failures.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] if tasks were aborted; [`Error::Config`] if the metrics
    /// address cannot be bound or a thread cannot be started.
    ///
    /// # Examples
    ///
    /// A worker that stops on its own signal (here Ctrl-C, as
    /// [`run_until_signal`](Self::run_until_signal) does for SIGINT and SIGTERM):
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mq_core::{Task, TaskContext, TaskError, Worker};
    /// # #[derive(serde::Serialize, serde::Deserialize, Task)]
    /// # struct Resize { id: u64 }
    ///
    /// async fn resize(task: Resize, _ctx: TaskContext) -> Result<(), TaskError> {
    ///     println!("resizing {}", task.id);
    ///     Ok(())
    /// }
    ///
    /// # async fn demo() -> mq_core::Result<()> {
    /// let worker = Worker::builder("redis://127.0.0.1/")
    ///     .handle(resize)
    ///     .grace_period(Duration::from_secs(10))
    ///     .build()
    ///     .await?;
    /// let stop = worker.shutdown_token();
    /// tokio::spawn(async move {
    ///     let _ = tokio::signal::ctrl_c().await;
    ///     stop.cancel();
    /// });
    /// match worker.run().await {
    ///     Ok(()) => println!("drained"),
    ///     Err(mq_core::Error::ShutdownTimeout { in_flight, .. }) => {
    ///         eprintln!("{in_flight} tasks handed back to other workers");
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run(self) -> Result<()> {
        let Worker {
            shared,
            queues,
            schedules,
            token,
            abort,
        } = self;
        let lease_stop = CancellationToken::new();
        // Bind the metrics port first: if that fails nothing else has started.
        let metrics_server = match shared.config.metrics_addr {
            Some(addr) => Some(
                crate::metrics::serve(
                    addr,
                    shared.metrics.clone(),
                    shared.health.clone(),
                    lease_stop.clone(),
                )
                .await?,
            ),
            None => None,
        };
        if let Err(e) = heartbeat::register(&shared).await {
            // Not fatal: the lease thread writes the heartbeat again every few seconds.
            shared.metrics.redis_error("heartbeat");
            shared.health.failed("heartbeat", &error::chain(&e));
            tracing::warn!(error = %error::chain(&e), "cannot register the worker yet; retrying with the heartbeat");
        }
        // Leases and heartbeats live on a thread of their own, so handlers that hog the
        // runtime's threads cannot starve them; they stop only after the acks are flushed.
        let states: Vec<Arc<QueueState>> = queues.iter().map(|q| q.state.clone()).collect();
        let lease_thread = match lease::spawn(shared.clone(), states.clone(), lease_stop.clone()) {
            Ok(t) => t,
            Err(e) => {
                lease_stop.cancel();
                return Err(e);
            }
        };
        let waker = tokio::spawn(waker::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        let sampler = tokio::spawn(sampler::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        // A worker started on a paused queue starts none of its tasks: read the flags before
        // the fetchers start, then every PAUSE_POLL.
        match tokio::time::timeout(conn::COMMAND_TIMEOUT, pause::refresh(&shared, &states)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.metrics.redis_error("pause");
                tracing::warn!(error = %error::chain(&e), "cannot read the pause flags yet; retrying every {:?}", crate::admin::PAUSE_POLL);
            }
            Err(_) => tracing::warn!("reading the pause flags timed out; retrying"),
        }
        let pause_watch = tokio::spawn(pause::run(
            shared.clone(),
            states.clone(),
            lease_stop.clone(),
        ));
        let tracker = TaskTracker::new();
        let ack_stop = CancellationToken::new();
        // What running tasks watch: cancelled only once the shutdown began and the grace period
        // is over (or the abort token is cancelled then), never before.
        let hard_stop = CancellationToken::new();
        let mut fetchers = JoinSet::new();
        let mut ackers = JoinSet::new();
        let mut promoters = JoinSet::new();
        for plan in schedules {
            promoters.spawn(cron::run(shared.clone(), plan, token.clone()));
        }
        for q in queues {
            let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(crate::config::MAX_ACK_BATCH * 2);
            ackers.spawn(acker::run(
                shared.clone(),
                q.state.clone(),
                ack_rx,
                ack_stop.clone(),
            ));
            promoters.spawn(promoter::run(
                shared.clone(),
                q.state.clone(),
                token.clone(),
            ));
            promoters.spawn(reclaimer::reap_loop(
                shared.clone(),
                q.state.clone(),
                token.clone(),
            ));
            let fetcher = fetcher::Fetcher {
                shared: shared.clone(),
                queue: q.state,
                conn: q.fetch,
                ack_tx,
                tracker: tracker.clone(),
                token: token.clone(),
                abort: hard_stop.clone(),
                prefetch: q.prefetch,
                seat: q.seat,
            };
            fetchers.spawn(watch_fetcher(fetcher, shared.clone(), token.clone()));
        }

        token.cancelled().await;
        // Fetchers stop at once (a blocking read is ended with CLIENT UNBLOCK) and hand back
        // what they fetched but did not start; anything else is handed back below.
        if !join_all_within(&mut fetchers, STOP_TIMEOUT).await {
            tracing::warn!("a fetcher did not stop in time; abandoned");
        }
        tracker.close();
        let grace = shared.config.grace_period;
        let drained = tokio::select! {
            r = tokio::time::timeout(grace, tracker.wait()) => r.is_ok(),
            _ = abort.cancelled() => tracker.is_empty(),
        };
        let mut aborted = 0;
        if !drained {
            aborted = tracker.len();
            tracing::warn!(
                running = aborted,
                ?grace,
                "grace period over: aborting the tasks still running and handing them back"
            );
            hard_stop.cancel();
            if tokio::time::timeout(STOP_TIMEOUT, tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("aborted tasks did not end in time");
            }
        }
        ack_stop.cancel();
        if !join_all_within(&mut ackers, ACK_FLUSH_TIMEOUT).await {
            tracing::warn!("acks not flushed in time; those tasks stay pending and run again");
        }
        for q in &states {
            match tokio::time::timeout(STOP_TIMEOUT, release::release_stranded(&shared, q)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(queue = %q.queue, released = n, "handed back entries fetched but not run")
                }
                Ok(Err(e)) => {
                    tracing::warn!(queue = %q.queue, error = %error::chain(&e), "cannot hand back entries fetched but not run; they are reclaimed after the reclaim timeout")
                }
                Err(_) => {
                    tracing::warn!(queue = %q.queue, "handing back entries fetched but not run timed out; they are reclaimed after the reclaim timeout")
                }
            }
            // Leave the group if nothing is pending for this consumer (checked in the script),
            // so graceful restarts do not pile up consumers; otherwise the reaper removes it
            // later, once others took over what it holds.
            let left = tokio::time::timeout(STOP_TIMEOUT, reclaimer::remove_self(&shared, q)).await;
            if !matches!(left, Ok(Ok(_))) {
                tracing::debug!(queue = %q.queue, "could not leave the consumer group; the reaper removes this consumer later");
            }
        }
        lease_stop.cancel();
        if !join_all_within(&mut promoters, STOP_TIMEOUT).await {
            tracing::warn!("promoter or reaper did not stop in time; abandoned");
        }
        let mut rest = JoinSet::new();
        rest.spawn(async move {
            let _ = sampler.await;
            let _ = waker.await;
            let _ = pause_watch.await;
        });
        if let Some(server) = metrics_server {
            rest.spawn(async move {
                let _ = server.await;
            });
        }
        rest.spawn(async move {
            if tokio::task::spawn_blocking(move || lease_thread.join())
                .await
                .is_err()
            {
                tracing::warn!("lease thread ended abnormally");
            }
        });
        if !join_all_within(&mut rest, STOP_TIMEOUT).await {
            tracing::warn!(
                "sampler, metrics server or lease thread did not stop in time; abandoned"
            );
        }
        if drained {
            tracing::info!("worker stopped");
            Ok(())
        } else {
            Err(Error::ShutdownTimeout {
                in_flight: aborted,
                grace,
            })
        }
    }
}

/// Runs a fetcher; if it ends (or panics) while the worker is not shutting down, the worker is
/// reported unhealthy: its queue is no longer read.
async fn watch_fetcher(fetcher: fetcher::Fetcher, shared: Arc<Shared>, token: CancellationToken) {
    use futures::FutureExt;
    let queue = fetcher.queue.queue.clone();
    let r = std::panic::AssertUnwindSafe(fetcher.run())
        .catch_unwind()
        .await;
    if !token.is_cancelled() {
        let why = match r {
            Ok(()) => "ended".to_owned(),
            Err(p) => format!("panicked: {}", crate::handler::panic_message(&*p)),
        };
        tracing::error!(%queue, %why, "fetcher stopped while the worker runs; this queue is no longer read");
        shared.health.fatal(&format!("fetcher {queue}"), &why);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the worker");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for every task of `set` for at most `limit`, then aborts the rest. Returns whether all
/// ended in time.
async fn join_all_within(set: &mut JoinSet<()>, limit: Duration) -> bool {
    let done = tokio::time::timeout(limit, async { while set.join_next().await.is_some() {} })
        .await
        .is_ok();
    if !done {
        set.abort_all();
    }
    done
}

/// Sleeps `d` unless `token` is cancelled first; returns `false` if it was.
pub(crate) async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = token.cancelled() => false,
    }
}

/// Exponential reconnect delay for loops that hit Redis errors: 100 ms doubling to 5 s.
pub(crate) fn error_backoff(failures: u32) -> Duration {
    crate::retry::Backoff::Exponential {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
    }
    .delay(failures)
}
