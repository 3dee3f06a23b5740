//! The stream-entry wire format, encoded and decoded here and nowhere else
//! (docs/wire-format.md is the contract).
//!
//! **Version 2** (what mq writes): a task is a stream entry with one field, `t`, whose value is
//! a MessagePack array of exactly 6 elements
//!
//! | # | element | MessagePack type |
//! |---|---|---|
//! | 0 | version, `2` | positive int |
//! | 1 | task id (ULID, 26 characters) | str |
//! | 2 | task type name ([`Task::NAME`](crate::Task::NAME)) | str |
//! | 3 | unix time in milliseconds of the first enqueue | uint |
//! | 4 | MessagePack of the task value (rmp-serde, named fields) | bin |
//! | 5 | W3C trace context, or nil | str or nil |
//!
//! plus, only on a retry, a field `r` = MessagePack array `[attempt, last error]` (uint, str
//! or nil). A first attempt is therefore one field. Flow-control fields, each only present
//! when set, are plain strings next to `t` (and in v1 entries too): `rk`, the task's
//! [rate key](crate::Task::rate_key), and `rs` = `1` on an entry that already holds its rate
//! token (a rate-limited worker rescheduled it for its reserved slot), and `ck`, the task's
//! [concurrency key](crate::Task::concurrency_key).
//!
//! **Version 1** (the hand-writable form, still read): the fields `id`, `name`, `payload` (raw
//! MessagePack), `attempt` and `enqueued_at` (decimal), and optionally `traceparent` and
//! `error` (the last error). An entry with a `t` field is version 2, any other version 1.
//!
//! A delayed task is a member of the queue's `delayed` sorted set: a MessagePack map from the
//! entry's field names to their values, scored by its due time in unix milliseconds. The
//! promoter turns the map back into a stream entry unchanged. Every value, the `t` blob too, is
//! a MessagePack *str* (raw bytes): Redis's Lua `cmsgpack` cannot read the `bin` types.

use redis::Value;

/// Field names of a stream entry.
pub mod field {
    /// v2: the task, a MessagePack array `[2, id, name, enqueued_at, payload, traceparent]`.
    pub const TASK: &str = "t";
    /// v2: retry data, a MessagePack array `[attempt, last error]`; absent on a first attempt.
    pub const RETRY: &str = "r";
    /// v1: task id.
    pub const ID: &str = "id";
    /// v1: task type name.
    pub const NAME: &str = "name";
    /// v1: MessagePack payload.
    pub const PAYLOAD: &str = "payload";
    /// v1: attempt number, 0 for the first run.
    pub const ATTEMPT: &str = "attempt";
    /// v1: unix ms of the first enqueue.
    pub const ENQUEUED_AT: &str = "enqueued_at";
    /// v1: W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// v1: last error; in dead entries (both versions) the dead-letter reason.
    pub const ERROR: &str = "error";
    /// Both versions, only on [unique](crate::Task::unique_key) tasks: the task's unique key
    /// (the user's key, not the Redis key `{prefix}:{queue}:unique:<key>` that holds it).
    pub const UNIQUE: &str = "u";
    /// Both versions: the task's rate key ([`Task::rate_key`](crate::Task::rate_key)); absent
    /// when it has none.
    pub const RATE_KEY: &str = "rk";
    /// Both versions: on an entry that holds a rate slot (a worker rescheduled it for the slot
    /// it reserved), the emission interval in µs of the limit that reserved it, a decimal
    /// integer: it starts without taking a token while the limit has that interval. Absent
    /// otherwise (any other value holds no slot).
    pub const RATE_SLOT: &str = "rs";
    /// Both versions: the task's concurrency key
    /// ([`Task::concurrency_key`](crate::Task::concurrency_key)); absent when it has none.
    pub const CONCURRENCY_KEY: &str = "ck";
    /// Both versions, only on tracked task types
    /// ([`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl)): the ttl of the task's
    /// status hash `{prefix}:{queue}:task:<id>` in ms (decimal).
    pub const TRACK: &str = "tr";
    /// Both versions, only on task types with
    /// [`TaskOptions::events`](crate::TaskOptions::events): `1`, the task's state changes are
    /// appended to `{prefix}:{queue}:events`.
    pub const EVENTS: &str = "ev";
    /// Only on a flow's children: the key of the parent's pending-parent hash, which the
    /// child's terminal script reports to (see [`crate::flow`]).
    pub const PARENT: &str = "fp";
    /// Only on a released flow parent: its children, `<queue>\t<id>` lines.
    pub const CHILDREN: &str = "fk";
    /// Only on a released flow parent: its dead or cancelled children,
    /// `<queue>\t<id>\t<reason>` lines.
    pub const FAILED_CHILDREN: &str = "fd";
    /// Only on a released flow parent whose children failed under
    /// [`FlowPolicy::AllSucceeded`](crate::FlowPolicy::AllSucceeded): `1`.
    pub const FLOW_FAILED: &str = "fx";
    /// Only on a task of a [run](crate::Run): the key of the run's hash `{prefix}:run:<n>`.
    pub const RUN: &str = "rn";
}

