//! Enqueuing many tasks: [`Producer::enqueue_many`], [`Producer::submit_many`], in
//! pipelines of [`ENQUEUE_BATCH`], a few in flight.

use futures::StreamExt;

use crate::{
    envelope::{now_ms, Envelope},
    error::{Error, Result},
    redis::{keys::QueueKeys, scripts},
    task::Task,
    trace::current_traceparent,
};

use super::{
    client::Producer,
    delayed::Due,
    durability::Shortfall,
    envelope::xadd,
    send::ReconnectOnReadonly,
    tracked::record_enqueue,
    unique::{unique_invocation, Enqueued},
};

/// Commands per pipeline in [`Producer::enqueue_many`]: 1,000.
pub const ENQUEUE_BATCH: usize = 1_000;

/// Pipelines of one `enqueue_many` call in flight at once: 4.
pub const ENQUEUE_PIPELINES_IN_FLIGHT: usize = 4;

impl Producer {
    /// Enqueues many tasks with pipelined `XADD`s (one round trip per [`ENQUEUE_BATCH`] tasks)
    /// and returns their ids in order. A [durable](Self::durable) producer ends each pipeline
    /// with one `WAIT`.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue). On a Redis error, or a task that cannot be encoded or is
    /// too large, the batches of [`ENQUEUE_BATCH`] tasks before it may have been enqueued
    /// (not the failing task's own batch). After a batch whose `WAIT` falls short, no further
    /// task is taken from `tasks` (the pipelines already built, of other partitions of a
    /// partitioned queue, are still sent), and [`Error::NotDurable`] lists the ids of every
    /// task written (a prefix of `tasks`; the rest were not enqueued).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Remind { user: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// # let producer = mq_core::Producer::connect("redis://127.0.0.1/").await?;
    /// let ids = producer.enqueue_many((1..=10_000).map(|user| Remind { user })).await?;
    /// assert_eq!(ids.len(), 10_000);
    /// # Ok(()) }
    /// ```
    ///
    /// A [unique](Task::unique_key) task whose key is held is not added and its place holds
    /// the live task's id ([`submit_many`](Self::submit_many) says which were duplicates).
    /// Unique tasks cost one script call each in the same pipelines (and, once per call, a
    /// round trip to load the script).
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<String>> {
        self.add_many(tasks, None).await.map(|(ids, _)| ids)
    }

    /// Enqueues many tasks like [`enqueue_many`](Self::enqueue_many) and returns one
    /// [`Enqueued`] per task, in order: [`Enqueued::Duplicate`] for each
    /// [unique](Task::unique_key) task whose key was held (by a live task, or by an earlier
    /// task of the same call).
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn submit_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<Enqueued>> {
        let (ids, duplicates) = self.add_many(tasks, None).await?;
        Ok(outcomes(ids, duplicates))
    }

