//! Test harness for mq's integration tests: a real `redis-server` per test on a free loopback
//! port (stopped when the test ends, passed or failed), example binaries run as child
//! processes, and bounded waiting.
//!
//! Suites written against [`server()`] run on the topology [`TOPOLOGY_ENV`]
//! (`MQ_TEST_TOPOLOGY`) names: one server (unset or `single`) or a local Redis Cluster of
//! three masters and three replicas (`cluster`). The same test code runs on both.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

pub use mq_core::redis::conn::Conn;
pub use mq_examples::{LocalCluster, LocalRedis};

pub mod tls;

/// Starts a fresh `redis-server` for one test.
///
/// # Panics
///
/// If `redis-server` is missing or does not start: the message says how to install it.
pub fn redis() -> LocalRedis {
    init_logs();
    match LocalRedis::start() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// Starts a `redis-server` with extra arguments.
///
/// # Panics
///
/// As [`redis()`].
pub fn redis_with(args: &[&str]) -> LocalRedis {
    init_logs();
    match LocalRedis::start_with(args) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// Starts a fresh local Redis Cluster (3 masters, 3 replicas) for one test.
///
/// # Panics
///
/// If `redis-server` or `redis-cli` is missing or the cluster does not form in time.
pub fn cluster() -> LocalCluster {
    cluster_with(&[])
}

/// Starts a local Redis Cluster whose nodes get extra arguments.
///
/// # Panics
///
/// As [`cluster()`].
pub fn cluster_with(args: &[&str]) -> LocalCluster {
    init_logs();
    match LocalCluster::start_with(args) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// Sends the runtime's logs to the test output (`RUST_LOG`, default `warn`).
pub fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// The environment variable choosing the topology of [`server()`]: `MQ_TEST_TOPOLOGY`, either
/// `single` (the default) or `cluster`.
pub const TOPOLOGY_ENV: &str = "MQ_TEST_TOPOLOGY";

/// What [`server()`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One `redis-server`.
    Single,
    /// A local Redis Cluster: three masters, three replicas.
    Cluster,
}

/// The topology [`TOPOLOGY_ENV`] names (unset or empty: [`Topology::Single`]).
///
/// # Panics
///
/// If it names something else than `single` or `cluster`.
pub fn topology() -> Topology {
    match std::env::var(TOPOLOGY_ENV).as_deref() {
        Err(_) | Ok("" | "single") => Topology::Single,
        Ok("cluster") => Topology::Cluster,
        Ok(other) => panic!("{TOPOLOGY_ENV}={other:?}: expected `single` or `cluster`"),
    }
}

/// The server of a test on either topology: one `redis-server` or a local Redis Cluster.
#[derive(Debug)]
pub enum TestServer {
    /// One server.
    Single(LocalRedis),
    /// A cluster of three masters and three replicas.
    Cluster(LocalCluster),
}

impl TestServer {
    /// The URL producers, workers, admins and example binaries connect to:
    /// `redis://127.0.0.1:{port}/`, or `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        match self {
            TestServer::Single(r) => r.url(),
            TestServer::Cluster(c) => c.url(),
        }
    }

    /// Which topology this is.
    pub fn topology(&self) -> Topology {
        match self {
            TestServer::Single(_) => Topology::Single,
            TestServer::Cluster(_) => Topology::Cluster,
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        self.topology() == Topology::Cluster
    }

    /// Stops the server: one server is killed (SIGKILL); every node of a cluster is stopped
    /// (SIGTERM, then SIGKILL after 15 s). Data kept on disk (AOF) survives a
    /// [`restart`](Self::restart).
    pub fn stop(&mut self) {
        match self {
            TestServer::Single(r) => r.stop(),
            TestServer::Cluster(c) => c.stop(),
        }
    }

    /// Starts the server (every node of a cluster) again on the same ports and directories
    /// with the same arguments; for a cluster, returns when it is healthy again.
    ///
    /// # Errors
    ///
    /// When a server does not start, or the cluster is not healthy within 30 s.
    pub fn restart(&mut self) -> Result<(), mq_examples::LocalRedisError> {
        match self {
            TestServer::Single(r) => r.restart(),
            TestServer::Cluster(c) => c.restart(),
        }
    }

    /// The `redis://` URL of every server: the one server, or every node of the cluster (for
    /// checks that name no key, e.g. `INFO`, which must then ask each node).
    pub fn node_urls(&self) -> Vec<String> {
        match self {
            TestServer::Single(r) => vec![r.url()],
            TestServer::Cluster(c) => c.node_urls(),
        }
    }
}

/// Starts a fresh server of the [`topology()`] for one test.
///
/// # Panics
///
/// As [`redis()`] and [`cluster()`].
pub fn server() -> TestServer {
    server_with(&[])
}

/// [`server()`] with extra server arguments (given to every node of a cluster).
///
/// # Panics
///
/// As [`server()`].
pub fn server_with(args: &[&str]) -> TestServer {
    match topology() {
        Topology::Single => TestServer::Single(redis_with(args)),
        Topology::Cluster => TestServer::Cluster(cluster_with(args)),
    }
}

/// Anything with a URL mq connects to: a [`LocalRedis`], a [`LocalCluster`], a [`TestServer`].
pub trait HasUrl {
    /// The URL (`redis://...` or `redis+cluster://...`).
    fn url(&self) -> String;
}

impl HasUrl for LocalRedis {
    fn url(&self) -> String {
        LocalRedis::url(self)
    }
}

impl HasUrl for LocalCluster {
    fn url(&self) -> String {
        LocalCluster::url(self)
    }
}

impl HasUrl for TestServer {
    fn url(&self) -> String {
        TestServer::url(self)
    }
}

/// A reconnecting connection to `server`, the one mq itself uses ([`Conn`]): it survives
/// server restarts and, on a cluster, routes each command by its key's slot (10 s response
/// timeout: some checks read hashes of 200,000 fields).
///
/// # Panics
///
/// If it cannot connect.
pub async fn conn(server: &impl HasUrl) -> Conn {
    Conn::connect(&server.url())
        .await
        .expect("connect to test redis")
}

/// Polls `check` every 20 ms until it returns `true`; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The path of an `mq-examples` binary of the same profile as this test, built on first use.
///
/// # Panics
///
/// If the build fails.
pub fn example_bin(name: &str) -> PathBuf {
    workspace_bin("mq-examples", name)
}

/// The path of binary `name` of workspace package `package`, of the same profile as this
/// test, built on first use (e.g. `workspace_bin("mq-cli", "mq")`).
///
/// # Panics
///
/// If the build fails.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // target/{profile}/deps/{test}-{hash} -> target/{profile}
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/profile dir")
        .to_path_buf();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", package, "--bin", name]);
        if profile_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "building binary {name} of {package} failed"
        );
        built.push(name.to_owned());
    }
    profile_dir.join(name)
}