/// The wire format version mq writes, the first element of the `t` array.
pub const VERSION: u8 = 2;

/// Elements of the `t` array.
const TASK_LEN: u32 = 6;

/// One task as it travels through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Task id.
    pub id: String,
    /// Task type name.
    pub name: String,
    /// MessagePack payload.
    pub payload: Vec<u8>,
    /// Attempt number, 0 for the first run.
    pub attempt: u32,
    /// Unix ms of the first enqueue.
    pub enqueued_at: u64,
    /// W3C trace context, if the producer had one.
    pub traceparent: Option<String>,
    /// The error of the previous attempt.
    pub error: Option<String>,
    /// The task's [unique key](crate::Task::unique_key), written as field `u`; `None` for a
    /// task that is not unique.
    pub unique: Option<String>,
    /// The task's rate key (entry field `rk`), written by the producer from
    /// [`Task::rate_key`](crate::Task::rate_key).
    pub rate_key: Option<String>,
    /// The entry holds a rate slot (entry field `rs`): the emission interval in µs of the
    /// limit that reserved it. It was rescheduled for that slot, and starts without taking a
    /// token while its limit still has that interval (`1`, as mq wrote before it recorded the
    /// interval, always does).
    pub rate_slot: Option<u64>,
    /// The task's concurrency key (entry field `ck`), written by the producer from
    /// [`Task::concurrency_key`](crate::Task::concurrency_key).
    pub concurrency_key: Option<String>,
    /// The ttl in ms of a tracked task's status hash (entry field `tr`), written by the
    /// producer from [`TaskOptions::result_ttl`](crate::TaskOptions::result_ttl).
    pub track: Option<u64>,
    /// The task's state changes go to the queue's event stream (entry field `ev`), written by
    /// the producer from [`TaskOptions::events`](crate::TaskOptions::events).
    pub events: bool,
    /// Its place in a flow (entry fields `fp`, `fk`, `fd`, `fx`), boxed: `None` for a task
    /// outside any flow, which pays one pointer for it.
    pub flow: Option<Box<crate::flow::FlowLinks>>,
}

/// Why a stream entry is not a valid task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has a value of the wrong form.
    #[error("field `{0}` is not valid")]
    InvalidField(&'static str),
    /// A v2 field (`t` or `r`) does not hold what the format says.
    #[error("field `{field}`: {problem}")]
    Packed {
        /// The field, `t` or `r`.
        field: &'static str,
        /// What is wrong, e.g. `unsupported version 3 (this worker reads version 2)`.
        problem: String,
    },
    /// The entry is not a list of field/value pairs.
    #[error("entry is not a list of field/value pairs")]
    Malformed,
}

/// The `t` value of a v2 entry, decoded without copying: what [`Envelope`] holds apart from
/// the retry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedTask<'a> {
    /// Task id.
    pub id: &'a str,
    /// Task type name.
    pub name: &'a str,
    /// Unix ms of the first enqueue.
    pub enqueued_at: u64,
    /// MessagePack payload.
    pub payload: &'a [u8],
    /// W3C trace context.
    pub traceparent: Option<&'a str>,
}

impl<'a> PackedTask<'a> {
    /// Decodes the value of a `t` field.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Packed`] naming the problem: not an array, another version, another
    /// number of elements, an element of the wrong type, or bytes after the array.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut rd = Reader::new(field::TASK, bytes);
        let len = rmp::decode::read_array_len(&mut rd.buf)
            .map_err(|_| rd.problem("not a MessagePack array"))?;
        if len == 0 {
            return Err(rd.problem("empty array, expected 6 elements"));
        }
        let version = rd.uint(0, "version")?;
        if version != u64::from(VERSION) {
            return Err(rd.problem(format!(
                "unsupported version {version} (this worker reads version {VERSION})"
            )));
        }
        if len != TASK_LEN {
            return Err(rd.problem(format!(
                "expected an array of {TASK_LEN} elements, found {len}"
            )));
        }
        let task = PackedTask {
            id: rd.str(1, "id")?,
            name: rd.str(2, "name")?,
            enqueued_at: rd.uint(3, "enqueued_at")?,
            payload: rd.bin(4, "payload")?,
            traceparent: rd.str_or_nil(5, "traceparent")?,
        };
        rd.end()?;
        Ok(task)
    }
}