    /// Enqueues many tasks now (`due` is `None`) or delayed: `XADD`s (or schedule script calls)
    /// for plain tasks and `enqueue_unique.lua` calls for unique ones, in pipelines. Returns the
    /// ids and the indexes of the duplicates among them.
    pub(super) async fn add_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
        due: Option<Due>,
    ) -> Result<(Vec<String>, Vec<usize>)> {
        let op = if due.is_some() { "schedule" } else { "XADD" };
        self.check_tracked::<T>().await?;
        self.send_batches(tasks, op, |pipe, env, keys| {
            if env.unique.is_some() {
                pipe.invoke_script(&unique_invocation(keys, env, due));
                return true;
            }
            match due {
                None => {
                    pipe.add_command(xadd(&keys.stream, env)).ignore();
                }
                Some(due) => {
                    let member = env.to_delayed_member();
                    let mut inv = scripts::SCHEDULE.prepare_invoke();
                    due.schedule_args(&mut inv, keys, &member);
                    pipe.invoke_script(&inv).ignore();
                }
            }
            if env.track.is_some() || env.events {
                record_enqueue(pipe, keys, env, due.map(Due::unix_ms));
            }
            false
        })
        .await
    }

    /// Encodes `tasks` and sends them in pipelines of [`ENQUEUE_BATCH`] commands (`add` puts
    /// one task's command for the keys of its partition in a pipeline and returns whether its
    /// reply is kept: only a unique task's is, an `enqueue_unique.lua` reply), each followed
    /// by the durability wait if any. Each pipeline holds tasks of one partition (one slot of a
    /// cluster). Pipelines are sent as soon as they are full, a few in flight at once, so
    /// building overlaps sending and memory stays bounded however many tasks there are. After
    /// a pipeline that was not confirmed, no new one is sent. Returns the ids, a duplicate's
    /// replaced by the live task's, and the indexes of the duplicates.
    async fn send_batches<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
        op: &'static str,
        mut add: impl FnMut(&mut redis::Pipeline, &Envelope, &QueueKeys) -> bool,
    ) -> Result<(Vec<String>, Vec<usize>)> {
        let now = now_ms();
        let traceparent = current_traceparent();
        let parts = self.partition_keys::<T>();
        // Per partition: the pipeline being filled, the indexes (in `ids`) of its tasks and of
        // those whose reply it keeps.
        let mut pipes: Vec<(redis::Pipeline, Vec<usize>, Vec<usize>)> = parts
            .iter()
            .map(|_| (redis::pipe(), Vec::new(), Vec::new()))
            .collect();
        let mut ids = Vec::new();
        let mut duplicates = Vec::new();
        let mut unique_loaded = false;
        let mut short: Option<Shortfall> = None;
        let mut in_flight = futures::stream::FuturesOrdered::new();
        // A `WAIT` holds the connection on the server until it returns: with several durable
        // pipelines in flight the later ones would queue behind the earlier waits and could
        // outlast the response timeout. Durable batches go one at a time.
        let max_in_flight = if self.durability.is_some() {
            1
        } else {
            ENQUEUE_PIPELINES_IN_FLIGHT
        };
        let mut tasks = tasks.into_iter().peekable();
        loop {
            let task = if short.is_none() { tasks.next() } else { None };
            let full = match &task {
                Some(task) => {
                    let env = self.envelope(task, now, traceparent.as_deref())?;
                    let p = self.partition_of(task);
                    if add(&mut pipes[p].0, &env, &parts[p]) {
                        // A pipelined `EVALSHA` does not load its script: load it once first.
                        if !unique_loaded {
                            self.load_script(&scripts::ENQUEUE_UNIQUE, op).await?;
                            unique_loaded = true;
                        }
                        pipes[p].2.push(ids.len());
                    }
                    pipes[p].1.push(ids.len());
                    ids.push(env.id);
                    (pipes[p].1.len() >= ENQUEUE_BATCH).then_some(p)
                }
                None => None,
            };
            // Full pipelines go now; at the end (also after a shortfall, which ends the
            // reading of tasks), every non-empty one: so the tasks written are exactly those
            // taken from `tasks`, a prefix of it.
            let ready: Vec<usize> = match (full, &task) {
                (Some(p), _) => vec![p],
                (None, Some(_)) => Vec::new(),
                (None, None) => (0..pipes.len())
                    .filter(|&p| !pipes[p].1.is_empty())
                    .collect(),
            };
            for p in ready {
                let (pipe, _, kept) = std::mem::take(&mut pipes[p]);
                let queue = &parts[p].queue;
                in_flight.push_back(async move {
                    let sent = self.send_registering(queue, pipe, kept.len()).await;
                    (kept, sent)
                });
                if in_flight.len() >= max_in_flight {
                    if let Some((kept, sent)) = in_flight.next().await {
                        let s = self.settled(sent, op, &kept, &mut ids, &mut duplicates);
                        short = Shortfall::worst(short, s.await?);
                    }
                }
            }
            if task.is_none() {
                break;
            }
        }
        while let Some((kept, sent)) = in_flight.next().await {
            let s = self.settled(sent, op, &kept, &mut ids, &mut duplicates);
            short = Shortfall::worst(short, s.await?);
        }
        match short {
            None => Ok((ids, duplicates)),
            Some(short) => Err(short.into_error(ids)),
        }
    }

    /// Checks one sent pipeline of [`send_batches`](Self::send_batches) and applies its kept
    /// replies (of the tasks at indexes `kept`): a duplicate's id becomes the live task's.
    async fn settled(
        &self,
        sent: redis::RedisResult<(Vec<redis::Value>, Option<Shortfall>)>,
        op: &'static str,
        kept: &[usize],
        ids: &mut [String],
        duplicates: &mut Vec<usize>,
    ) -> Result<Option<Shortfall>> {
        let (replies, short) = sent
            .map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await?;
        for (&i, reply) in kept.iter().zip(&replies) {
            if let Enqueued::Duplicate(live) = self.unique_outcome(reply, &ids[i])? {
                ids[i] = live;
                duplicates.push(i);
            }
        }
        Ok(short)
    }
}

/// One [`Enqueued`] per id, the ones at `duplicates` (indexes) refused.
fn outcomes(ids: Vec<String>, duplicates: Vec<usize>) -> Vec<Enqueued> {
    let mut out: Vec<Enqueued> = ids.into_iter().map(Enqueued::Added).collect();
    for i in duplicates {
        if let Some(e) = out.get_mut(i) {
            *e =
                Enqueued::Duplicate(std::mem::replace(e, Enqueued::Added(String::new())).into_id());
        }
    }
    out
}
