//! `mq.Flow`: a parent task that runs once all its children have ended (`Producer.flow`),
//! built in Python and enqueued in one `MULTI` by mq-core's `Producer::flow_raw`.

use mq_core::{FlowPolicy, RawTask};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{convert, mq_error, runtime};

/// A flow as Python built it: its parent, children (tasks and nested flows) and policy.
#[derive(Clone)]
struct FlowSpec {
    parent: RawTask,
    children: Vec<ChildSpec>,
    policy: FlowPolicy,
}

#[derive(Clone)]
enum ChildSpec {
    Task(RawTask),
    Flow(FlowSpec),
}

/// A task of a flow from `enqueue`'s arguments.
pub(crate) fn raw_task(
    queue: &str,
    payload: &Bound<'_, PyAny>,
    name: Option<&str>,
    result_ttl: Option<&Bound<'_, PyAny>>,
) -> PyResult<RawTask> {
    let mut task = RawTask::new(
        queue,
        name.unwrap_or(queue),
        convert::encode_payload(payload)?,
    );
    if let Some(ttl) = convert::opt_duration(result_ttl)? {
        task = task.result_ttl(ttl);
    }
    Ok(task)
}

fn policy(name: &str) -> PyResult<FlowPolicy> {
    match name {
        "all_succeeded" => Ok(FlowPolicy::AllSucceeded),
        "always" => Ok(FlowPolicy::Always),
        other => Err(PyValueError::new_err(format!(
            "policy must be \"all_succeeded\" or \"always\", not {other:?}"
        ))),
    }
}

/// A flow being built by `Producer.flow(...)`: add children with `child` and `child_flow`
/// (each returns the flow, so calls chain), then `enqueue()`.
#[pyclass(module = "mq._native")]
pub(crate) struct Flow {
    producer: mq_core::Producer,
    spec: FlowSpec,
}

impl Flow {
    /// A flow of `producer` whose parent is `parent`.
    pub(crate) fn new(
        producer: mq_core::Producer,
        parent: RawTask,
        policy_name: &str,
    ) -> PyResult<Self> {
        Ok(Self {
            producer,
            spec: FlowSpec {
                parent,
                children: Vec::new(),
                policy: policy(policy_name)?,
            },
        })
    }
}

/// The mq-core flow of `spec`, nested flows included.
fn build(producer: &mq_core::Producer, spec: FlowSpec) -> mq_core::Flow<'_> {
    let mut flow = producer.flow_raw(spec.parent).policy(spec.policy);
    for child in spec.children {
        flow = match child {
            ChildSpec::Task(t) => flow.child_raw(t),
            ChildSpec::Flow(s) => flow.child_flow(build(producer, s)),
        };
    }
    flow
}

#[pymethods]
impl Flow {
    /// Adds a child task on `queue` (`payload`, `name` and `result_ttl` as in
    /// `Producer.enqueue`; a tracked child's result is what the parent reads with
    /// `Admin.result(child_queue, child_id)`). Returns the flow.
    #[pyo3(signature = (queue, payload, *, name = None, result_ttl = None))]
    fn child<'py>(
        mut slf: PyRefMut<'py, Self>,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        result_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let task = raw_task(queue, payload, name, result_ttl)?;
        slf.spec.children.push(ChildSpec::Task(task));
        Ok(slf)
    }

    /// Adds a nested flow: its parent is a child of this flow and reports to this flow's
    /// parent once its own children have ended. The nested flow is copied: enqueue only the
    /// outer one. Returns the flow.
    fn child_flow<'py>(
        mut slf: PyRefMut<'py, Self>,
        flow: PyRef<'_, Flow>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let spec = flow.spec.clone();
        slf.spec.children.push(ChildSpec::Flow(spec));
        Ok(slf)
    }

    /// Enqueues the parent and every child in one `MULTI` (nothing is written if it fails)
    /// and returns `(parent_id, child_ids)`, the children's in the order they were added.
    /// Raises MqError for a flow without children, over 10,000 children, or on a Redis
    /// Cluster (flows need one Redis server in this version).
    fn enqueue(&self, py: Python<'_>) -> PyResult<(String, Vec<String>)> {
        let spec = self.spec.clone();
        let producer = self.producer.clone();
        let ids = py
            .detach(|| runtime().block_on(build(&producer, spec).enqueue()))
            .map_err(mq_error)?;
        Ok((ids.parent, ids.children))
    }

    fn __repr__(&self) -> String {
        format!(
            "Flow(children={}, policy={:?})",
            self.spec.children.len(),
            self.spec.policy.as_str()
        )
    }
}
