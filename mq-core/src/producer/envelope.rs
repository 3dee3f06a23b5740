//! The envelope of a new task and its stream entry: encoding, the payload cap
//! ([`DEFAULT_MAX_PAYLOAD`]), the `XADD`.

use crate::{
    envelope::{new_task_id, Envelope},
    error::{Error, Result},
    task::Task,
};

/// Default cap on one task's MessagePack payload: 1 MiB. Ten thousand times a typical task
/// (ids, a URL, a text: ~100 bytes), room for a document's text or a thumbnail, and small
/// enough that a worker's fetch (up to 512 entries) or its in-flight tasks stay in the hundreds
/// of MiB. Larger data belongs in an object store, with its key in the task. Change it with
/// [`Producer::with_max_payload`](super::Producer::with_max_payload).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The envelope of a new task (attempt 0, a new id), its payload checked against `max_payload`:
/// what every enqueue writes, also the cron schedules' and the test producer's.
pub(crate) fn new_envelope<T: Task>(
    task: &T,
    now: u64,
    traceparent: Option<&str>,
    max_payload: usize,
) -> Result<Envelope> {
    let payload = rmp_serde::to_vec_named(task).map_err(|source| Error::Encode {
        task: T::NAME,
        source,
    })?;
    let mut env = raw_envelope(T::NAME, payload, now, max_payload)?;
    env.traceparent = traceparent.map(str::to_owned);
    env.unique = task.unique_key();
    env.rate_key = task.rate_key();
    env.concurrency_key = task.concurrency_key();
    env.track = T::OPTIONS.result_ttl.map(|d| d.as_millis().max(1) as u64);
    env.events = T::OPTIONS.events;
    Ok(env)
}

/// The envelope of a task given by name and encoded payload (what other languages enqueue):
/// refused if the name is empty or the payload over `max_payload`.
pub(crate) fn raw_envelope(
    name: &str,
    payload: Vec<u8>,
    now: u64,
    max_payload: usize,
) -> Result<Envelope> {
    if name.is_empty() {
        return Err(Error::Config("task name must not be empty".into()));
    }
    check_payload(name, &payload, max_payload)?;
    Ok(Envelope {
        id: new_task_id(),
        name: name.to_owned(),
        payload,
        attempt: 0,
        enqueued_at: now,
        traceparent: None,
        error: None,
        unique: None,
        rate_key: None,
        rate_slot: None,
        concurrency_key: None,
        track: None,
        events: false,
        flow: None,
    })
}

/// [`Error::PayloadTooLarge`] if `payload` is over `max_payload`.
pub(super) fn check_payload(task: &str, payload: &[u8], max_payload: usize) -> Result<()> {
    if payload.len() > max_payload {
        return Err(Error::PayloadTooLarge {
            task: task.to_owned(),
            size: payload.len(),
            limit: max_payload,
        });
    }
    Ok(())
}

/// Appends `env`'s stream entry field/value pairs (as an `XADD` writes them) to a script
/// call's arguments, for scripts that `XADD` the entry themselves.
pub(crate) fn push_entry_fields(inv: &mut redis::ScriptInvocation<'_>, env: &Envelope) {
    let mut cmd = redis::cmd("XADD");
    env.write_fields(&mut cmd);
    for arg in cmd.args_iter().skip(1) {
        if let redis::Arg::Simple(b) = arg {
            inv.arg(b);
        }
    }
}

pub(super) fn xadd(stream: &str, env: &Envelope) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    env.write_fields(&mut cmd);
    cmd
}
