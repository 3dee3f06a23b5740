//! The progress a running task reports ([`TaskContext::progress`](crate::TaskContext::progress)):
//! written at most every [`PROGRESS_EVERY`], read from the task's status hash.

use super::streams::streams;
use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys::QueueKeys},
};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Least time between two progress writes of one task: 1 s. Reports in between are kept (the
/// last one wins) and written when the second is over, and at the latest when the task ends.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Expiry of a task's hash `{prefix}:{queue}:task:<id>`, refreshed at each progress write: 1 h.
pub const PROGRESS_TTL: Duration = Duration::from_secs(3600);

/// The progress reports of one running task, throttled to one write per [`PROGRESS_EVERY`].
pub(crate) struct Progress {
    conn: Conn,
    /// `{prefix}:{queue}:task:<id>`.
    key: String,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    /// When the last write was sent.
    last_write: Option<Instant>,
    /// A report not written yet (JSON).
    pending: Option<String>,
    /// Whether a delayed write of `pending` is scheduled.
    scheduled: bool,
    /// The task's attempt ended ([`Progress::flush`]): later reports are dropped, so a
    /// context (or `ProgressHandle`) kept past the end cannot overwrite the final progress.
    ended: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("key", &self.key).finish()
    }
}

impl Progress {
    pub(crate) fn new(conn: Conn, key: String) -> Arc<Self> {
        Arc::new(Progress {
            conn,
            key,
            state: Mutex::new(ProgressState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `json` as the task's progress: written now if the last write is older than
    /// [`PROGRESS_EVERY`], else kept and written when that second is over.
    pub(crate) async fn report(self: &Arc<Self>, json: String) {
        let now = Instant::now();
        // `Ok(json)`: write now; `Err(Some(due))`: schedule a write at `due`; `Err(None)`: one is
        // scheduled already.
        let decision = {
            let mut s = self.lock();
            if s.ended {
                tracing::debug!(key = %self.key, "progress reported after the attempt ended; dropped");
                return;
            }
            match s.last_write {
                Some(t) if now.duration_since(t) < PROGRESS_EVERY => {
                    s.pending = Some(json);
                    if s.scheduled {
                        Err(None)
                    } else {
                        s.scheduled = true;
                        Err(Some(t + PROGRESS_EVERY))
                    }
                }
                _ => {
                    s.last_write = Some(now);
                    s.pending = None;
                    Ok(json)
                }
            }
        };
        let due = match decision {
            Ok(json) => return self.write(json).await,
            Err(None) => return,
            Err(Some(due)) => due,
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let json = {
                let mut s = me.lock();
                s.scheduled = false;
                let json = s.pending.take();
                if json.is_some() {
                    s.last_write = Some(Instant::now());
                }
                json
            };
            if let Some(json) = json {
                me.write(json).await;
            }
        });
    }

    /// Writes the report still kept, if any (the attempt ended), and drops any later report.
    pub(crate) async fn flush(&self) {
        let json = {
            let mut s = self.lock();
            s.ended = true;
            s.pending.take()
        };
        if let Some(json) = json {
            Box::pin(self.write(json)).await;
        }
    }

    async fn write(&self, json: String) {
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("HSET")
            .arg(&self.key)
            .arg("progress")
            .arg(json)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.key)
            .arg(PROGRESS_TTL.as_millis() as u64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = r {
            tracing::warn!(key = %self.key, error = %e, "cannot store a task's progress");
        }
    }
}

/// The last progress task `id` of `queue` reported (see
/// [`TaskContext::progress`](crate::TaskContext::progress)), as JSON: `None` if it reported
/// none (yet), or its hash expired.
pub(crate) async fn progress(
    conn: &Conn,
    prefix: &str,
    queue: &str,
    id: &str,
) -> Result<Option<serde_json::Value>> {
    for stream in streams(conn, prefix, queue).await? {
        let key = format!("{}{id}", QueueKeys::new(prefix, &stream).task);
        let json: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("progress")
            .query_async(&mut conn.clone())
            .await
            .map_err(Error::redis("HGET progress"))?;
        if let Some(json) = json {
            let value = serde_json::from_str(&json)
                .map_err(|e| Error::Decode(format!("the progress in {key}: {e}")))?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}
