//! Every Redis key mq uses. All keys of one queue share the hash tag `{queue}`, so each Lua
//! script touches one slot and works unchanged on Redis Cluster.

use crate::task::Priority;

/// Default key prefix: `mq`.
pub const DEFAULT_PREFIX: &str = "mq";
/// Default consumer group name: `mq`.
pub const DEFAULT_GROUP: &str = "mq";

/// The keys of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The queue name.
    pub queue: String,
    /// The priority level these keys hold: [`Priority::Normal`] for the queue's plain keys
    /// (see [`level`](Self::level)).
    pub level: Priority,
    /// `{prefix}:{queue}:stream`: ready and in-flight tasks.
    pub stream: String,
    /// `{prefix}:{queue}:delayed`: scheduled and retrying tasks, score = due time (unix ms).
    pub delayed: String,
    /// `{prefix}:{queue}:dead`: dead-lettered tasks.
    pub dead: String,
    /// `{prefix}:{queue}:wake`: a Pub/Sub channel (not a key). Scripts that make a delayed
    /// task the earliest one publish its due time (unix ms) here, and workers' promoters wake
    /// up for it.
    pub wake: String,
    /// `{prefix}:{queue}:paused`: exists while the queue is paused (see
    /// [`Admin::pause`](crate::Admin::pause)). One flag for all partitions of a partitioned
    /// queue: for partition `hot#i` this is `{prefix}:{hot}:paused`, under the queue's hash
    /// tag, not the partition's, so it is read with plain commands, never in a partition's
    /// script.
    pub paused: String,
    /// `{prefix}:{queue}:unique:`: the prefix of the unique keys. The string key
    /// `{prefix}:{queue}:unique:<key>` holds the id of the live task whose
    /// [unique key](crate::Task::unique_key) is `<key>` (see [`unique_key`](Self::unique_key)).
    pub unique: String,
    /// `{prefix}:{queue}:duplicates`: a counter of enqueues refused because the task's unique
    /// key was held.
    pub duplicates: String,
    /// `{prefix}:{queue}:rate`: the prefix of the rate-limit states of the queue's task types
    /// (see [`rate_state`](Self::rate_state)).
    pub rate: String,
    /// `{prefix}:{queue}:slots`: the prefix of the per-key concurrency slots of the queue's
    /// task types (see [`slots_key`](Self::slots_key)).
    pub slots: String,
    /// `{prefix}:{queue}:cron`: a hash of the queue's cron schedules (see
    /// [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule)): fields `<name>:expr`,
    /// `<name>:tz`, `<name>:last` and `<name>:next` (ticks in unix ms). The tick keys
    /// (see [`cron_tick`](Self::cron_tick)) share its prefix.
    pub cron: String,
    /// `{prefix}:{queue}:cancel`: a hash, task id -> stream entry id, of the running tasks
    /// whose cancellation was asked for (see [`Admin::cancel`](crate::Admin::cancel)), with an
    /// expiry refreshed at each cancellation; a field is removed when its task is settled.
    pub cancel: String,
    /// `{prefix}:{queue}:task:`: the prefix of the per-task hashes `{prefix}:{queue}:task:<id>`
    /// (field `progress`: what the handler last reported with
    /// [`TaskContext::progress`](crate::TaskContext::progress)), written only for tasks that
    /// report progress, with an expiry.
    pub task: String,
    /// `{prefix}:{queue}:events`: the stream of state changes of the queue's task types with
    /// [`TaskOptions::events`](crate::TaskOptions::events) (fields `id`, `event` and the
    /// event's details), capped with `MAXLEN ~ 10000`.
    pub events: String,
    /// `{prefix}:{queue}:drain`: hash, time bucket -> `<unix ms> <entries removed>`, the
    /// queue's drain samples that [`Admin::eta`](crate::Admin::eta) measures its rate from
    /// (one for all partitions and levels, like the pause flag).
    pub drain: String,
}

