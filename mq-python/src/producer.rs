//! `mq.Producer`: enqueues tasks given as a queue, a dict payload and options; `mq.Run`: a
//! named, counted group of tasks.

use std::time::Duration;

use futures::StreamExt;
use mq_core::{Enqueued, RawTask};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{convert, mq_error, runtime};

/// At most this many enqueues in flight in `enqueue_many`: one multiplexed connection
/// pipelines them.
const IN_FLIGHT: usize = 256;

/// Enqueues tasks into mq's queues (`mq.Producer(url)`); safe to share between threads.
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Producer {
    inner: mq_core::Producer,
}

/// The options of one `enqueue` call, checked.
struct Options<'a> {
    name: &'a str,
    delay: Option<Duration>,
    unique: Option<String>,
    result_ttl: Option<Duration>,
}

impl Options<'_> {
    /// Whether the plain path (`enqueue_raw`, one `XADD`) serves the task.
    fn plain(&self) -> bool {
        self.unique.is_none() && self.result_ttl.is_none()
    }

    fn task(&self, queue: &str, payload: Vec<u8>) -> RawTask {
        let mut task = RawTask::new(queue, self.name, payload);
        if let Some(key) = &self.unique {
            task = task.unique(key.clone());
        }
        if let Some(ttl) = self.result_ttl {
            task = task.result_ttl(ttl);
        }
        task
    }
}

#[pymethods]
impl Producer {
    /// Connects to Redis at `url` (`redis://`, `rediss://`); `prefix` is the key prefix of
    /// the deployment (default `mq`).
    #[new]
    #[pyo3(signature = (url, *, prefix = None))]
    fn new(py: Python<'_>, url: &str, prefix: Option<&str>) -> PyResult<Self> {
        let mut builder = mq_core::Producer::builder(url);
        if let Some(p) = prefix {
            builder = builder.prefix(p);
        }
        let inner = py
            .detach(|| runtime().block_on(builder.connect()))
            .map_err(mq_error)?;
        Ok(Self { inner })
    }

    /// Enqueues one task on `queue` and returns its id. `payload` is a dict, sent as a
    /// MessagePack map (a Rust `#[derive(Task)]` struct decodes it by field name). `name` is
    /// the task name in the entry (default: the queue's name; a Rust worker's typed handler
    /// wants its struct's name). `delay` (seconds, timedelta or `"2m"`) schedules it for
    /// later; `priority` (`"high"`, `"normal"`, `"low"`) picks the level of a prioritized
    /// queue; `unique` (a key) adds it only if no live task of the queue holds that key (the
    /// live task's id is returned otherwise: `submit` tells the two apart); `result_ttl`
    /// tracks it (its status and result kept that long after it ends); `run` (an `mq.Run`)
    /// counts it in that run.
    #[pyo3(signature = (queue, payload, *, name = None, delay = None, priority = None,
                        unique = None, result_ttl = None, run = None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        py: Python<'_>,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        delay: Option<&Bound<'_, PyAny>>,
        priority: Option<&str>,
        unique: Option<String>,
        result_ttl: Option<&Bound<'_, PyAny>>,
        run: Option<PyRef<'_, Run>>,
    ) -> PyResult<String> {
        let bytes = convert::encode_payload(payload)?;
        let opts = options(queue, name, delay, unique, result_ttl)?;
        if let Some(run) = run {
            check_run(&opts, priority)?;
            return run
                .enqueue_tasks(py, vec![opts.task(queue, bytes)])
                .map(|mut ids| ids.pop().unwrap_or_default());
        }
        self.send_now(py, queue, &opts, priority, bytes)
            .map(Enqueued::into_id)
    }

    /// Enqueues one task as `enqueue` does and returns `(id, added)`: `added` is `False` when
    /// a `unique` task was refused because a live task holds its key, whose id `id` then is.
    #[pyo3(signature = (queue, payload, *, name = None, delay = None, priority = None,
                        unique = None, result_ttl = None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        delay: Option<&Bound<'_, PyAny>>,
        priority: Option<&str>,
        unique: Option<String>,
        result_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(String, bool)> {
        let bytes = convert::encode_payload(payload)?;
        let opts = options(queue, name, delay, unique, result_ttl)?;
        let outcome = self.send_now(py, queue, &opts, priority, bytes)?;
        let added = !outcome.is_duplicate();
        Ok((outcome.into_id(), added))
    }

    /// Enqueues many tasks on `queue` (options as in `enqueue`, the same for all), sent
    /// concurrently, and returns their ids in order. Every payload is checked before any is
    /// sent. With `run`, they are counted in the run, 100 to a `MULTI`.
    #[pyo3(signature = (queue, payloads, *, name = None, delay = None, priority = None,
                        result_ttl = None, run = None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue_many(
        &self,
        py: Python<'_>,
        queue: &str,
        payloads: Vec<Bound<'_, PyAny>>,
        name: Option<&str>,
        delay: Option<&Bound<'_, PyAny>>,
        priority: Option<&str>,
        result_ttl: Option<&Bound<'_, PyAny>>,
        run: Option<PyRef<'_, Run>>,
    ) -> PyResult<Vec<String>> {
        let encoded = payloads
            .iter()
            .map(convert::encode_payload)
            .collect::<PyResult<Vec<_>>>()?;
        let opts = options(queue, name, delay, None, result_ttl)?;
        if let Some(run) = run {
            check_run(&opts, priority)?;
            let tasks = encoded.into_iter().map(|b| opts.task(queue, b)).collect();
            return run.enqueue_tasks(py, tasks);
        }
        let producer = self.with(priority)?;
        py.detach(|| {
            runtime().block_on(async {
                let sends = encoded.into_iter().map(|bytes| {
                    let (producer, opts) = (&producer, &opts);
                    async move {
                        send(producer, queue, opts, bytes)
                            .await
                            .map(Enqueued::into_id)
                    }
                });
                futures::stream::iter(sends)
                    .buffered(IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<mq_core::Result<Vec<String>>>()
            })
        })
        .map_err(mq_error)
    }

    /// Starts a flow whose parent is the task `queue`/`payload` (`name` and `result_ttl` as
    /// in `enqueue`): add children with `Flow.child` and `Flow.child_flow`, then
    /// `Flow.enqueue()`. `policy="all_succeeded"` (default): the parent runs once every child
    /// succeeded, and is dead-lettered with the failed children's reasons if one died or was
    /// cancelled; `"always"`: it runs once all have ended, and its `ctx.failed_children` lists
    /// the ones that did not succeed.
    #[pyo3(signature = (queue, payload, *, name = None, result_ttl = None, policy = "all_succeeded"))]
    fn flow(
        &self,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        result_ttl: Option<&Bound<'_, PyAny>>,
        policy: &str,
    ) -> PyResult<crate::flow::Flow> {
        let parent = crate::flow::raw_task(queue, payload, name, result_ttl)?;
        crate::flow::Flow::new(self.inner.clone(), parent, policy)
    }

    /// Opens the run `name` (made on first use; one round trip) and returns it: tasks
    /// enqueued with `run=` it are counted in it, and `seal()` says no more will come.
    fn run(&self, py: Python<'_>, name: &str) -> PyResult<Run> {
        let inner = py
            .detach(|| runtime().block_on(self.inner.run(name)))
            .map_err(mq_error)?;
        Ok(Run { inner })
    }
}

