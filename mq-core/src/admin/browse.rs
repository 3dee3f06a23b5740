//! Paging through a queue's tasks by state ([`Admin::browse`]): queued (in the stream, not
//! delivered yet), running (delivered, not acked), delayed (scheduled or retrying) and dead,
//! one bounded page at a time, for `mq web` and scripts. A page never reads more than it
//! shows: each stream is read from the cursor with a `COUNT`/`LIMIT`, never scanned.

use std::fmt;

use redis::Value;

use super::{
    client::{flat_map, is_stream_id, Admin},
    letter::DeadLetter,
};
use crate::{
    envelope::{parse_entries, Envelope},
    error::{Error, Result},
};

/// The largest page [`Admin::browse`] reads; a larger `count` is refused.
pub const MAX_PAGE: usize = 500;

/// Which of a queue's tasks a page of [`Admin::browse`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// In the stream and not delivered to any consumer yet (after the group's last-delivered
    /// id), oldest first.
    Queued,
    /// Delivered and not acked (the group's pending entries list), oldest delivery first.
    Running,
    /// In the delayed set (scheduled tasks, retries waiting for their backoff), earliest due
    /// first.
    Delayed,
    /// In the dead stream, newest first.
    Dead,
}

impl TaskState {
    /// Every state, in the order a task goes through them.
    pub const ALL: [TaskState; 4] = [Self::Queued, Self::Running, Self::Delayed, Self::Dead];

    /// The state's name: `queued`, `running`, `delayed` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Delayed => "delayed",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown task state {s:?}: expected queued, running, delayed or dead"
                ))
            })
    }
}

/// One task in a page of [`Admin::browse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The stream it is in: the queue, or one of its partitions (`q#2`) or priority levels
    /// (`q@high`), usable as a queue name in [`Admin::entry`] and the `dead_*` calls.
    pub stream: String,
    /// Its id in that stream (queued, running) or in the dead stream (dead); `None` for a
    /// delayed task (a member of a sorted set has no id).
    pub entry_id: Option<String>,
    /// The task, or why its entry is not one (another producer's malformed entry). `Err` for
    /// a dead row whose fields are not a task: see [`dead`](Self::dead).
    pub task: std::result::Result<Envelope, String>,
    /// Delayed: when it is due (unix ms).
    pub due_ms: Option<u64>,
    /// Running: the consumer that holds it.
    pub consumer: Option<String>,
    /// Running: ms since it was delivered or its lease was last renewed.
    pub idle_ms: Option<u64>,
    /// Running: how many times it was delivered.
    pub deliveries: Option<u64>,
    /// Dead: the dead letter, with its reason, worker and failure time.
    pub dead: Option<DeadLetter>,
}

impl TaskRow {
    fn new(
        stream: &str,
        entry_id: Option<String>,
        task: std::result::Result<Envelope, String>,
    ) -> Self {
        Self {
            stream: stream.to_owned(),
            entry_id,
            task,
            due_ms: None,
            consumer: None,
            idle_ms: None,
            deliveries: None,
            dead: None,
        }
    }
}

/// A page of [`Admin::browse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPage {
    /// The tasks, in the state's order.
    pub rows: Vec<TaskRow>,
    /// The cursor of the next page, `None` at the end.
    pub next: Option<String>,
}

/// Where a page starts: the index of a stream in `streams(queue)`, and a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// The stream's start.
    Start,
    /// After this entry id (streams).
    After(String),
    /// At this score, after `skip` members of that score (the delayed set).
    Score(u64, u64),
}

fn parse_cursor(cursor: Option<&str>, state: TaskState) -> Result<(usize, Position)> {
    let bad = || {
        Error::Config(format!(
            "bad cursor {:?}: pass the `next` of the previous page",
            cursor.unwrap_or_default()
        ))
    };
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok((0, Position::Start));
    };
    let (index, rest) = cursor.split_once(':').ok_or_else(bad)?;
    let index: usize = index.parse().map_err(|_| bad())?;
    if rest.is_empty() {
        return Ok((index, Position::Start));
    }
    let position = match state {
        TaskState::Delayed => {
            let (score, skip) = rest.split_once(':').ok_or_else(bad)?;
            Position::Score(
                score.parse().map_err(|_| bad())?,
                skip.parse().map_err(|_| bad())?,
            )
        }
        _ if is_stream_id(rest) => Position::After(rest.to_owned()),
        _ => return Err(bad()),
    };
    Ok((index, position))
}

