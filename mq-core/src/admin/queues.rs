//! The queues and their streams: the queue registry ([`Admin::queues`]), a queue's partitions
//! ([`Admin::partitions`]) and priority levels ([`Admin::levels`]), and `streams`, every stream
//! of a queue, which the per-queue reads of the other files go through.

use super::client::{Admin, LEVEL_MARK};
use crate::{
    error::{Error, Result},
    redis::keys,
};

impl Admin {
    /// The names of `queue`'s partitions (`hot#0`, `hot#1`, ...), or `[queue]` for a queue
    /// that is not partitioned or for a partition's own name. The count comes from
    /// `{prefix}:partitions`, which the workers of a partitioned queue write.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn partitions(&self, queue: &str) -> Result<Vec<String>> {
        if keys::base_queue(queue) != queue {
            return Ok(vec![queue.to_owned()]);
        }
        let n: Option<u16> = redis::cmd("HGET")
            .arg(keys::partitions_key(&self.prefix))
            .arg(queue)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("HGET partitions"))?;
        Ok(match n {
            Some(n) if n > 1 => (0..n).map(|i| keys::partition_name(queue, i)).collect(),
            _ => vec![queue.to_owned()],
        })
    }

    /// Every stream of `queue`: its partitions and, for a partitioned queue, the queue's own
    /// stream too (the workers read it: see README "Partitioned queues").
    /// For a queue with [priority levels](crate::Priority) (its High or Low stream exists:
    /// its workers create them), each of those at each level, highest first, named
    /// `q@high`, `q@normal`, `q@low` (`@` is not allowed in queue names); for a level's name
    /// (`q@high`), that level of each.
    pub(super) async fn streams(&self, queue: &str) -> Result<Vec<String>> {
        let (name, level) = match queue.rsplit_once(LEVEL_MARK) {
            Some((name, level)) => (name, Some(level)),
            None => (queue, None),
        };
        let mut streams = self.partitions(name).await?;
        if streams.len() > 1 || streams[0] != name {
            streams.push(name.to_owned());
        }
        let levels: Vec<String> = match level {
            Some(level) => vec![level.to_owned()],
            None if self.levels(name).await?.is_empty() => return Ok(streams),
            None => crate::Priority::ALL.iter().map(|l| l.to_string()).collect(),
        };
        Ok(streams
            .iter()
            .flat_map(|s| levels.iter().map(move |l| format!("{s}{LEVEL_MARK}{l}")))
            .collect())
    }

    /// The names of `queue`'s [priority levels](crate::Priority), highest first: `q@high`,
    /// `q@normal` and `q@low`, each usable as a queue name in [`stats`](Self::stats),
    /// [`pending`](Self::pending) and the `dead_*` calls to see one level alone (every call
    /// given `q` itself covers all its levels). Empty for a queue without levels: one whose
    /// High and Low streams do not exist (its workers create them, as do producers
    /// enqueuing at those levels). One `EXISTS`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn levels(&self, queue: &str) -> Result<Vec<String>> {
        let own = self.keys(keys::base_queue(queue));
        let found: u32 = redis::cmd("EXISTS")
            .arg(own.level(crate::Priority::High).stream)
            .arg(own.level(crate::Priority::Low).stream)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("EXISTS"))?;
        Ok(if found == 0 {
            Vec::new()
        } else {
            crate::Priority::ALL
                .iter()
                .map(|l| format!("{queue}{LEVEL_MARK}{l}"))
                .collect()
        })
    }

    /// Names of the queues in the queue registry `{prefix}:queues`, sorted: every queue a
    /// worker of this prefix served or scheduled tasks to, and every queue a [`Producer`]
    /// wrote to (a partitioned queue once, by its own name). One `SMEMBERS`, whatever the
    /// size of the keyspace. A queue written only by producers of another language that do not
    /// add it to the registry (docs/wire-format.md) is listed once one of its workers ran.
    ///
    /// [`Producer`]: crate::Producer
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::queues_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("SMEMBERS queues"))?;
        names.sort();
        Ok(names)
    }
}
