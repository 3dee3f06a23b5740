//! Connections: reconnecting multiplexed connections for the data path (enqueue, fetch, ack),
//! a `deadpool-redis` pool for occasional control commands, and consumer-group creation.
//!
//! The data path does not use the pool: `deadpool-redis` pings every connection it hands out,
//! which would add a round trip to every ack flush. A [`ConnectionManager`] is one multiplexed
//! connection that reconnects by itself; concurrent commands on it are pipelined. Against a
//! Redis Cluster the same roles are played by cluster connections ([`Conn::Cluster`]).

use super::tls::{connect_error, tls_certificates};
use crate::{
    config::TlsOptions,
    error::{Error, Result},
};
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Client, FromRedisValue, Value,
};
use std::time::Duration;

/// Response timeout for short commands: 10 s (generous: AOF `appendfsync always` under load).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection timeout: 2 s.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where mq's connections go: one Redis server (`redis://`, `rediss://`), or a Redis Cluster
/// (`redis+cluster://host:port,host:port/`, `rediss+cluster://...`: the seed nodes, any of
/// them enough to find the others).
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per worker or producer
pub(crate) enum Endpoint {
    /// One server.
    Single(Client),
    /// A cluster.
    Cluster {
        /// The cluster client (it finds every node from the seeds and follows MOVED / ASK).
        client: ClusterClient,
        /// One plain client per seed node, for what the cluster client cannot do: a Pub/Sub
        /// subscription (`PUBLISH` reaches every node of a cluster, so any node will do).
        seeds: Vec<Client>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Single(c) => write!(f, "Single({})", c.get_connection_info().addr()),
            Endpoint::Cluster { seeds, .. } => write!(f, "Cluster({} seeds)", seeds.len()),
        }
    }
}

/// The seed URLs of a cluster URL (`redis+cluster://[user:pass@]h1:p1,h2:p2/`, or
/// `rediss+cluster://` for TLS): `redis://[user:pass@]h1:p1/`, ... `None` if `url` is not a
/// cluster URL.
///
/// ```
/// use mq_core::redis::conn::cluster_seeds;
/// assert_eq!(
///     cluster_seeds("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001/").unwrap(),
///     vec!["redis://app:pw@10.0.0.1:7000/", "redis://app:pw@10.0.0.2:7001/"]
/// );
/// assert_eq!(
///     cluster_seeds("rediss+cluster://h:6380").unwrap(),
///     vec!["rediss://h:6380/"]
/// );
/// assert!(cluster_seeds("redis://h:6379/").is_none());
/// ```
pub fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else {
        ("rediss", url.strip_prefix("rediss+cluster://")?)
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (creds, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{creds}{h}/"))
            .collect(),
    )
}

impl Endpoint {
    /// Opens `url` with the TLS settings `tls`, with a clear error for a bad URL (its password
    /// redacted), TLS settings with a `redis://` URL, or an unreadable or empty PEM file. Every
    /// connection mq makes (data, fetch, lease, pool, Pub/Sub, the metrics sampler) comes from
    /// it, so all of them use TLS for a `rediss://` URL.
    pub(crate) fn open(url: &str, tls: &TlsOptions) -> Result<Self> {
        let bad_url =
            |e: redis::RedisError| Error::Config(format!("bad redis url {}: {e}", redact_url(url)));
        let certs = tls_certificates(url, tls)?;
        let Some(seeds) = cluster_seeds(url) else {
            return match certs {
                None => Client::open(url).map_err(bad_url),
                Some(certs) => Client::build_with_tls(url, certs).map_err(bad_url),
            }
            .map(Endpoint::Single);
        };
        if seeds.is_empty() {
            return Err(Error::Config(format!(
                "bad redis url {}: a cluster url names at least one node \
                 (redis+cluster://host:port,host:port/)",
                redact_url(url)
            )));
        }
        let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(COMMAND_TIMEOUT)
            // Each connection sets its own response timeout (`managed`): a fetcher's blocking
            // reads need longer than 10 s. The builder's would also bound every request overall.
            .overall_response_timeout(None);
        let mut clients = Vec::new();
        for seed in &seeds {
            clients.push(match &certs {
                None => Client::open(seed.as_str()).map_err(bad_url)?,
                Some(certs) => {
                    Client::build_with_tls(seed.as_str(), certs.clone()).map_err(bad_url)?
                }
            });
        }
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        let client = builder.build().map_err(bad_url)?;
        Ok(Endpoint::Cluster {
            client,
            seeds: clients,
        })
    }

