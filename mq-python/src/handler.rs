//! Python functions as mq handlers: a task's payload becomes a dict, the function runs on
//! tokio's blocking pool holding the GIL only while Python code runs (a coroutine function
//! runs on the worker's asyncio loop, awaited without a thread), and what it returns or
//! raises becomes the task's outcome. The Rust side (fetch, lease renewal, acks) never needs
//! the GIL, so a handler that holds it for minutes does not lose its lease.

use std::sync::{Arc, Mutex, OnceLock};

use mq_core::{DynTask, TaskContext, TaskError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tokio::sync::oneshot;

use crate::convert::{self, MapPayload};

/// The classes and objects handlers need from the Python side, fetched once per worker.
pub(crate) struct PyEnv {
    /// `mq.Permanent`: dead-letter at once.
    permanent: Py<PyAny>,
    /// `mq.Retry`: retry, optionally after `after`.
    retry: Py<PyAny>,
    /// `mq.Snooze`: run again after `after`, without counting an attempt.
    snooze: Py<PyAny>,
    /// `asyncio.run_coroutine_threadsafe`.
    submit: Py<PyAny>,
    /// The asyncio loop coroutine handlers run on (set by `run`, when there are any).
    pub(crate) event_loop: OnceLock<Py<PyAny>>,
}

impl PyEnv {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Self> {
        let errors = py.import("mq.errors")?;
        Ok(Self {
            permanent: errors.getattr("Permanent")?.unbind(),
            retry: errors.getattr("Retry")?.unbind(),
            snooze: errors.getattr("Snooze")?.unbind(),
            submit: py
                .import("asyncio")?
                .getattr("run_coroutine_threadsafe")?
                .unbind(),
            event_loop: OnceLock::new(),
        })
    }

    /// The outcome a Python exception asks for.
    fn task_error(&self, py: Python<'_>, err: &PyErr) -> TaskError {
        let value = err.value(py);
        let message = value.str().map(|s| s.to_string()).unwrap_or_default();
        let after = || {
            value
                .getattr("after")
                .ok()
                .and_then(|a| convert::opt_duration(Some(&a)).ok().flatten())
        };
        if value.is_instance(self.permanent.bind(py)).unwrap_or(false) {
            return TaskError::permanent(message);
        }
        if value.is_instance(self.snooze.bind(py)).unwrap_or(false) {
            return TaskError::snooze(after().unwrap_or_default());
        }
        if value.is_instance(self.retry.bind(py)).unwrap_or(false) {
            return match after() {
                Some(d) => TaskError::retry_after(d, message),
                None => TaskError::retry(message),
            };
        }
        let kind = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        TaskError::retry(format!("{kind}: {message}"))
    }
}

/// What a handler knows about its task (`ctx` in `def handle(payload, ctx)`).
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Context {
    /// The task id returned by `enqueue`; stable across retries.
    #[pyo3(get)]
    id: String,
    /// The stream entry's id (changes on every retry).
    #[pyo3(get)]
    entry_id: String,
    /// The queue the task came from.
    #[pyo3(get)]
    queue: String,
    /// The entry's task name.
    #[pyo3(get)]
    name: String,
    /// 0 for the first run, 1 for the first retry...
    #[pyo3(get)]
    attempt: u32,
    /// Retries allowed after the first run.
    #[pyo3(get)]
    max_retries: u32,
    /// Unix time in ms of the first enqueue.
    #[pyo3(get)]
    enqueued_at: u64,
    /// The previous attempt's error, on a retry.
    #[pyo3(get)]
    last_error: Option<String>,
    cancel: tokio_util::sync::CancellationToken,
    progress: mq_core::ProgressHandle,
    runtime: tokio::runtime::Handle,
    /// A flow parent's children: `(queue, id)`.
    children: Vec<(String, String)>,
    /// Those that died or were cancelled: `(queue, id, reason)`.
    failed: Vec<(String, String, String)>,
}

#[pymethods]
impl Context {
    /// Whether the task's cancellation was asked for (`mq cancel`, `Producer.cancel`).
    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A flow parent's children, in the order they were added: dicts with `queue` and `id`
    /// (a tracked child's result: `Admin.result(queue, id)`); empty for other tasks.
    #[getter]
    fn children<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, pyo3::types::PyDict>>> {
        self.children
            .iter()
            .map(|(queue, id)| {
                let d = pyo3::types::PyDict::new(py);
                d.set_item("queue", queue)?;
                d.set_item("id", id)?;
                Ok(d)
            })
            .collect()
    }

    /// The children of a flow parent that died or were cancelled: dicts with `queue`, `id`
    /// and `reason` (only a parent of policy `"always"` runs with any).
    #[getter]
    fn failed_children<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<Bound<'py, pyo3::types::PyDict>>> {
        self.failed
            .iter()
            .map(|(queue, id, reason)| {
                let d = pyo3::types::PyDict::new(py);
                d.set_item("queue", queue)?;
                d.set_item("id", id)?;
                d.set_item("reason", reason)?;
                Ok(d)
            })
            .collect()
    }

    /// Reports the task's progress: any value that converts to JSON (a number, a string, a
    /// dict of counters), readable with `Admin.progress(queue, id)` and `mq status`. As in
    /// Rust, throttled to one Redis write a second (the last value wins, the rest of a second's
    /// reports are written at its end); only the first report of a second waits for its write,
    /// with the GIL released. A report after the handler returned is dropped.
    ///
    /// Raises TypeError if the value does not convert to JSON.
    fn progress(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let json: serde_json::Value = pythonize::depythonize(value).map_err(|e| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the progress value does not convert to JSON: {e}"
            ))
        })?;
        let (handle, runtime) = (self.progress.clone(), self.runtime.clone());
        py.detach(move || runtime.block_on(async move { handle.report(&json).await }));
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Context(id={:?}, queue={:?}, name={:?}, attempt={})",
            self.id, self.queue, self.name, self.attempt
        )
    }
}