/// An exclusive start at `id` for `XRANGE`, `XREVRANGE` and `XPENDING` (Redis 6.2 or later).
fn after(id: &str) -> String {
    format!("({id}")
}

impl Admin {
    /// A page of `queue`'s tasks in `state`: at most `count` (1 to [`MAX_PAGE`]) rows from
    /// `cursor` (`None` for the first page, then each page's `next`), across the queue's
    /// partitions and priority levels in turn. Each stream costs one or two commands with a
    /// `COUNT` (`XINFO GROUPS` + `XRANGE` for queued, `XPENDING` + one pipelined `XRANGE` per
    /// row for running, `ZRANGE BYSCORE ... LIMIT` for delayed, `XREVRANGE` for dead), so a
    /// page costs the same on a queue of ten tasks or ten million.
    ///
    /// Pages follow the queue as it changes: a task that moves between two reads may show on
    /// two pages or none, as with any cursor over live data.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a count out of range, a bad cursor or queue name,
    /// [`Error::Redis`].
    pub async fn browse(
        &self,
        queue: &str,
        state: TaskState,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<TaskPage> {
        if count == 0 || count > MAX_PAGE {
            return Err(Error::Config(format!(
                "page size {count} is out of range: 1 to {MAX_PAGE}"
            )));
        }
        let name = queue
            .rsplit_once(super::client::LEVEL_MARK)
            .map_or(queue, |(q, _)| q);
        crate::redis::keys::validate_queue_or_partition(name).map_err(Error::Config)?;
        let (mut index, mut position) = parse_cursor(cursor, state)?;
        let streams = self.streams(queue).await?;
        let mut page = TaskPage::default();
        while let Some(stream) = streams.get(index) {
            let want = count - page.rows.len();
            let rows = match state {
                TaskState::Queued => self.queued_page(stream, &position, want).await?,
                TaskState::Running => self.running_page(stream, &position, want).await?,
                TaskState::Delayed => self.delayed_page(stream, &position, want).await?,
                TaskState::Dead => self.dead_page(stream, &position, want).await?,
            };
            let full = rows.len() >= want;
            if full {
                // Stay in this stream: the next page starts after the last row.
                let last = rows.last().map(|r| r.position(&position, &rows));
                page.rows.extend(rows);
                page.next = last.map(|p| format!("{index}:{p}"));
                return Ok(page);
            }
            page.rows.extend(rows);
            index += 1;
            position = Position::Start;
        }
        Ok(page)
    }

    /// One task of `queue`'s stream by entry id (a queue, partition or level name, as
    /// [`TaskRow::stream`] gives it), with its consumer when delivered and not acked; `None`
    /// when the entry is no longer in the stream (acked or deleted). `XRANGE`, then `XPENDING`,
    /// of that one id.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed id, [`Error::Redis`].
    pub async fn entry(&self, queue: &str, entry_id: &str) -> Result<Option<TaskRow>> {
        if !is_stream_id(entry_id) {
            return Err(Error::Config(format!(
                "bad entry id {entry_id:?}: expected <unix-ms>-<seq>"
            )));
        }
        let k = self.keys(queue);
        let (found, pending): (Value, redis::RedisResult<Value>) = {
            let mut conn = self.conn.clone();
            let found: Value = redis::cmd("XRANGE")
                .arg(&k.stream)
                .arg(entry_id)
                .arg(entry_id)
                .query_async(&mut conn)
                .await
                .map_err(Error::redis("XRANGE"))?;
            let pending = redis::cmd("XPENDING")
                .arg(&k.stream)
                .arg(&self.group)
                .arg(entry_id)
                .arg(entry_id)
                .arg(1)
                .query_async(&mut conn)
                .await;
            (found, pending)
        };
        let Some((id, fields)) = parse_entries(found).into_iter().next() else {
            return Ok(None);
        };
        let mut row = TaskRow::new(queue, Some(id), decode(fields));
        if let Ok(Value::Array(rows)) = pending {
            if let Some(p) = rows.into_iter().next().and_then(pending_row) {
                (row.consumer, row.idle_ms, row.deliveries) = (Some(p.1), Some(p.2), Some(p.3));
            }
        }
        Ok(Some(row))
    }

    /// The delayed task of `queue` with task id `task_id` due at `due_ms` (as a page of
    /// [`browse`](Self::browse) gave them), `None` once it left the delayed set. Reads at most
    /// [`MAX_PAGE`] members of that score.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn delayed_entry(
        &self,
        queue: &str,
        due_ms: u64,
        task_id: &str,
    ) -> Result<Option<TaskRow>> {
        let rows = self
            .delayed_page(queue, &Position::Score(due_ms, 0), MAX_PAGE)
            .await?;
        Ok(rows
            .into_iter()
            .find(|r| r.due_ms == Some(due_ms) && r.task.as_ref().is_ok_and(|t| t.id == task_id)))
    }

