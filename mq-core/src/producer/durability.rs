//! What a durable producer waits for ([`Durability`]: `WAIT` or `WAITAOF`), the one round trip
//! that sends a pipeline with its wait, and how far a wait fell short.

use std::time::Duration;

use crate::{error::Error, redis::conn::Conn};

/// Sends `pipe` and, if `durability` is set, its wait as the pipeline's last command, in one
/// round trip. Returns the replies of the `kept` commands not marked `ignore` (none read when
/// `kept` is 0, the plain enqueue) and `Some` if too few replicas confirmed.
pub(super) async fn send(
    mut pipe: redis::Pipeline,
    mut conn: Conn,
    durability: Option<Durability>,
    kept: usize,
) -> redis::RedisResult<(Vec<redis::Value>, Option<Shortfall>)> {
    let Some(durability) = durability else {
        if kept == 0 {
            pipe.query_async::<()>(&mut conn).await?;
            return Ok((Vec::new(), None));
        }
        return Ok((pipe.query_async(&mut conn).await?, None));
    };
    pipe.add_command(durability.command());
    let mut replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
    let wait = replies.pop().unwrap_or(redis::Value::Nil);
    Ok((replies, durability.shortfall(&wait)?))
}

/// What a [durable](super::Producer::durable) producer waits for after each enqueue round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `WAIT replicas timeout`: that many replicas received the writes (in memory). Set with
    /// [`Producer::durable`](super::Producer::durable).
    Replicas {
        /// Replicas that must confirm.
        replicas: u32,
        /// Longest wait.
        timeout: Duration,
    },
    /// `WAITAOF local replicas timeout` (Redis 7.2+): the writes are fsynced to the AOF of
    /// the primary (if `local`) and of that many replicas. Set with
    /// [`Producer::durable_aof`](super::Producer::durable_aof).
    Aof {
        /// Whether the primary must fsync its own AOF.
        local: bool,
        /// Replicas that must fsync their AOF.
        replicas: u32,
        /// Longest wait.
        timeout: Duration,
    },
}

impl Durability {
    /// The `WAIT` or `WAITAOF` command.
    fn command(self) -> redis::Cmd {
        match self {
            Durability::Replicas { replicas, timeout } => {
                let mut cmd = redis::cmd("WAIT");
                cmd.arg(replicas).arg(timeout.as_millis() as u64);
                cmd
            }
            Durability::Aof {
                local,
                replicas,
                timeout,
            } => {
                let mut cmd = redis::cmd("WAITAOF");
                cmd.arg(u32::from(local))
                    .arg(replicas)
                    .arg(timeout.as_millis() as u64);
                cmd
            }
        }
    }

    /// How far the reply to [`command`](Self::command) falls short of what was asked, if it
    /// does: `WAIT` answers the number of replicas that confirmed, `WAITAOF` `[local,
    /// replicas]` (local 1 if the primary fsynced).
    fn shortfall(self, reply: &redis::Value) -> redis::RedisResult<Option<Shortfall>> {
        use redis::Value::{Array, Int};
        let count = |n: i64| u32::try_from(n).unwrap_or(0);
        let (wanted, acked_by, local_missing) = match (self, reply) {
            (Durability::Replicas { replicas, .. }, Int(n)) => (replicas, count(*n), false),
            (
                Durability::Aof {
                    local, replicas, ..
                },
                Array(v),
            ) => match v.as_slice() {
                [Int(l), Int(r)] => (replicas, count(*r), local && *l < 1),
                _ => return Err(unexpected(reply)),
            },
            _ => return Err(unexpected(reply)),
        };
        Ok((acked_by < wanted || local_missing).then_some(Shortfall {
            acked_by,
            wanted,
            local_missing,
        }))
    }
}

fn unexpected(reply: &redis::Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply to WAIT/WAITAOF",
        format!("{reply:?}"),
    ))
}

/// A durability wait that fell short: the fields of [`Error::NotDurable`] but the ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shortfall {
    acked_by: u32,
    wanted: u32,
    local_missing: bool,
}

