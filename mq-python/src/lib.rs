//! The native half of the Python package `mq`: producers and workers on mq's own Rust
//! runtime (`mq-core`), so Python handlers get the same leases (renewed from a Rust thread
//! the handler cannot starve), reclaim, retries, dead letters, batches and metrics as Rust
//! ones. The Python half (`python/mq/__init__.py`) adds the decorators and signal handling.

use std::sync::OnceLock;

use pyo3::prelude::*;

mod admin;
mod convert;
mod flow;
mod handler;
mod producer;
mod worker;

pyo3::create_exception!(
    _native,
    MqError,
    pyo3::exceptions::PyException,
    "An error of mq itself: Redis unreachable, a bad option, a refused configuration."
);

/// The one tokio runtime of the process, started on first use.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("mq-runtime")
            .build()
            .unwrap_or_else(|e| panic!("cannot start mq's tokio runtime: {e}"))
    })
}

/// An mq error as the Python exception `mq.MqError`, with its whole chain of causes.
pub(crate) fn mq_error(e: mq_core::Error) -> PyErr {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    MqError::new_err(msg)
}

/// Logs of the Rust runtime to stderr, filtered by `MQ_LOG` (default `info`), set up once.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add("MqError", m.py().get_type::<MqError>())?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::Run>()?;
    m.add_class::<flow::Flow>()?;
    m.add_class::<admin::Admin>()?;
    m.add_class::<worker::NativeWorker>()?;
    m.add_class::<handler::Context>()?;
    m.add_class::<handler::Done>()?;
    Ok(())
}
