//! Flows: [`Producer::flow`] and its builder [`Flow`], a parent task that runs once all its
//! children have ended (see [`crate::flow`] for how the children report to it).

use crate::{
    envelope::{now_ms, Envelope},
    error::{Error, Result},
    flow::{FlowLinks, FlowPolicy},
    redis::{conn::Conn, keys, keys::QueueKeys},
    task::Task,
    trace::current_traceparent,
};

use super::{
    client::Producer, durability::send, envelope::xadd, raw::RawTask, tracked::record_enqueue,
};

/// The most children one flow (with its nested flows) may have: 10,000. The children are
/// listed in the parent's pending-parent hash and in its entry, and the last child's report
/// reads the hash whole; a run of millions of tasks is counted, not listed.
pub const MAX_FLOW_CHILDREN: usize = 10_000;

/// One task of a flow: its envelope and where it goes.
struct Node {
    env: Envelope,
    keys: QueueKeys,
}

/// A flow being built: a parent task and its children, enqueued together by
/// [`enqueue`](Flow::enqueue). Made by [`Producer::flow`].
#[must_use = "a flow does nothing until it is enqueued"]
pub struct Flow<'a> {
    producer: &'a Producer,
    parent: Result<Node>,
    children: Vec<Result<Child<'a>>>,
    policy: FlowPolicy,
    tracked: bool,
    /// The run the parent is counted in ([`Run::flow`](crate::Run::flow)): its key.
    run: Option<String>,
}

enum Child<'a> {
    Task(Box<Node>),
    Flow(Box<Flow<'a>>),
}

/// The ids of an enqueued flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowIds {
    /// The parent's task id.
    pub parent: String,
    /// The children's task ids, in the order they were added (a nested flow's parent's id for
    /// a nested flow).
    pub children: Vec<String>,
}

impl Producer {
    /// Starts a flow whose parent is `parent`: add children with [`Flow::child`] (any task
    /// types, any queues and partitions) or [`Flow::child_flow`] (a nested flow, whose parent
    /// is then this flow's child), then [`Flow::enqueue`]. The parent runs once every child has
    /// ended as its [`FlowPolicy`] says; its handler lists them with
    /// [`TaskContext::children`](crate::TaskContext::children).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "images")] struct EmbedImage { product_id: u64 }
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "texts")] struct EmbedText { product_id: u64 }
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # #[task(queue = "index")] struct IndexProduct { product_id: u64 }
    /// # async fn demo(producer: &mq_core::Producer) -> mq_core::Result<()> {
    /// let ids = producer
    ///     .flow(IndexProduct { product_id: 7 })
    ///     .child(EmbedImage { product_id: 7 })
    ///     .child(EmbedText { product_id: 7 })
    ///     .enqueue()
    ///     .await?;
    /// println!("product 7 is indexed by {} once {:?} are done", ids.parent, ids.children);
    /// # Ok(()) }
    /// ```
    pub fn flow<P: Task>(&self, parent: P) -> Flow<'_> {
        Flow {
            producer: self,
            parent: self.node(&parent),
            children: Vec::new(),
            policy: FlowPolicy::default(),
            tracked: is_tracked::<P>(),
            run: None,
        }
    }

    /// [`flow`](Self::flow) with a parent whose type is known only at run time (what
    /// mq-python enqueues); add raw children with [`Flow::child_raw`].
    pub fn flow_raw(&self, parent: RawTask) -> Flow<'_> {
        Flow {
            producer: self,
            tracked: parent.tracked(),
            parent: self.raw_node(parent),
            children: Vec::new(),
            policy: FlowPolicy::default(),
            run: None,
        }
    }

    /// A new task's envelope and keys, or why it cannot be in a flow.
    fn node<T: Task>(&self, task: &T) -> Result<Node> {
        let env = self.envelope(task, now_ms(), current_traceparent().as_deref())?;
        let keys = self
            .partition_keys::<T>()
            .swap_remove(self.partition_of(task));
        flow_node(env, keys)
    }

    /// [`node`](Self::node) for a [`RawTask`].
    fn raw_node(&self, task: RawTask) -> Result<Node> {
        let keys = self.raw_keys(&task.queue);
        flow_node(task.envelope(self)?, keys)
    }
}

