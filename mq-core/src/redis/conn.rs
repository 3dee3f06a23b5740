//! Connections: reconnecting multiplexed connections for the data path (enqueue, fetch, ack),
//! a `deadpool-redis` pool for occasional control commands, and consumer-group creation.
//!
//! The data path does not use the pool: `deadpool-redis` pings every connection it hands out,
//! which would add a round trip to every ack flush. A [`ConnectionManager`] is one multiplexed
//! connection that reconnects by itself; concurrent commands on it are pipelined.

use std::time::Duration;

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client};

use crate::error::{Error, Result};

/// Response timeout for short commands: 10 s (generous: AOF `appendfsync always` under load).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection timeout: 2 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens a client for `url`, with a clear error for a bad URL.
pub fn client(url: &str) -> Result<Client> {
    Client::open(url).map_err(|e| Error::Config(format!("bad redis url {url:?}: {e}")))
}

/// A reconnecting multiplexed connection whose responses may take up to `response_timeout`.
pub async fn managed(client: &Client, response_timeout: Duration) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(3);
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(Error::redis("connect"))
}

/// A pool of connections for control commands (promote, group creation, admin).
pub fn pool(url: &str, size: usize) -> Result<deadpool_redis::Pool> {
    let conn_config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let manager = deadpool_redis::Manager::new_with_config(url, conn_config)
        .map_err(|e| Error::Config(format!("bad redis url {url:?}: {e}")))?;
    deadpool_redis::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .wait_timeout(Some(COMMAND_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| Error::Config(format!("cannot build connection pool: {e}")))
}

/// Creates consumer group `group` on `stream` (and the stream) if missing. Safe to call from
/// many workers at once: `BUSYGROUP` means another one won. The group starts at id 0 so tasks
/// enqueued before the first worker started are delivered.
pub async fn ensure_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> Result<()> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(Error::Redis {
            op: "XGROUP CREATE",
            source: e,
        }),
    }
}
