//! Prometheus metrics of a worker and the `/metrics` + `/healthz` endpoint.
//!
//! Names and labels are stable (see the README's metrics table). Per-task handles are
//! resolved once per (queue, task) when the worker is built, so the hot path only bumps
//! atomics: no label hashing and no Redis round trips per task. Queue gauges are sampled from
//! Redis every [`SAMPLE_INTERVAL`].

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How often queue depth, pending, delayed, dead-letter size and live workers are sampled: 5 s.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The `op` label values of `mq_redis_errors_total`, exported at 0 from the start.
pub const REDIS_OPS: &[&str] = &[
    "fetch",
    "reclaim",
    "ack",
    "retry",
    "dead-letter",
    "promote",
    "renew",
    "heartbeat",
    "reap",
    "sample",
    "pause",
];

/// Run-time buckets (seconds): 1 ms to 10 min.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];
/// Wait buckets (seconds): 0.5 ms to 30 min.
const WAIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1800.0,
];

/// All metrics of one worker, in a registry of their own.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    started: IntCounterVec,
    finished: IntCounterVec,
    rate_limited: IntCounterVec,
    key_slot_waits: IntCounterVec,
    duration: HistogramVec,
    wait: HistogramVec,
    in_flight: IntGaugeVec,
    concurrency_limit: IntGaugeVec,
    pub(crate) depth: IntGaugeVec,
    pub(crate) pending: IntGaugeVec,
    pub(crate) delayed: IntGaugeVec,
    pub(crate) dead_letters: IntGaugeVec,
    pub(crate) paused: IntGaugeVec,
    pub(crate) duplicates_refused: IntGaugeVec,
    pub(crate) eta_seconds: GaugeVec,
    pub(crate) workers_needed: IntGaugeVec,
    reclaimed: IntCounterVec,
    dead_trimmed: IntCounterVec,
    redis_errors: IntCounterVec,
    pub(crate) workers: IntGauge,
}

fn check<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        // Only reachable through a programming error in the fixed definitions below.
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = check(IntCounterVec::new(Opts::new(name, help), labels));
            check(registry.register(Box::new(c.clone())));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = check(IntGaugeVec::new(Opts::new(name, help), &["queue"]));
            check(registry.register(Box::new(g.clone())));
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = check(HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            ));
            check(registry.register(Box::new(h.clone())));
            h
        };
        let workers = check(IntGauge::new(
            "mq_workers",
            "Live workers (fresh heartbeat)",
        ));
        check(registry.register(Box::new(workers.clone())));
        let redis_errors = counter(
            "mq_redis_errors_total",
            "Failed Redis operations, by operation",
            &["op"],
        );
        for op in REDIS_OPS {
            redis_errors.with_label_values(&[op]);
        }
        Metrics {
            started: counter(
                "mq_tasks_started_total",
                "Task attempts started",
                &["queue", "task"],
            ),
            finished: counter(
                "mq_tasks_finished_total",
                "Task attempts finished, by outcome: success, retry, dead, snoozed or cancelled",
                &["queue", "task", "outcome"],
            ),
            rate_limited: counter(
                "mq_tasks_rate_limited_total",
                "Deliveries of rate-limited tasks rescheduled for their rate slot instead of starting",
                &["queue", "task"],
            ),
            key_slot_waits: counter(
                "mq_tasks_key_slot_waits_total",
                "Deliveries of tasks with per-key concurrency rescheduled because every slot of their key was taken",
                &["queue", "task"],
            ),
            duration: histogram(
                "mq_task_duration_seconds",
                "Run time of one attempt",
                &["queue", "task"],
                DURATION_BUCKETS,
            ),
            wait: histogram(
                "mq_task_wait_seconds",
                "Time from entering the stream (enqueue, promotion or retry) to handler start",
                &["queue"],
                WAIT_BUCKETS,
            ),
            in_flight: gauge("mq_tasks_in_flight", "Tasks running in this worker"),
            concurrency_limit: gauge(
                "mq_concurrency_limit",
                "In-flight limit of the queue in this worker",
            ),
            depth: gauge("mq_queue_depth", "Ready tasks not yet delivered (backlog)"),
            pending: gauge("mq_queue_pending", "Tasks delivered and not yet acked"),
            delayed: gauge("mq_queue_delayed", "Scheduled and retrying tasks"),
            dead_letters: gauge("mq_dead_letter_size", "Tasks in the dead-letter stream"),
            paused: gauge(
                "mq_queue_paused",
                "1 while the queue is paused (workers start none of its tasks), else 0",
            ),
            duplicates_refused: gauge(
                "mq_unique_duplicates_refused",
                "Enqueues of unique tasks refused as duplicates since the queue's counter was \
                 created, by any producer (the Redis counter mq:{queue}:duplicates, sampled)",
            ),
            eta_seconds: {
                let g = check(GaugeVec::new(
                    Opts::new(
                        "mq_queue_eta_seconds",
                        "Seconds until the queue is empty at its drain rate measured from Redis \
                         over the last minutes across all workers (Admin::eta); absent while \
                         it has no rate and tasks remain",
                    ),
                    &["queue"],
                ));
                check(registry.register(Box::new(g.clone())));
                g
            },
            workers_needed: gauge(
                "mq_workers_needed",
                "Worker processes needed to empty the queue by the worker's configured daily \
                 deadline at the measured per-worker rate (Admin::eta); absent without a \
                 deadline or a per-worker rate",
            ),
            reclaimed: counter(
                "mq_reclaimed_total",
                "Tasks taken over from stalled or dead workers",
                &["queue"],
            ),
            dead_trimmed: counter(
                "mq_dead_letters_trimmed_total",
                "Oldest dead letters removed to keep the dead-letter stream at its cap",
                &["queue"],
            ),
            redis_errors,
            workers,
            registry,
        }
    }

    /// The registry, to add metrics of your own or to gather.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// All metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Counts a failed Redis operation.
    pub(crate) fn redis_error(&self, op: &str) {
        self.redis_errors.with_label_values(&[op]).inc();
    }

    /// Handles of one queue with the given task names and in-flight limit.
    pub(crate) fn queue(&self, queue: &str, tasks: &[&str], limit: usize) -> QueueMetrics {
        self.concurrency_limit
            .with_label_values(&[queue])
            .set(limit as i64);
        let task = |name: &str| TaskMetrics {
            started: self.started.with_label_values(&[queue, name]),
            success: self.finished.with_label_values(&[queue, name, "success"]),
            retry: self.finished.with_label_values(&[queue, name, "retry"]),
            dead: self.finished.with_label_values(&[queue, name, "dead"]),
            snoozed: self.finished.with_label_values(&[queue, name, "snoozed"]),
            cancelled: self.finished.with_label_values(&[queue, name, "cancelled"]),
            rate_limited: self.rate_limited.with_label_values(&[queue, name]),
            key_slot_waits: self.key_slot_waits.with_label_values(&[queue, name]),
            duration: self.duration.with_label_values(&[queue, name]),
        };
        // Touch the per-queue series so every documented name is exported from the start.
        for g in [
            &self.depth,
            &self.pending,
            &self.delayed,
            &self.dead_letters,
            &self.paused,
            &self.duplicates_refused,
        ] {
            g.with_label_values(&[queue]);
        }
        QueueMetrics {
            wait: self.wait.with_label_values(&[queue]),
            in_flight: self.in_flight.with_label_values(&[queue]),
            reclaimed: self.reclaimed.with_label_values(&[queue]),
            dead_trimmed: self.dead_trimmed.with_label_values(&[queue]),
            tasks: tasks.iter().map(|t| (t.to_string(), task(t))).collect(),
            unknown: task("unknown"),
        }
    }
}