impl QueueKeys {
    /// The keys of `queue` under `prefix`.
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "images");
    /// assert_eq!(k.stream, "mq:{images}:stream");
    /// assert_eq!(k.delayed, "mq:{images}:delayed");
    /// assert_eq!(k.dead, "mq:{images}:dead");
    /// assert_eq!(k.paused, "mq:{images}:paused");
    /// assert_eq!(k.cancel, "mq:{images}:cancel");
    /// // One pause flag for every partition of a partitioned queue:
    /// assert_eq!(mq_core::redis::keys::QueueKeys::new("mq", "hot#2").paused, "mq:{hot}:paused");
    /// ```
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            level: Priority::Normal,
            stream: format!("{prefix}:{{{queue}}}:stream"),
            delayed: format!("{prefix}:{{{queue}}}:delayed"),
            dead: format!("{prefix}:{{{queue}}}:dead"),
            wake: format!("{prefix}:{{{queue}}}:wake"),
            paused: format!("{prefix}:{{{}}}:paused", base_queue(queue)),
            unique: format!("{prefix}:{{{queue}}}:unique:"),
            duplicates: format!("{prefix}:{{{queue}}}:duplicates"),
            rate: format!("{prefix}:{{{queue}}}:rate"),
            slots: format!("{prefix}:{{{queue}}}:slots"),
            cron: format!("{prefix}:{{{queue}}}:cron"),
            cancel: format!("{prefix}:{{{queue}}}:cancel"),
            task: format!("{prefix}:{{{queue}}}:task:"),
            events: format!("{prefix}:{{{queue}}}:events"),
            drain: format!("{prefix}:{{{}}}:drain", base_queue(queue)),
        }
    }

    /// The rate-limit state of task type `task` in this queue, or of one of its rate keys:
    /// `{prefix}:{queue}:rate:{task}` or `{prefix}:{queue}:rate:{task}:{key}`, a string with
    /// the limit's next free slot (unix microseconds) that expires once the slot has passed.
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "calls");
    /// assert_eq!(k.rate_state("Call", None), "mq:{calls}:rate:Call");
    /// assert_eq!(k.rate_state("Call", Some("acct-7")), "mq:{calls}:rate:Call:acct-7");
    /// ```
    pub fn rate_state(&self, task: &str, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{}:{task}:{key}", self.rate),
            None => format!("{}:{task}", self.rate),
        }
    }

    /// The running tasks of task type `task` with concurrency key `key` (of the whole task type
    /// without one): `{prefix}:{queue}:slots:{task}:{key}` or `{prefix}:{queue}:slots:{task}`, a
    /// sorted set of stream entry ids scored by their slot's lease expiry (unix ms, server
    /// clock).
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "calls");
    /// assert_eq!(k.slots_key("Call", Some("acct-7")), "mq:{calls}:slots:Call:acct-7");
    /// ```
    pub fn slots_key(&self, task: &str, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{}:{task}:{key}", self.slots),
            None => format!("{}:{task}", self.slots),
        }
    }

    /// The key that holds the id of the live task with unique key `key`:
    /// `{prefix}:{queue}:unique:<key>`, under the queue's hash tag (so in the stream's slot).
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "images");
    /// assert_eq!(k.unique_key("product:7"), "mq:{images}:unique:product:7");
    /// ```
    pub fn unique_key(&self, key: &str) -> String {
        format!("{}{key}", self.unique)
    }

    /// Every key that a script ending the life of task `id` (`None`: an entry without a
    /// readable id) may touch besides the stream, in the order the scripts declare them (see
    /// `lua/unique.lua`): its unique key if it has `unique` key, then with an id its status hash,
    /// the event stream and the cancel hash. A script touches no key outside its KEYS, so that
    /// Redis Cluster routes it and checks it against a resharding.
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "q");
    /// assert_eq!(
    ///     k.task_keys(Some("01J"), Some("p:7")),
    ///     ["mq:{q}:unique:p:7", "mq:{q}:task:01J", "mq:{q}:events", "mq:{q}:cancel"]
    /// );
    /// assert_eq!(k.task_keys(None, None), Vec::<String>::new());
    /// ```
    pub fn task_keys(&self, id: Option<&str>, unique: Option<&str>) -> Vec<String> {
        let mut keys: Vec<String> = unique.map(|u| self.unique_key(u)).into_iter().collect();
        if let Some(id) = id {
            keys.push(format!("{}{id}", self.task));
            keys.push(self.events.clone());
            keys.push(self.cancel.clone());
        }
        keys
    }

    /// The key that marks tick `tick_ms` (unix ms) of cron schedule `name` as enqueued:
    /// `{prefix}:{queue}:cron:<name>:<tick_ms>`, set with `NX` and an expiry by the one worker
    /// that enqueues that tick.
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "reports");
    /// assert_eq!(k.cron, "mq:{reports}:cron");
    /// assert_eq!(k.cron_tick("daily", 1764000000000), "mq:{reports}:cron:daily:1764000000000");
    /// ```
    pub fn cron_tick(&self, name: &str, tick_ms: u64) -> String {
        format!("{}:{name}:{tick_ms}", self.cron)
    }
}