    async fn queued_page(
        &self,
        stream: &str,
        from: &Position,
        count: usize,
    ) -> Result<Vec<TaskRow>> {
        let k = self.keys(stream);
        let mut conn = self.conn.clone();
        let groups: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&k.stream)
            .query_async(&mut conn)
            .await;
        let delivered = match groups {
            Ok(Value::Array(groups)) => groups
                .into_iter()
                .map(flat_map)
                .find(|g| {
                    g.iter()
                        .any(|(k, v)| k == "name" && text(v).as_deref() == Some(&self.group))
                })
                .and_then(|g| {
                    g.into_iter()
                        .find(|(k, _)| k == "last-delivered-id")
                        .and_then(|(_, v)| text(&v))
                }),
            Ok(_) => None,
            // No stream (yet): nothing queued.
            Err(e) if e.code() == Some("ERR") && e.to_string().contains("no such key") => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(Error::redis("XINFO GROUPS")(e)),
        };
        // Entries up to the group's last-delivered id were delivered (running, or acked and
        // deleted): the queued ones start after it, or after the cursor if that is later.
        let start = match (from, delivered) {
            (Position::After(c), Some(d)) => after(later(c, &d)),
            (Position::After(c), None) => after(c),
            (_, Some(d)) => after(&d),
            (_, None) => "-".to_owned(),
        };
        let reply: Value = redis::cmd("XRANGE")
            .arg(&k.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("XRANGE"))?;
        Ok(parse_entries(reply)
            .into_iter()
            .map(|(id, fields)| TaskRow::new(stream, Some(id), decode(fields)))
            .collect())
    }

    async fn running_page(
        &self,
        stream: &str,
        from: &Position,
        count: usize,
    ) -> Result<Vec<TaskRow>> {
        let k = self.keys(stream);
        let mut conn = self.conn.clone();
        let start = match from {
            Position::After(c) => after(c),
            _ => "-".to_owned(),
        };
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&k.stream)
            .arg(&self.group)
            .arg(start)
            .arg("+")
            .arg(count)
            .query_async(&mut conn)
            .await;
        let rows = match reply {
            Ok(Value::Array(rows)) => rows,
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(Error::redis("XPENDING")(e)),
        };
        let pending: Vec<_> = rows.into_iter().filter_map(pending_row).collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in &pending {
            pipe.cmd("XRANGE").arg(&k.stream).arg(&p.0).arg(&p.0);
        }
        let found: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(Error::redis("XRANGE"))?;
        Ok(pending
            .into_iter()
            .zip(found)
            .map(|((id, consumer, idle, n), reply)| {
                let task = match parse_entries(reply).into_iter().next() {
                    Some((_, fields)) => decode(fields),
                    None => {
                        Err("the entry is no longer in the stream (acked meanwhile)".to_owned())
                    }
                };
                let mut row = TaskRow::new(stream, Some(id), task);
                (row.consumer, row.idle_ms, row.deliveries) = (Some(consumer), Some(idle), Some(n));
                row
            })
            .collect())
    }

    async fn delayed_page(
        &self,
        stream: &str,
        from: &Position,
        count: usize,
    ) -> Result<Vec<TaskRow>> {
        let k = self.keys(stream);
        let (min, skip) = match from {
            Position::Score(score, skip) => (*score, *skip),
            _ => (0, 0),
        };
        let reply: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
            .arg(&k.delayed)
            .arg(min)
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(skip)
            .arg(count)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis("ZRANGE"))?;
        Ok(reply
            .into_iter()
            .map(|(member, score)| {
                let task = Envelope::from_delayed_member(&member).map_err(|e| e.to_string());
                let mut row = TaskRow::new(stream, None, task);
                row.due_ms = Some(score.max(0.0) as u64);
                row
            })
            .collect())
    }

    async fn dead_page(&self, stream: &str, from: &Position, count: usize) -> Result<Vec<TaskRow>> {
        let start = match from {
            Position::After(c) => after(c),
            _ => "+".to_owned(),
        };
        self.dead_rows(stream, &start, "-", count).await
    }

    /// The dead letter of `queue` with id `dead_id` as a row, `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed id, [`Error::Redis`].
    pub async fn dead_entry(&self, queue: &str, dead_id: &str) -> Result<Option<TaskRow>> {
        if !is_stream_id(dead_id) {
            return Err(Error::Config(format!(
                "bad dead-letter id {dead_id:?}: expected <unix-ms>-<seq>"
            )));
        }
        Ok(self.dead_rows(queue, dead_id, dead_id, 1).await?.pop())
    }

    /// Dead rows of `stream` from `start` down to `end` (`XREVRANGE`).
    async fn dead_rows(
        &self,
        stream: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<TaskRow>> {
        let letters = self
            .dead_letters(stream, "XREVRANGE", start, end, count)
            .await?;
        Ok(letters
            .into_iter()
            .map(|letter| {
                let id = letter.dead_id().to_owned();
                let task = Envelope::from_fields(
                    letter
                        .task_fields()
                        .into_iter()
                        .flat_map(|(k, v)| {
                            [Value::BulkString(k.into_bytes()), Value::BulkString(v)]
                        })
                        .collect(),
                )
                .map_err(|e| e.to_string());
                let mut row = TaskRow::new(stream, Some(id), task);
                row.dead = Some(letter);
                row
            })
            .collect())
    }
}

