//! Handing entries back: at shutdown, entries this consumer holds but does not run (fetched
//! while the shutdown began, aborted after the grace period, or whose settling failed) are
//! made reclaimable at once (`lua/release.lua`: idle time set past any reclaim timeout),
//! instead of waiting out the reclaim timeout. A delivery that never started (the fetcher
//! knows those) is not counted toward `max_deliveries`.

use std::time::Duration;

use redis::Value;

use super::state::{QueueState, Shared};
use crate::{
    error::{Error, Result},
    redis::scripts,
};

/// The idle time a released entry gets: 365 days, past any reclaim timeout.
const RELEASE_IDLE: Duration = Duration::from_secs(365 * 24 * 3600);
/// Pending entries read per `XPENDING` page and ids per release script call: 500.
const PAGE: usize = 500;

/// Hands `ids` back (those this consumer still owns); `uncount` lowers their delivery count by
/// one (for deliveries that never started). Returns how many were released.
pub(super) async fn release(
    shared: &Shared,
    queue: &QueueState,
    ids: &[String],
    uncount: bool,
) -> Result<usize> {
    let mut released = 0;
    for chunk in ids.chunks(PAGE) {
        let n: usize = scripts::RELEASE
            .key(&queue.keys.stream)
            .arg(&shared.config.group)
            .arg(&shared.config.consumer)
            .arg(RELEASE_IDLE.as_millis() as u64)
            .arg(u8::from(uncount))
            .arg(chunk)
            .invoke_async(&mut shared.data.clone())
            .await
            .map_err(Error::redis("release"))?;
        released += n;
    }
    Ok(released)
}

/// Hands back every entry this consumer holds on `queue` that is not running here and was not
/// released already: entries whose settling failed, or (rarely) one a dropped read delivered.
/// Their delivery count stays (they may have run). Run at shutdown, after the fetchers
/// stopped and the tasks ended.
pub(super) async fn release_stranded(shared: &Shared, queue: &QueueState) -> Result<usize> {
    let mut conn = shared.data.clone();
    let mut stranded = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&queue.keys.stream)
            .arg(&shared.config.group)
            .arg(&start)
            .arg("+")
            .arg(PAGE)
            .arg(&shared.config.consumer)
            .query_async(&mut conn)
            .await;
        let rows = match reply {
            Ok(Value::Array(rows)) => rows,
            Ok(_) => break,
            Err(e) if e.code() == Some("NOGROUP") => break,
            Err(e) => return Err(Error::redis("XPENDING")(e)),
        };
        let full = rows.len() == PAGE;
        let mut last = None;
        for row in rows {
            let Value::Array(row) = row else { continue };
            let (Some(Value::BulkString(id)), Some(Value::Int(idle))) = (row.first(), row.get(2))
            else {
                continue;
            };
            let Ok(id) = String::from_utf8(id.clone()) else {
                continue;
            };
            if (*idle as u128) < RELEASE_IDLE.as_millis() && !queue.is_tracked(&id) {
                stranded.push(id.clone());
            }
            last = Some(id);
        }
        match (full, last) {
            // The next page starts after the last id (exclusive range, Redis >= 6.2).
            (true, Some(id)) => start = format!("({id}"),
            _ => break,
        }
    }
    if stranded.is_empty() {
        return Ok(0);
    }
    release(shared, queue, &stranded, false).await
}
