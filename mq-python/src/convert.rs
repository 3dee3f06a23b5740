//! Conversions between Python values and what mq-core takes: payloads (a dict to and from a
//! MessagePack map), durations and backoffs.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde::{de::Error as _, Deserialize, Deserializer};

/// A payload that decoded as a MessagePack map (any other value is refused by the decoder,
/// so the task is dead-lettered with the reason before Python sees it).
#[derive(Debug, Clone)]
pub(crate) struct MapPayload(pub(crate) rmpv::Value);

impl<'de> Deserialize<'de> for MapPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = rmpv::Value::deserialize(d)?;
        if v.is_map() {
            Ok(MapPayload(v))
        } else {
            Err(D::Error::custom(format!(
                "the payload is not a MessagePack map (a dict) but {}",
                kind(&v)
            )))
        }
    }
}

/// The MessagePack kind of `v`, for error messages.
fn kind(v: &rmpv::Value) -> &'static str {
    match v {
        rmpv::Value::Nil => "nil",
        rmpv::Value::Boolean(_) => "a boolean",
        rmpv::Value::Integer(_) => "an integer",
        rmpv::Value::F32(_) | rmpv::Value::F64(_) => "a float",
        rmpv::Value::String(_) => "a string",
        rmpv::Value::Binary(_) => "binary",
        rmpv::Value::Array(_) => "an array",
        rmpv::Value::Map(_) => "a map",
        rmpv::Value::Ext(..) => "an extension value",
    }
}

/// Encodes a payload dict as a MessagePack map, the encoding `#[derive(Task)]` structs
/// decode (string keys are field names).
pub(crate) fn encode_payload(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "a payload is a dict (encoded as a MessagePack map), not {}",
            obj.get_type().name()?
        )));
    }
    let v: rmpv::Value = pythonize::depythonize(obj)
        .map_err(|e| PyTypeError::new_err(format!("the payload cannot be encoded: {e}")))?;
    let mut buf = Vec::with_capacity(64);
    rmpv::encode::write_value(&mut buf, &v)
        .map_err(|e| PyValueError::new_err(format!("the payload cannot be encoded: {e}")))?;
    Ok(buf)
}

/// The map of an encoded payload (what `encode_payload` made), for a schedule's tick field.
pub(crate) fn decode_map(bytes: &[u8]) -> PyResult<Vec<(rmpv::Value, rmpv::Value)>> {
    match rmpv::decode::read_value(&mut &bytes[..]) {
        Ok(rmpv::Value::Map(m)) => Ok(m),
        Ok(v) => Err(PyTypeError::new_err(format!(
            "a payload is a map, not {}",
            kind(&v)
        ))),
        Err(e) => Err(PyValueError::new_err(format!(
            "the payload cannot be read: {e}"
        ))),
    }
}

/// `map` with `field` set to `tick` in unix milliseconds (replacing a field of that name),
/// encoded.
pub(crate) fn with_field(
    map: &[(rmpv::Value, rmpv::Value)],
    field: &str,
    tick: std::time::SystemTime,
) -> Vec<u8> {
    let ms = tick
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut m: Vec<_> = map
        .iter()
        .filter(|(k, _)| k.as_str() != Some(field))
        .cloned()
        .collect();
    m.push((rmpv::Value::from(field), rmpv::Value::from(ms)));
    let mut buf = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut buf, &rmpv::Value::Map(m));
    buf
}

/// A decoded payload as Python values (a dict for a map).
pub(crate) fn to_python<'py>(py: Python<'py>, v: &rmpv::Value) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v)
        .map_err(|e| PyValueError::new_err(format!("the payload cannot be decoded: {e}")))
}

/// A handler's return value as JSON (a tracked task's result); `None` for Python's `None`.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Option<serde_json::Value>> {
    if obj.is_none() {
        return Ok(None);
    }
    pythonize::depythonize(obj).map(Some).map_err(|e| {
        PyTypeError::new_err(format!(
            "the handler's result does not convert to JSON: {e}"
        ))
    })
}

/// A duration given as seconds (int or float), a `datetime.timedelta`, or a string such as
/// `"2m"`, `"1h 30m"`, `"250ms"`.
pub(crate) fn duration(obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let secs: f64 = if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_string();
        return humantime::parse_duration(s.trim())
            .map_err(|e| PyValueError::new_err(format!("bad duration {s:?}: {e}")));
    } else if obj.hasattr("total_seconds")? {
        obj.call_method0("total_seconds")?.extract()?
    } else {
        obj.extract().map_err(|_| {
            PyTypeError::new_err(
                "a duration is seconds (int or float), a timedelta or a string like \"2m\"",
            )
        })?
    };
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!("bad duration: {secs} s (must be finite and >= 0)"))
    })
}

/// `duration` of an optional argument.
pub(crate) fn opt_duration(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    obj.filter(|o| !o.is_none()).map(duration).transpose()
}

/// A backoff written as in `#[task(backoff = ...)]`: `"none"`, `"fixed(5s)"`,
/// `"exponential(1s, 10m)"`.
pub(crate) fn backoff(s: &str) -> PyResult<mq_core::Backoff> {
    let bad = || {
        PyValueError::new_err(format!(
            "bad backoff {s:?}: use \"none\", \"fixed(5s)\" or \"exponential(1s, 10m)\""
        ))
    };
    let parse = |d: &str| humantime::parse_duration(d.trim()).map_err(|_| bad());
    let s = s.trim();
    if s == "none" {
        return Ok(mq_core::Backoff::None);
    }
    let (kind, rest) = s.split_once('(').ok_or_else(bad)?;
    let args = rest.strip_suffix(')').ok_or_else(bad)?;
    match (kind.trim(), args.split_once(',')) {
        ("fixed", None) => Ok(mq_core::Backoff::Fixed(parse(args)?)),
        ("exponential", Some((base, cap))) => Ok(mq_core::Backoff::Exponential {
            base: parse(base)?,
            cap: parse(cap)?,
        }),
        _ => Err(bad()),
    }
}

/// A priority level by name: `"high"`, `"normal"` or `"low"`.
pub(crate) fn priority(s: &str) -> PyResult<mq_core::Priority> {
    s.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "bad priority {s:?}: use \"high\", \"normal\" or \"low\""
        ))
    })
}
