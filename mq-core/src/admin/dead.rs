//! Reading and purging a queue's dead stream ([`Admin::dead_list`], [`Admin::dead_show`],
//! [`Admin::dead_purge`], [`Admin::dead_delete`]), each entry a [`DeadLetter`].

use std::sync::LazyLock;

use redis::{Script, Value};

use super::{
    client::{flat_map, Admin},
    letter::DeadLetter,
};
use crate::error::{Error, Result};

impl Admin {
    /// Up to `count` entries of `queue`'s dead stream, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_list(&self, queue: &str, count: usize) -> Result<Vec<DeadLetter>> {
        self.dead_range(queue, "-", "+", count).await
    }

    /// One entry of `queue`'s dead stream by its id, `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_show(&self, queue: &str, dead_id: &str) -> Result<Option<DeadLetter>> {
        Ok(self.dead_range(queue, dead_id, dead_id, 1).await?.pop())
    }

    /// Up to `count` dead letters of `queue` (of each partition in turn) from `start` to `end`.
    async fn dead_range(
        &self,
        queue: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let mut all = Vec::new();
        for p in self.streams(queue).await? {
            if all.len() >= count {
                break;
            }
            all.extend(
                self.dead_range_of(&p, start, end, count - all.len())
                    .await?,
            );
        }
        Ok(all)
    }

    /// [`dead_range`](Self::dead_range) of one stream.
    pub(super) async fn dead_range_of(
        &self,
        queue: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.dead_letters(queue, "XRANGE", start, end, count).await
    }

    /// Up to `count` dead letters of one stream, `read` (`XRANGE` oldest first, `XREVRANGE`
    /// newest first) from `start` to `end`.
    pub(super) async fn dead_letters(
        &self,
        queue: &str,
        read: &'static str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let reply: Value = redis::cmd(read)
            .arg(self.keys(queue).dead)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis(read))?;
        Ok(crate::envelope::parse_entries(reply)
            .into_iter()
            .map(|(dead_id, fields)| letter(queue, dead_id, fields))
            .collect())
    }

    /// Deletes every dead task of `queue`; returns how many there were. One small script
    /// (`XLEN`, then `UNLINK`) rather than a `MULTI`: Redis refuses every command queued in a
    /// transaction once it is over `maxmemory`, but runs a script whose first write is a
    /// deletion, so purging works when it is needed most.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_purge(&self, queue: &str) -> Result<u64> {
        let mut purged = 0;
        for p in self.streams(queue).await? {
            purged += PURGE
                .key(self.keys(&p).dead)
                .invoke_async::<u64>(&mut self.conn.clone())
                .await
                .map_err(Error::redis("purge"))?;
        }
        Ok(purged)
    }

    /// Deletes the dead letters of `queue` with these ids (from each of its partitions and
    /// levels: one `XDEL` per stream); returns how many were deleted. Unknown ids are not an
    /// error: they count nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an id that is not a stream id, [`Error::Redis`].
    pub async fn dead_delete(&self, queue: &str, dead_ids: &[String]) -> Result<u64> {
        if let Some(bad) = dead_ids.iter().find(|id| !super::client::is_stream_id(id)) {
            return Err(Error::Config(format!(
                "bad dead-letter id {bad:?}: expected <unix-ms>-<seq>"
            )));
        }
        if dead_ids.is_empty() {
            return Ok(0);
        }
        let mut deleted = 0;
        for p in self.streams(queue).await? {
            deleted += redis::cmd("XDEL")
                .arg(self.keys(&p).dead)
                .arg(dead_ids)
                .query_async::<u64>(&mut self.conn.clone())
                .await
                .map_err(Error::redis("XDEL"))?;
        }
        Ok(deleted)
    }

    /// The former name of [`dead_purge`](Self::dead_purge).
    ///
    /// # Errors
    ///
    /// As [`dead_purge`](Self::dead_purge).
    #[deprecated(note = "renamed to `dead_purge`")]
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        self.dead_purge(queue).await
    }
}

/// Counts and deletes a dead stream: `XLEN` then `UNLINK`, atomically, runnable at `maxmemory`.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("local n = redis.call('XLEN', KEYS[1]) redis.call('UNLINK', KEYS[1]) return n")
});

/// The dead letter of `queue` with id `dead_id` and the entry's flat field list.
fn letter(queue: &str, dead_id: String, fields: Vec<Value>) -> DeadLetter {
    let fields = flat_map(Value::Array(fields))
        .into_iter()
        .map(|(k, v)| match v {
            Value::BulkString(b) => (k, b),
            other => (k, format!("{other:?}").into_bytes()),
        })
        .collect();
    DeadLetter::new(dead_id, fields).with_queue(queue)
}
