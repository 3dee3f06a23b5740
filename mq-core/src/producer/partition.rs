//! Partitions: the stream and keys a task goes to (by its partition key or round-robin, at
//! its priority level).

use std::sync::atomic::Ordering;

use crate::{
    redis::{keys, keys::QueueKeys},
    task::{Priority, Task},
};

use super::client::Producer;

impl Producer {
    /// The keys of `T`'s queue (of its first partition if it has
    /// [`partitions`](crate::TaskOptions::partitions)).
    pub fn keys<T: Task>(&self) -> QueueKeys {
        self.partition_keys::<T>().swap_remove(0)
    }

    /// The number of partitions of `T`'s queue.
    fn partition_count<T: Task>(&self) -> u16 {
        if self.partitions.is_empty() {
            return T::OPTIONS.partitions;
        }
        self.partitions
            .get(T::QUEUE)
            .copied()
            .unwrap_or(T::OPTIONS.partitions)
    }

    /// The keys of each partition of `T`'s queue (one for an unpartitioned queue).
    /// At the level of `T`'s tasks (checked by [`envelope`](Self::envelope) first).
    pub(super) fn partition_keys<T: Task>(&self) -> Vec<QueueKeys> {
        let parts = QueueKeys::partitions(&self.prefix, T::QUEUE, self.partition_count::<T>());
        match self.level::<T>().unwrap_or_default() {
            Priority::Normal => parts,
            level => parts.iter().map(|k| k.level(level)).collect(),
        }
    }

    /// The partition `task` goes to: by its [partition key](Task::partition_key), or
    /// round-robin; 0 for an unpartitioned queue.
    pub(super) fn partition_of<T: Task>(&self, task: &T) -> usize {
        let n = self.partition_count::<T>();
        if n <= 1 {
            return 0;
        }
        usize::from(match task.partition_key() {
            Some(key) => keys::partition_of(&key, n),
            None => (self.next_partition.fetch_add(1, Ordering::Relaxed) % u64::from(n)) as u16,
        })
    }

    /// The stream `task` goes to.
    pub(super) fn stream_of<T: Task>(&self, task: &T) -> String {
        let stream = if self.partition_count::<T>() <= 1 {
            stream_key(&self.prefix, T::QUEUE)
        } else {
            let i = self.partition_of(task) as u16;
            stream_key(&self.prefix, &keys::partition_name(T::QUEUE, i))
        };
        match self.level::<T>().unwrap_or_default() {
            Priority::Normal => stream,
            level => format!("{stream}:{level}"),
        }
    }
}

pub(super) fn stream_key(prefix: &str, queue: &str) -> String {
    QueueKeys::new(prefix, queue).stream
}