/// A flow's task, refused if it is unique.
fn flow_node(env: Envelope, keys: QueueKeys) -> Result<Node> {
    if env.unique.is_some() {
        return Err(Error::Config(format!(
            "task {} is unique: unique tasks cannot be in a flow (yet)",
            env.name
        )));
    }
    Ok(Node { env, keys })
}

fn is_tracked<T: Task>() -> bool {
    T::OPTIONS.result_ttl.is_some() || T::OPTIONS.events
}

impl<'a> Flow<'a> {
    /// Adds a child task.
    pub fn child<T: Task>(mut self, task: T) -> Self {
        self.tracked |= is_tracked::<T>();
        self.children
            .push(self.producer.node(&task).map(|n| Child::Task(Box::new(n))));
        self
    }

    /// Adds a child whose type is known only at run time.
    pub fn child_raw(mut self, task: RawTask) -> Self {
        self.tracked |= task.tracked();
        self.children.push(
            self.producer
                .raw_node(task)
                .map(|n| Child::Task(Box::new(n))),
        );
        self
    }

    /// Adds a nested flow: its parent is a child of this flow, and reports to this flow's
    /// parent when it ends (after its own children).
    pub fn child_flow(mut self, flow: Flow<'a>) -> Self {
        self.tracked |= flow.tracked;
        self.children.push(Ok(Child::Flow(Box::new(flow))));
        self
    }

    /// Counts the parent (one task: the flow as a whole) in the run with hash `key`.
    pub(super) fn in_run(mut self, key: String) -> Self {
        self.run = Some(key);
        self
    }