impl QueueKeys {
    /// The keys of priority level `level` of this queue (or partition): its own stream,
    /// delayed set, dead letters and wake channel, with the level's name appended
    /// (`mq:{q}:stream:high`), under the same hash tag. The queue-wide keys (pause flag,
    /// unique keys, duplicates, rate states, key slots) stay shared. [`Priority::Normal`] is
    /// the queue's plain keys, unchanged: a queue without priorities is a Normal-only queue.
    ///
    /// ```
    /// use mq_core::{redis::keys::QueueKeys, Priority};
    /// let k = QueueKeys::new("mq", "q#2").level(Priority::High);
    /// assert_eq!(k.stream, "mq:{q#2}:stream:high");
    /// assert_eq!(k.delayed, "mq:{q#2}:delayed:high");
    /// assert_eq!(k.dead, "mq:{q#2}:dead:high");
    /// assert_eq!(k.wake, "mq:{q#2}:wake:high");
    /// assert_eq!(k.unique, "mq:{q#2}:unique:");
    /// assert_eq!(QueueKeys::new("mq", "q").level(Priority::Normal), QueueKeys::new("mq", "q"));
    /// ```
    pub fn level(&self, level: Priority) -> Self {
        if level == self.level {
            return self.clone();
        }
        // Back to the plain keys first, then the level's suffix.
        let base = |key: &str| match self.level {
            Priority::Normal => key.to_owned(),
            l => key
                .strip_suffix(&format!(":{}", l.as_str()))
                .unwrap_or(key)
                .to_owned(),
        };
        let with = |key: &str| match level {
            Priority::Normal => base(key),
            l => format!("{}:{}", base(key), l.as_str()),
        };
        Self {
            level,
            stream: with(&self.stream),
            delayed: with(&self.delayed),
            dead: with(&self.dead),
            wake: with(&self.wake),
            ..self.clone()
        }
    }

    /// The keys of each partition of `queue` (see [`partition_name`]); for `partitions <= 1`
    /// just the queue's own keys.
    ///
    /// ```
    /// let parts = mq_core::redis::keys::QueueKeys::partitions("mq", "hot", 2);
    /// assert_eq!(parts[0].stream, "mq:{hot#0}:stream");
    /// assert_eq!(parts[1].dead, "mq:{hot#1}:dead");
    /// assert_eq!(mq_core::redis::keys::QueueKeys::partitions("mq", "q", 1)[0].stream, "mq:{q}:stream");
    /// ```
    pub fn partitions(prefix: &str, queue: &str, partitions: u16) -> Vec<Self> {
        if partitions <= 1 {
            return vec![Self::new(prefix, queue)];
        }
        (0..partitions)
            .map(|i| Self::new(prefix, &partition_name(queue, i)))
            .collect()
    }
}

/// The name of partition `i` of a partitioned queue: `{queue}#{i}`. Each partition has the
/// keys of a queue of that name (`mq:{queue#i}:stream`, ...): its own hash tag, so its own
/// slot of a Redis Cluster.
pub fn partition_name(queue: &str, i: u16) -> String {
    format!("{queue}#{i}")
}