    /// A plain client of one server: the server, or the `n`-th seed of a cluster (modulo
    /// their number), for a Pub/Sub subscription.
    pub(crate) fn node_client(&self, n: usize) -> &Client {
        match self {
            Endpoint::Single(c) => c,
            Endpoint::Cluster { seeds, .. } => &seeds[n % seeds.len()],
        }
    }
}

pub use crate::error::TlsError;

pub use crate::config::redact_url;

/// A connection to Redis or to a Redis Cluster, cheap to clone (clones share it), usable
/// wherever the `redis` crate takes an [`ConnectionLike`](redis::aio::ConnectionLike).
///
/// For one server it is a [`ConnectionManager`]: one multiplexed connection that reconnects
/// by itself. For a cluster it is the `redis` crate's
/// [`ClusterConnection`]: one multiplexed connection
/// per primary, each command routed by its key's slot, `MOVED` / `ASK` followed and the slot map
/// refreshed after a failover or a resharding. A pipeline sent to a cluster must keep to one
/// slot (mq's pipelines touch one queue, whose keys share a hash tag).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Connects to `url` (`redis://`, `rediss://`, or a cluster's `redis+cluster://h1:p1,h2:p2/`)
    /// with the default timeouts (connect 2 s, response 10 s) and no TLS settings beyond the URL.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL, [`Error::Tls`] or [`Error::Redis`] when it cannot
    /// connect.
    pub async fn connect(url: &str) -> Result<Self> {
        managed(
            &Endpoint::open(url, &TlsOptions::default())?,
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Runs `cmd`, which names no key (`CLIENT ID`, `WAIT`, `INFO`), on the primary that serves
    /// `key`'s slot. The same as an ordinary query on one server.
    pub(crate) async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(hash_slot(key.as_bytes()), SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                redis::FromRedisValue::from_redis_value(v).map_err(Into::into)
            }
        }
    }

    /// The keys matching `pattern` of type `kind` (`SCAN ... MATCH pattern COUNT 1000 TYPE
    /// kind`), on every primary of a cluster, possibly with duplicates, in at most
    /// `max_calls` `SCAN` calls per node; `true` with them if every node's walk ended (all
    /// keys found), `false` if the cap cut one short.
    pub(crate) async fn scan_keys(
        &mut self,
        pattern: &str,
        kind: &str,
        max_calls: usize,
    ) -> redis::RedisResult<(Vec<String>, bool)> {
        let nodes: Vec<String> = match self {
            Conn::Single(_) => vec![String::new()],
            Conn::Cluster(_) => self
                .on_every_primary(&redis::cmd("PING"))
                .await?
                .into_iter()
                .map(|(addr, _)| addr)
                .collect(),
        };
        let mut found = Vec::new();
        let mut complete = true;
        for node in nodes {
            let mut cursor = 0u64;
            for call in 1.. {
                if call > max_calls {
                    complete = false;
                    break;
                }
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .arg("TYPE")
                    .arg(kind);
                let (next, keys): (u64, Vec<String>) = match self {
                    Conn::Single(c) => scan.query_async(c).await?,
                    Conn::Cluster(c) => {
                        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                        let (host, port) = node.rsplit_once(':').unwrap_or((&node, ""));
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.to_owned(),
                            port: port.parse().unwrap_or(6379),
                        });
                        let v = c.route_command(scan, routing).await?;
                        FromRedisValue::from_redis_value(v)?
                    }
                };
                found.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok((found, complete))
    }

    /// Runs `cmds`, whose keys may lie in different slots, in one round trip and returns
    /// their replies in order: a pipeline on one server; on a cluster, concurrent commands
    /// (each node's connection pipelines those it gets).
    pub(crate) async fn query_all(&self, cmds: Vec<redis::Cmd>) -> redis::RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async(&mut c.clone()).await
            }
            Conn::Cluster(c) => {
                futures::future::try_join_all(cmds.into_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                }))
                .await
            }
        }
    }

    /// Runs `cmd` on every primary and returns each one's reply, with the primary's address
    /// (on one server: one reply, address `""`).
    pub(crate) async fn on_every_primary(
        &mut self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<Vec<(String, Value)>> {
        match self {
            Conn::Single(c) => Ok(vec![(String::new(), cmd.query_async(c).await?)]),
            Conn::Cluster(c) => {
                use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                    )
                    .await?;
                let Value::Map(replies) = v else {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "unexpected reply from every primary",
                        format!("{v:?}"),
                    )));
                };
                replies
                    .into_iter()
                    .map(|(addr, reply)| {
                        let addr = String::from_redis_value(addr)?;
                        match reply {
                            Value::ServerError(e) => Err(e.into()),
                            reply => Ok((addr, reply)),
                        }
                    })
                    .collect()
            }
        }
    }
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the
/// first `{` and the next `}`, if not empty) or of the whole key, modulo 16384.
///
/// ```
/// use mq_core::redis::conn::hash_slot;
/// assert_eq!(hash_slot(b"foo"), 12182);
/// assert_eq!(hash_slot(b"mq:{images}:stream"), hash_slot(b"images"));
/// assert_eq!(hash_slot(b"a{}b"), hash_slot(b"a{}b"));
/// ```
pub fn hash_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