/// Decodes the value of an `r` field: `(attempt, last error)`.
pub(crate) fn decode_retry(bytes: &[u8]) -> Result<(u32, Option<String>), EnvelopeError> {
    let mut rd = Reader::new(field::RETRY, bytes);
    let len = rmp::decode::read_array_len(&mut rd.buf)
        .map_err(|_| rd.problem("not a MessagePack array"))?;
    if len != 2 {
        return Err(rd.problem(format!("expected an array of 2 elements, found {len}")));
    }
    let attempt = rd.uint(0, "attempt")?;
    let attempt = u32::try_from(attempt).map_err(|_| {
        rd.problem(format!(
            "element 0 (attempt) is above 4294967295: {attempt}"
        ))
    })?;
    let error = rd.str_or_nil(1, "last error")?.map(str::to_owned);
    rd.end()?;
    Ok((attempt, error))
}

/// A cursor over a v2 field's MessagePack, with errors that name the field and element.
struct Reader<'a> {
    field: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(field: &'static str, buf: &'a [u8]) -> Self {
        Self { field, buf }
    }

    fn problem(&self, problem: impl Into<String>) -> EnvelopeError {
        EnvelopeError::Packed {
            field: self.field,
            problem: problem.into(),
        }
    }

    fn uint(&mut self, i: u32, what: &str) -> Result<u64, EnvelopeError> {
        rmp::decode::read_int(&mut self.buf).map_err(|_| {
            self.problem(format!(
                "element {i} ({what}) is not an unsigned integer (up to 64 bits)"
            ))
        })
    }

    fn str(&mut self, i: u32, what: &str) -> Result<&'a str, EnvelopeError> {
        match rmp::decode::read_str_from_slice(self.buf) {
            Ok((s, rest)) => {
                self.buf = rest;
                Ok(s)
            }
            Err(rmp::decode::DecodeStringError::InvalidUtf8(..)) => {
                Err(self.problem(format!("element {i} ({what}) is not valid UTF-8")))
            }
            Err(_) => Err(self.problem(format!("element {i} ({what}) is not a str"))),
        }
    }

    fn str_or_nil(&mut self, i: u32, what: &str) -> Result<Option<&'a str>, EnvelopeError> {
        if let Some((&0xc0, rest)) = self.buf.split_first() {
            self.buf = rest;
            return Ok(None);
        }
        self.str(i, what)
            .map(Some)
            .map_err(|_| self.problem(format!("element {i} ({what}) is not a str or nil")))
    }

    fn bin(&mut self, i: u32, what: &str) -> Result<&'a [u8], EnvelopeError> {
        let len = rmp::decode::read_bin_len(&mut self.buf)
            .map_err(|_| self.problem(format!("element {i} ({what}) is not a bin")))?;
        let len = len as usize;
        if self.buf.len() < len {
            return Err(self.problem(format!("element {i} ({what}) is truncated")));
        }
        let (b, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(b)
    }

    fn end(&self) -> Result<(), EnvelopeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.problem(format!("{} trailing bytes after the array", self.buf.len())))
        }
    }
}

impl Envelope {
    /// Appends the v2 `field value ...` pairs for `XADD` to `cmd`: `t`, `r` if this is not a
    /// first attempt, and `u` if the task is unique.
    pub fn write_fields(&self, cmd: &mut redis::Cmd) {
        cmd.arg(field::TASK).arg(self.encode_task());
        if let Some(r) = self.encode_retry() {
            cmd.arg(field::RETRY).arg(r);
        }
        self.write_flow_fields(cmd);
    }

    /// Appends the flow-control fields that are set (`u`, `rk`, `rs`, `ck`, `tr`, `ev`).
    fn write_flow_fields(&self, cmd: &mut redis::Cmd) {
        for (k, v) in self.flow_fields() {
            cmd.arg(k).arg(&v[..]);
        }
    }

