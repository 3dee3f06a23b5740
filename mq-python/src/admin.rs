//! `mq.Admin`: reads and dead-letter actions for notebooks and scripts, as plain dicts.

use mq_core::TaskStatus;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{convert, mq_error, runtime};

/// Reads queues and acts on dead letters (`mq.Admin(url)`).
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Admin {
    inner: mq_core::Admin,
}

/// Runs `f` on the runtime with the GIL released.
fn block<T: Send>(
    py: Python<'_>,
    f: impl std::future::Future<Output = mq_core::Result<T>> + Send,
) -> PyResult<T> {
    py.detach(|| runtime().block_on(f)).map_err(mq_error)
}

#[pymethods]
impl Admin {
    /// Connects to Redis at `url`; `prefix` and `group` as the workers use them.
    #[new]
    #[pyo3(signature = (url, *, prefix = "mq", group = "mq"))]
    fn new(py: Python<'_>, url: &str, prefix: &str, group: &str) -> PyResult<Self> {
        let inner = block(py, mq_core::Admin::connect_with(url, prefix, group))?;
        Ok(Self { inner })
    }

    /// The queues workers have registered.
    fn queues(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        block(py, self.inner.queues())
    }

    /// A queue's sizes: `length`, `pending` (in flight), `backlog`, `delayed`, `dead`,
    /// `consumers`, `paused`.
    fn stats<'py>(&self, py: Python<'py>, queue: &str) -> PyResult<Bound<'py, PyDict>> {
        let s = block(py, self.inner.stats(queue))?;
        let d = PyDict::new(py);
        d.set_item("queue", s.queue)?;
        d.set_item("length", s.length)?;
        d.set_item("pending", s.pending)?;
        d.set_item("backlog", s.backlog)?;
        d.set_item("delayed", s.delayed)?;
        d.set_item("dead", s.dead)?;
        d.set_item("consumers", s.consumers)?;
        d.set_item("paused", s.paused)?;
        Ok(d)
    }

    /// A run's progress (`None` if there is no run of that name): a dict with `name`, `total`,
    /// `done`, `dead`, `failed`, `remaining`, `sealed` and `ended` (server unix ms, or
    /// `None`), `rate_per_sec` and `eta_secs` (or `None`).
    fn run<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(r) = block(py, self.inner.run(name))? else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("name", r.name)?;
        d.set_item("total", r.total)?;
        d.set_item("done", r.done)?;
        d.set_item("dead", r.dead)?;
        d.set_item("failed", r.failed)?;
        d.set_item("remaining", r.remaining)?;
        d.set_item("sealed", r.sealed_ms)?;
        d.set_item("ended", r.ended_ms)?;
        d.set_item("rate_per_sec", r.rate_per_sec)?;
        d.set_item("eta_secs", r.eta_secs)?;
        Ok(Some(d))
    }

    /// The newest `count` dead letters of `queue`, newest first: dicts with `dead_id`, `id`,
    /// `name`, `error`, `attempts`, `failed_at`, `worker` and `payload` (decoded, or `None`).
    #[pyo3(signature = (queue, count = 100))]
    fn dead<'py>(
        &self,
        py: Python<'py>,
        queue: &str,
        count: usize,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let letters = block(py, self.inner.dead_list(queue, count))?;
        letters
            .iter()
            .map(|l| {
                let d = PyDict::new(py);
                d.set_item("dead_id", l.dead_id())?;
                d.set_item("id", l.task_id())?;
                d.set_item("name", l.name())?;
                d.set_item("error", l.error())?;
                d.set_item("attempts", l.attempts())?;
                d.set_item("failed_at", l.failed_at())?;
                d.set_item("worker", l.worker())?;
                let payload = match l
                    .payload()
                    .and_then(|p| rmpv::decode::read_value(&mut &p[..]).ok())
                {
                    Some(v) => Some(convert::to_python(py, &v)?),
                    None => None,
                };
                d.set_item("payload", payload)?;
                Ok(d)
            })
            .collect()
    }

    /// Moves the given dead letters (by `dead_id`) back to the queue with attempt 0; returns
    /// how many were replayed.
    fn replay(&self, py: Python<'_>, queue: &str, dead_ids: Vec<String>) -> PyResult<usize> {
        Ok(block(py, self.inner.dead_replay(queue, &dead_ids))?.replayed)
    }

    /// Replays every dead letter of `queue` (bounded as `mq dead replay --all`); returns how
    /// many were replayed.
    fn replay_all(&self, py: Python<'_>, queue: &str) -> PyResult<usize> {
        Ok(block(py, self.inner.dead_replay_all(queue))?.replayed)
    }

    /// A tracked task's status as a dict with `state` (`queued`, `scheduled`, `running`,
    /// `retrying`, `succeeded`, `failed`, `cancelled`, `unknown`) and that state's fields.
    fn status<'py>(&self, py: Python<'py>, queue: &str, id: &str) -> PyResult<Bound<'py, PyDict>> {
        let s = block(py, self.inner.status(queue, id))?;
        let d = PyDict::new(py);
        let state = match s {
            TaskStatus::Queued => "queued",
            TaskStatus::Scheduled { due } => {
                d.set_item("due", due)?;
                "scheduled"
            }
            TaskStatus::Running {
                consumer,
                attempt,
                since,
            } => {
                d.set_item("consumer", consumer)?;
                d.set_item("attempt", attempt)?;
                d.set_item("since", since)?;
                "running"
            }
            TaskStatus::Retrying { due, error } => {
                d.set_item("due", due)?;
                d.set_item("error", error)?;
                "retrying"
            }
            TaskStatus::Succeeded { finished } => {
                d.set_item("finished", finished)?;
                "succeeded"
            }
            TaskStatus::Failed { reason } => {
                d.set_item("reason", reason)?;
                "failed"
            }
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Unknown => "unknown",
        };
        d.set_item("state", state)?;
        Ok(d)
    }

    /// The last progress task `id` of `queue` reported (`ctx.progress`), or `None` if it
    /// reported none or its record expired (an hour after the last write).
    fn progress<'py>(&self, py: Python<'py>, queue: &str, id: &str) -> PyResult<Bound<'py, PyAny>> {
        match block(py, self.inner.progress(queue, id))? {
            Some(v) => pythonize::pythonize(py, &v).map_err(|e| {
                pyo3::exceptions::PyValueError::new_err(format!("cannot convert the progress: {e}"))
            }),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// A tracked task's result (what its handler returned, through JSON), or `None`.
    fn result<'py>(&self, py: Python<'py>, queue: &str, id: &str) -> PyResult<Bound<'py, PyAny>> {
        match block(py, self.inner.result(queue, id))? {
            Some(v) => pythonize::pythonize(py, &v).map_err(|e| {
                pyo3::exceptions::PyValueError::new_err(format!("cannot convert the result: {e}"))
            }),
            None => Ok(py.None().into_bound(py)),
        }
    }
}
