//! Flows: a parent task that runs once all its children have ended. The types a parent's
//! handler sees ([`FlowChild`], [`FailedChild`]), the policy ([`FlowPolicy`]) and what a
//! task's entry carries of its flow ([`FlowLinks`]: fields `fp`, `fk`, `fd`, `fx`).
//!
//! How it works (the scripts are in `redis/lua/status.lua`): the producer writes, in one
//! `MULTI`, the parent's *pending-parent* hash `<parent stream key>:flow:<flow id>` (its
//! entry's fields, a count of children left, one field per child) and every child's entry,
//! each with field `fp` naming that hash. The script that ends a child's life (its ack, dead
//! letter or cancellation) reports to the hash in the same atomic step, and a replay of a dead
//! child re-opens its report; the report of the last child adds the parent's entry to its
//! stream and deletes the hash. A SIGKILL at any moment neither loses nor doubles a report: a
//! report is part of the child's own state change, and each child changes state in the hash
//! at most once per report.

/// When a flow's parent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowPolicy {
    /// The parent runs when every child succeeded. Once all have ended and some died (or were
    /// cancelled), the parent is dead-lettered instead, with their ids and reasons; replaying
    /// a dead child before the others end puts it back among the pending ones.
    #[default]
    AllSucceeded,
    /// The parent runs once every child has ended, whatever the outcome;
    /// [`TaskContext::failed_children`](crate::TaskContext::failed_children) lists the ones
    /// that died or were cancelled.
    Always,
}

impl FlowPolicy {
    /// The policy's name in the pending-parent hash: `all` or `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowPolicy::AllSucceeded => "all",
            FlowPolicy::Always => "always",
        }
    }
}

/// A child of a flow, as its parent's handler sees it: where it ran and its task id, with
/// which [`Producer::result`](crate::Producer::result) reads a tracked child's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowChild {
    /// The child's queue (or partition, or priority level stream: `q#2`, `q@high`).
    pub queue: String,
    /// The child's task id.
    pub id: String,
}

/// A child that died or was cancelled, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedChild {
    /// The child.
    pub child: FlowChild,
    /// Its dead-letter reason, or `cancelled`.
    pub reason: String,
}

/// What a task's entry carries of its flow; `None` in [`Envelope::flow`](crate::envelope::Envelope::flow)
/// for a task outside any flow (the plain task pays nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlowLinks {
    /// Field `fp`: the pending-parent hash this task reports to when it ends (it is a child).
    pub parent: Option<String>,
    /// Field `fk`: a released parent's children, one `<queue>\t<id>` line each.
    pub children: Vec<FlowChild>,
    /// Field `fd`: the children that died or were cancelled, `<queue>\t<id>\t<reason>` lines.
    pub failed: Vec<FailedChild>,
    /// Field `fx` = `1`: children failed under [`FlowPolicy::AllSucceeded`]; the worker
    /// dead-letters this parent without running it.
    pub blocked: bool,
    /// Field `rn`: the hash of the [run](crate::Run) this task is counted in (`{prefix}:run:<n>`),
    /// which its terminal script reports to.
    pub run: Option<String>,
}

impl FlowLinks {
    /// An entry's flow and run fields (`fp`, `fk`, `fd`, `rn` as text, whether `fx` is `1`)
    /// as links; `None` when it has none.
    pub(crate) fn from_fields(
        [fp, fk, fd, rn]: [Option<String>; 4],
        fx: bool,
    ) -> Option<Box<FlowLinks>> {
        if fp.is_none() && fk.is_none() && fd.is_none() && rn.is_none() && !fx {
            return None;
        }
        Some(Box::new(FlowLinks {
            parent: fp,
            children: fk.map(|v| Self::decode_children(&v)).unwrap_or_default(),
            failed: fd.map(|v| Self::decode_failed(&v)).unwrap_or_default(),
            blocked: fx,
            run: rn,
        }))
    }

    /// Whether the task's terminal script reports its end (to a flow's parent or a run), so
    /// that its ack goes through a script.
    pub(crate) fn reports(&self) -> bool {
        self.parent.is_some() || self.run.is_some()
    }

    /// The `fk` value of `children`.
    pub fn encode_children(children: &[FlowChild]) -> String {
        children
            .iter()
            .map(|c| format!("{}\t{}", c.queue, c.id))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `fd` value of `failed`.
    pub fn encode_failed(failed: &[FailedChild]) -> String {
        failed
            .iter()
            .map(|f| {
                let reason: String = f
                    .reason
                    .chars()
                    .map(|c| {
                        if matches!(c, '\t' | '\r' | '\n') {
                            ' '
                        } else {
                            c
                        }
                    })
                    .collect();
                format!("{}\t{}\t{reason}", f.child.queue, f.child.id)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads an `fk` value (lines that are not `<queue>\t<id>` are skipped).
    pub fn decode_children(v: &str) -> Vec<FlowChild> {
        v.lines()
            .filter_map(|l| {
                let (queue, id) = l.split_once('\t')?;
                Some(FlowChild {
                    queue: queue.to_owned(),
                    id: id.to_owned(),
                })
            })
            .collect()
    }

    /// Reads an `fd` value (lines that are not `<queue>\t<id>\t<reason>` are skipped).
    pub fn decode_failed(v: &str) -> Vec<FailedChild> {
        v.lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, '\t');
                let (queue, id, reason) = (it.next()?, it.next()?, it.next()?);
                Some(FailedChild {
                    child: FlowChild {
                        queue: queue.to_owned(),
                        id: id.to_owned(),
                    },
                    reason: reason.to_owned(),
                })
            })
            .collect()
    }

    /// The dead-letter reason of a blocked parent: how many children failed, and the first.
    pub fn blocked_reason(&self) -> String {
        let first = self.failed.first().map_or(String::new(), |f| {
            format!("; first: {} {} ({})", f.child.queue, f.child.id, f.reason)
        });
        format!(
            "flow: {} of {} children failed{first}",
            self.failed.len(),
            self.children.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_lists_round_trip_and_reasons_stay_on_one_line() {
        let kids = vec![
            FlowChild {
                queue: "images".into(),
                id: "01A".into(),
            },
            FlowChild {
                queue: "texts#3".into(),
                id: "01B".into(),
            },
        ];
        assert_eq!(
            FlowLinks::decode_children(&FlowLinks::encode_children(&kids)),
            kids
        );
        let failed = vec![FailedChild {
            child: kids[1].clone(),
            reason: "model\nrefused\tit".into(),
        }];
        let back = FlowLinks::decode_failed(&FlowLinks::encode_failed(&failed));
        assert_eq!(back[0].child, kids[1]);
        assert_eq!(back[0].reason, "model refused it");
        assert!(FlowLinks::decode_children("no tab here\n").is_empty());
    }
}
