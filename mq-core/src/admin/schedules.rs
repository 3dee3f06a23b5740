//! The cron schedules the workers recorded in `{prefix}:{queue}:cron` ([`Admin::schedules`],
//! [`ScheduleInfo`]).

use super::client::Admin;
use crate::error::{Error, Result};

/// A cron schedule as its workers recorded it in `{prefix}:{queue}:cron` (see
/// [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule)); [`Admin::schedules`] lists
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// The schedule's name.
    pub name: String,
    /// The queue its task goes to.
    pub queue: String,
    /// Its cron expression.
    pub expression: String,
    /// The time zone its ticks are computed in (`UTC` by default).
    pub timezone: String,
    /// The last tick enqueued, unix ms (`None` before the first).
    pub last: Option<u64>,
    /// The next tick, unix ms.
    pub next: Option<u64>,
}

impl Admin {
    /// Every cron schedule recorded under the prefix, by queue then name: the schedules
    /// hashes `{prefix}:{queue}:cron` of the queues in the registry ([`queues`](Self::queues);
    /// a worker adds its schedules' queues when it starts). Two round trips: `SMEMBERS`, then
    /// one `HGETALL` per queue, pipelined.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let queues = self.queues().await?;
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = queues
            .iter()
            .map(|q| redis::cmd("HGETALL").arg(self.keys(q).cron).clone())
            .collect();
        let replies = self
            .conn
            .query_all(cmds)
            .await
            .map_err(Error::redis("HGETALL"))?;
        let mut out = Vec::new();
        for (queue, reply) in queues.iter().zip(replies) {
            let fields: Vec<(String, String)> = redis::FromRedisValue::from_redis_value(reply)
                .map_err(|e| Error::redis("HGETALL")(e.into()))?;
            out.extend(schedule_infos(queue, fields));
        }
        out.sort_by(|a, b| (&a.queue, &a.name).cmp(&(&b.queue, &b.name)));
        Ok(out)
    }
}

/// The schedules of `queue` from its schedules hash's `<name>:<what>` fields.
fn schedule_infos(queue: &str, fields: Vec<(String, String)>) -> Vec<ScheduleInfo> {
    let mut by_name: std::collections::BTreeMap<String, ScheduleInfo> = Default::default();
    for (field, value) in fields {
        let Some((name, what)) = field.rsplit_once(':') else {
            continue;
        };
        let info = by_name
            .entry(name.to_owned())
            .or_insert_with(|| ScheduleInfo {
                name: name.to_owned(),
                queue: queue.to_owned(),
                expression: String::new(),
                timezone: String::new(),
                last: None,
                next: None,
            });
        match what {
            "expr" => info.expression = value,
            "tz" => info.timezone = value,
            "last" => info.last = value.parse().ok(),
            "next" => info.next = value.parse().ok(),
            _ => {}
        }
    }
    by_name.into_values().collect()
}