/// A reconnecting connection to `endpoint` whose responses may take up to `response_timeout`.
pub(crate) async fn managed(endpoint: &Endpoint, response_timeout: Duration) -> Result<Conn> {
    match endpoint {
        Endpoint::Single(client) => {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(2))
                .set_number_of_retries(3);
            ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map(Conn::Single)
                .map_err(|e| connect_error(endpoint.node_client(0).get_connection_info().addr(), e))
        }
        Endpoint::Cluster { client, .. } => {
            let config = redis::cluster::ClusterConfig::new()
                .set_response_timeout(response_timeout)
                .set_connection_timeout(CONNECT_TIMEOUT);
            client
                .get_async_connection_with_config(config)
                .await
                .map(Conn::Cluster)
                .map_err(|e| connect_error(endpoint.node_client(0).get_connection_info().addr(), e))
        }
    }
}

/// Connections for control commands (promote, reap, registry, admin): a `deadpool-redis` pool
/// for one server; for a cluster, a cluster connection of their own (it is multiplexed).
#[derive(Clone)]
pub(crate) enum Control {
    Pool(deadpool_redis::Pool),
    Cluster(ClusterConnection),
}

/// A connection taken from [`Control`].
pub(crate) enum ControlConn {
    Pooled(deadpool_redis::Connection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for ControlConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            ControlConn::Pooled(c) => c.req_packed_command(cmd),
            ControlConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            ControlConn::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            ControlConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            ControlConn::Pooled(c) => c.get_db(),
            ControlConn::Cluster(c) => c.get_db(),
        }
    }
}

impl Control {
    /// A connection for a control command.
    pub(crate) async fn get(&self) -> Result<ControlConn> {
        match self {
            Control::Pool(p) => p.get().await.map(ControlConn::Pooled).map_err(Error::Pool),
            Control::Cluster(c) => Ok(ControlConn::Cluster(c.clone())),
        }
    }
}

/// Connections for control commands to `endpoint`: a pool of at most `size` for one server
/// (made like `endpoint`'s client: same address, credentials and TLS settings).
pub(crate) async fn pool(endpoint: &Endpoint, size: usize) -> Result<Control> {
    let client = match endpoint {
        Endpoint::Single(client) => client,
        Endpoint::Cluster { .. } => {
            return match managed(endpoint, COMMAND_TIMEOUT).await? {
                Conn::Cluster(c) => Ok(Control::Cluster(c)),
                Conn::Single(_) => unreachable!("a cluster endpoint makes cluster connections"),
            }
        }
    };
    let conn_config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let manager =
        deadpool_redis::Manager::new_with_config(client.get_connection_info().clone(), conn_config)
            .map_err(|e| Error::Config(format!("cannot build connection pool: {e}")))?;
    deadpool_redis::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .wait_timeout(Some(COMMAND_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map(Control::Pool)
        .map_err(|e| Error::Config(format!("cannot build connection pool: {e}")))
}
