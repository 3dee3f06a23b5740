//! Task types known only at run time, for bridges to other languages (the Python package
//! `mq` is one) and tools: [`DynTask`], registered with
//! [`WorkerBuilder::handle_dynamic`](crate::WorkerBuilder::handle_dynamic). Such a handler
//! gets everything a typed one gets (leases, retries, dead letters, batches, metrics); only
//! the queue, the task name and the [`TaskOptions`] come from values instead of a type.

use std::marker::PhantomData;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use crate::handler::{DecodeError, ErasedHandler, Handler, TaskContext, TaskError};
use crate::task::TaskOptions;

/// The name under which a dynamic handler registered for every task name of its queue is kept
/// (empty: producers refuse an empty task name, so no entry carries it).
pub(crate) const ANY_NAME: &str = "";

/// A task whose type is known only at run time: the entry's task name and its payload, decoded
/// from MessagePack as `V` (a payload that does not decode as `V` is dead-lettered with the
/// decoder's message, like a typed task's).
#[derive(Debug, Clone, PartialEq)]
pub struct DynTask<V> {
    /// The entry's task name (the `name` field).
    pub name: String,
    /// The decoded payload.
    pub payload: V,
}

/// A handler of [`DynTask`]s with its options, erased like a typed one.
pub(crate) struct Dynamic<V, H> {
    handler: H,
    options: TaskOptions,
    _payload: PhantomData<fn() -> V>,
}

impl<V, H> Dynamic<V, H> {
    pub(crate) fn new(handler: H, options: TaskOptions) -> Self {
        Self {
            handler,
            options,
            _payload: PhantomData,
        }
    }
}

impl<V, H> ErasedHandler for Dynamic<V, H>
where
    V: DeserializeOwned + Send + 'static,
    H: Handler<DynTask<V>>,
{
    fn call<'a>(
        &'a self,
        name: &str,
        payload: &[u8],
        ctx: TaskContext,
    ) -> Result<BoxFuture<'a, Result<(), TaskError>>, DecodeError> {
        let payload: V = rmp_serde::from_slice(payload)
            .map_err(|e| DecodeError(format!("cannot decode {name} payload: {e}")))?;
        let task = DynTask {
            name: name.to_owned(),
            payload,
        };
        Ok(self.handler.handle(task, ctx))
    }

    fn options(&self) -> TaskOptions {
        self.options
    }
}
