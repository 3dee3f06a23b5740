//! What the parts of a running worker share: [`Shared`] (configuration, connections,
//! metrics, health, the global in-flight limit) and one [`QueueState`] per stream (its keys,
//! handlers, limit and the entries it tracks), plus the small helpers every part uses.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::Duration,
};

use crate::redis::conn::Conn;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    config::WorkerConfig,
    handler::ErasedHandler,
    health::Health,
    metrics::{Metrics, QueueMetrics},
    redis::{conn, keys::QueueKeys},
};

pub(super) type Handlers = HashMap<String, Arc<dyn ErasedHandler>>;

/// What every part of a running worker shares.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    /// For connections made on other threads (the lease thread), Pub/Sub and the sampler.
    pub(crate) endpoint: conn::Endpoint,
    /// This worker's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// What `/healthz` reports.
    pub(crate) health: Arc<Health>,
    /// Whether the server has `XACKDEL` (Redis 8.2+): then acks use it.
    pub(crate) xackdel: bool,
    /// This worker's entry in the `{prefix}:workers` registry.
    pub(crate) registry_info: String,
    /// The queues this worker adds to the `{prefix}:queues` registry when it starts.
    pub(crate) registered: Vec<String>,
    /// Multiplexed connection for acks, retries and dead letters.
    pub(crate) data: Conn,
    /// Connections for control commands (promote, reap).
    pub(crate) pool: conn::Control,
    /// The global in-flight limit.
    pub(crate) global: Arc<Semaphore>,
}

/// One queue's handlers and limit.
pub(crate) struct QueueState {
    pub(crate) keys: QueueKeys,
    pub(crate) queue: Arc<str>,
    pub(crate) handlers: Handlers,
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// Partitions of the queue (1 if not partitioned): a rate limit without a rate key is
    /// split evenly across them.
    pub(crate) partitions: u16,
    /// Entry ids this worker is running or has not settled yet: their leases are renewed.
    pub(crate) in_flight: Mutex<HashSet<String>>,
    /// Running tasks with per-key concurrency: entry id -> its slots key. The lease thread
    /// renews these slots with the leases.
    pub(crate) slots: Mutex<HashMap<String, String>>,
    /// Running tasks: entry id -> the cancellation token of its `TaskContext`, fired when a
    /// lease renewal reports the task cancelled. An entry reported cancelled while tracked but
    /// not started yet (buffered by a priority level's fetcher, or waiting for its key slot or
    /// rate token) gets a fired token here, so it is settled as cancelled without running.
    pub(crate) running: Mutex<HashMap<String, CancellationToken>>,
    /// Metric handles of this queue (shared by its partitions).
    pub(crate) metrics: Arc<QueueMetrics>,
    /// Wakes the queue's promoter: an earlier delayed task was scheduled.
    pub(crate) wake: tokio::sync::Notify,
    /// Whether the queue is paused: its fetcher starts and reads nothing (set by `pause.rs`).
    pub(crate) paused: AtomicBool,
    /// Wakes the queue's fetcher when `paused` changed.
    pub(crate) pause_changed: tokio::sync::Notify,
}

impl QueueState {
    /// The handler of task `name`: its own, or else the queue's handler of any name.
    pub(crate) fn handler(&self, name: &str) -> Option<Arc<dyn ErasedHandler>> {
        let any = || self.handlers.get(crate::dynamic::ANY_NAME);
        self.handlers.get(name).or_else(any).cloned()
    }

    pub(crate) fn track(&self, entry_id: &str) {
        lock(&self.in_flight).insert(entry_id.to_owned());
    }

    pub(crate) fn untrack<'a>(&self, entry_ids: impl IntoIterator<Item = &'a String>) {
        let ids: Vec<&String> = entry_ids.into_iter().collect();
        {
            let mut set = lock(&self.in_flight);
            for id in &ids {
                set.remove(*id);
            }
        }
        // A cancellation that reached an entry which never started (see `running`).
        let mut running = lock(&self.running);
        for id in ids {
            running.remove(id);
        }
    }

    pub(crate) fn is_tracked(&self, entry_id: &str) -> bool {
        lock(&self.in_flight).contains(entry_id)
    }

    /// How many entries are tracked (buffered, running or waiting for their ack).
    pub(crate) fn tracked_len(&self) -> usize {
        lock(&self.in_flight).len()
    }

    pub(crate) fn in_flight_ids(&self) -> Vec<String> {
        lock(&self.in_flight).iter().cloned().collect()
    }

    /// The stream's name in logs and health reports: `q`, `q#2`, or with its level `q:high`.
    pub(crate) fn label(&self) -> String {
        match self.keys.level {
            crate::Priority::Normal => self.keys.queue.clone(),
            l => format!("{}:{l}", self.keys.queue),
        }
    }

    /// Fires the cancellation tokens of the running tasks of these entries; an entry tracked
    /// but not started yet keeps a fired token for its start (see `running`).
    pub(crate) fn signal_cancelled(&self, entry_ids: &[String]) {
        let tracked: Vec<bool> = {
            let set = lock(&self.in_flight);
            entry_ids.iter().map(|id| set.contains(id)).collect()
        };
        let mut running = lock(&self.running);
        for (id, tracked) in entry_ids.iter().zip(tracked) {
            match running.get(id) {
                Some(token) => token.cancel(),
                None if tracked => {
                    let token = CancellationToken::new();
                    token.cancel();
                    running.insert(id.clone(), token);
                }
                None => {}
            }
        }
    }
}

/// Locks a mutex, ignoring poisoning (the data, a set of ids, stays consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sleeps `d` unless `token` is cancelled first; returns `false` if it was.
pub(crate) async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = token.cancelled() => false,
    }
}

/// Keeps `entry id -> value` in one of its queue's maps (`slots`, `running`) while it lives,
/// for the lease thread: the slot it renews, the token it fires on a cancellation.
pub(super) struct Registered<V: 'static> {
    queue: Arc<QueueState>,
    entry_id: String,
    map: fn(&QueueState) -> &Mutex<HashMap<String, V>>,
}

impl<V: 'static> Registered<V> {
    /// Registers `value(the value registered before, if any)` for `entry_id`.
    pub(super) fn new(
        queue: &Arc<QueueState>,
        entry_id: &str,
        map: fn(&QueueState) -> &Mutex<HashMap<String, V>>,
        value: impl FnOnce(Option<&V>) -> V,
    ) -> Self {
        let mut m = lock(map(queue));
        let v = value(m.get(entry_id));
        m.insert(entry_id.to_owned(), v);
        drop(m);
        Registered {
            queue: queue.clone(),
            entry_id: entry_id.to_owned(),
            map,
        }
    }
}

impl<V: 'static> Drop for Registered<V> {
    fn drop(&mut self) {
        lock((self.map)(&self.queue)).remove(&self.entry_id);
    }
}
