//! `mq._native._Worker`: the Rust worker behind `mq.Worker`, with the Python functions
//! registered on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq_core::{TaskOptions, WorkerBuilder};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::convert::{self, MapPayload};
use crate::handler::{PyBatch, PyEnv, PyFunction, PyHandler};
use crate::{mq_error, runtime};

/// How often `run` takes the GIL back to let Python run its signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// One registered function with its queue, name, options and batching.
struct Registration {
    queue: String,
    name: Option<String>,
    options: TaskOptions,
    function: Arc<PyFunction>,
    /// `(max_size, max_wait)` for a batch handler.
    batch: Option<(usize, Duration)>,
}

/// The worker settings given to `mq.Worker(...)`.
struct Settings {
    url: String,
    concurrency: usize,
    prefix: Option<String>,
    group: Option<String>,
    consumer: Option<String>,
    metrics_addr: Option<std::net::SocketAddr>,
    reclaim_timeout: Option<Duration>,
    grace_period: Option<Duration>,
    block_timeout: Option<Duration>,
}

/// A worker: functions are registered, then `run` consumes their queues until stopped.
#[pyclass(module = "mq._native", name = "_Worker", frozen)]
pub(crate) struct NativeWorker {
    settings: Settings,
    registrations: Mutex<Vec<Registration>>,
    /// Cron schedules (`schedule`), added to the Rust worker at `run`.
    schedules: Mutex<Vec<mq_core::Schedule>>,
    env: Arc<PyEnv>,
    /// Fired by `stop()`: a graceful shutdown (running tasks get the grace period).
    stop: CancellationToken,
    /// Fired by `abort()` (a second signal): running tasks are aborted and handed back.
    abort: CancellationToken,
}

#[pymethods]
impl NativeWorker {
    #[new]
    #[pyo3(signature = (url, *, concurrency = 64, prefix = None, group = None, consumer = None,
        metrics_addr = None, reclaim_timeout = None, grace_period = None, block_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: String,
        concurrency: usize,
        prefix: Option<String>,
        group: Option<String>,
        consumer: Option<String>,
        metrics_addr: Option<&str>,
        reclaim_timeout: Option<&Bound<'_, PyAny>>,
        grace_period: Option<&Bound<'_, PyAny>>,
        block_timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let metrics_addr = metrics_addr
            .map(|a| {
                a.parse()
                    .map_err(|e| PyValueError::new_err(format!("bad metrics_addr {a:?}: {e}")))
            })
            .transpose()?;
        Ok(Self {
            settings: Settings {
                url,
                concurrency,
                prefix,
                group,
                consumer,
                metrics_addr,
                reclaim_timeout: convert::opt_duration(reclaim_timeout)?,
                grace_period: convert::opt_duration(grace_period)?,
                block_timeout: convert::opt_duration(block_timeout)?,
            },
            registrations: Mutex::new(Vec::new()),
            schedules: Mutex::new(Vec::new()),
            env: Arc::new(PyEnv::new(py)?),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        })
    }

    /// Registers `func` for the tasks named `name` on `queue` (every name when `None`).
    #[pyo3(signature = (queue, func, *, name = None, wants_ctx = false, is_async = false,
        max_retries = None, timeout = None, backoff = None, concurrency = None,
        result_ttl = None, batch_size = None, batch_wait = None))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        queue: String,
        func: Py<PyAny>,
        name: Option<String>,
        wants_ctx: bool,
        is_async: bool,
        max_retries: Option<u32>,
        timeout: Option<&Bound<'_, PyAny>>,
        backoff: Option<&str>,
        concurrency: Option<usize>,
        result_ttl: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
        batch_wait: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut options = TaskOptions::DEFAULT;
        if let Some(n) = max_retries {
            options.max_retries = n;
        }
        if let Some(t) = timeout {
            // `None` (Python) keeps the default; 0 means no limit, as in the derive.
            if !t.is_none() {
                let t = convert::duration(t)?;
                options.timeout = (!t.is_zero()).then_some(t);
            }
        }
        if let Some(b) = backoff {
            options.backoff = convert::backoff(b)?;
        }
        options.concurrency = concurrency;
        options.result_ttl = convert::opt_duration(result_ttl)?;
        let batch = match batch_size {
            None => None,
            Some(0) => return Err(PyValueError::new_err("batch max_size must be at least 1")),
            Some(n) => Some((
                n,
                convert::opt_duration(batch_wait)?.unwrap_or(Duration::from_millis(20)),
            )),
        };
        let function = Arc::new(PyFunction {
            func,
            wants_ctx,
            is_async,
            env: self.env.clone(),
        });
        self.lock()?.push(Registration {
            queue,
            name,
            options,
            function,
            batch,
        });
        Ok(())
    }

    /// Adds a cron schedule: at every tick of `expr` (5 fields, or 6 with seconds first;
    /// UTC), the task `payload` named `name` (default: the queue's name) is enqueued on
    /// `queue`, exactly once per tick across every worker that runs a schedule of the same
    /// `schedule_name` (default: the task name) on that queue. With `tick_field`, the payload
    /// also gets that field: the tick's time in unix milliseconds. A bad expression is
    /// refused by `run`.
    #[pyo3(signature = (expr, queue, payload, *, name = None, schedule_name = None, tick_field = None))]
    fn schedule(
        &self,
        expr: &str,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        schedule_name: Option<&str>,
        tick_field: Option<String>,
    ) -> PyResult<()> {
        let bytes = convert::encode_payload(payload)?;
        let name = name.unwrap_or(queue);
        let make: Box<dyn Fn(std::time::SystemTime) -> Vec<u8> + Send + Sync> = match tick_field {
            None => Box::new(move |_| bytes.clone()),
            Some(field) => {
                let map = convert::decode_map(&bytes)?;
                Box::new(move |tick| convert::with_field(&map, &field, tick))
            }
        };
        let mut schedule = mq_core::Schedule::raw(expr, queue, name, make);
        if let Some(n) = schedule_name {
            schedule = schedule.name(n);
        }
        self.schedules
            .lock()
            .map_err(|_| PyRuntimeError::new_err("worker state poisoned"))?
            .push(schedule);
        Ok(())
    }

    /// Runs the worker until `stop()` (or a signal the Python side turns into it), then shuts
    /// down gracefully. `event_loop` runs coroutine handlers. The GIL is released while it
    /// runs, taken back every 50 ms to let Python handle signals.
    #[pyo3(signature = (event_loop = None))]
    fn run(&self, py: Python<'_>, event_loop: Option<Py<PyAny>>) -> PyResult<()> {
        if let Some(l) = event_loop {
            let _ = self.env.event_loop.set(l);
        }
        let builder = self.builder()?;
        let worker = py
            .detach(|| runtime().block_on(builder.build()))
            .map_err(mq_error)?;
        let (shutdown, abort) = (worker.shutdown_token(), worker.abort_token());
        let (stop, hard) = (self.stop.clone(), self.abort.clone());
        runtime().spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => shutdown.cancel(),
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = hard.cancelled() => abort.cancel(),
                _ = abort.cancelled() => {}
            }
        });
        let mut handle = runtime().spawn(worker.run());
        let mut raised: Option<PyErr> = None;
        loop {
            let joined = py.detach(|| {
                runtime().block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut handle).await })
            });
            if let Ok(joined) = joined {
                let ran = joined
                    .map_err(|e| PyRuntimeError::new_err(format!("the worker task failed: {e}")))?;
                return match raised {
                    Some(e) => Err(e),
                    None => ran.map_err(mq_error),
                };
            }
            // Python's signal handlers run here (the ones `mq.Worker.run` installs stop the
            // worker); an exception they raise stops it too and is raised once it has ended.
            if let Err(e) = py.check_signals() {
                if self.stop.is_cancelled() {
                    self.abort.cancel();
                } else {
                    self.stop.cancel();
                }
                raised.get_or_insert(e);
            }
        }
    }

    /// Asks the worker to stop gracefully (from a handler, another thread or a signal
    /// handler); `run` returns once the running tasks ended.
    fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops at once: running tasks are aborted and handed back to the group.
    fn abort(&self) {
        self.stop.cancel();
        self.abort.cancel();
    }

    /// Whether `stop()` was called.
    fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
}