/// A child process killed (SIGKILL) when dropped unless it already exited.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `bin` with `args` and `MQ_REDIS_URL=url`, stderr passed through.
    ///
    /// # Panics
    ///
    /// If the process cannot be spawned.
    pub fn spawn(bin: &PathBuf, url: &str, args: &[&str]) -> Self {
        let child = Command::new(bin)
            .args(args)
            .env("MQ_REDIS_URL", url)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        ChildGuard(child)
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`) with `kill(1)`.
    ///
    /// # Panics
    ///
    /// If `kill` fails.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits up to `timeout` for the process to exit and returns its exit status.
    ///
    /// # Panics
    ///
    /// If it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Number of entries in a stream (`XLEN`).
pub async fn xlen(conn: &mut Conn, key: &str) -> usize {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// Number of pending entries of `group` on `stream` (first element of `XPENDING`).
pub async fn pending(conn: &mut Conn, stream: &str, group: &str) -> usize {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(conn)
        .await
        .expect("XPENDING");
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n as usize,
            _ => 0,
        },
        _ => 0,
    }
}

/// A free loopback port (bound and released; fine for tests).
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET http://{addr}{path}` with a plain HTTP/1.0 request (no chunked replies); returns (status, body).
///
/// # Errors
///
/// Connection or read errors.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A worker running in the background of a test.
#[derive(Debug)]
pub struct RunningWorker {
    token: mq_core::CancellationToken,
    handle: tokio::task::JoinHandle<mq_core::Result<()>>,
}

/// Runs `worker` on the test's runtime until [`RunningWorker::stop`].
pub fn run_worker(worker: mq_core::Worker) -> RunningWorker {
    RunningWorker {
        token: worker.shutdown_token(),
        handle: tokio::spawn(worker.run()),
    }
}

impl RunningWorker {
    /// Cancels the worker and waits (at most 30 s) for a clean, graceful shutdown.
    ///
    /// # Panics
    ///
    /// If it does not stop in time or its run returned an error.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("worker stops in time")
            .expect("worker task")
            .expect("clean shutdown");
    }
}

/// A TCP proxy on a free loopback port that forwards each new connection to its current
/// target; [`SwitchProxy::switch`] changes the target for later connections only, as a
/// DNS name or a virtual IP moves to a new primary in a failover.
#[derive(Debug)]
pub struct SwitchProxy {
    addr: std::net::SocketAddr,
    target: std::sync::Arc<Mutex<std::net::SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl SwitchProxy {
    /// Starts forwarding to `target`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let target = std::sync::Arc::new(Mutex::new(target));
        let t = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap_or_else(|e| e.into_inner());
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        SwitchProxy { addr, target, task }
    }

    /// `redis://127.0.0.1:{port}/` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Sends new connections to `target`; open ones stay where they are.
    pub fn switch(&self, target: std::net::SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every entry of `stream`'s pending entries list for group `mq` (first 1,000): (entry id,
/// consumer, idle ms, deliveries).
///
/// # Panics
///
/// If `XPENDING` fails.
pub async fn pending_rows(conn: &mut Conn, stream: &str) -> Vec<(String, String, u64, u64)> {
    redis::cmd("XPENDING")
        .arg(stream)
        .arg("mq")
        .arg("-")
        .arg("+")
        .arg(1_000)
        .query_async(conn)
        .await
        .expect("XPENDING")
}

/// Creates group `mq` on `stream` (and the stream) at id 0, unless it exists.
///
/// # Panics
///
/// If `XGROUP CREATE` fails otherwise.
pub async fn create_group(conn: &mut Conn, stream: &str) {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("mq")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    if let Err(e) = created {
        assert_eq!(e.code(), Some("BUSYGROUP"), "{e}");
    }
}

/// Reads one new entry of `stream` as `consumer` of group `mq` and leaves it pending, as a
/// worker that died with it would.
///
/// # Panics
///
/// If `XREADGROUP` fails.
pub async fn read_as(conn: &mut Conn, stream: &str, consumer: &str) {
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("mq")
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
}
