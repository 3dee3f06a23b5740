//! Connections: reconnecting multiplexed connections for the data path (enqueue, fetch, ack),
//! a `deadpool-redis` pool for occasional control commands, and consumer-group creation.
//!
//! The data path does not use the pool: `deadpool-redis` pings every connection it hands out,
//! which would add a round trip to every ack flush. A [`ConnectionManager`] is one multiplexed
//! connection that reconnects by itself; concurrent commands on it are pipelined. Against a
//! Redis Cluster the same roles are played by cluster connections ([`Conn::Cluster`]).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Client, FromRedisValue, Value,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

use crate::{
    config::TlsOptions,
    error::{Error, Result},
};

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

/// The TLS certificates of `tls` for `url`, `None` when `tls` is empty.
fn tls_certificates(url: &str, tls: &TlsOptions) -> Result<Option<redis::TlsCertificates>> {
    if tls.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("rediss://") || url.starts_with("rediss+cluster://")) {
        return Err(Error::Config(format!(
            "TLS settings (CA file, client certificate) were given, but the redis url {} is \
             not rediss://: use rediss://host:port/ for a Redis with TLS",
            redact_url(url)
        )));
    }
    let root_cert = match &tls.ca_file {
        Some(path) => {
            let pem = read_pem("CA file", path)?;
            check_certificates("CA file", path, &pem)?;
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let client_cert = read_pem("client certificate", cert)?;
            check_certificates("client certificate", cert, &client_cert)?;
            let client_key = read_pem("client key", key)?;
            if let Err(e) = PrivateKeyDer::from_pem_slice(&client_key) {
                return Err(Error::Config(format!(
                    "the TLS client key {} holds no PEM private key: {e}",
                    key.display()
                )));
            }
            Some(redis::ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "a TLS client certificate needs its private key and a key its certificate: \
                 set both (client_cert and client_key, --tls-cert and --tls-key, MQ_TLS_CERT \
                 and MQ_TLS_KEY)"
                    .into(),
            ))
        }
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

/// Fails unless `pem` holds at least one certificate and nothing malformed.
fn check_certificates(what: &str, path: &Path, pem: &[u8]) -> Result<()> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| {
            Error::Config(format!(
                "the TLS {what} {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::Config(format!(
            "the TLS {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(())
}

pub use crate::error::TlsError;

impl TlsError {
    /// The TLS failure behind `e` on a connection of `client`, if there is one.
    fn from_redis(endpoint: &Endpoint, e: &redis::RedisError) -> Option<Self> {
        let client = endpoint.node_client(0);
        use rustls::{AlertDescription as A, CertificateError as C, Error as R};
        let tls = find_rustls_error(e)?;
        let (host, server) = match client.get_connection_info().addr() {
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                (host.clone(), format!("{host}:{port}"))
            }
            other => (String::new(), other.to_string()),
        };
        Some(match tls {
            R::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
                TlsError::UnknownAuthority { server }
            }
            R::InvalidCertificate(c @ (C::NotValidForName | C::NotValidForNameContext { .. })) => {
                TlsError::HostNameMismatch {
                    server,
                    host,
                    detail: c.to_string(),
                }
            }
            R::InvalidCertificate(
                c @ (C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. }),
            ) => TlsError::NotValidNow {
                server,
                detail: c.to_string(),
            },
            R::AlertReceived(
                A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::HandshakeFailure
                | A::AccessDenied,
            ) => TlsError::ClientRejected {
                server,
                detail: tls.to_string(),
            },
            other => TlsError::Handshake {
                server,
                detail: other.to_string(),
            },
        })
    }
}

/// The rustls error in `e`'s chain. The redis crate keeps an I/O error in an
/// `Arc<dyn Error>`, and `io::Error::source` skips the error it wraps, so both are looked into.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(tls) = find_rustls_error(inner) {
                return Some(tls);
            }
        }
        if let Some(inner) = err.downcast_ref::<Shared>() {
            if let Some(tls) = find_rustls_error(&**inner) {
                return Some(tls);
            }
        }
        next = err.source();
    }
    None
}

/// The error of a failed connect to `endpoint`: [`Error::Tls`] for a TLS failure (not worth a
/// retry), [`Error::Redis`] otherwise.
pub(crate) fn connect_error(endpoint: &Endpoint, e: redis::RedisError) -> Error {
    match TlsError::from_redis(endpoint, &e) {
        Some(tls) => Error::Tls(tls),
        None => Error::Redis {
            op: "connect",
            source: e,
        },
    }
}