impl Context {
    fn of(name: &str, ctx: &TaskContext) -> Self {
        Self {
            id: ctx.id().to_owned(),
            entry_id: ctx.entry_id().to_owned(),
            queue: ctx.queue().to_owned(),
            name: name.to_owned(),
            attempt: ctx.attempt(),
            max_retries: ctx.max_retries(),
            enqueued_at: ctx.enqueued_at(),
            last_error: ctx.last_error().map(str::to_owned),
            cancel: ctx.cancellation_token(),
            progress: ctx.progress_handle(),
            runtime: tokio::runtime::Handle::current(),
            children: ctx
                .children()
                .iter()
                .map(|c| (c.queue.clone(), c.id.clone()))
                .collect(),
            failed: ctx
                .failed_children()
                .iter()
                .map(|f| (f.child.queue.clone(), f.child.id.clone(), f.reason.clone()))
                .collect(),
        }
    }
}

/// The done-callback of a coroutine's `concurrent.futures.Future`: hands its outcome to the
/// Rust side waiting for it.
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Done {
    tx: Mutex<Option<oneshot::Sender<PyResult<Py<PyAny>>>>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        let outcome = future.call_method0("result").map(Bound::unbind);
        let tx = self.tx.lock().ok().and_then(|mut t| t.take());
        if let Some(tx) = tx {
            let _ = tx.send(outcome);
        }
    }
}

/// Cancels a coroutine's future when the attempt is dropped (timed out, aborted).
struct CancelOnDrop(Option<Py<PyAny>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(future) = self.0.take() {
            // Not on an async thread: taking the GIL may wait for a busy handler.
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let _ = future.bind(py).call_method0("cancel");
                })
            });
        }
    }
}

/// One registered Python function.
pub(crate) struct PyFunction {
    pub(crate) func: Py<PyAny>,
    /// Called as `func(payload, ctx)` rather than `func(payload)`.
    pub(crate) wants_ctx: bool,
    /// A coroutine function: its coroutine runs on the worker's asyncio loop.
    pub(crate) is_async: bool,
    pub(crate) env: Arc<PyEnv>,
}

/// A call's outcome: the value returned, or a coroutine's future still running.
enum Called {
    Returned(Py<PyAny>),
    Running(oneshot::Receiver<PyResult<Py<PyAny>>>, CancelOnDrop),
}

impl PyFunction {
    /// Calls the function with `args` (GIL held); a coroutine is handed to the loop.
    fn call(&self, py: Python<'_>, args: Bound<'_, PyTuple>) -> PyResult<Called> {
        let out = self.func.bind(py).call1(args)?;
        if !self.is_async {
            return Ok(Called::Returned(out.unbind()));
        }
        let event_loop = self.env.event_loop.get().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("no asyncio loop for coroutine handlers")
        })?;
        let future = self.env.submit.bind(py).call1((out, event_loop.bind(py)))?;
        let (tx, rx) = oneshot::channel();
        let done = Bound::new(
            py,
            Done {
                tx: Mutex::new(Some(tx)),
            },
        )?;
        future.call_method1("add_done_callback", (done,))?;
        Ok(Called::Running(rx, CancelOnDrop(Some(future.unbind()))))
    }

    /// Runs the function on `args` made under the GIL by `make`, to its end; then `settle`
    /// turns what it returned into the outcome (GIL held again).
    async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        ctx: Option<&TaskContext>,
        make: impl FnOnce(Python<'_>) -> PyResult<Py<PyTuple>> + Send + 'static,
        settle: impl FnOnce(Python<'_>, PyResult<Py<PyAny>>) -> R + Send + 'static,
    ) -> Result<R, TaskError> {
        let me = self.clone();
        let work = move || {
            Python::attach(
                |py| match make(py).and_then(|args| me.call(py, args.into_bound(py))) {
                    Ok(Called::Returned(v)) => Ok(settle(py, Ok(v))),
                    Ok(Called::Running(rx, guard)) => Err((rx, guard, settle)),
                    Err(e) => Ok(settle(py, Err(e))),
                },
            )
        };
        let started = match ctx {
            Some(ctx) => ctx.blocking(work).await?,
            None => mq_core::blocking(work).await?,
        };
        let (rx, mut guard, settle) = match started {
            Ok(done) => return Ok(done),
            Err(running) => running,
        };
        let outcome = rx.await.unwrap_or_else(|_| {
            Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the coroutine was dropped",
            ))
        });
        guard.0 = None;
        mq_core::blocking(move || Python::attach(|py| settle(py, outcome))).await
    }
}

