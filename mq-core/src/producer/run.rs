//! Runs: [`Producer::run`] and its handle [`Run`], a named group of tasks counted together
//! (total, done, dead, failed) with one completion task once it is sealed and every task in it
//! has ended. See `redis/lua/run.lua` for how the tasks report, and
//! [`Admin::run`](crate::Admin::run) for reading a run.

use crate::{
    envelope::{now_ms, Envelope},
    error::{Error, Result},
    flow::FlowLinks,
    redis::{conn::Conn, keys, keys::QueueKeys, scripts},
    task::Task,
    trace::current_traceparent,
};

use super::{
    batch::ENQUEUE_BATCH, client::Producer, durability::send, envelope::xadd, flow::Flow,
    raw::RawTask, tracked::record_enqueue,
};

/// The longest run name: 200 bytes.
pub const MAX_RUN_NAME: usize = 200;

/// A run opened by [`Producer::run`]: tasks enqueued through it are counted in it, and
/// [`seal`](Self::seal) says no more will come. Cheap to clone (it holds a clone of the
/// producer); several producers may open the same run by name and add to it until it is
/// sealed.
///
/// Each task of a run carries one short field (`rn`, the run's key, `mq:run:<n>`) and reports
/// its end to the run's counters in the script of its final state change, as a flow's child
/// does: a SIGKILL at any moment neither loses nor doubles a count. The run costs one hash,
/// whatever its size: counters, not a list of its tasks.
#[derive(Debug, Clone)]
pub struct Run {
    producer: Producer,
    name: String,
    key: String,
}

impl Producer {
    /// Opens the run `name` (made on first use; one round trip): tasks enqueued through the
    /// returned [`Run`] are counted in it. Give it a name per batch of work, such as
    /// `products-2026-12-06`.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "texts")] struct EmbedText { product_id: u64 }
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "reports")] struct RunDone { run: String }
    /// # async fn demo(producer: &mq_core::Producer) -> mq_core::Result<()> {
    /// let run = producer.run("products-2026-12-06").await?;
    /// run.enqueue_many((0..1_000_000).map(|product_id| EmbedText { product_id })).await?;
    /// // No more tasks: `RunDone` is enqueued once every task of the run has ended.
    /// run.seal_with(RunDone { run: run.name().into() }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a name that is empty, longer than [`MAX_RUN_NAME`] or has
    /// control characters, for a run already sealed, and on a Redis Cluster (a run's tasks
    /// report to its hash from their own scripts, which a Cluster refuses across slots: runs
    /// need one Redis server in this version); [`Error::Redis`].
    pub async fn run(&self, name: &str) -> Result<Run> {
        if matches!(self.conn, Conn::Cluster(_)) {
            return Err(Error::Config(
                "runs need one Redis server: on a Cluster a run's hash lies in another slot \
                 than its tasks' scripts (not supported yet)"
                    .into(),
            ));
        }
        validate_run_name(name)?;
        let (key, sealed): (String, i64) = scripts::RUN_OPEN
            .key(keys::runs_key(&self.prefix))
            .key(keys::run_seq_key(&self.prefix))
            .arg(name)
            .arg(keys::run_key_prefix(&self.prefix))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("open run"))?;
        if sealed == 1 {
            return Err(Error::Config(format!(
                "run {name:?} is sealed: no task can be added to it"
            )));
        }
        Ok(Run {
            producer: self.clone(),
            name: name.to_owned(),
            key,
        })
    }
}