    /// The flow-control fields that are set, as `(field, value)`.
    fn flow_fields(&self) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'_, [u8]>)> {
        use std::borrow::Cow;
        let rk = self
            .rate_key
            .as_deref()
            .map(|k| (field::RATE_KEY, Cow::Borrowed(k.as_bytes())));
        let rs = self
            .rate_slot
            .map(|i| (field::RATE_SLOT, Cow::Owned(i.to_string().into_bytes())));
        let u = self
            .unique
            .as_deref()
            .map(|k| (field::UNIQUE, Cow::Borrowed(k.as_bytes())));
        let ck = self
            .concurrency_key
            .as_deref()
            .map(|k| (field::CONCURRENCY_KEY, Cow::Borrowed(k.as_bytes())));
        let tr = self
            .track
            .map(|ms| (field::TRACK, Cow::Owned(ms.to_string().into_bytes())));
        let ev = self
            .events
            .then_some((field::EVENTS, Cow::Borrowed(&b"1"[..])));
        let flow = self.flow.as_deref().into_iter().flat_map(|f| {
            let fp = f
                .parent
                .as_deref()
                .map(|p| (field::PARENT, Cow::Borrowed(p.as_bytes())));
            let fk = (!f.children.is_empty()).then(|| {
                let v = crate::flow::FlowLinks::encode_children(&f.children);
                (field::CHILDREN, Cow::Owned(v.into_bytes()))
            });
            let fd = (!f.failed.is_empty()).then(|| {
                let v = crate::flow::FlowLinks::encode_failed(&f.failed);
                (field::FAILED_CHILDREN, Cow::Owned(v.into_bytes()))
            });
            let fx = f
                .blocked
                .then_some((field::FLOW_FAILED, Cow::Borrowed(&b"1"[..])));
            let rn = f
                .run
                .as_deref()
                .map(|r| (field::RUN, Cow::Borrowed(r.as_bytes())));
            fp.into_iter().chain(fk).chain(fd).chain(fx).chain(rn)
        });
        u.into_iter()
            .chain(rk)
            .chain(rs)
            .chain(ck)
            .chain(tr)
            .chain(ev)
            .chain(flow)
    }

    /// Appends the v1 (hand-writable, five to seven fields) `field value ...` pairs for `XADD`
    /// to `cmd`: what older producers wrote, for tests and tools.
    pub fn write_fields_v1(&self, cmd: &mut redis::Cmd) {
        cmd.arg(field::ID)
            .arg(&self.id)
            .arg(field::NAME)
            .arg(&self.name)
            .arg(field::PAYLOAD)
            .arg(&self.payload[..])
            .arg(field::ATTEMPT)
            .arg(self.attempt)
            .arg(field::ENQUEUED_AT)
            .arg(self.enqueued_at);
        if let Some(tp) = &self.traceparent {
            cmd.arg(field::TRACEPARENT).arg(tp);
        }
        if let Some(e) = &self.error {
            cmd.arg(field::ERROR).arg(e);
        }
        self.write_flow_fields(cmd);
    }

    /// The value of the `t` field: `[2, id, name, enqueued_at, payload, traceparent]`.
    pub fn encode_task(&self) -> Vec<u8> {
        let tp = self.traceparent.as_deref().map_or(0, str::len);
        let mut out =
            Vec::with_capacity(self.payload.len() + self.id.len() + self.name.len() + tp + 24);
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, TASK_LEN);
        let _ = rmp::encode::write_uint(&mut out, u64::from(VERSION));
        let _ = rmp::encode::write_str(&mut out, &self.id);
        let _ = rmp::encode::write_str(&mut out, &self.name);
        let _ = rmp::encode::write_uint(&mut out, self.enqueued_at);
        let _ = rmp::encode::write_bin(&mut out, &self.payload);
        match &self.traceparent {
            Some(tp) => drop(rmp::encode::write_str(&mut out, tp)),
            None => drop(rmp::encode::write_nil(&mut out)),
        }
        out
    }

    /// The value of the `r` field, `[attempt, last error]`; `None` on a first attempt without
    /// an error, which has no `r`.
    pub fn encode_retry(&self) -> Option<Vec<u8>> {
        if self.attempt == 0 && self.error.is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(self.error.as_deref().map_or(0, str::len) + 8);
        let _ = rmp::encode::write_array_len(&mut out, 2);
        let _ = rmp::encode::write_uint(&mut out, u64::from(self.attempt));
        match &self.error {
            Some(e) => drop(rmp::encode::write_str(&mut out, e)),
            None => drop(rmp::encode::write_nil(&mut out)),
        }
        Some(out)
    }

    /// Encodes the envelope as a `delayed` sorted-set member: a MessagePack map of its v2
    /// fields, `{"t": <blob>}` or `{"t": <blob>, "r": <blob>}` (plus `"u": <key>` for a unique
    /// task), each blob a MessagePack *str*
    /// holding the field's bytes (Redis's Lua cmsgpack, used by the promote script, cannot
    /// read the bin types; a str passes through it byte for byte).
    pub fn to_delayed_member(&self) -> Vec<u8> {
        let t = self.encode_task();
        let r = self.encode_retry();
        let flow: Vec<_> = self.flow_fields().collect();
        let mut out = Vec::with_capacity(t.len() + r.as_ref().map_or(0, Vec::len) + 16);
        let len = 1 + u32::from(r.is_some()) + flow.len() as u32;
        let _ = rmp::encode::write_map_len(&mut out, len);
        let mut kv = |k: &str, v: &[u8]| {
            let _ = rmp::encode::write_str(&mut out, k);
            let _ = rmp::encode::write_str_len(&mut out, v.len() as u32);
            out.extend_from_slice(v);
        };
        kv(field::TASK, &t);
        if let Some(r) = &r {
            kv(field::RETRY, r);
        }
        for (k, v) in flow {
            kv(k, &v);
        }
        out
    }

    /// Decodes a member of the delayed set (what [`to_delayed_member`](Self::to_delayed_member)
    /// writes: a MessagePack map of field names to str or bin values) as the promoter would
    /// add it to the stream.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Malformed`] when the member is not such a map, and what
    /// [`from_fields`](Self::from_fields) finds wrong with its fields.
    pub fn from_delayed_member(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        /// One str or bin value, as bytes.
        fn blob(buf: &mut &[u8]) -> Result<Vec<u8>, EnvelopeError> {
            let len = match buf.first() {
                Some(0xc4..=0xc6) => rmp::decode::read_bin_len(buf),
                _ => rmp::decode::read_str_len(buf),
            }
            .map_err(|_| EnvelopeError::Malformed)? as usize;
            if buf.len() < len {
                return Err(EnvelopeError::Malformed);
            }
            let (value, rest) = buf.split_at(len);
            *buf = rest;
            Ok(value.to_vec())
        }
        let mut buf = bytes;
        let n = rmp::decode::read_map_len(&mut buf).map_err(|_| EnvelopeError::Malformed)?;
        // The promoter refuses more than 32 fields; a member is never bigger than its bytes.
        let mut fields = Vec::with_capacity(2 * (n as usize).min(64));
        for _ in 0..n {
            fields.push(Value::BulkString(blob(&mut buf)?));
            fields.push(Value::BulkString(blob(&mut buf)?));
        }
        if !buf.is_empty() {
            return Err(EnvelopeError::Malformed);
        }
        Self::from_fields(fields)
    }

    /// Decodes the flat `[field, value, field, value, ...]` list of a stream entry, v2 (it has
    /// a `t` field; other fields but `r`, `u`, `rk`, `rs` and `ck` are then ignored) or v1.
    pub fn from_fields(fields: Vec<Value>) -> Result<Self, EnvelopeError> {
        if !fields.len().is_multiple_of(2) {
            return Err(EnvelopeError::Malformed);
        }
        let mut task = None;
        let mut retry = None;
        let mut id = None;
        let mut name = None;
        let mut payload = None;
        let mut attempt = None;
        let mut enqueued_at = None;
        let mut traceparent = None;
        let mut error = None;
        let mut unique = None;
        let mut rate_key = None;
        let mut rate_slot = None;
        let mut concurrency_key = None;
        let mut track = None;
        let mut events = None;
        let (mut fp, mut fk, mut fd, mut fx, mut rn) = (None, None, None, None, None);
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let (Value::BulkString(k), Value::BulkString(v)) = (k, v) else {
                return Err(EnvelopeError::Malformed);
            };
            let slot = match &k[..] {
                b"t" => &mut task,
                b"r" => &mut retry,
                b"id" => &mut id,
                b"name" => &mut name,
                b"payload" => &mut payload,
                b"attempt" => &mut attempt,
                b"enqueued_at" => &mut enqueued_at,
                b"traceparent" => &mut traceparent,
                b"error" => &mut error,
                b"u" => &mut unique,
                b"rk" => &mut rate_key,
                b"rs" => &mut rate_slot,
                b"ck" => &mut concurrency_key,
                b"tr" => &mut track,
                b"ev" => &mut events,
                b"fp" => &mut fp,
                b"fk" => &mut fk,
                b"fd" => &mut fd,
                b"fx" => &mut fx,
                b"rn" => &mut rn,
                _ => continue, // unknown fields are kept by Redis and ignored here
            };
            *slot = Some(v);
        }
        let unique = unique.map(|v| utf8(v, field::UNIQUE)).transpose()?;
        let rate_key = rate_key.map(|v| utf8(v, field::RATE_KEY)).transpose()?;
        // Written by workers only; any other value holds no slot (the task takes a token).
        let rate_slot = rate_slot.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        let concurrency_key = concurrency_key
            .map(|v| utf8(v, field::CONCURRENCY_KEY))
            .transpose()?;
        let track = track.map(|v| number(&v, field::TRACK)).transpose()?;
        let events = events.is_some_and(|v| v == b"1");
        let text = |v: Option<Vec<u8>>, f| v.map(|v| utf8(v, f)).transpose();
        let flow = crate::flow::FlowLinks::from_fields(
            [
                text(fp, field::PARENT)?,
                text(fk, field::CHILDREN)?,
                text(fd, field::FAILED_CHILDREN)?,
                text(rn, field::RUN)?,
            ],
            fx.is_some_and(|v| v == b"1"),
        );
        if let Some(task) = task {
            let t = PackedTask::decode(&task)?;
            let (attempt, error) = match retry {
                Some(r) => decode_retry(&r)?,
                None => (0, None),
            };
            return Ok(Envelope {
                id: t.id.to_owned(),
                name: t.name.to_owned(),
                payload: t.payload.to_vec(),
                attempt,
                enqueued_at: t.enqueued_at,
                traceparent: t.traceparent.map(str::to_owned),
                error,
                unique,
                rate_key,
                rate_slot,
                concurrency_key,
                track,
                events,
                flow,
            });
        }
        let required =
            |v: Option<Vec<u8>>, f: &'static str| v.ok_or(EnvelopeError::MissingField(f));
        // `attempt` first: an entry with no task field at all reports it, as before v2.
        let attempt = number(&required(attempt, field::ATTEMPT)?, field::ATTEMPT)?;
        let id = utf8(required(id, field::ID)?, field::ID)?;
        let name = utf8(required(name, field::NAME)?, field::NAME)?;
        let payload = required(payload, field::PAYLOAD)?;
        let enqueued_at = number(
            &required(enqueued_at, field::ENQUEUED_AT)?,
            field::ENQUEUED_AT,
        )?;
        Ok(Envelope {
            id,
            name,
            payload,
            attempt: u32::try_from(attempt)
                .map_err(|_| EnvelopeError::InvalidField(field::ATTEMPT))?,
            enqueued_at,
            traceparent: traceparent
                .map(|v| utf8(v, field::TRACEPARENT))
                .transpose()?,
            error: error.map(|v| String::from_utf8_lossy(&v).into_owned()),
            unique,
            rate_key,
            rate_slot,
            concurrency_key,
            track,
            events,
            flow,
        })
    }
}

