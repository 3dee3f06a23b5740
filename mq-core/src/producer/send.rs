//! Sending a producer's pipelines: the queue registry on a queue's first write, the
//! reconnect on `READONLY` (a failover), scripts loaded when Redis lacks them.

use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys},
};

use super::{
    client::Producer,
    durability::{send, Shortfall},
};

impl Producer {
    /// Loads a script (`op` names it in errors).
    pub(super) async fn load_script(&self, script: &redis::Script, op: &'static str) -> Result<()> {
        let _: String = script
            .prepare_invoke()
            .load_async(&mut self.conn.clone())
            .await
            .map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await?;
        Ok(())
    }

    /// Sends one task's pipeline `pipe` for `queue` (see [`send`]) and returns its id.
    pub(super) async fn send_one(
        &self,
        queue: &str,
        pipe: redis::Pipeline,
        op: &'static str,
        id: String,
    ) -> Result<String> {
        let sent = self.send_registering(queue, pipe, 0).await;
        match self.checked(sent.map(|(_, s)| s), op).await? {
            None => Ok(id),
            Some(short) => Err(short.into_error(vec![id])),
        }
    }

    /// [`send`], adding `queue` (its base name, for a partition) to the queue registry
    /// `{prefix}:queues` the first time this producer or a clone writes to it: one `SADD` at
    /// the end of the same pipeline on one server, sent concurrently on a cluster (the
    /// registry lies in another slot, and a cluster pipeline stays in one), so no extra round
    /// trip either way, and nothing at all once the queue is registered.
    pub(super) async fn send_registering(
        &self,
        queue: &str,
        mut pipe: redis::Pipeline,
        kept: usize,
    ) -> redis::RedisResult<(Vec<redis::Value>, Option<Shortfall>)> {
        let queue = keys::base_queue(queue);
        let known = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(queue);
        if known {
            return send(pipe, self.conn.clone(), self.durability, kept).await;
        }
        let mut sadd = redis::cmd("SADD");
        sadd.arg(keys::queues_key(&self.prefix)).arg(queue);
        let sent = match &self.conn {
            Conn::Single(_) => {
                pipe.add_command(sadd).ignore();
                send(pipe, self.conn.clone(), self.durability, kept).await
            }
            Conn::Cluster(_) => {
                let mut conn = self.conn.clone();
                let (sent, added) = futures::future::join(
                    send(pipe, self.conn.clone(), self.durability, kept),
                    sadd.query_async::<()>(&mut conn),
                )
                .await;
                if let Err(e) = added {
                    // The tasks are written; the next write to the queue tries again.
                    tracing::warn!(queue, error = %e, "cannot add the queue to the queue registry");
                    return sent;
                }
                sent
            }
        };
        if sent.is_ok() {
            self.registered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(queue.to_owned());
        }
        sent
    }

    /// The outcome of [`send`] as an mq error ([`Error::Redis`], after a reconnect on
    /// `READONLY`), or how far the confirmation fell short, if it did.
    pub(super) async fn checked(
        &self,
        sent: redis::RedisResult<Option<Shortfall>>,
        op: &'static str,
    ) -> Result<Option<Shortfall>> {
        sent.map_err(Error::redis(op))
            .or_else_readonly(&self.conn)
            .await
    }
}

/// Closes the connection on `READONLY` (a failover behind the same address) so that the next
/// call reconnects to the new primary; the error is returned unchanged.
pub(super) trait ReconnectOnReadonly<T> {
    async fn or_else_readonly(self, conn: &Conn) -> Result<T>;
}

impl<T> ReconnectOnReadonly<T> for Result<T> {
    async fn or_else_readonly(self, conn: &Conn) -> Result<T> {
        if let Err(Error::Redis { source, .. }) = &self {
            crate::redis::transient::reconnect_if_readonly(conn, source).await;
        }
        self
    }
}
