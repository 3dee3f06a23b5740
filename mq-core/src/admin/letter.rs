//! One entry of a dead stream, [`DeadLetter`], with typed accessors for the fields mq writes
//! and [`decode`](DeadLetter::decode) back into its task type ([`DecodeError`]).

#[cfg(doc)]
use super::client::Admin;
use crate::{
    envelope::{field, PackedTask},
    error::Result,
    task::Task,
};

/// One entry of a queue's dead stream, with typed accessors for the fields mq writes.
///
/// The dead stream holds three kinds of entries (docs/wire-format.md):
/// - a task a worker gave up on (retries exhausted, a permanent error, an entry it could not
///   handle): the task's own fields plus [`error`](Self::error),
///   [`failed_at`](Self::failed_at), [`worker`](Self::worker) and
///   [`attempts`](Self::attempts);
/// - a task the reclaimer found delivered too often without finishing ("abandoned"): the same,
///   plus [`deliveries`](Self::deliveries);
/// - a delayed member the promoter could not decode: only [`raw`](Self::raw) (its bytes),
///   `error` and `failed_at`; it is not a task and has no id, name or payload.
///
/// Text accessors return `None` when the field is absent or not UTF-8, number accessors when
/// it is absent or not a decimal number; [`get`](Self::get) and [`fields`](Self::fields) give
/// the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub(super) dead_id: String,
    fields: Vec<(String, Vec<u8>)>,
    queue: Option<String>,
}

/// The former name of [`DeadLetter`].
#[deprecated(note = "renamed to `DeadLetter`")]
pub type DeadTask = DeadLetter;

/// Why [`DeadLetter::decode`] could not give back the task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The entry has no `name` or no `payload`: it is not a task (e.g. the promoter's entry for
    /// an undecodable delayed member, which holds only `raw`, `error` and `failed_at`).
    #[error("dead letter {dead_id} is not a task (no name or payload)")]
    NotATask {
        /// The dead-stream id.
        dead_id: String,
    },
    /// The entry is a task of another type.
    #[error("dead letter {dead_id} is a {found:?} task, not {expected:?}")]
    WrongTask {
        /// The dead-stream id.
        dead_id: String,
        /// The name asked for ([`Task::NAME`]).
        expected: &'static str,
        /// The entry's `name` (lossy UTF-8).
        found: String,
    },
    /// The payload is not a MessagePack encoding of the task type.
    #[error("cannot decode the payload of dead letter {dead_id} as {task:?}")]
    Payload {
        /// The dead-stream id.
        dead_id: String,
        /// The task name.
        task: &'static str,
        /// The deserializer's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
}

impl DeadLetter {
    /// A dead letter from its dead-stream id and its fields in stored order (what
    /// [`Admin::dead_list`] builds from `XRANGE`).
    pub fn new(dead_id: impl Into<String>, fields: Vec<(String, Vec<u8>)>) -> Self {
        Self {
            dead_id: dead_id.into(),
            fields,
            queue: None,
        }
    }

    /// The same dead letter, read from the dead stream of `queue`: a queue's, a partition's
    /// (`hot#2`) or a priority level's (`q@high`, `hot#2@low`) name.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The dead stream it was read from, as a name that [`Admin::dead_show`],
    /// [`Admin::dead_replay`] and `mq dead` take: the queue's own name, or for a partitioned or
    /// prioritized queue the partition and/or level (`hot#2`, `q@high`, `hot#2@low`). `None` for
    /// one built with [`new`](Self::new) alone.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// Its id in the dead stream: give it to [`Admin::dead_show`] or [`Admin::dead_replay`].
    pub fn dead_id(&self) -> &str {
        &self.dead_id
    }

