//! The commands of flows and runs ([`Producer::flow`](crate::Producer::flow),
//! [`Producer::run`](crate::Producer::run)): what their producers write and what the terminal
//! scripts of their tasks report, each list part of the roles in `acl.rs`.

use super::needed::{n, Needed, FLOW, RUN, RUNS, STREAM};

/// What writing a flow needs ([`Producer::flow`](crate::Producer::flow)): the pending-parent
/// hash and its children's entries in one `MULTI`. Part of the producer roles; not checked at
/// connect (a producer learns at its first flow that it writes flows): a user without them
/// gets `NOPERM` from the `MULTI`, and nothing of the flow is written.
pub const FLOWS_PRODUCER: &[Needed] = &[
    n("multi", &["MULTI"]),
    n("exec", &["EXEC"]),
    n("hset", &["HSET", FLOW, "left", "1"]),
];

/// What a flow child's terminal script (worker: ack, dead letter, cancellation; admin:
/// cancel, replay) does to its parent's pending-parent hash, and the parent's entry it adds.
/// Part of the worker and admin roles.
pub const FLOWS_REPORT: &[Needed] = &[
    n("hget", &["HGET", FLOW, "c:x"]),
    n("hset", &["HSET", FLOW, "c:x", "s"]),
    n("hdel", &["HDEL", FLOW, "d:x"]),
    n("hincrby", &["HINCRBY", FLOW, "left", "-1"]),
    n("hgetall", &["HGETALL", FLOW]),
    n("del", &["DEL", FLOW]),
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
];

/// What opening, filling and sealing a run needs ([`Producer::run`](crate::Producer::run)):
/// `run_open.lua` and `run_seal.lua` (which may end the run, as a task's report does), and
/// the count in each `MULTI`. Part of the producer roles; not checked at connect (a producer
/// learns at its first run that it has runs): a user without them gets `NOPERM` from the
/// script or the `MULTI`, and nothing of that call is written.
pub const RUNS_PRODUCER: &[Needed] = &[
    n("hget", &["HGET", RUNS, "name"]),
    n("hset", &["HSET", RUNS, "name", "1"]),
    n("incr", &["INCR", RUN]),
    n("time", &["TIME"]),
    n("type", &["TYPE", RUN]),
    n("hexists", &["HEXISTS", RUN, "total"]),
    n("hset", &["HSET", RUN, "total", "0"]),
    n("hincrby", &["HINCRBY", RUN, "total", "1"]),
    n("hmget", &["HMGET", RUN, "total"]),
    n("hgetall", &["HGETALL", RUN]),
    n("pexpire", &["PEXPIRE", RUN, "1"]),
    n("multi", &["MULTI"]),
    n("exec", &["EXEC"]),
];

/// What a run's task's terminal script (worker: ack, retry, dead letter, cancellation; admin:
/// cancel, replay) does to the run's hash (see `lua/run.lua`), and the completion
/// task it may add. Part of the worker and admin roles.
pub const RUNS_REPORT: &[Needed] = &[
    n("type", &["TYPE", RUN]),
    n("hexists", &["HEXISTS", RUN, "total"]),
    n("hmget", &["HMGET", RUN, "total"]),
    n("hincrby", &["HINCRBY", RUN, "done", "1"]),
    n("hget", &["HGET", RUN, "b0"]),
    n("hset", &["HSET", RUN, "b0", "x"]),
    n("hgetall", &["HGETALL", RUN]),
    n("pexpire", &["PEXPIRE", RUN, "1"]),
    n("time", &["TIME"]),
    n("xadd", &["XADD", STREAM, "*", "f", "v"]),
];
