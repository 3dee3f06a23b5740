//! Unit tests of `envelope.rs`.

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
        unique: None,
        rate_key: None,
        rate_slot: None,
        concurrency_key: None,
        track: None,
        events: false,
        flow: None,
    }
}

fn bulk(s: &[u8]) -> Value {
    Value::BulkString(s.to_vec())
}

/// The `[field, value, ...]` list a stream entry written with `write` would have.
fn xadd_fields(write: impl Fn(&mut redis::Cmd)) -> Vec<Value> {
    let mut cmd = redis::cmd("XADD");
    write(&mut cmd);
    cmd.args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(bulk(b)),
            _ => None,
        })
        .skip(1)
        .collect()
}

fn first_attempt() -> Envelope {
    Envelope {
        attempt: 0,
        error: None,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..sample()
    }
}

/// A task with a rate key that holds its rate slot, and a concurrency key.
fn keyed() -> Envelope {
    Envelope {
        rate_key: Some("account-7".into()),
        rate_slot: Some(5000),
        concurrency_key: Some("account-7".into()),
        track: None,
        events: false,
        flow: None,
        ..first_attempt()
    }
}

#[test]
fn flow_fields_are_plain_strings_next_to_t() {
    let fields = xadd_fields(|c| keyed().write_fields(c));
    assert_eq!(
        fields[2..],
        [
            bulk(b"rk"),
            bulk(b"account-7"),
            bulk(b"rs"),
            bulk(b"5000"),
            bulk(b"ck"),
            bulk(b"account-7")
        ]
    );
}

#[test]
fn v2_fields_round_trip_through_xadd_arguments() {
    for e in [sample(), first_attempt(), keyed()] {
        let fields = xadd_fields(|c| e.write_fields(c));
        assert_eq!(Envelope::from_fields(fields).unwrap(), e);
    }
}

#[test]
fn v1_fields_round_trip_through_xadd_arguments() {
    for e in [sample(), first_attempt(), keyed()] {
        let fields = xadd_fields(|c| e.write_fields_v1(c));
        assert_eq!(Envelope::from_fields(fields).unwrap(), e);
    }
}

#[test]
fn a_first_attempt_is_one_field_and_a_retry_two() {
    let fields = xadd_fields(|c| first_attempt().write_fields(c));
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0], bulk(b"t"));
    let fields = xadd_fields(|c| sample().write_fields(c));
    assert_eq!(fields.len(), 4);
    assert_eq!(fields[2], bulk(b"r"));
    // [attempt 2, "boom"]
    assert_eq!(fields[3], bulk(b"\x92\x02\xa4boom"));
}

/// The bytes of `t` exactly, as docs/wire-format.md shows them.
#[test]
fn the_task_blob_is_the_documented_array() {
    let e = Envelope {
        id: "01JD3ZK1Q7W9V3T1B0N2C4X5YZ".into(),
        name: "EmbedText".into(),
        payload: b"\x82\xaaproduct_id\x2a\xa4text\xa8red shoe".to_vec(),
        attempt: 0,
        enqueued_at: 1_764_000_000_123,
        traceparent: None,
        error: None,
        unique: None,
        rate_key: None,
        rate_slot: None,
        concurrency_key: None,
        track: None,
        events: false,
        flow: None,
    };
    let mut want = b"\x96\x02\xba01JD3ZK1Q7W9V3T1B0N2C4X5YZ\xa9EmbedText".to_vec();
    want.extend_from_slice(b"\xcf\x00\x00\x01\x9a\xb6\x97\xe8\x7b"); // uint64 1764000000123
    want.extend_from_slice(b"\xc4\x1b"); // bin8, 27 bytes
    want.extend_from_slice(&e.payload);
    want.push(0xc0); // no traceparent
    assert_eq!(e.encode_task(), want);
    assert_eq!(e.encode_retry(), None);
}