    /// All fields of the entry, in stored order, as raw bytes.
    pub fn fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }

    /// The raw value of a field, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &v[..])
    }

    /// The value of a field as text (lossy UTF-8), if present: for fields without an
    /// accessor of their own, such as ones another producer added.
    pub fn field(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    fn number<N: std::str::FromStr>(&self, name: &str) -> Option<N> {
        self.text(name).and_then(|v| v.parse().ok())
    }

    /// The `t` field of a v2 entry, decoded; `None` for v1 entries (and a malformed `t`).
    fn packed(&self) -> Option<PackedTask<'_>> {
        self.get(field::TASK)
            .and_then(|t| PackedTask::decode(t).ok())
    }

    /// The task id (`id` of v1 entries, in `t` of v2 ones); `None` for the promoter's `raw`
    /// entries.
    pub fn task_id(&self) -> Option<&str> {
        match self.packed() {
            Some(t) => Some(t.id),
            None => self.text(field::ID),
        }
    }

    /// The task name (`name` of v1 entries, in `t` of v2 ones),
    /// [`Task::NAME`] of its type.
    pub fn name(&self) -> Option<&str> {
        match self.packed() {
            Some(t) => Some(t.name),
            None => self.text(field::NAME),
        }
    }

    /// Why the task died (`error`): the handler's error, the reason it could not be handled,
    /// `abandoned: delivered N times ...`, or why a delayed member could not be decoded.
    pub fn error(&self) -> Option<&str> {
        self.text("error")
    }

    /// How many times the task ran (`attempts`).
    pub fn attempts(&self) -> Option<u32> {
        self.number("attempts")
    }

    /// When it died (`failed_at`), unix ms.
    pub fn failed_at(&self) -> Option<u64> {
        self.number("failed_at")
    }

    /// When the task was first enqueued (`enqueued_at` of v1 entries, in `t` of v2 ones),
    /// unix ms.
    pub fn enqueued_at(&self) -> Option<u64> {
        match self.packed() {
            Some(t) => Some(t.enqueued_at),
            None => self.number(field::ENQUEUED_AT),
        }
    }

    /// The consumer name of the worker that dead-lettered it (`worker`).
    pub fn worker(&self) -> Option<&str> {
        self.text("worker")
    }

    /// How many times it was delivered (`deliveries`): set only on tasks the reclaimer
    /// dead-lettered as abandoned.
    pub fn deliveries(&self) -> Option<u64> {
        self.number("deliveries")
    }

    /// The bytes of a delayed member the promoter could not decode (`raw`): set only on such
    /// entries, which are not tasks.
    pub fn raw(&self) -> Option<&[u8]> {
        self.get("raw")
    }

    /// The raw MessagePack payload (`payload` of v1 entries, in `t` of v2 ones), if the entry
    /// has one.
    pub fn payload(&self) -> Option<&[u8]> {
        match self.packed() {
            Some(t) => Some(t.payload),
            None => self.get(field::PAYLOAD),
        }
    }

    /// The fields in stored order as v1 names and text, for display: a v2 `t` becomes `id`,
    /// `name`, `enqueued_at`, `payload` (raw MessagePack) and `traceparent` (if set), an `r`
    /// becomes `attempt` and `last_error` (if set); a `t` or `r` that does not decode stays
    /// as it is.
    pub fn task_fields(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.fields.len() + 5);
        for (k, v) in &self.fields {
            match k.as_str() {
                field::TASK => match PackedTask::decode(v) {
                    Ok(t) => {
                        out.push((field::ID.into(), t.id.into()));
                        out.push((field::NAME.into(), t.name.into()));
                        out.push((field::ENQUEUED_AT.into(), t.enqueued_at.to_string().into()));
                        out.push((field::PAYLOAD.into(), t.payload.to_vec()));
                        if let Some(tp) = t.traceparent {
                            out.push((field::TRACEPARENT.into(), tp.into()));
                        }
                    }
                    Err(_) => out.push((k.clone(), v.clone())),
                },
                field::RETRY => match crate::envelope::decode_retry(v) {
                    Ok((attempt, last_error)) => {
                        out.push((field::ATTEMPT.into(), attempt.to_string().into()));
                        if let Some(e) = last_error {
                            out.push(("last_error".into(), e.into()));
                        }
                    }
                    Err(_) => out.push((k.clone(), v.clone())),
                },
                _ => out.push((k.clone(), v.clone())),
            }
        }
        out
    }

    /// The payload decoded to JSON for display (`None` without a payload; an error string
    /// value if it is not valid MessagePack).
    pub fn payload_json(&self) -> Option<serde_json::Value> {
        self.payload().map(payload_to_json)
    }

    /// Decodes the dead task back into its type `T`, as a worker would: the entry's `name`
    /// must be `T::NAME`, and its payload is decoded from MessagePack.
    ///
    /// ```
    /// use mq_core::{admin::{DeadLetter, DecodeError}, Task};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize, Task)]
    /// #[task(queue = "emails")]
    /// struct SendEmail {
    ///     to: String,
    /// }
    ///
    /// #[derive(Debug, Serialize, Deserialize, Task)]
    /// #[task(queue = "emails")]
    /// struct SendSms {
    ///     to: String,
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // What `Admin::dead_list` returns for a task a worker gave up on:
    /// let payload = rmp_serde::to_vec_named(&SendEmail { to: "a@example.com".into() })?;
    /// let dead = DeadLetter::new("1764000000123-0", vec![
    ///     ("id".into(), b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ".to_vec()),
    ///     ("name".into(), b"SendEmail".to_vec()),
    ///     ("payload".into(), payload),
    ///     ("error".into(), b"mailbox full".to_vec()),
    ///     ("attempts".into(), b"4".to_vec()),
    /// ]);
    /// let task: SendEmail = dead.decode()?;
    /// assert_eq!(task, SendEmail { to: "a@example.com".into() });
    /// assert_eq!(dead.attempts(), Some(4));
    ///
    /// // Another task type is refused by name, before its payload is read.
    /// assert!(matches!(dead.decode::<SendSms>(), Err(DecodeError::WrongTask { .. })));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError::NotATask`] without a name or payload, [`DecodeError::WrongTask`] if the
    /// name is another task's, [`DecodeError::Payload`] if the payload does not decode as `T`.
    pub fn decode<T: Task>(&self) -> Result<T, DecodeError> {
        let name = match self.packed() {
            Some(t) => Some(t.name.as_bytes()),
            None => self.get(field::NAME),
        };
        let (Some(name), Some(payload)) = (name, self.payload()) else {
            return Err(DecodeError::NotATask {
                dead_id: self.dead_id.clone(),
            });
        };
        if name != T::NAME.as_bytes() {
            return Err(DecodeError::WrongTask {
                dead_id: self.dead_id.clone(),
                expected: T::NAME,
                found: String::from_utf8_lossy(name).into_owned(),
            });
        }
        rmp_serde::from_slice(payload).map_err(|source| DecodeError::Payload {
            dead_id: self.dead_id.clone(),
            task: T::NAME,
            source,
        })
    }
}

