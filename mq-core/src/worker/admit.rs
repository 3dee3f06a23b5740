//! Admission of a task before it starts: a slot of its concurrency key (per-key concurrency)
//! and a token of its rate limit, each one round trip of the retry script in slot or rate mode
//! (only for task types with such a limit). Without a free slot or token the same script
//! reschedules the entry, not as an attempt.

use super::dispatcher::Job;
use crate::{envelope::Envelope, redis::scripts, task::Rate};

impl Job {
    /// The emission interval in µs of the rate limit `rate` for `env` in this queue.
    pub(super) fn rate_interval(&self, rate: Rate, env: &Envelope) -> u64 {
        rate_interval_us(rate, env.rate_key.is_some(), self.queue.partitions)
    }

    /// Takes a token of the task's rate limit (per rate key if the entry has one). Without a
    /// free token the same script reserves the next free slot and moves the entry to the
    /// delayed set for it, attempt unchanged. Returns whether the task may start now.
    pub(super) async fn take_rate_token(
        &self,
        entry_id: &str,
        env: &Envelope,
        interval: u64,
    ) -> bool {
        let keys = &self.queue.keys;
        let state = keys.rate_state(&env.name, env.rate_key.as_deref());
        let member = Envelope {
            rate_slot: Some(interval),
            ..env.clone()
        }
        .to_delayed_member();
        let waited = &self.queue.metrics.task(&env.name).rate_limited;
        self.admit(entry_id, env, "rate", waited, || {
            let mut inv = scripts::RETRY.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.delayed)
                .key(&state)
                .arg(&self.shared.config.group)
                .arg(entry_id)
                .arg(0)
                .arg(&member[..])
                .arg(&self.shared.config.consumer)
                .arg(&keys.wake)
                .arg(interval)
                .arg(self.slot.as_deref().unwrap_or(""));
            inv
        })
        .await
    }

    /// Takes a slot of the task's concurrency key (`slots`, at most `limit` running). Without a
    /// free slot the same script moves the entry to the delayed set for the earliest slot
    /// expiry (at most 200 ms ahead), attempt unchanged. Returns whether the task may start.
    pub(super) async fn take_slot(
        &self,
        entry_id: &str,
        env: &Envelope,
        limit: u32,
        slots: &str,
    ) -> bool {
        let keys = &self.queue.keys;
        let member = env.to_delayed_member();
        let lease_ms = self.shared.config.reclaim_timeout.as_millis() as u64;
        let waited = &self.queue.metrics.task(&env.name).key_slot_waits;
        self.admit(entry_id, env, "slot", waited, || {
            let mut inv = scripts::RETRY.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.delayed)
                .arg(&self.shared.config.group)
                .arg(entry_id)
                .arg(0)
                .arg(&member[..])
                .arg(&self.shared.config.consumer)
                .arg(&keys.wake)
                .arg(0)
                .arg(slots)
                .arg(limit)
                .arg(lease_ms);
            inv
        })
        .await
    }

    /// Runs a start check (the retry script in rate or slot mode, as `check` builds it) until
    /// Redis answers, retrying errors with backoff: `true` if the task may start. Otherwise
    /// the script rescheduled the entry (counted in `waited`), or it is no longer this
    /// worker's; either way it is untracked here.
    async fn admit<'a>(
        &self,
        entry_id: &str,
        env: &Envelope,
        what: &str,
        waited: &prometheus::IntCounter,
        check: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> bool {
        let queue = &self.queue.queue;
        let what = format!("{what} check");
        match self
            .script_reply(&what, "retry", entry_id, Some(&env.id), check)
            .await
        {
            Some((2, _)) => return true,
            Some((1, due)) => {
                waited.inc();
                tracing::debug!(%queue, task = %env.name, id = %env.id, due, check = what, "no free {what}: rescheduled");
            }
            Some(_) => {
                tracing::warn!(%queue, entry = %entry_id, id = %env.id, "{what} skipped: the entry is no longer pending for this worker (taken over after its lease lapsed)");
            }
            None => {}
        }
        self.queue.untrack([&entry_id.to_owned()]);
        false
    }
}

/// The spacing of a rate limit's slots in microseconds (at least 1): `per / count`, rounded
/// up so the limit is never exceeded. A limit without a rate key is split evenly across the
/// partitions of a partitioned queue (each keeps its own state): its interval is multiplied by
/// their number. A keyed limit applies in full in each partition.
fn rate_interval_us(rate: Rate, keyed: bool, partitions: u16) -> u64 {
    let split = if keyed {
        1
    } else {
        u128::from(partitions.max(1))
    };
    let us = (rate.per.as_micros() * split).div_ceil(u128::from(rate.count.max(1)));
    u64::try_from(us).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_intervals_round_up_and_split_unkeyed_limits_across_partitions() {
        let r = Rate::new(200, Duration::from_secs(1));
        assert_eq!(rate_interval_us(r, false, 1), 5_000);
        assert_eq!(rate_interval_us(r, false, 4), 20_000);
        assert_eq!(rate_interval_us(r, true, 4), 5_000);
        let third = Rate::new(3, Duration::from_secs(1));
        assert_eq!(rate_interval_us(third, false, 1), 333_334);
        let fast = Rate::new(u32::MAX, Duration::from_micros(1));
        assert_eq!(rate_interval_us(fast, false, 1), 1);
    }
}
