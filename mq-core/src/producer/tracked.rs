//! Tracked task types (`result_ttl`, `events`): the ACL check before the first one, and the
//! status and event writes of each enqueue.

use std::sync::atomic::Ordering;

use crate::{
    envelope::Envelope,
    error::Result,
    redis::{acl, keys::QueueKeys},
    task::Task,
};

use super::client::Producer;

impl Producer {
    /// Before the first task of a tracked type (`result_ttl`, `events`), checks once that the
    /// user may write task hashes and event streams ([`acl::PRODUCER_TRACKED`], not part of
    /// the plain producer role): one round trip per producer, never for plain tasks, so that a
    /// missing permission fails before the `XADD`, not after it.
    pub(super) async fn check_tracked<T: Task>(&self) -> Result<()> {
        self.check_tracked_if(T::OPTIONS.result_ttl.is_some() || T::OPTIONS.events)
            .await
    }

    /// [`check_tracked`](Self::check_tracked) for a batch that holds a tracked task or not.
    pub(super) async fn check_tracked_if(&self, tracked: bool) -> Result<()> {
        if !tracked || self.tracked_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        acl::check(
            &mut self.conn.clone(),
            "producer of tracked tasks",
            acl::PRODUCER_TRACKED,
            &self.prefix,
            "",
            &[acl::PRODUCER_CHECK_QUEUE],
        )
        .await?;
        self.tracked_checked.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// For a tracked task (entry field `tr` or `ev`): appends to `pipe` the writes of its first
/// state, `queued` (or `scheduled` with its due time, unix ms) in its status hash with the
/// hash's ttl, and the event `enqueued` (or `scheduled`), in the enqueue's own pipeline. A plain
/// task adds nothing.
pub(super) fn record_enqueue(
    pipe: &mut redis::Pipeline,
    keys: &QueueKeys,
    env: &Envelope,
    due: Option<u64>,
) {
    let (status, event) = match due {
        None => ("queued", "enqueued"),
        Some(_) => ("scheduled", "scheduled"),
    };
    let due = due.map(|d| d.to_string());
    if let Some(ttl) = env.track {
        let key = format!("{}{}", keys.task, env.id);
        let cmd = pipe.cmd("HSET").arg(&key).arg("status").arg(status);
        if let Some(due) = &due {
            cmd.arg("due").arg(due);
        }
        cmd.ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
    }
    if env.events {
        let cmd = pipe
            .cmd("XADD")
            .arg(&keys.events)
            .arg("MAXLEN")
            .arg("~")
            .arg(crate::control::EVENTS_MAXLEN)
            .arg("*")
            .arg("id")
            .arg(&env.id)
            .arg("event")
            .arg(event);
        if let Some(due) = &due {
            cmd.arg("due").arg(due);
        }
        cmd.ignore();
    }
}
