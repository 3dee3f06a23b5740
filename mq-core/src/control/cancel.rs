//! Cancelling a task by its id: the cancel script over each stream of its queue, then over
//! the delayed sets, a chunk per call.

use super::streams::streams;
use super::types::CancelOutcome;
use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys::QueueKeys, scripts},
};
use std::time::Duration;

/// Entries or delayed members one cancel script call looks at: 1,000 (about a millisecond of
/// Redis time), so that cancelling in a long queue never blocks Redis for long.
pub const CANCEL_SCAN_CHUNK: usize = 1_000;

/// Age after which a cancellation mark of a running task is stale, and expiry of a queue's
/// cancel hash (refreshed at each cancellation of a running task): 24 h. Marks are removed by
/// the scripts that end their tasks (ack of a unique or tracked task, dead letter, cancelled,
/// abandoned); the mark of a plain task that succeeded before its worker saw it stays until
/// it is this old and a later cancellation's sample (20 marks) finds it. A mark names its
/// entry, so it never cancels another run of the same task.
pub const CANCEL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The most cancellation marks of running tasks a queue's cancel hash holds: 10,000. A
/// cancellation of a running task beyond it fails (`BUSY`) rather than growing the hash.
pub const CANCEL_MAX_MARKS: u64 = 10_000;

/// Cancels task `id` of `queue` (see [`CancelOutcome`]): looks for it chunk by chunk in each
/// stream of the queue (each partition and priority level), then in its delayed set, twice over (a task that moved between the
/// stream and the delayed set while the first pass looked elsewhere is found by the second).
/// `group` is the consumer group the caller expects the workers to use (an error if the
/// stream has no such group), or `None` for the stream's own (an mq stream has one).
pub(crate) async fn cancel(
    conn: &Conn,
    prefix: &str,
    group: Option<&str>,
    queue: &str,
    id: &str,
) -> Result<CancelOutcome> {
    let streams = streams(conn, prefix, queue).await?;
    for _pass in 0..2 {
        // Every priority level of each stream (a queue without levels has no High or Low
        // stream: the script finds nothing there).
        let levels = streams
            .iter()
            .flat_map(|s| crate::Priority::ALL.map(|l| QueueKeys::new(prefix, s).level(l)));
        for keys in levels {
            for place in ["s", "d"] {
                // The cursor: the last entry id or delayed member (binary) looked at, and
                // that member's score.
                let mut cursor: Vec<u8> = if place == "s" {
                    b"-".to_vec()
                } else {
                    Vec::new()
                };
                let mut score: Vec<u8> = Vec::new();
                loop {
                    let reply: Vec<Vec<u8>> = scripts::CANCEL
                        .key(&keys.stream)
                        .key(&keys.delayed)
                        .key(&keys.cancel)
                        .arg(group.unwrap_or(""))
                        .arg(id)
                        .arg(&keys.unique)
                        .arg(place)
                        .arg(&cursor)
                        .arg(CANCEL_SCAN_CHUNK)
                        .arg(CANCEL_TTL.as_millis() as u64)
                        .arg(&score)
                        .arg(CANCEL_MAX_MARKS)
                        .arg(&keys.rate)
                        .invoke_async(&mut conn.clone())
                        .await
                        .map_err(Error::redis("cancel"))?;
                    let mut reply = reply.into_iter();
                    let what = reply.next().unwrap_or_default();
                    let detail = reply.next().unwrap_or_default();
                    match what.as_slice() {
                        b"queued" => return Ok(CancelOutcome::Queued),
                        b"delayed" => return Ok(CancelOutcome::Delayed),
                        b"running" => {
                            let consumer = String::from_utf8_lossy(&detail).into_owned();
                            return Ok(CancelOutcome::Running { consumer });
                        }
                        b"next" => {
                            cursor = detail;
                            score = reply.next().unwrap_or_default();
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(CancelOutcome::NotFound)
}