impl TaskRow {
    /// The cursor position after this row (the last of `rows`, which started at `from`).
    fn position(&self, from: &Position, rows: &[TaskRow]) -> String {
        match (&self.entry_id, self.due_ms) {
            (Some(id), _) => id.clone(),
            (None, due) => {
                let due = due.unwrap_or_default();
                let same = rows.iter().filter(|r| r.due_ms == Some(due)).count() as u64;
                let before = match from {
                    Position::Score(s, skip) if *s == due => *skip,
                    _ => 0,
                };
                format!("{due}:{}", before + same)
            }
        }
    }
}

/// The later of two stream ids.
fn later<'a>(a: &'a str, b: &'a str) -> &'a str {
    let key = |id: &str| {
        id.split_once('-')
            .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)))
            .unwrap_or_default()
    };
    if key(a) >= key(b) {
        a
    } else {
        b
    }
}

fn decode(fields: Vec<Value>) -> std::result::Result<Envelope, String> {
    Envelope::from_fields(fields).map_err(|e| e.to_string())
}

/// One row of the extended `XPENDING` reply: id, consumer, idle ms, deliveries.
fn pending_row(row: Value) -> Option<(String, String, u64, u64)> {
    let Value::Array(row) = row else { return None };
    let mut it = row.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(id), Some(consumer), Some(Value::Int(idle)), Some(Value::Int(n))) => Some((
            text(&id)?,
            text(&consumer)?,
            idle.max(0) as u64,
            n.max(0) as u64,
        )),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        assert_eq!(
            parse_cursor(None, TaskState::Dead).unwrap(),
            (0, Position::Start)
        );
        assert_eq!(
            parse_cursor(Some("2:17-3"), TaskState::Queued).unwrap(),
            (2, Position::After("17-3".into()))
        );
        assert_eq!(
            parse_cursor(Some("1:1700:4"), TaskState::Delayed).unwrap(),
            (1, Position::Score(1700, 4))
        );
        assert_eq!(
            parse_cursor(Some("3:"), TaskState::Running).unwrap(),
            (3, Position::Start)
        );
        for bad in [
            "x",
            "1",
            "a:1-0",
            "0:1-0-0",
            "0:abc",
            "0:1-",
            "0:1-0\r\nFLUSHALL",
        ] {
            assert!(parse_cursor(Some(bad), TaskState::Queued).is_err(), "{bad}");
        }
        assert!(parse_cursor(Some("0:12"), TaskState::Delayed).is_err());
        assert!(parse_cursor(Some("0:-1:0"), TaskState::Delayed).is_err());
    }

    #[test]
    fn states_parse_by_name() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        assert!("stuck".parse::<TaskState>().is_err());
    }

    #[test]
    fn the_later_id_wins() {
        assert_eq!(later("10-0", "9-5"), "10-0");
        assert_eq!(later("10-1", "10-2"), "10-2");
    }
}