impl NativeWorker {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Vec<Registration>>> {
        self.registrations
            .lock()
            .map_err(|_| PyRuntimeError::new_err("worker state poisoned"))
    }

    /// The Rust worker's builder with every registration.
    fn builder(&self) -> PyResult<WorkerBuilder> {
        let s = &self.settings;
        let mut b = mq_core::Worker::builder(&s.url).concurrency(s.concurrency);
        if let Some(p) = &s.prefix {
            b = b.prefix(p);
        }
        if let Some(g) = &s.group {
            b = b.group(g);
        }
        if let Some(c) = &s.consumer {
            b = b.consumer(c);
        }
        if let Some(a) = s.metrics_addr {
            b = b.metrics_addr(a);
        }
        if let Some(t) = s.reclaim_timeout {
            b = b.reclaim_timeout(t);
        }
        if let Some(g) = s.grace_period {
            b = b.grace_period(g);
        }
        if let Some(t) = s.block_timeout {
            b = b.block_timeout(t);
        }
        let schedules = self
            .schedules
            .lock()
            .map_err(|_| PyRuntimeError::new_err("worker state poisoned"))?;
        for schedule in schedules.iter() {
            b = b.schedule_with(schedule.clone());
        }
        for r in self.lock()?.iter() {
            let name = r.name.as_deref();
            b = match r.batch {
                None => b.handle_dynamic::<MapPayload, _>(
                    &r.queue,
                    name,
                    r.options,
                    PyHandler(r.function.clone()),
                ),
                Some((size, wait)) => b.handle_dynamic::<MapPayload, _>(
                    &r.queue,
                    name,
                    r.options,
                    mq_core::batch(size, wait, PyBatch(r.function.clone())),
                ),
            };
        }
        Ok(b)
    }
}
