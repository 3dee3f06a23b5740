//! The stream-entry wire format, encoded and decoded here and nowhere else.
//!
//! A task is one stream entry with these fields (all Redis strings):
//!
//! | field | value |
//! |---|---|
//! | `id` | task id (ULID, 26 characters) |
//! | `name` | task type name ([`Task::NAME`](crate::Task::NAME)) |
//! | `payload` | MessagePack of the task value (rmp-serde, named fields) |
//! | `attempt` | decimal, 0 for the first run |
//! | `enqueued_at` | decimal unix time in milliseconds of the first enqueue |
//! | `traceparent` | optional W3C trace context |
//! | `error` | optional, the last error (retries) or the reason (dead letters) |
//!
//! A delayed task is a member of the queue's `delayed` sorted set: a MessagePack map from these
//! field names to their values, scored by its due time in unix milliseconds. The promoter turns
//! the map back into a stream entry unchanged. Every value, the payload too, is a MessagePack
//! *string* (raw bytes): Redis's Lua `cmsgpack` cannot read the `bin` types.

use redis::Value;

/// Field names of a stream entry.
pub mod field {
    /// Task id.
    pub const ID: &str = "id";
    /// Task type name.
    pub const NAME: &str = "name";
    /// MessagePack payload.
    pub const PAYLOAD: &str = "payload";
    /// Attempt number, 0 for the first run.
    pub const ATTEMPT: &str = "attempt";
    /// Unix ms of the first enqueue.
    pub const ENQUEUED_AT: &str = "enqueued_at";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Last error or dead-letter reason.
    pub const ERROR: &str = "error";
}

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
    /// The entry is not a list of field/value pairs.
    #[error("entry is not a list of field/value pairs")]
    Malformed,
}

impl Envelope {
    /// Appends `field value ...` pairs for `XADD` to `cmd`.
    pub fn write_fields(&self, cmd: &mut redis::Cmd) {
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
    }

    /// Encodes the envelope as a `delayed` sorted-set member (a MessagePack map of its fields).
    pub fn to_delayed_member(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 96);
        let len = 5 + u32::from(self.traceparent.is_some()) + u32::from(self.error.is_some());
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_map_len(&mut out, len);
        let mut kv = |k: &str, v: &str| {
            let _ = rmp::encode::write_str(&mut out, k);
            let _ = rmp::encode::write_str(&mut out, v);
        };
        kv(field::ID, &self.id);
        kv(field::NAME, &self.name);
        kv(field::ATTEMPT, &self.attempt.to_string());
        kv(field::ENQUEUED_AT, &self.enqueued_at.to_string());
        if let Some(tp) = &self.traceparent {
            kv(field::TRACEPARENT, tp);
        }
        if let Some(e) = &self.error {
            kv(field::ERROR, e);
        }
        // The payload goes as a MessagePack *str* holding raw bytes: Redis's Lua cmsgpack
        // (used by the promote script) cannot read the bin types.
        let _ = rmp::encode::write_str(&mut out, field::PAYLOAD);
        let _ = rmp::encode::write_str_len(&mut out, self.payload.len() as u32);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes the flat `[field, value, field, value, ...]` list of a stream entry.
    pub fn from_fields(fields: Vec<Value>) -> Result<Self, EnvelopeError> {
        if !fields.len().is_multiple_of(2) {
            return Err(EnvelopeError::Malformed);
        }
        let mut id = None;
        let mut name = None;
        let mut payload = None;
        let mut attempt = None;
        let mut enqueued_at = None;
        let mut traceparent = None;
        let mut error = None;
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let Value::BulkString(k) = k else {
                return Err(EnvelopeError::Malformed);
            };
            let Value::BulkString(v) = v else {
                return Err(EnvelopeError::Malformed);
            };
            match &k[..] {
                b"id" => id = Some(utf8(v, field::ID)?),
                b"name" => name = Some(utf8(v, field::NAME)?),
                b"payload" => payload = Some(v),
                b"attempt" => attempt = Some(number(&v, field::ATTEMPT)?),
                b"enqueued_at" => enqueued_at = Some(number(&v, field::ENQUEUED_AT)?),
                b"traceparent" => traceparent = Some(utf8(v, field::TRACEPARENT)?),
                b"error" => error = Some(String::from_utf8_lossy(&v).into_owned()),
                _ => {} // unknown fields are kept by Redis and ignored here
            }
        }
        let attempt = attempt.ok_or(EnvelopeError::MissingField(field::ATTEMPT))?;
        Ok(Envelope {
            id: id.ok_or(EnvelopeError::MissingField(field::ID))?,
            name: name.ok_or(EnvelopeError::MissingField(field::NAME))?,
            payload: payload.ok_or(EnvelopeError::MissingField(field::PAYLOAD))?,
            attempt: u32::try_from(attempt)
                .map_err(|_| EnvelopeError::InvalidField(field::ATTEMPT))?,
            enqueued_at: enqueued_at.ok_or(EnvelopeError::MissingField(field::ENQUEUED_AT))?,
            traceparent,
            error,
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
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: new_task_id(),
            name: "EmbedText".into(),
            payload: vec![0x81, 0xa1, b'a', 0x01],
            attempt: 2,
            enqueued_at: 1_764_000_000_123,
            traceparent: None,
            error: Some("boom".into()),
        }
    }

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn fields_round_trip_through_xadd_arguments() {
        let e = sample();
        let mut cmd = redis::cmd("XADD");
        e.write_fields(&mut cmd);
        let args: Vec<Value> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(bulk(b)),
                _ => None,
            })
            .skip(1)
            .collect();
        assert_eq!(Envelope::from_fields(args).unwrap(), e);
    }

    #[test]
    fn missing_and_invalid_fields_are_reported() {
        let fields = vec![bulk(b"id"), bulk(b"x"), bulk(b"name"), bulk(b"T")];
        assert_eq!(
            Envelope::from_fields(fields),
            Err(EnvelopeError::MissingField("attempt"))
        );
        let fields = vec![bulk(b"attempt"), bulk(b"-1")];
        assert_eq!(
            Envelope::from_fields(fields),
            Err(EnvelopeError::InvalidField("attempt"))
        );
        assert_eq!(
            Envelope::from_fields(vec![bulk(b"odd")]),
            Err(EnvelopeError::Malformed)
        );
    }

    #[test]
    fn delayed_member_is_a_msgpack_map_of_string_fields() {
        let e = sample();
        let bytes = e.to_delayed_member();
        let v: std::collections::BTreeMap<String, raw::Raw> =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(v["id"].0, e.id.as_bytes());
        assert_eq!(v["attempt"].0, b"2");
        assert_eq!(v["error"].0, b"boom");
        assert_eq!(v["payload"].0, e.payload);
        assert_eq!(v.len(), 6);
        // No bin8/16/32 marker anywhere in front of the payload.
        let at = bytes.len() - e.payload.len() - 1;
        assert_eq!(
            bytes[at],
            0xa0 | e.payload.len() as u8,
            "payload is a fixstr"
        );
    }

    mod raw {
        use serde::de::{Deserializer, Visitor};
        /// Any MessagePack string or binary value, as bytes.
        #[derive(Debug, PartialEq)]
        pub(super) struct Raw(pub(super) Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Raw {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Raw;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("str or bin")
                    }
                    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
                        Ok(Raw(s.as_bytes().to_vec()))
                    }
                    fn visit_bytes<E>(self, b: &[u8]) -> Result<Raw, E> {
                        Ok(Raw(b.to_vec()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    }
}