/// Metric handles of one queue.
#[derive(Debug)]
pub(crate) struct QueueMetrics {
    pub(crate) wait: Histogram,
    pub(crate) in_flight: IntGauge,
    pub(crate) reclaimed: IntCounter,
    /// Dead letters trimmed by the dead-letter stream's cap.
    pub(crate) dead_trimmed: IntCounter,
    tasks: HashMap<String, TaskMetrics>,
    /// For entries that are not a task of this worker (malformed, unknown name, abandoned).
    pub(crate) unknown: TaskMetrics,
}

impl QueueMetrics {
    pub(crate) fn task(&self, name: &str) -> &TaskMetrics {
        self.tasks.get(name).unwrap_or(&self.unknown)
    }
}

/// Metric handles of one task type on one queue.
#[derive(Debug)]
pub(crate) struct TaskMetrics {
    pub(crate) started: IntCounter,
    pub(crate) success: IntCounter,
    pub(crate) retry: IntCounter,
    pub(crate) dead: IntCounter,
    /// Attempts that ended with [`TaskError::Snooze`](crate::TaskError::Snooze).
    pub(crate) snoozed: IntCounter,
    /// Attempts settled as cancelled (their cancellation reached the worker while they ran).
    pub(crate) cancelled: IntCounter,
    /// Deliveries rescheduled by the task's rate limit (never started).
    pub(crate) rate_limited: IntCounter,
    /// Deliveries rescheduled because every concurrency slot of the task's key was taken.
    pub(crate) key_slot_waits: IntCounter,
    pub(crate) duration: Histogram,
}

/// Serves `GET /metrics` and `GET /healthz` on `addr` until `stop` is cancelled.
/// `/healthz` answers `200 ok` or `503` with the reasons (see [`Health`](crate::health::Health)).
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<crate::health::Health>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    use axum::{
        http::{header, StatusCode},
        routing::get,
        Router,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr} for /metrics: {e}")))?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let h = health.clone();
                async move {
                    match h.check() {
                        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                        Err(reasons) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("unhealthy\n{reasons}\n"),
                        ),
                    }
                }
            }),
        );
    tracing::info!(%addr, "serving /metrics and /healthz");
    Ok(tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    }))
}
