//! What is counted by scanning the keyspace (at most [`SCAN_MAX_CALLS`] `SCAN` calls per node
//! and stream): a queue's unique keys ([`Admin::unique_stats`]) and its per-key concurrency
//! slots in use ([`Admin::key_slots`]).

use super::client::Admin;
use crate::error::{Error, Result};

/// `SCAN` calls per node at most in [`Admin::unique_stats`] and [`Admin::key_slots`]: 100 (of
/// `COUNT 1000` each, so about 100,000 keys looked at per node). On a larger keyspace their
/// counts are partial, and say so.
pub const SCAN_MAX_CALLS: usize = 100;

/// The [unique](crate::Task::unique_key) keys of one queue, from [`Admin::unique_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UniqueStats {
    /// Unique keys held: by a live task (queued, delayed, running or retrying) or, for a task
    /// type with [`unique_for`](crate::TaskOptions::unique_for), by a finished one within its
    /// window.
    pub held: u64,
    /// Enqueues refused as duplicates since the queue's counter was created (all producers).
    pub duplicates: u64,
    /// Whether the count of held keys is partial: the keyspace was larger than
    /// [`SCAN_MAX_CALLS`] `SCAN` calls cover, so `held` is a lower bound.
    pub partial: bool,
}

/// The per-key concurrency slots in use for one task type and key, from
/// [`Admin::key_slots`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlots {
    /// `<task>:<key>`: the task type's name and the [concurrency
    /// key](crate::Task::concurrency_key) (the suffix of its slots key).
    pub name: String,
    /// Slots held: tasks of this key running now (or whose worker died less than a lease
    /// ago).
    pub running: u64,
}

/// The per-key concurrency slots in use in one queue, from [`Admin::key_slots`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySlotsReport {
    /// One row per task type and key with a slot in use, most slots first.
    pub keys: Vec<KeySlots>,
    /// Whether the list is partial: the keyspace was larger than [`SCAN_MAX_CALLS`] `SCAN`
    /// calls cover, so keys may be missing.
    pub partial: bool,
}

impl Admin {
    /// The unique keys held in `queue` (all its partitions) and the enqueues refused as
    /// duplicates. Counting the keys walks the keyspace of the node(s) holding the queue with
    /// `SCAN MATCH {prefix}:{queue}:unique:*` (1,000 keys per call), at most
    /// [`SCAN_MAX_CALLS`] calls per node and stream: on a larger keyspace the count is a lower
    /// bound and [`UniqueStats::partial`] says so. Meant for an operator's `mq stats --keys`,
    /// not for polling; [`overview`](Self::overview) reads the duplicates counter without
    /// scanning. The duplicates counter is one `GET`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn unique_stats(&self, queue: &str) -> Result<UniqueStats> {
        let mut total = UniqueStats::default();
        let mut seen = std::collections::HashSet::new();
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            // The levels of a queue share its unique keys and counter.
            if !seen.insert(k.unique.clone()) {
                continue;
            }
            let mut conn = self.conn.clone();
            let (held, complete) = conn
                .scan_keys(&format!("{}*", k.unique), "string", SCAN_MAX_CALLS)
                .await
                .map_err(Error::redis("SCAN"))?;
            total.partial |= !complete;
            let duplicates: Option<u64> = redis::cmd("GET")
                .arg(&k.duplicates)
                .query_async(&mut conn)
                .await
                .map_err(Error::redis("GET"))?;
            total.held += held.len() as u64;
            total.duplicates += duplicates.unwrap_or(0);
        }
        Ok(total)
    }

    /// The per-key concurrency slots in use in `queue` (task types with
    /// [`key_concurrency`](crate::TaskOptions::key_concurrency)): one row per task type and
    /// key with at least one unexpired slot, most slots first. A slot is a running task's lease
    /// in `{prefix}:{queue}:slots:<task>:<key>`; a dead worker's slots stop counting when their
    /// lease expires (by the server clock). Like [`unique_stats`](Self::unique_stats) this
    /// scans the keyspace (`SCAN ... MATCH`), at most [`SCAN_MAX_CALLS`] calls per node and
    /// stream, so it is meant for operators, not hot loops; [`KeySlotsReport::partial`] says
    /// whether a cap cut the walk short (then some keys may be missing).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn key_slots(&self, queue: &str) -> Result<KeySlotsReport> {
        let mut rows: Vec<KeySlots> = Vec::new();
        let mut partial = false;
        let mut seen = std::collections::HashSet::new();
        for p in self.streams(queue).await? {
            let k = self.keys(&p);
            // The levels of a queue share its slots.
            if !seen.insert(k.slots.clone()) {
                continue;
            }
            let mut conn = self.conn.clone();
            let prefix = format!("{}:", k.slots);
            let (found, complete) = conn
                .scan_keys(&format!("{prefix}*"), "zset", SCAN_MAX_CALLS)
                .await
                .map_err(Error::redis("SCAN"))?;
            partial |= !complete;
            for key in found {
                // The slot's lease expiry is the member's score (unix ms, server clock).
                let (secs, micros): (u64, u64) = conn
                    .query_at(&key, &redis::cmd("TIME"))
                    .await
                    .map_err(Error::redis("TIME"))?;
                let now_ms = secs * 1000 + micros / 1000;
                let running: u64 = redis::cmd("ZCOUNT")
                    .arg(&key)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::redis("ZCOUNT"))?;
                if running == 0 {
                    continue;
                }
                let name = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
                match rows.iter_mut().find(|r| r.name == name) {
                    Some(r) => r.running += running,
                    None => rows.push(KeySlots { name, running }),
                }
            }
        }
        rows.sort_by(|a, b| b.running.cmp(&a.running).then_with(|| a.name.cmp(&b.name)));
        Ok(KeySlotsReport {
            keys: rows,
            partial,
        })
    }
}