/// Decodes a MessagePack payload into JSON for display; invalid bytes give a JSON string that
/// says so.
pub fn payload_to_json(payload: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(payload).unwrap_or_else(|e| {
        serde_json::Value::String(format!(
            "<undecodable MessagePack ({} bytes): {e}>",
            payload.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Email {
        to: String,
    }

    impl Task for Email {
        const NAME: &'static str = "Email";
        const QUEUE: &'static str = "emails";
        const OPTIONS: crate::TaskOptions = crate::TaskOptions::DEFAULT;
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Sms {
        to: String,
    }

    impl Task for Sms {
        const NAME: &'static str = "Sms";
        const QUEUE: &'static str = "emails";
        const OPTIONS: crate::TaskOptions = crate::TaskOptions::DEFAULT;
    }

    fn dead(fields: &[(&str, &[u8])]) -> DeadLetter {
        DeadLetter::new(
            "1764000000999-0",
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        )
    }

    fn email_payload() -> Vec<u8> {
        rmp_serde::to_vec_named(&Email {
            to: "a@example.com".into(),
        })
        .unwrap_or_default()
    }

    /// A task a worker dead-lettered (docs/wire-format.md): its own fields plus `error`,
    /// `failed_at`, `worker`, `attempts`.
    #[test]
    fn worker_dead_letter_accessors() {
        let payload = email_payload();
        let d = dead(&[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", b"Email"),
            ("payload", &payload),
            ("attempt", b"3"),
            ("enqueued_at", b"1764000000123"),
            ("custom", b"kept"),
            ("error", b"mailbox full"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-1-ab"),
            ("attempts", b"4"),
        ]);
        assert_eq!(d.dead_id(), "1764000000999-0");
        assert_eq!(d.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5YZ"));
        assert_eq!(d.name(), Some("Email"));
        assert_eq!(d.error(), Some("mailbox full"));
        assert_eq!(d.attempts(), Some(4));
        assert_eq!(d.failed_at(), Some(1_764_000_000_456));
        assert_eq!(d.enqueued_at(), Some(1_764_000_000_123));
        assert_eq!(d.worker(), Some("host-1-ab"));
        assert_eq!(d.deliveries(), None);
        assert_eq!(d.raw(), None);
        assert_eq!(d.payload(), Some(&payload[..]));
        assert_eq!(d.field("custom").as_deref(), Some("kept"));
        assert_eq!(d.get("custom"), Some(&b"kept"[..]));
        assert_eq!(d.fields().len(), 10);
        assert_eq!(d.fields()[0].0, "id");
        assert_eq!(
            d.payload_json(),
            Some(serde_json::json!({"to": "a@example.com"}))
        );
        assert_eq!(
            d.decode::<Email>().ok(),
            Some(Email {
                to: "a@example.com".into()
            })
        );
    }

    /// A v2 task a worker dead-lettered after a retry: `t` and `r` plus the dead-letter
    /// fields; the accessors read the task out of `t`.
    #[test]
    fn v2_dead_letter_accessors() {
        let payload = email_payload();
        let env = crate::envelope::Envelope {
            id: "01JD3ZK1Q7W9V3T1B0N2C4X5YZ".into(),
            name: "Email".into(),
            payload: payload.clone(),
            attempt: 1,
            enqueued_at: 1_764_000_000_123,
            traceparent: None,
            error: Some("timeout".into()),
            unique: None,
            rate_key: None,
            rate_slot: None,
            concurrency_key: None,
            track: None,
            events: false,
            flow: None,
        };
        let (t, r) = (env.encode_task(), env.encode_retry().unwrap_or_default());
        let d = dead(&[
            ("t", &t),
            ("r", &r),
            ("error", b"mailbox full"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-1-ab"),
            ("attempts", b"2"),
        ]);
        assert_eq!(d.task_id(), Some("01JD3ZK1Q7W9V3T1B0N2C4X5YZ"));
        assert_eq!(d.name(), Some("Email"));
        assert_eq!(d.enqueued_at(), Some(1_764_000_000_123));
        assert_eq!(d.payload(), Some(&payload[..]));
        assert_eq!(d.attempts(), Some(2));
        assert_eq!(d.error(), Some("mailbox full"));
        assert_eq!(
            d.payload_json(),
            Some(serde_json::json!({"to": "a@example.com"}))
        );
        assert!(d.decode::<Email>().is_ok());
        assert!(matches!(
            d.decode::<Sms>(),
            Err(DecodeError::WrongTask { found, .. }) if found == "Email"
        ));
        let shown: Vec<(String, String)> = d
            .task_fields()
            .into_iter()
            .filter(|(k, _)| k != "payload")
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let want = [
            ("id", "01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", "Email"),
            ("enqueued_at", "1764000000123"),
            ("attempt", "1"),
            ("last_error", "timeout"),
            ("error", "mailbox full"),
            ("failed_at", "1764000000456"),
            ("worker", "host-1-ab"),
            ("attempts", "2"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(shown, want);
        // A `t` that does not decode: not a task, shown as stored.
        let d = dead(&[("t", b"\xc1"), ("error", b"malformed entry")]);
        assert_eq!((d.task_id(), d.name(), d.payload()), (None, None, None));
        assert!(matches!(
            d.decode::<Email>(),
            Err(DecodeError::NotATask { .. })
        ));
        assert_eq!(d.task_fields()[0], ("t".to_owned(), b"\xc1".to_vec()));
    }

    /// A task the reclaimer dead-lettered as abandoned: also `deliveries`.
    #[test]
    fn abandoned_dead_letter_accessors() {
        let payload = email_payload();
        let d = dead(&[
            ("id", b"01JD3ZK1Q7W9V3T1B0N2C4X5YZ"),
            ("name", b"Email"),
            ("payload", &payload),
            ("attempt", b"0"),
            ("enqueued_at", b"1764000000123"),
            ("error", b"abandoned: delivered 3 times without finishing"),
            ("failed_at", b"1764000000456"),
            ("worker", b"host-2-cd"),
            ("deliveries", b"3"),
            ("attempts", b"0"),
        ]);
        assert_eq!(d.deliveries(), Some(3));
        assert_eq!(d.attempts(), Some(0));
        assert_eq!(d.worker(), Some("host-2-cd"));
        assert!(d.error().is_some_and(|e| e.starts_with("abandoned")));
        assert!(d.decode::<Email>().is_ok());
    }

    /// The promoter's entry for an undecodable delayed member: `raw`, `error`, `failed_at`
    /// only; not a task.
    #[test]
    fn raw_dead_letter_accessors() {
        let d = dead(&[
            ("raw", b"\xc1 not msgpack"),
            ("error", b"undecodable delayed member"),
            ("failed_at", b"1764000000456"),
        ]);
        assert_eq!(d.raw(), Some(&b"\xc1 not msgpack"[..]));
        assert_eq!(d.error(), Some("undecodable delayed member"));
        assert_eq!(d.failed_at(), Some(1_764_000_000_456));
        for none in [d.task_id(), d.name(), d.worker()] {
            assert_eq!(none, None);
        }
        assert_eq!((d.attempts(), d.deliveries()), (None, None));
        assert_eq!(d.payload(), None);
        assert!(matches!(
            d.decode::<Email>(),
            Err(DecodeError::NotATask { dead_id }) if dead_id == "1764000000999-0"
        ));
    }

    /// Malformed values read as absent, never as a wrong number.
    #[test]
    fn malformed_fields_read_as_none() {
        let d = dead(&[
            ("id", b"\xff\xfe"),
            ("attempts", b"-1"),
            ("failed_at", b"soon"),
            ("deliveries", b""),
        ]);
        assert_eq!(d.task_id(), None);
        assert_eq!(d.field("id").as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(
            (d.attempts(), d.failed_at(), d.deliveries()),
            (None, None, None)
        );
    }

    /// `decode` checks the name before the payload, and says which check failed.
    #[test]
    fn decode_reports_the_wrong_type_and_a_bad_payload() {
        let payload = email_payload();
        let d = dead(&[("name", b"Email"), ("payload", &payload)]);
        let err = d.decode::<Sms>().expect_err("an Email is not an Sms");
        assert!(
            matches!(&err, DecodeError::WrongTask { expected: "Sms", found, .. } if found == "Email"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "dead letter 1764000000999-0 is a \"Email\" task, not \"Sms\""
        );
        let d = dead(&[("name", b"Email"), ("payload", b"\xc1")]);
        let err = d.decode::<Email>().expect_err("not MessagePack");
        assert!(
            matches!(&err, DecodeError::Payload { task: "Email", .. }),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
