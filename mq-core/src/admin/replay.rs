//! Moving dead tasks back to the work stream ([`Admin::dead_replay`],
//! [`Admin::dead_replay_all`]), with what was done in a [`ReplayReport`].

use redis::Value;

use super::client::Admin;
use crate::{
    error::{Error, Result},
    redis::scripts,
};

/// Dead entries replayed per script call by [`Admin::dead_replay_all`]: 500.
const REPLAY_BATCH: usize = 500;

/// What [`Admin::dead_replay`] or [`Admin::dead_replay_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead tasks moved back to the work stream.
    pub replayed: usize,
    /// Ids of dead entries left in the dead stream because they are not tasks (no `id`,
    /// `name`, `payload` or `enqueued_at`, e.g. the promoter's `raw` entries), oldest first.
    pub skipped: Vec<String>,
    /// Ids of dead [unique](crate::Task::unique_key) tasks left in the dead stream because
    /// another live task holds their unique key by now (replaying them would run two tasks
    /// with one key), oldest first. Replay them once that task is done.
    pub duplicates: Vec<String>,
}

impl Admin {
    /// Moves the given dead tasks back to the work stream with attempt 0 (atomically per
    /// call). Dead entries that are not tasks (they lack `id`, `name`, `payload` or
    /// `enqueued_at`, like the promoter's `raw` entries for undecodable delayed members) would
    /// only die again: they stay dead and are reported in [`ReplayReport::skipped`]. A
    /// [unique](crate::Task::unique_key) task takes its unique key again in the same script;
    /// if another live task holds it by now, the dead task stays dead and is reported in
    /// [`ReplayReport::duplicates`]. Ids not found are in no count.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn dead_replay(&self, queue: &str, dead_ids: &[String]) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        if dead_ids.is_empty() {
            return Ok(report);
        }
        // Each partition replays the ids it has and ignores the others.
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            let (replayed, skipped, duplicates): (usize, Vec<String>, Vec<String>) =
                scripts::REPLAY
                    .key(&k.dead)
                    .key(&k.stream)
                    .key(&k.unique)
                    .arg(dead_ids)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(Error::redis("replay"))?;
            report.replayed += replayed;
            report.skipped.extend(skipped);
            report.duplicates.extend(duplicates);
        }
        Ok(report)
    }

    /// Replays every task that is dead when the call starts, as
    /// [`dead_replay`](Self::dead_replay) does,
    /// 500 per script call: it walks the dead stream up to the newest entry it
    /// saw at the start, so tasks that die again meanwhile (a permanent error, an unknown
    /// name) are not replayed a second time and the call always ends.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; tasks replayed before the error stay replayed.
    pub async fn dead_replay_all(&self, queue: &str) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        for p in self.streams(queue).await? {
            let done = self.dead_replay_all_of(&p).await?;
            report.replayed += done.replayed;
            report.skipped.extend(done.skipped);
            report.duplicates.extend(done.duplicates);
        }
        Ok(report)
    }

    /// [`dead_replay_all`](Self::dead_replay_all) of one stream.
    async fn dead_replay_all_of(&self, queue: &str) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        let newest = self.dead_newest_id(queue).await?;
        let Some(end) = newest else {
            return Ok(report);
        };
        let mut start = "-".to_owned();
        loop {
            let batch = self
                .dead_range_of(queue, &start, &end, REPLAY_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(report);
            };
            // Exclusive start: skipped entries stay in the stream and must not be read again.
            start = format!("({}", last.dead_id());
            let full = batch.len() == REPLAY_BATCH;
            let ids: Vec<String> = batch.into_iter().map(|d| d.dead_id).collect();
            let done = self.dead_replay(queue, &ids).await?;
            report.replayed += done.replayed;
            report.skipped.extend(done.skipped);
            report.duplicates.extend(done.duplicates);
            if !full {
                return Ok(report);
            }
        }
    }

    /// The id of the newest entry of `queue`'s dead stream, if any.
    async fn dead_newest_id(&self, queue: &str) -> Result<Option<String>> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(self.keys(queue).dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("XREVRANGE"))?;
        Ok(crate::envelope::parse_entries(reply)
            .into_iter()
            .next()
            .map(|(id, _)| id))
    }

    /// The former name of [`dead_replay`](Self::dead_replay).
    ///
    /// # Errors
    ///
    /// As [`dead_replay`](Self::dead_replay).
    #[deprecated(note = "renamed to `dead_replay`")]
    pub async fn replay(&self, queue: &str, dead_ids: &[String]) -> Result<ReplayReport> {
        self.dead_replay(queue, dead_ids).await
    }

    /// The former name of [`dead_replay_all`](Self::dead_replay_all).
    ///
    /// # Errors
    ///
    /// As [`dead_replay_all`](Self::dead_replay_all).
    #[deprecated(note = "renamed to `dead_replay_all`")]
    pub async fn replay_all(&self, queue: &str) -> Result<ReplayReport> {
        self.dead_replay_all(queue).await
    }
}
