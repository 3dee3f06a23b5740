//! Unique tasks: [`Enqueued`], and the `enqueue_unique.lua` call that checks and takes a
//! task's unique key atomically with its write.

use std::sync::atomic::Ordering;

use crate::{
    envelope::Envelope,
    error::{Error, Result},
    redis::{keys::QueueKeys, scripts},
    task::Task,
};

use super::{
    client::Producer,
    delayed::{unix_ms, Due},
    envelope::push_entry_fields,
    send::ReconnectOnReadonly,
};

/// What one enqueue did: the task was added, or (a [unique](Task::unique_key) task whose key
/// is held) refused as a duplicate of the live task. Returned by [`Producer::submit`] and
/// [`Producer::submit_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The task was added; its id.
    Added(String),
    /// Nothing was added: a task with the same unique key is queued, delayed, running or
    /// retrying (or finished within its [`unique_for`](crate::TaskOptions::unique_for)); that
    /// task's id.
    Duplicate(String),
}

impl Enqueued {
    /// The id of the task added, or of the live task for a duplicate.
    pub fn id(&self) -> &str {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// As [`id`](Self::id), by value.
    pub fn into_id(self) -> String {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// Whether the enqueue was refused as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Enqueued::Duplicate(_))
    }
}

impl Producer {
    /// Enqueues of unique tasks refused as duplicates by this producer and its clones so far
    /// (the count of every producer of a queue is in Redis: [`Admin::unique_stats`](crate::Admin::unique_stats)).
    pub fn duplicates_refused(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Enqueues one unique task (`env.unique` is set), now (`due` is `None`) or delayed: one
    /// `enqueue_unique.lua` call, loaded and sent again if Redis does not have it.
    ///
    /// The future does not hold `task` (only its partition's keys), so it is `Send` for any
    /// task type, `Sync` or not.
    pub(super) fn submit_unique<T: Task>(
        &self,
        task: &T,
        env: Envelope,
        due: Option<Due>,
    ) -> impl std::future::Future<Output = Result<Enqueued>> + Send + '_ {
        let keys = self
            .partition_keys::<T>()
            .swap_remove(self.partition_of(task));
        self.submit_unique_at(keys, env, due)
    }

    /// [`submit_unique`](Self::submit_unique) into the partition whose keys are `keys`.
    pub(super) async fn submit_unique_at(
        &self,
        keys: QueueKeys,
        env: Envelope,
        due: Option<Due>,
    ) -> Result<Enqueued> {
        let inv = unique_invocation(&keys, &env, due);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&inv);
        let sent = self.send_registering(&keys.queue, pipe.clone(), 1).await;
        let sent = match sent {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_script(&scripts::ENQUEUE_UNIQUE, "enqueue")
                    .await?;
                self.send_registering(&keys.queue, pipe, 1).await
            }
            sent => sent,
        };
        let (replies, short) = sent
            .map_err(Error::redis("enqueue"))
            .or_else_readonly(&self.conn)
            .await?;
        let outcome = replies
            .first()
            .map(|r| self.unique_outcome(r, &env.id))
            .transpose()?
            .unwrap_or(Enqueued::Added(env.id));
        match short {
            None => Ok(outcome),
            Some(short) => Err(short.into_error(vec![outcome.into_id()])),
        }
    }

    /// The outcome of one `enqueue_unique.lua` reply, `{1, id}` or `{0, live id}`, counted.
    pub(super) fn unique_outcome(&self, reply: &redis::Value, id: &str) -> Result<Enqueued> {
        use redis::Value::{Array, BulkString, Int};
        match reply {
            Array(v) => match v.as_slice() {
                [Int(1), _] => return Ok(Enqueued::Added(id.to_owned())),
                [Int(0), BulkString(live)] => {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                    return Ok(Enqueued::Duplicate(
                        String::from_utf8_lossy(live).into_owned(),
                    ));
                }
                _ => {}
            },
            redis::Value::ServerError(e) => {
                let e: redis::RedisError = e.clone().into();
                return Err(Error::redis("enqueue")(e));
            }
            _ => {}
        }
        Err(Error::redis("enqueue")(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply to enqueue_unique.lua",
            format!("{reply:?}"),
        ))))
    }
}

/// The `enqueue_unique.lua` call of `env` (a unique task) for the keys of its partition: now
/// (`due` is `None`, an `XADD`) or delayed.
pub(super) fn unique_invocation<'a>(
    keys: &QueueKeys,
    env: &Envelope,
    due: Option<Due>,
) -> redis::ScriptInvocation<'a> {
    let mut inv = scripts::ENQUEUE_UNIQUE.prepare_invoke();
    inv.key(keys.unique_key(env.unique.as_deref().unwrap_or_default()))
        .key(&keys.stream)
        .key(&keys.delayed)
        .key(&keys.duplicates)
        .arg(&env.id);
    match due {
        None => inv.arg("now").arg(0),
        Some(Due::In(d)) => inv.arg(d.as_millis() as u64).arg(0),
        Some(Due::At(at)) => inv.arg("-").arg(unix_ms(at)),
    };
    inv.arg(&keys.wake);
    match due {
        None => {
            inv.arg("");
            push_entry_fields(&mut inv, env);
        }
        Some(_) => {
            inv.arg(env.to_delayed_member());
        }
    }
    inv
}