    /// When the parent runs: [`FlowPolicy::AllSucceeded`] (the default) or
    /// [`FlowPolicy::Always`].
    pub fn policy(mut self, policy: FlowPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Writes the flow in one `MULTI` round trip: the parent's pending-parent hash (and a
    /// nested flow's), then every child's entry. Nothing is written when it fails. A
    /// [durable](crate::Producer::durable) producer then waits for its replicas in a second
    /// round trip.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a flow without children or with more than
    /// [`MAX_FLOW_CHILDREN`], a unique task in it, or a Redis Cluster (the children's reports
    /// reach the parent's keys from the children's scripts, which a Cluster refuses across
    /// slots: flows need one Redis server in this version); what
    /// [`Producer::enqueue`](crate::Producer::enqueue) returns for a task that cannot be
    /// encoded or is too large, or a failed write.
    pub async fn enqueue(self) -> Result<FlowIds> {
        let producer = self.producer;
        if matches!(producer.conn, Conn::Cluster(_)) {
            return Err(Error::Config(
                "flows need one Redis server: on a Cluster the parent's keys lie in another \
                 slot than its children's scripts (not supported yet)"
                    .into(),
            ));
        }
        producer.check_tracked_if(self.tracked).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut queues = Vec::new();
        let mut count = 0;
        let ids = self.write(&mut pipe, None, &mut queues, &mut count)?;
        queues.sort();
        queues.dedup();
        for q in &queues {
            pipe.cmd("SADD")
                .arg(keys::queues_key(&producer.prefix))
                .arg(q)
                .ignore();
        }
        let sent = send(pipe, producer.conn.clone(), None, 0).await;
        producer.checked(sent.map(|(_, s)| s), "flow MULTI").await?;
        let Some(durability) = producer.durability else {
            return Ok(ids);
        };
        // A durable producer's `WAIT` after the `MULTI`, not inside it (where it would not
        // wait): one more round trip.
        let sent = send(redis::pipe(), producer.conn.clone(), Some(durability), 0).await;
        match producer.checked(sent.map(|(_, s)| s), "flow WAIT").await? {
            None => Ok(ids),
            Some(short) => Err(short.into_error(
                std::iter::once(ids.parent.clone())
                    .chain(ids.children.iter().cloned())
                    .collect(),
            )),
        }
    }

    /// Appends this flow's writes to `pipe`: its hash, then its children (a nested flow's
    /// hash and children in turn). `parent`: the hash this flow's parent reports to.
    fn write(
        self,
        pipe: &mut redis::Pipeline,
        parent: Option<&str>,
        queues: &mut Vec<String>,
        count: &mut usize,
    ) -> Result<FlowIds> {
        let Node { mut env, keys } = self.parent?;
        if self.children.is_empty() {
            return Err(Error::Config(format!(
                "the flow of {} {} has no children",
                env.name, env.id
            )));
        }
        *count += self.children.len();
        if *count > MAX_FLOW_CHILDREN {
            return Err(Error::Config(format!(
                "a flow may have at most {MAX_FLOW_CHILDREN} children (nested flows included)"
            )));
        }
        if parent.is_some() || self.run.is_some() {
            env.flow = Some(Box::new(FlowLinks {
                parent: parent.map(str::to_owned),
                run: self.run.clone(),
                ..FlowLinks::default()
            }));
        }
        // The run counts the parent before anything of the flow exists.
        if let Some(run) = &self.run {
            pipe.cmd("HINCRBY").arg(run).arg("total").arg(1).ignore();
        }
        let hash = format!("{}:flow:{}", keys.stream, env.id);
        let mut hset = redis::cmd("HSET");
        hset.arg(&hash)
            .arg("left")
            .arg(self.children.len())
            .arg("dead")
            .arg(0)
            .arg("policy")
            .arg(self.policy.as_str());
        let mut fields = redis::cmd("XADD");
        env.write_fields(&mut fields);
        let mut args = fields.args_iter().skip(1);
        while let (Some(redis::Arg::Simple(k)), Some(redis::Arg::Simple(v))) =
            (args.next(), args.next())
        {
            hset.arg([b"f:", k].concat()).arg(v);
        }
        let mut ids = FlowIds {
            parent: env.id.clone(),
            children: Vec::with_capacity(self.children.len()),
        };
        let mut later = Vec::new();
        for child in self.children {
            match child? {
                Child::Task(node) => {
                    let Node { mut env, keys } = *node;
                    env.flow = Some(Box::new(FlowLinks {
                        parent: Some(hash.clone()),
                        ..FlowLinks::default()
                    }));
                    hset.arg(format!("c:{}", env.id))
                        .arg(format!("p{}", keys.queue));
                    ids.children.push(env.id.clone());
                    later.push(Node { env, keys });
                }
                Child::Flow(flow) => {
                    // The nested parent's queue, read before `write` takes the flow (which
                    // returns the parent's own error if it has one).
                    let queue = flow
                        .parent
                        .as_ref()
                        .map(|n| n.keys.queue.clone())
                        .unwrap_or_default();
                    let sub = flow.write(pipe, Some(&hash), queues, count)?;
                    hset.arg(format!("c:{}", sub.parent))
                        .arg(format!("p{queue}"));
                    ids.children.push(sub.parent);
                }
            }
        }
        // The hash before the children that report to it.
        let tracked_parent = env.track.is_some() || env.events;
        queues.push(keys::base_queue(&keys.queue).to_owned());
        pipe.add_command(hset).ignore();
        if tracked_parent {
            record_enqueue(pipe, &keys, &env, None);
        }
        for Node { env, keys } in later {
            pipe.add_command(xadd(&keys.stream, &env)).ignore();
            if env.track.is_some() || env.events {
                record_enqueue(pipe, &keys, &env, None);
            }
            queues.push(keys::base_queue(&keys.queue).to_owned());
        }
        Ok(ids)
    }
}