/// Checks a run name: 1 to [`MAX_RUN_NAME`] bytes, no control characters.
pub(crate) fn validate_run_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_RUN_NAME {
        return Err(Error::Config(format!(
            "run name {name:?} must be 1 to {MAX_RUN_NAME} bytes long"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Config(format!(
            "run name {name:?} must not have control characters"
        )));
    }
    Ok(())
}

impl Run {
    /// The run's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of the run's hash (`{prefix}:run:<n>`), which its tasks' entries carry.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Enqueues one task in the run and returns its id: the count and the entry in one
    /// `MULTI`.
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<String> {
        let mut ids = self.enqueue_many(std::iter::once(task)).await?;
        ids.pop()
            .ok_or_else(|| Error::Config("no task was enqueued".into()))
    }

    /// Enqueues many tasks in the run and returns their ids in order: one `MULTI` per
    /// [`ENQUEUE_BATCH`] tasks, which adds them to the run's `total` and writes their entries
    /// together (all or none). A [durable](Producer::durable) producer waits for its replicas
    /// after each.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a unique task (unique tasks cannot be in a run yet), what
    /// [`Producer::enqueue_many`] returns for a task that cannot be encoded or is too large,
    /// or a failed write: the batches before it may have been enqueued (and counted), not the
    /// failing one.
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        let p = &self.producer;
        p.check_tracked::<T>().await?;
        let parts = p.partition_keys::<T>();
        let (now, traceparent) = (now_ms(), current_traceparent());
        let mut ids = Vec::new();
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let mut batch = Vec::with_capacity(ENQUEUE_BATCH);
            for task in tasks.by_ref().take(ENQUEUE_BATCH) {
                let env = p.envelope(&task, now, traceparent.as_deref())?;
                batch.push((self.in_run(env)?, p.partition_of(&task)));
            }
            self.send_batch(batch, &parts, &mut ids).await?;
        }
        Ok(ids)
    }

    /// Enqueues [`RawTask`]s (tasks of types known at run time) in the run, as
    /// [`enqueue_many`](Self::enqueue_many) does, and returns their ids in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many), and as
    /// [`Producer::submit_raw`](Producer::submit_raw) for a task it would refuse.
    pub async fn enqueue_raw(
        &self,
        tasks: impl IntoIterator<Item = RawTask>,
    ) -> Result<Vec<String>> {
        let p = &self.producer;
        let mut ids = Vec::new();
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let (mut batch, mut parts) = (Vec::with_capacity(ENQUEUE_BATCH), Vec::new());
            for task in tasks.by_ref().take(ENQUEUE_BATCH) {
                let (tracked, queue) = (task.tracked(), task.queue.clone());
                let env = self.in_run(task.envelope(p)?)?;
                p.check_tracked_if(tracked).await?;
                let keys = p.raw_keys(&queue);
                let part = match parts
                    .iter()
                    .position(|k: &QueueKeys| k.stream == keys.stream)
                {
                    Some(i) => i,
                    None => {
                        parts.push(keys);
                        parts.len() - 1
                    }
                };
                batch.push((env, part));
            }
            self.send_batch(batch, &parts, &mut ids).await?;
        }
        Ok(ids)
    }

    /// `env` as a task of this run (its `rn` field set); a unique task is refused.
    fn in_run(&self, mut env: Envelope) -> Result<Envelope> {
        if env.unique.is_some() {
            return Err(Error::Config(format!(
                "task {} is unique: unique tasks cannot be in a run (yet)",
                env.name
            )));
        }
        env.flow = Some(Box::new(FlowLinks {
            run: Some(self.key.clone()),
            ..FlowLinks::default()
        }));
        Ok(env)
    }

    /// Writes one batch of the run's tasks, each `(envelope, index in parts)`, in one
    /// `MULTI`: the run's `total` raised by their number first (a task can end only once it is
    /// counted), their entries, their queues in the registry. Then a durable producer waits
    /// for its replicas. Appends their ids to `ids`.
    async fn send_batch(
        &self,
        batch: Vec<(Envelope, usize)>,
        parts: &[QueueKeys],
        ids: &mut Vec<String>,
    ) -> Result<()> {
        let p = &self.producer;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HINCRBY")
            .arg(&self.key)
            .arg("total")
            .arg(batch.len())
            .ignore();
        let mut queues: Vec<&str> = Vec::new();
        for (env, part) in &batch {
            let keys = &parts[*part];
            pipe.add_command(xadd(&keys.stream, env)).ignore();
            if env.track.is_some() || env.events {
                record_enqueue(&mut pipe, keys, env, None);
            }
            let queue = keys::base_queue(&keys.queue);
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        let registry = pipe.cmd("SADD").arg(keys::queues_key(&p.prefix));
        for queue in queues {
            registry.arg(queue);
        }
        registry.ignore();
        let sent = send(pipe, p.conn.clone(), None, 0).await;
        p.checked(sent.map(|(_, s)| s), "run MULTI").await?;
        ids.extend(batch.into_iter().map(|(env, _)| env.id));
        self.wait_replicas(ids).await
    }

    /// A durable producer's `WAIT` after a `MULTI` (inside it, it would not wait).
    async fn wait_replicas(&self, ids: &[String]) -> Result<()> {
        let p = &self.producer;
        let Some(durability) = p.durability else {
            return Ok(());
        };
        let sent = send(redis::pipe(), p.conn.clone(), Some(durability), 0).await;
        match p.checked(sent.map(|(_, s)| s), "run WAIT").await? {
            None => Ok(()),
            Some(short) => Err(short.into_error(ids.to_vec())),
        }
    }

    /// Starts a flow (see [`Producer::flow`]) whose parent is counted in the run as one task:
    /// the flow as a whole (its children are not counted in the run). The run's `done` then
    /// counts parents that ran, `dead` parents dead-lettered (a flow whose children failed
    /// under [`FlowPolicy::AllSucceeded`](crate::FlowPolicy::AllSucceeded) included).
    pub fn flow<P: Task>(&self, parent: P) -> Flow<'_> {
        self.producer.flow(parent).in_run(self.key.clone())
    }

    /// Seals the run: no task is to be added, so it ends once every task counted in it has
    /// ended (at once if all have). Returns whether this call sealed it (`false`: it was
    /// sealed before). One script call.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`], or if the run's hash is gone (it expired a week after the run ended).
    pub async fn seal(&self) -> Result<bool> {
        self.seal_inner(None).await
    }

    /// Seals the run like [`seal`](Self::seal), with a completion task: enqueued exactly once,
    /// when the run ends. A run sealed before keeps its own completion task (if any) and this
    /// one is dropped: the result is then `false`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a unique or tracked completion task (not supported yet), what
    /// [`Producer::enqueue`] returns for a task that cannot be encoded or is too large, and as
    /// [`seal`](Self::seal).
    pub async fn seal_with<T: Task>(&self, completion: T) -> Result<bool> {
        let p = &self.producer;
        let env = p.envelope(&completion, now_ms(), current_traceparent().as_deref())?;
        self.seal_with_env(T::QUEUE, &p.stream_of(&completion), env)
            .await
    }

    /// Seals the run like [`seal_with`](Self::seal_with), with a [`RawTask`] as its
    /// completion task.
    ///
    /// # Errors
    ///
    /// As [`seal_with`](Self::seal_with); [`Error::Config`] for a unique or tracked task.
    pub async fn seal_with_raw(&self, completion: RawTask) -> Result<bool> {
        let p = &self.producer;
        let queue = completion.queue.clone();
        let env = completion.envelope(p)?;
        self.seal_with_env(&queue, &p.raw_keys(&queue).stream, env)
            .await
    }

    /// Seals the run with the completion task `env` for `stream` of `queue`: checked (neither
    /// unique nor tracked), its queue registered, then the seal script.
    async fn seal_with_env(&self, queue: &str, stream: &str, env: Envelope) -> Result<bool> {
        if env.unique.is_some() || env.track.is_some() || env.events {
            return Err(Error::Config(format!(
                "task {} is unique or tracked: a run's completion task cannot be (yet)",
                env.name
            )));
        }
        let cmd = xadd(stream, &env);
        let mut registry = redis::cmd("SADD");
        registry
            .arg(keys::queues_key(&self.producer.prefix))
            .arg(keys::base_queue(queue));
        registry
            .query_async::<()>(&mut self.producer.conn.clone())
            .await
            .map_err(Error::redis("SADD queues"))?;
        self.seal_inner(Some(cmd)).await
    }

    /// Runs the seal script, with the completion task's `XADD` (its stream and fields).
    async fn seal_inner(&self, completion: Option<redis::Cmd>) -> Result<bool> {
        let mut inv = scripts::RUN_SEAL.key(&self.key);
        match &completion {
            None => {
                inv.arg("");
            }
            Some(cmd) => {
                // `XADD <stream> * f v ...`: the stream, then the pairs.
                for (i, arg) in cmd.args_iter().enumerate() {
                    if let redis::Arg::Simple(b) = arg {
                        if i != 0 && i != 2 {
                            inv.arg(b);
                        }
                    }
                }
            }
        }
        let (sealed, _ended): (i64, i64) = inv
            .invoke_async(&mut self.producer.conn.clone())
            .await
            .map_err(Error::redis("seal run"))?;
        Ok(sealed == 1)
    }
}
