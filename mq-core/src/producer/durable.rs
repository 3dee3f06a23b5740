//! Durable producers: [`Producer::durable`] (`WAIT`) and [`Producer::durable_aof`]
//! (`WAITAOF`), their timeout's bounds.

use std::time::Duration;

use crate::error::{Error, Result};

use super::{client::Producer, durability::Durability};

/// Longest wait of a durable producer ([`Producer::durable`]) for its replicas: 5 s. A `WAIT`
/// blocks the producer's connection on the server, and every reply must come within the
/// connection's 10 s response timeout, concurrent enqueues queued behind the wait included.
pub const MAX_DURABLE_TIMEOUT: Duration = Duration::from_secs(5);

impl Producer {
    /// Makes every enqueue wait until `replicas` replicas have received its writes, or
    /// `timeout` has passed: each enqueue round trip (one task, or one pipeline of
    /// [`ENQUEUE_BATCH`] tasks) carries a `WAIT replicas timeout` after its writes, in the same
    /// pipeline, so it costs the wait and no extra round trip. When fewer replicas confirm in
    /// time, the call returns [`Error::NotDurable`]: the tasks ARE enqueued on the primary but
    /// may be lost in a failover. `replicas == 0` turns it off (no `WAIT` is sent, the
    /// default).
    ///
    /// Without it, an enqueue returns once the primary has the task; Redis replicates
    /// asynchronously, so a primary that fails in the next moments (typically under a
    /// millisecond, longer when a replica lags) takes the task with it when a replica is
    /// promoted. Even with it, a replica holds the task in memory only, and `WAIT` does not
    /// stop a failover from promoting a replica that missed it (Redis docs: `WAIT` makes
    /// loss unlikely, not impossible); see [`durable_aof`](Self::durable_aof) for fsync.
    ///
    /// A `WAIT` blocks the producer's connection on the server until it returns: concurrent
    /// enqueues on one producer (and its clones) take turns, each paying a replica round trip.
    /// For throughput, enqueue in batches ([`enqueue_many`](Self::enqueue_many): one wait per
    /// batch) or use several producers.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `timeout` is zero (to Redis, wait forever) or over
    /// [`MAX_DURABLE_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, mq_core::Task)]
    /// # struct Charge { order: u64 }
    /// # async fn demo() -> mq_core::Result<()> {
    /// use std::time::Duration;
    /// let producer = mq_core::Producer::connect("redis://primary:6379/")
    ///     .await?
    ///     .durable(1, Duration::from_millis(500))?;
    /// match producer.enqueue(Charge { order: 7 }).await {
    ///     Ok(id) => println!("{id} is on the primary and a replica"),
    ///     Err(mq_core::Error::NotDurable { ids, .. }) => {
    ///         // Enqueued, but a failover now could lose it: retry (a duplicate is possible),
    ///         // or alert and go on.
    ///         eprintln!("{ids:?} not replicated in time");
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// [`ENQUEUE_BATCH`]: super::ENQUEUE_BATCH
    pub fn durable(mut self, replicas: u32, timeout: Duration) -> Result<Self> {
        check_durable_timeout(timeout)?;
        self.durability = (replicas > 0).then_some(Durability::Replicas { replicas, timeout });
        Ok(self)
    }

    /// As [`durable`](Self::durable), with `WAITAOF` (Redis 7.2+) instead of `WAIT`: every
    /// enqueue waits until its writes are fsynced to the primary's append-only file (if
    /// `local`) and to the AOF of `replicas` replicas, or `timeout` has passed, and returns
    /// [`Error::NotDurable`] if they were not. Survives a power loss of the primary (with
    /// `local`) or of all but the confirming replicas, where [`durable`](Self::durable) only
    /// says the replicas have the writes in memory. Needs `appendonly yes` on the servers
    /// that must fsync (Redis answers an error otherwise). `durable_aof(false, 0, ..)` turns
    /// durability off.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server (its version read at connect) is older than 7.2 or
    /// its version could not be read, or for a timeout as in [`durable`](Self::durable).
    pub fn durable_aof(mut self, local: bool, replicas: u32, timeout: Duration) -> Result<Self> {
        check_durable_timeout(timeout)?;
        match self.server_version {
            Some(v) if v >= (7, 2) => {}
            Some((major, minor)) => {
                return Err(Error::Config(format!(
                    "durable_aof needs WAITAOF (Redis 7.2+); the server is {major}.{minor}: use \
                     durable(replicas, timeout) (WAIT) instead"
                )))
            }
            None => {
                return Err(Error::Config(
                    "durable_aof needs WAITAOF (Redis 7.2+), and the server's version could not \
                     be read from `INFO server`: allow the user `INFO`, or use durable(..)"
                        .into(),
                ))
            }
        }
        self.durability = (local || replicas > 0).then_some(Durability::Aof {
            local,
            replicas,
            timeout,
        });
        Ok(self)
    }

    /// What this producer waits for after each enqueue, if anything.
    pub fn durability(&self) -> Option<Durability> {
        self.durability
    }
}

fn check_durable_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > MAX_DURABLE_TIMEOUT {
        return Err(Error::Config(format!(
            "durable timeout {timeout:?} must be over zero (Redis reads 0 as wait forever) and \
             at most {MAX_DURABLE_TIMEOUT:?}"
        )));
    }
    Ok(())
}
