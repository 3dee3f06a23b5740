//! [`WorkerBuilder`]: handlers, limits, schedules and settings, checked and turned into a
//! [`Worker`] by [`build`](WorkerBuilder::build) (connections, consumer groups, ACL checks,
//! partitions).

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::Duration,
};

use crate::redis::conn::Conn;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    config::WorkerConfig,
    dynamic::{DynTask, Dynamic, ANY_NAME},
    error::{Error, Result},
    handler::{ErasedHandler, Handler, Typed},
    health::Health,
    metrics::Metrics,
    redis::{acl, conn, keys::validate_queue_name, keys::QueueKeys},
    task::{Task, TaskOptions},
};

use super::run::{QueueRuntime, Worker};
use super::state::{Handlers, QueueState, Shared};
use super::{arbiter, cron, heartbeat};

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
}

impl WorkerBuilder {
    /// Handles tasks of type `T` (on queue `T::QUEUE`) with `handler`: a [`Handler`] or an
    /// async fn / closure `Fn(T, TaskContext) -> Future<Output = Result<(), TaskError>>`.
    /// Several task types may share a queue.
    pub fn handle<T: Task, H: Handler<T>>(self, handler: H) -> Self {
        self.insert(T::QUEUE, T::NAME, Arc::new(Typed::<T, H>::new(handler)))
    }

    /// Handles the tasks named `name` on `queue` (every name not handled otherwise when
    /// `name` is `None`) with `handler`, under `options`: for task types known only at run
    /// time (another language's bridge, a tool). Each payload is decoded from MessagePack as
    /// `V` (`rmpv::Value` takes any); one that does not decode is dead-lettered with the
    /// decoder's message. Wrap `handler` with [`batch`](fn@crate::batch) for batches.
    pub fn handle_dynamic<V, H>(
        self,
        queue: &str,
        name: Option<&str>,
        options: TaskOptions,
        handler: H,
    ) -> Self
    where
        V: serde::de::DeserializeOwned + Send + 'static,
        H: Handler<DynTask<V>>,
    {
        let erased = Arc::new(Dynamic::<V, H>::new(handler, options));
        self.insert(queue, name.unwrap_or(ANY_NAME), erased)
    }

    fn insert(mut self, queue: &str, name: &str, handler: Arc<dyn ErasedHandler>) -> Self {
        let handlers = self.handlers.entry(queue.to_owned()).or_default();
        if handlers.insert(name.to_owned(), handler).is_some() {
            let name = if name == ANY_NAME {
                "of any name"
            } else {
                name
            };
            self.problems
                .push(format!("two handlers for task {name} on queue {queue}"));
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

    /// Exports `mq_workers_needed{queue}`: the worker processes needed to empty each of the
    /// worker's queues by the next `hour:minute` UTC at the measured per-worker rate (see
    /// [`Admin::eta`](crate::Admin::eta)), for an autoscaler. Values out of range are clamped
    /// (23:59). Default: none (`mq_queue_eta_seconds` is exported either way).
    pub fn eta_deadline_utc(mut self, hour: u8, minute: u8) -> Self {
        let minutes = u16::from(hour.min(23)) * 60 + u16::from(minute.min(59));
        self.config.eta_deadline_utc_minutes = Some(minutes);
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
        let data = crate::redis::transient::retry_transient("connect", started, wait, || {
            conn::managed(&endpoint, conn::COMMAND_TIMEOUT)
        })
        .await?;
        let pool = crate::redis::transient::retry_transient("connect", started, wait, || {
            conn::pool(&endpoint, 4)
        })
        .await?;
        if !config.allow_eviction {
            crate::redis::transient::retry_transient(
                "check maxmemory-policy",
                started,
                wait,
                || {
                    let mut c = data.clone();
                    async move { crate::redis::server::check_eviction_policy(&mut c).await }
                },
            )
            .await?;
        }
        let xackdel = crate::redis::server::server_version(&mut data.clone())
            .await
            .is_some_and(|v| v >= (8, 2));
        let queue_list: Vec<&str> = handlers.keys().map(String::as_str).collect();
        // Queues with a rate-limited task type: their rate states are checked too.
        let rate_queues: Vec<&str> = handlers
            .iter()
            .filter(|(_, h)| h.values().any(|h| h.options().rate.is_some()))
            .map(|(q, _)| q.as_str())
            .collect();
        crate::redis::transient::retry_transient("check ACL permissions", started, wait, || {
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
                crate::redis::transient::retry_transient(
                    "create consumer group",
                    started,
                    wait,
                    || {
                        let (mut c, stream, group) = (data.clone(), &keys.stream, &config.group);
                        async move {
                            let r = crate::redis::server::ensure_group(&mut c, stream, group).await;
                            if let Err(Error::Redis { source, .. }) = &r {
                                crate::redis::transient::reconnect_if_readonly(&c, source).await;
                            }
                            r
                        }
                    },
                )
                .await?;
                let fetch =
                    crate::redis::transient::retry_transient("connect", started, wait, || {
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
