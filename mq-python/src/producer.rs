//! `mq.Producer`: enqueues tasks given as a queue, a dict payload and options.

use pyo3::prelude::*;

use crate::{convert, mq_error, runtime};

/// Enqueues tasks into mq's queues (`mq.Producer(url)`); safe to share between threads.
#[pyclass(module = "mq._native", frozen)]
pub(crate) struct Producer {
    inner: mq_core::Producer,
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
    /// queue.
    #[pyo3(signature = (queue, payload, *, name = None, delay = None, priority = None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        queue: &str,
        payload: &Bound<'_, PyAny>,
        name: Option<&str>,
        delay: Option<&Bound<'_, PyAny>>,
        priority: Option<&str>,
    ) -> PyResult<String> {
        let bytes = convert::encode_payload(payload)?;
        let delay = convert::opt_duration(delay)?;
        let producer = self.with(priority)?;
        let name = name.unwrap_or(queue);
        py.detach(|| {
            runtime().block_on(async {
                match delay {
                    Some(d) => producer.enqueue_raw_in(d, queue, name, bytes).await,
                    None => producer.enqueue_raw(queue, name, bytes).await,
                }
            })
        })
        .map_err(mq_error)
    }

    /// Enqueues many tasks on `queue` (options as in `enqueue`), sent concurrently, and
    /// returns their ids in order. Every payload is checked before any is sent.
    #[pyo3(signature = (queue, payloads, *, name = None, delay = None, priority = None))]
    fn enqueue_many(
        &self,
        py: Python<'_>,
        queue: &str,
        payloads: Vec<Bound<'_, PyAny>>,
        name: Option<&str>,
        delay: Option<&Bound<'_, PyAny>>,
        priority: Option<&str>,
    ) -> PyResult<Vec<String>> {
        let encoded = payloads
            .iter()
            .map(convert::encode_payload)
            .collect::<PyResult<Vec<_>>>()?;
        let delay = convert::opt_duration(delay)?;
        let producer = self.with(priority)?;
        let name = name.unwrap_or(queue);
        py.detach(|| {
            runtime().block_on(async {
                let sends = encoded.into_iter().map(|bytes| {
                    let producer = &producer;
                    async move {
                        match delay {
                            Some(d) => producer.enqueue_raw_in(d, queue, name, bytes).await,
                            None => producer.enqueue_raw(queue, name, bytes).await,
                        }
                    }
                });
                // At most 256 in flight: one multiplexed connection pipelines them.
                use futures::StreamExt;
                futures::stream::iter(sends)
                    .buffered(256)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<mq_core::Result<Vec<String>>>()
            })
        })
        .map_err(mq_error)
    }
}

impl Producer {
    /// This producer, or a copy enqueuing at `priority`.
    fn with(&self, priority: Option<&str>) -> PyResult<mq_core::Producer> {
        Ok(match priority {
            None => self.inner.clone(),
            Some(p) => self.inner.clone().with_priority(convert::priority(p)?),
        })
    }
}