/// A Python function handling one task at a time.
#[derive(Clone)]
pub(crate) struct PyHandler(pub(crate) Arc<PyFunction>);

#[mq_core::async_trait]
impl mq_core::Handler<DynTask<MapPayload>> for PyHandler {
    async fn handle(&self, task: DynTask<MapPayload>, ctx: TaskContext) -> Result<(), TaskError> {
        let f = self.0.clone();
        let env = f.env.clone();
        let wants_ctx = f.wants_ctx;
        let pyctx = Context::of(&task.name, &ctx);
        let make = move |py: Python<'_>| {
            let payload = convert::to_python(py, &task.payload.0)?;
            let args = if wants_ctx {
                PyTuple::new(py, [payload, Bound::new(py, pyctx)?.into_any()])?
            } else {
                PyTuple::new(py, [payload])?
            };
            Ok(args.unbind())
        };
        let settle = move |py: Python<'_>, out: PyResult<Py<PyAny>>| match out {
            Ok(v) => convert::to_json(v.bind(py)).map_err(|e| env.task_error(py, &e)),
            Err(e) => Err(env.task_error(py, &e)),
        };
        match f.run(Some(&ctx), make, settle).await?? {
            Some(json) => ctx.set_result(&json),
            None => Ok(()),
        }
    }
}

/// A Python function handling a batch: `func(payloads)` or `func(payloads, ctxs)` returns
/// `None` (all succeeded) or one entry per task: an exception instance fails that task, any
/// other value succeeds it (its result, if the task type keeps results).
#[derive(Clone)]
pub(crate) struct PyBatch(pub(crate) Arc<PyFunction>);

type Outcomes = Vec<Result<Option<serde_json::Value>, TaskError>>;

#[mq_core::async_trait]
impl mq_core::BatchHandler<DynTask<MapPayload>> for PyBatch {
    async fn handle_batch(
        &self,
        tasks: Vec<(DynTask<MapPayload>, TaskContext)>,
    ) -> Vec<Result<(), TaskError>> {
        let n = tasks.len();
        let f = self.0.clone();
        let env = f.env.clone();
        let wants_ctx = f.wants_ctx;
        let (payloads, ctxs): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
        let pyctxs: Vec<Context> = payloads
            .iter()
            .zip(&ctxs)
            .map(|(t, c)| Context::of(&t.name, c))
            .collect();
        let make = move |py: Python<'_>| {
            let items = payloads
                .iter()
                .map(|t| convert::to_python(py, &t.payload.0))
                .collect::<PyResult<Vec<_>>>()?;
            let list = PyList::new(py, items)?.into_any();
            let args = if wants_ctx {
                let c = pyctxs
                    .into_iter()
                    .map(|c| Bound::new(py, c))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, [list, PyList::new(py, c)?.into_any()])?
            } else {
                PyTuple::new(py, [list])?
            };
            Ok(args.unbind())
        };
        let settle = move |py: Python<'_>, out: PyResult<Py<PyAny>>| -> Outcomes {
            let out = match out {
                Ok(v) => v.into_bound(py),
                Err(e) => return vec![Err(env.task_error(py, &e)); n],
            };
            if out.is_none() {
                return (0..n).map(|_| Ok(None)).collect();
            }
            let items: Vec<Bound<'_, PyAny>> = match out.try_iter() {
                Ok(it) => it.filter_map(Result::ok).collect(),
                Err(_) => {
                    let e = TaskError::retry("a batch handler returns None or one entry per task");
                    return vec![Err(e); n];
                }
            };
            if items.len() != n {
                let e = TaskError::retry(format!(
                    "batch handler returned {} outcomes for {n} tasks",
                    items.len()
                ));
                return vec![Err(e); n];
            }
            items
                .into_iter()
                .map(|item| {
                    if item.is_instance_of::<pyo3::exceptions::PyBaseException>() {
                        Err(env.task_error(py, &PyErr::from_value(item)))
                    } else {
                        convert::to_json(&item).map_err(|e| env.task_error(py, &e))
                    }
                })
                .collect()
        };
        match f.run(None, make, settle).await {
            Err(e) => vec![Err(e); n],
            Ok(outcomes) => outcomes
                .into_iter()
                .zip(&ctxs)
                .map(|(o, ctx)| match o? {
                    Some(json) => ctx.set_result(&json),
                    None => Ok(()),
                })
                .collect(),
        }
    }
}