impl Shortfall {
    /// The worse of two outcomes (fewest replicas; local fsync missing in either).
    pub(super) fn worst(a: Option<Shortfall>, b: Option<Shortfall>) -> Option<Shortfall> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Shortfall {
                acked_by: a.acked_by.min(b.acked_by),
                wanted: a.wanted,
                local_missing: a.local_missing || b.local_missing,
            }),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn into_error(self, ids: Vec<String>) -> Error {
        Error::NotDurable {
            ids,
            acked_by: self.acked_by,
            wanted: self.wanted,
            local_missing: self.local_missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value::{Array, Int};

    fn args(cmd: &redis::Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<other>".into(),
            })
            .collect()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn wait_and_waitaof_commands() {
        let wait = Durability::Replicas {
            replicas: 2,
            timeout: SECOND,
        };
        assert_eq!(args(&wait.command()), ["WAIT", "2", "1000"]);
        let aof = Durability::Aof {
            local: true,
            replicas: 1,
            timeout: Duration::from_millis(250),
        };
        assert_eq!(args(&aof.command()), ["WAITAOF", "1", "1", "250"]);
    }

    #[test]
    fn wait_replies_below_the_replicas_asked_fall_short() {
        let wait = Durability::Replicas {
            replicas: 2,
            timeout: SECOND,
        };
        assert_eq!(wait.shortfall(&Int(2)).unwrap(), None);
        assert_eq!(wait.shortfall(&Int(3)).unwrap(), None);
        assert_eq!(
            wait.shortfall(&Int(1)).unwrap(),
            Some(Shortfall {
                acked_by: 1,
                wanted: 2,
                local_missing: false
            })
        );
        assert!(wait.shortfall(&Array(vec![Int(1), Int(2)])).is_err());
    }

    /// The test servers are Redis 7.0, without `WAITAOF`: its replies are checked here only.
    #[test]
    fn waitaof_replies_check_the_local_fsync_and_the_replicas() {
        let aof = |local, replicas| Durability::Aof {
            local,
            replicas,
            timeout: SECOND,
        };
        let reply = |l, r| Array(vec![Int(l), Int(r)]);
        assert_eq!(aof(true, 1).shortfall(&reply(1, 1)).unwrap(), None);
        assert_eq!(aof(false, 1).shortfall(&reply(0, 1)).unwrap(), None);
        assert_eq!(aof(true, 0).shortfall(&reply(1, 0)).unwrap(), None);
        assert_eq!(
            aof(true, 1).shortfall(&reply(0, 1)).unwrap(),
            Some(Shortfall {
                acked_by: 1,
                wanted: 1,
                local_missing: true
            })
        );
        assert_eq!(
            aof(false, 2).shortfall(&reply(1, 1)).unwrap(),
            Some(Shortfall {
                acked_by: 1,
                wanted: 2,
                local_missing: false
            })
        );
        assert!(aof(true, 1).shortfall(&Int(1)).is_err());
    }

    #[test]
    fn the_worst_shortfall_of_a_call_is_reported() {
        let s = |acked_by, local_missing| {
            Some(Shortfall {
                acked_by,
                wanted: 2,
                local_missing,
            })
        };
        assert_eq!(Shortfall::worst(None, None), None);
        assert_eq!(Shortfall::worst(None, s(1, false)), s(1, false));
        assert_eq!(Shortfall::worst(s(1, false), s(0, true)), s(0, true));
        assert_eq!(Shortfall::worst(s(0, false), s(1, true)), s(0, true));
    }

    #[test]
    fn not_durable_says_the_tasks_are_enqueued() {
        let e = Shortfall {
            acked_by: 0,
            wanted: 1,
            local_missing: true,
        }
        .into_error(vec!["a".into(), "b".into()]);
        assert_eq!(
            e.to_string(),
            "2 task(s) enqueued on the primary but confirmed by 0 of 1 replica(s) and not \
             fsynced to the primary's AOF in time: they may be lost in a failover"
        );
    }
}