/// The queue a stream name belongs to: `hot` for the partition `hot#3`, the name itself
/// otherwise.
pub fn base_queue(name: &str) -> &str {
    match name.rsplit_once('#') {
        Some((base, i)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// The partition of a task with partition key `key` in a queue of `partitions` partitions:
/// CRC16-XMODEM of the key's UTF-8 bytes (the CRC of Redis Cluster's hash slots) modulo
/// `partitions`. Producers in other languages compute the same.
///
/// ```
/// use mq_core::redis::keys::partition_of;
/// assert_eq!(partition_of("123456789", 1024), 0x31C3 % 1024); // CRC16-XMODEM check value
/// assert!(partition_of("account-7", 4) < 4);
/// ```
pub fn partition_of(key: &str, partitions: u16) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(key.as_bytes()) % partitions.max(1)
}

/// Checks a queue or partition name as [`validate_queue_name`], allowing a partition suffix
/// `#<digits>` (`hot#3`).
pub fn validate_queue_or_partition(name: &str) -> Result<(), String> {
    validate_queue_name(base_queue(name))
}

/// `{prefix}:partitions`: hash, queue name -> its number of partitions, written by the workers
/// of partitioned queues, so that admin tools find every partition.
pub fn partitions_key(prefix: &str) -> String {
    format!("{prefix}:partitions")
}

/// `{prefix}:queues`: a set of the names of the queues under the prefix (a partitioned
/// queue's own name, not its partitions'), where [`Admin::queues`](crate::Admin::queues)
/// finds them without scanning the keyspace. Workers add their queues (and their schedules')
/// when they start, a [`Producer`](crate::Producer) each queue the first time it writes to it
/// (in the same round trip). No hash tag: plain `SADD` / `SMEMBERS`, on any node of a cluster.
pub fn queues_key(prefix: &str) -> String {
    format!("{prefix}:queues")
}

/// `{prefix}:runs`: hash, run name -> the number of its hash `{prefix}:run:<n>` (see
/// [`Producer::run`](crate::Producer::run)).
pub fn runs_key(prefix: &str) -> String {
    format!("{prefix}:runs")
}

/// `{prefix}:run:`: the prefix of the run hashes `{prefix}:run:<n>`.
pub fn run_key_prefix(prefix: &str) -> String {
    format!("{prefix}:run:")
}

/// `{prefix}:run:seq`: the counter that numbers new runs.
pub fn run_seq_key(prefix: &str) -> String {
    format!("{prefix}:run:seq")
}

/// `{prefix}:workers`: hash of live workers, consumer name -> description.
pub fn workers_key(prefix: &str) -> String {
    format!("{prefix}:workers")
}

/// `{prefix}:worker:{consumer}`: a worker's heartbeat, a string with a TTL.
pub fn worker_key(prefix: &str, consumer: &str) -> String {
    format!("{prefix}:worker:{consumer}")
}

/// Checks a queue name: non-empty, at most 200 bytes of `[A-Za-z0-9_.:-]` (no braces, which
/// would break the hash tag). The derive enforces the same rule at compile time.
pub fn validate_queue_name(queue: &str) -> Result<(), String> {
    if queue.is_empty() || queue.len() > 200 {
        return Err(format!("queue name {queue:?} must be 1 to 200 bytes long"));
    }
    if let Some(c) = queue
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "queue name {queue:?} contains {c:?}; allowed are letters, digits and _ . : -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = QueueKeys::new("app", "q1");
        for key in [&k.stream, &k.delayed, &k.dead, &k.unique, &k.duplicates] {
            assert!(key.starts_with("app:{q1}:"), "{key}");
        }
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(validate_queue_name("images.v2:hot-1").is_ok());
        assert!(validate_queue_name("").is_err());
        assert!(validate_queue_name("a{b}").is_err());
        assert!(validate_queue_name("a b").is_err());
        assert!(validate_queue_name(&"x".repeat(201)).is_err());
    }
}