impl Producer {
    /// Sends one task (not in a run) at `priority`, the GIL released.
    fn send_now(
        &self,
        py: Python<'_>,
        queue: &str,
        opts: &Options<'_>,
        priority: Option<&str>,
        bytes: Vec<u8>,
    ) -> PyResult<Enqueued> {
        let producer = self.with(priority)?;
        py.detach(|| runtime().block_on(send(&producer, queue, opts, bytes)))
            .map_err(mq_error)
    }

    /// This producer, or a copy enqueuing at `priority`.
    fn with(&self, priority: Option<&str>) -> PyResult<mq_core::Producer> {
        Ok(match priority {
            None => self.inner.clone(),
            Some(p) => self.inner.clone().with_priority(convert::priority(p)?),
        })
    }
}

/// The checked options of an enqueue call.
fn options<'a>(
    queue: &'a str,
    name: Option<&'a str>,
    delay: Option<&Bound<'_, PyAny>>,
    unique: Option<String>,
    result_ttl: Option<&Bound<'_, PyAny>>,
) -> PyResult<Options<'a>> {
    Ok(Options {
        name: name.unwrap_or(queue),
        delay: convert::opt_duration(delay)?,
        unique,
        result_ttl: convert::opt_duration(result_ttl)?,
    })
}

/// A run's tasks are enqueued now, at normal priority, and not unique (as in Rust).
fn check_run(opts: &Options<'_>, priority: Option<&str>) -> PyResult<()> {
    if opts.delay.is_some() || opts.unique.is_some() || priority.is_some() {
        return Err(PyValueError::new_err(
            "a task in a run cannot be delayed, prioritized or unique (yet)",
        ));
    }
    Ok(())
}

/// Sends one task: the plain path (one `XADD`, or the schedule script for a delay) unless
/// it is unique or tracked.
async fn send(
    producer: &mq_core::Producer,
    queue: &str,
    opts: &Options<'_>,
    bytes: Vec<u8>,
) -> mq_core::Result<Enqueued> {
    if opts.plain() {
        return match opts.delay {
            Some(d) => producer.enqueue_raw_in(d, queue, opts.name, bytes).await,
            None => producer.enqueue_raw(queue, opts.name, bytes).await,
        }
        .map(Enqueued::Added);
    }
    producer
        .submit_raw(opts.task(queue, bytes), opts.delay)
        .await
}

/// A run opened by `Producer.run(name)`: a named group of tasks counted together (total,
/// done, failed, dead), with one completion task once it is sealed and all have ended.
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Run {
    inner: mq_core::Run,
}

#[pymethods]
impl Run {
    /// The run's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Seals the run: no task is to be added. With `queue` and `payload` (and `name`, as in
    /// `Producer.enqueue`), that task is enqueued exactly once, when the run ends. Returns
    /// whether this call sealed it (`False`: it was sealed before, and this completion task
    /// is dropped).
    #[pyo3(signature = (queue = None, payload = None, *, name = None))]
    fn seal(
        &self,
        py: Python<'_>,
        queue: Option<&str>,
        payload: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
    ) -> PyResult<bool> {
        let completion = match (queue, payload) {
            (None, None) => None,
            (Some(q), Some(p)) => Some(RawTask::new(
                q,
                name.unwrap_or(q),
                convert::encode_payload(p)?,
            )),
            _ => {
                return Err(PyValueError::new_err(
                    "a completion task needs both queue and payload",
                ))
            }
        };
        py.detach(|| {
            runtime().block_on(async {
                match completion {
                    None => self.inner.seal().await,
                    Some(task) => self.inner.seal_with_raw(task).await,
                }
            })
        })
        .map_err(mq_error)
    }

    fn __repr__(&self) -> String {
        format!("Run({:?})", self.inner.name())
    }
}

impl Run {
    fn enqueue_tasks(&self, py: Python<'_>, tasks: Vec<RawTask>) -> PyResult<Vec<String>> {
        py.detach(|| runtime().block_on(self.inner.enqueue_raw(tasks)))
            .map_err(mq_error)
    }
}