/// Any MessagePack integer encoding and a traceparent are read; a v1 field next to `t` is
/// ignored.
#[test]
fn v2_accepts_any_int_encoding() {
    let mut t = Vec::new();
    let _ = rmp::encode::write_array_len(&mut t, 6);
    let _ = rmp::encode::write_u64(&mut t, 2); // uint64, not a fixint
    let _ = rmp::encode::write_str(&mut t, "x");
    let _ = rmp::encode::write_str(&mut t, "T");
    let _ = rmp::encode::write_u32(&mut t, 5);
    let _ = rmp::encode::write_bin(&mut t, b"\x80");
    let _ = rmp::encode::write_str(&mut t, "tp");
    let e =
        Envelope::from_fields(vec![bulk(b"attempt"), bulk(b"x"), bulk(b"t"), bulk(&t)]).unwrap();
    assert_eq!((e.id.as_str(), e.name.as_str()), ("x", "T"));
    assert_eq!(
        (e.enqueued_at, e.attempt, e.traceparent.as_deref()),
        (5, 0, Some("tp"))
    );
    assert_eq!(e.payload, b"\x80");
}

#[test]
fn malformed_v2_entries_name_the_problem() {
    let good = first_attempt().encode_task();
    let t = |bytes: Vec<u8>| Envelope::from_fields(vec![bulk(b"t"), bulk(&bytes)]);
    let problem = |r: Result<Envelope, EnvelopeError>| match r {
        Err(EnvelopeError::Packed { field, problem }) => format!("{field}: {problem}"),
        other => panic!("not a Packed error: {other:?}"),
    };
    let mut v3 = good.clone();
    v3[1] = 3;
    assert_eq!(
        problem(t(v3)),
        "t: unsupported version 3 (this worker reads version 2)"
    );
    let mut arity = good.clone();
    arity[0] = 0x95;
    assert_eq!(
        problem(t(arity)),
        "t: expected an array of 6 elements, found 5"
    );
    assert_eq!(
        problem(t(vec![0x90])),
        "t: empty array, expected 6 elements"
    );
    assert_eq!(problem(t(b"\xa1x".to_vec())), "t: not a MessagePack array");
    assert_eq!(problem(t(Vec::new())), "t: not a MessagePack array");
    let mut id_int = b"\x96\x02\x07".to_vec();
    id_int.extend_from_slice(&good[29..]);
    assert_eq!(problem(t(id_int)), "t: element 1 (id) is not a str");
    let mut bad_utf8 = good.clone();
    bad_utf8[3] = 0xff;
    assert_eq!(problem(t(bad_utf8)), "t: element 1 (id) is not valid UTF-8");
    let payload_str = b"\x96\x02\xa1x\xa1T\x05\xa1p\xc0".to_vec();
    assert_eq!(
        problem(t(payload_str)),
        "t: element 4 (payload) is not a bin"
    );
    let negative = b"\x96\x02\xa1x\xa1T\xff\xc4\x00\xc0".to_vec();
    assert_eq!(
        problem(t(negative)),
        "t: element 3 (enqueued_at) is not an unsigned integer (up to 64 bits)"
    );
    let short_bin = b"\x96\x02\xa1x\xa1T\x05\xc4\x09ab".to_vec();
    assert_eq!(problem(t(short_bin)), "t: element 4 (payload) is truncated");
    let tp_int = b"\x96\x02\xa1x\xa1T\x05\xc4\x00\x01".to_vec();
    assert_eq!(
        problem(t(tp_int)),
        "t: element 5 (traceparent) is not a str or nil"
    );
    let mut trailing = good.clone();
    trailing.push(0xc0);
    assert_eq!(problem(t(trailing)), "t: 1 trailing bytes after the array");
    let with_r =
        |r: &[u8]| Envelope::from_fields(vec![bulk(b"t"), bulk(&good), bulk(b"r"), bulk(r)]);
    assert_eq!(
        problem(with_r(b"\x92\xa1x\xc0")),
        "r: element 0 (attempt) is not an unsigned integer (up to 64 bits)"
    );
    assert_eq!(
        problem(with_r(b"\x91\x01")),
        "r: expected an array of 2 elements, found 1"
    );
    assert_eq!(
        problem(with_r(b"\x92\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xc0")),
        "r: element 0 (attempt) is above 4294967295: 4294967296"
    );
    assert_eq!(
        problem(with_r(b"\x92\x01\x02")),
        "r: element 1 (last error) is not a str or nil"
    );
    // The reason as the worker writes it to the dead entry.
    assert_eq!(
        t(vec![0x90]).unwrap_err().to_string(),
        "field `t`: empty array, expected 6 elements"
    );
}