fn utf8(v: Vec<u8>, f: &'static str) -> Result<String, EnvelopeError> {
    String::from_utf8(v).map_err(|_| EnvelopeError::InvalidField(f))
}

fn number(v: &[u8], f: &'static str) -> Result<u64, EnvelopeError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(EnvelopeError::InvalidField(f))
}

/// A new task id: a ULID, lexicographically sortable by creation time.
pub fn new_task_id() -> String {
    ulid::Ulid::new().to_string()
}

/// The current unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One raw stream entry: its id and its flat field/value list.
pub(crate) type RawEntry = (String, Vec<Value>);

/// Parses an `XREADGROUP` reply for one stream: `nil` or `[[key, [[id, [f, v, ...]], ...]]]`.
pub(crate) fn parse_read_reply(reply: Value) -> Vec<RawEntry> {
    let streams = match reply {
        Value::Array(s) => s,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for stream in streams {
        if let Value::Array(mut kv) = stream {
            if let Some(entries) = kv.pop() {
                out.extend(parse_entries(entries));
            }
        }
    }
    out
}

/// Parses a list of entries `[[id, [f, v, ...]], ...]`. Entries whose body is `nil` (deleted
/// while pending) are skipped.
pub(crate) fn parse_entries(entries: Value) -> Vec<RawEntry> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let fields = parts.pop();
        let id = parts.pop();
        if let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (id, fields) {
            if let Ok(id) = String::from_utf8(id) {
                out.push((id, fields));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