pub use crate::config::redact_url;

/// Whether `e` is the kind of error a Redis that is starting, restarting, loading its data,
/// running a long script, failing over or briefly unreachable gives: worth waiting for,
/// unlike a refused command.
pub(crate) fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY")
        )
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `limit` has passed since
/// `started`, backing off between attempts and logging each wait. Used at start-up, so that a
/// worker started a moment before Redis (or while it loads its data) waits instead of dying.
pub(crate) async fn retry_transient<T, F, Fut>(
    what: &'static str,
    started: Instant,
    limit: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut failures = 0u32;
    loop {
        match op().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(what, "redis is reachable again");
                }
                return Ok(v);
            }
            Err(e) if is_transient_error(&e) && started.elapsed() < limit => {
                let delay = crate::retry::error_backoff(failures)
                    .min(limit.saturating_sub(started.elapsed()));
                failures += 1;
                tracing::warn!(what, error = %crate::error::chain(&e), retry_in = ?delay, waited = ?started.elapsed(), limit = ?limit, "waiting for redis");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient_error(e: &Error) -> bool {
    match e {
        Error::Redis { source, .. } => is_transient(source),
        Error::Pool(deadpool_redis::PoolError::Backend(e)) => is_transient(e),
        Error::Pool(deadpool_redis::PoolError::Timeout(_)) => true,
        _ => false,
    }
}

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
                .map_err(|e| connect_error(endpoint, e))
        }
        Endpoint::Cluster { client, .. } => {
            let config = redis::cluster::ClusterConfig::new()
                .set_response_timeout(response_timeout)
                .set_connection_timeout(CONNECT_TIMEOUT);
            client
                .get_async_connection_with_config(config)
                .await
                .map(Conn::Cluster)
                .map_err(|e| connect_error(endpoint, e))
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

/// Creates consumer group `group` on `stream` (and the stream) if missing, in one script that
/// first checks the stream has no other group: mq deletes done entries, so a second group would
/// lose every entry the first one finishes before it reads it (and both would share `delayed`
/// and `dead`). Safe to call from many workers at once. The group starts at id 0 so tasks
/// enqueued before the first worker started are delivered.
///
/// # Errors
///
/// [`Error::Config`] if the stream has another group, [`Error::Redis`] otherwise.
pub(crate) async fn ensure_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> Result<()> {
    let r: redis::RedisResult<Vec<String>> = crate::redis::scripts::ENSURE_GROUP
        .key(stream)
        .arg(group)
        .invoke_async(conn)
        .await;
    match r {
        Ok(others) if others.is_empty() => Ok(()),
        Ok(others) => Err(Error::Config(format!(
            "{stream} already has the consumer group(s) {others:?}, not {group:?}: mq runs one \
             group per queue (done entries are deleted, so a second group would miss tasks); \
             use the same group name everywhere, or delete the old group with \
             `XGROUP DESTROY {stream} <name>` once it has nothing pending"
        ))),
        Err(e) => Err(Error::Redis {
            op: "XGROUP CREATE",
            source: e,
        }),
    }
}

/// Reads `maxmemory-policy` (from `INFO memory`, which managed services allow where they
/// refuse `CONFIG`) and refuses the `allkeys-*` policies: such a Redis (one shared with a
/// cache, say) silently drops whole streams and delayed sets, and with them tasks.
/// `noeviction` and the `volatile-*` policies (they evict only keys with a TTL, and mq's
/// streams and sets have none) pass.
///
/// # Errors
///
/// [`Error::Config`] for an evicting policy or when the policy cannot be read (the message
/// says how to allow `INFO` or opt out), [`Error::Redis`] for other failures.
pub(crate) async fn check_eviction_policy(conn: &mut Conn) -> Result<()> {
    // Every primary of a cluster: each holds some queues.
    let infos = match conn
        .on_every_primary(redis::cmd("INFO").arg("memory"))
        .await
    {
        Ok(i) => i,
        Err(e) if e.code() == Some("NOPERM") => {
            return Err(Error::Config(format!(
                "cannot check that redis does not evict keys ({e}): allow the user `INFO` \
                 (`+info`), or opt out of the check (allow_eviction) if you know the policy"
            )))
        }
        Err(e) => return Err(Error::redis("INFO memory")(e)),
    };
    for (node, info) in infos {
        let info =
            String::from_redis_value(info).map_err(|e| Error::redis("INFO memory")(e.into()))?;
        let node = if node.is_empty() {
            String::new()
        } else {
            format!(" (node {node})")
        };
        let Some(policy) = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
        else {
            return Err(Error::Config(format!(
                "cannot check that redis{node} does not evict keys: `INFO memory` has no \
                 maxmemory_policy; opt out of the check (allow_eviction) if you know the policy"
            )));
        };
        // `volatile-*` policies evict only keys with a TTL; mq's streams and sets have none.
        if policy == "noeviction" || policy.starts_with("volatile-") {
            continue;
        }
        return Err(Error::Config(format!(
            "redis{node} runs with maxmemory-policy {policy}: it may evict mq's streams and \
             delayed sets when memory runs short, and the tasks in them are lost without a \
             trace. Set `maxmemory-policy noeviction` (CONFIG SET, or redis.conf), use a Redis \
             of its own for mq, or opt out of this check with allow_eviction(true) if you \
             accept losing tasks"
        )));
    }
    Ok(())
}

/// Whether `e` is `READONLY`: the connection reaches a replica, typically an old primary
/// after a failover behind the same address (DNS name, virtual IP, proxy).
pub(crate) fn is_readonly(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// After a failover, a connection still open to the old primary answers every write with
/// `READONLY`, and [`ConnectionManager`] reconnects only on I/O errors. If `e` is such an
/// error, this closes the connection (`QUIT`), so the next command reconnects and reaches
/// whatever now answers at the address. Otherwise it does nothing. At most one `QUIT` per
/// [`READONLY_QUIT_INTERVAL`] in the process: many tasks failing at once must not close the
/// fresh connection again (the others retry with backoff and get their turn).
pub(crate) async fn reconnect_if_readonly(conn: &Conn, e: &redis::RedisError) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_QUIT_MS: AtomicU64 = AtomicU64::new(0);
    // A cluster connection follows `MOVED` and refreshes its slot map by itself.
    let Conn::Single(conn) = conn else { return };
    if !is_readonly(e) {
        return;
    }
    let now = crate::envelope::now_ms();
    let last = LAST_QUIT_MS.load(Ordering::Relaxed);
    let interval = READONLY_QUIT_INTERVAL.as_millis() as u64;
    if now.saturating_sub(last) < interval
        || LAST_QUIT_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    tracing::warn!("redis answered READONLY (a replica: failover?); reconnecting");
    let _: redis::RedisResult<redis::Value> =
        redis::cmd("QUIT").query_async(&mut conn.clone()).await;
}

/// Shortest time between two `QUIT`s of [`reconnect_if_readonly`]: 500 ms.
pub(crate) const READONLY_QUIT_INTERVAL: Duration = Duration::from_millis(500);

/// A pooled connection that answered `READONLY` (see [`reconnect_if_readonly`]) is taken out
/// of the pool and closed: the pool checks connections only with `PING`, which a replica
/// answers, so it would hand the same connection out forever.
pub(crate) fn discard_if_readonly(conn: ControlConn, e: &redis::RedisError) {
    let ControlConn::Pooled(conn) = conn else {
        return;
    };
    if is_readonly(e) {
        tracing::warn!(
            "redis answered READONLY (a replica: failover?); dropping the pooled connection"
        );
        drop(deadpool_redis::Connection::take(conn));
    }
}

/// The server's `(major, minor)` version from `INFO server` (`redis_version`; Valkey reports
/// its Redis-compatible version there too), or `None` if it cannot be read.
///
/// On a cluster: the oldest version among the primaries.
pub(crate) async fn server_version(conn: &mut Conn) -> Option<(u32, u32)> {
    let infos = conn
        .on_every_primary(redis::cmd("INFO").arg("server"))
        .await
        .ok()?;
    let mut oldest: Option<(u32, u32)> = None;
    for (_, info) in infos {
        let v = parse_version(&String::from_redis_value(info).ok()?)?;
        oldest = Some(oldest.map_or(v, |o| o.min(v)));
    }
    oldest
}

fn parse_version(info: &str) -> Option<(u32, u32)> {
    let v = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_info_server() {
        let info = "# Server\r\nredis_version:8.2.1\r\nredis_mode:standalone\r\n";
        assert_eq!(parse_version(info), Some((8, 2)));
        assert_eq!(parse_version("redis_version:7.0.15\r\n"), Some((7, 0)));
        assert_eq!(parse_version("nothing"), None);
    }
}