/// A unique task's key travels as field `u` through both entry versions and a delayed
/// member (retries and delayed tasks keep it).
#[test]
fn the_unique_key_round_trips_as_field_u() {
    let e = Envelope {
        unique: Some("product:7".into()),
        ..sample()
    };
    let fields = xadd_fields(|c| e.write_fields(c));
    assert_eq!(&fields[4..], [bulk(b"u"), bulk(b"product:7")]);
    assert_eq!(Envelope::from_fields(fields).unwrap(), e);
    let fields = xadd_fields(|c| e.write_fields_v1(c));
    assert_eq!(Envelope::from_fields(fields).unwrap(), e);
    let v: std::collections::BTreeMap<String, raw::Raw> =
        rmp_serde::from_slice(&e.to_delayed_member()).unwrap();
    assert_eq!(v["u"].0, b"product:7");
}

#[test]
fn missing_and_invalid_v1_fields_are_reported() {
    let fields = vec![bulk(b"id"), bulk(b"x"), bulk(b"name"), bulk(b"T")];
    assert_eq!(
        Envelope::from_fields(fields.clone()),
        Err(EnvelopeError::MissingField("attempt"))
    );
    let mut no_payload = fields.clone();
    no_payload.extend([bulk(b"attempt"), bulk(b"0")]);
    assert_eq!(
        Envelope::from_fields(no_payload),
        Err(EnvelopeError::MissingField("payload"))
    );
    let mut bad = fields;
    bad.extend([bulk(b"attempt"), bulk(b"-1")]);
    assert_eq!(
        Envelope::from_fields(bad),
        Err(EnvelopeError::InvalidField("attempt"))
    );
    assert_eq!(
        Envelope::from_fields(vec![bulk(b"odd")]),
        Err(EnvelopeError::Malformed)
    );
}

#[test]
fn delayed_member_is_a_msgpack_map_of_the_v2_fields_as_str() {
    for e in [sample(), first_attempt(), keyed()] {
        let bytes = e.to_delayed_member();
        let v: std::collections::BTreeMap<String, raw::Raw> =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(v["t"].0, e.encode_task());
        assert_eq!(v.get("r").map(|r| r.0.clone()), e.encode_retry());
        // No bin8/16/32 marker in front of a value: each blob is a str (here str8).
        let t = e.encode_task();
        assert_eq!(&bytes[1..4], b"\xa1t\xd9");
        assert_eq!(usize::from(bytes[4]), t.len());
        assert_eq!(&bytes[5..5 + t.len()], &t[..]);
        // What the promoter XADDs from it decodes to the same envelope.
        let fields: Vec<Value> = v
            .into_iter()
            .flat_map(|(k, raw::Raw(b))| [bulk(k.as_bytes()), bulk(&b)])
            .collect();
        assert_eq!(Envelope::from_fields(fields).unwrap(), e);
        assert_eq!(Envelope::from_delayed_member(&bytes).unwrap(), e);
    }
    for bad in [
        &b""[..],
        b"\x90",
        b"\x81\xa1t",
        b"\x81\xa1t\xa1",
        b"\x80\x00",
    ] {
        assert_eq!(
            Envelope::from_delayed_member(bad),
            Err(EnvelopeError::Malformed),
            "{bad:?}"
        );
    }
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
