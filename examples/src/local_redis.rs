//! A `redis-server` child process on a free loopback port, stopped when dropped. Used by the
//! demo and the benchmark when no `--url` is given, and by the integration tests.
//!
//! The server binary is `redis-server` on `PATH` unless the environment variable
//! [`SERVER_ENV`] (`MQ_TEST_SERVER`) names another, e.g. `valkey-server` or a path to it.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The environment variable naming the server binary to start instead of `redis-server`
/// (a name looked up on `PATH`, or a path): `MQ_TEST_SERVER`.
pub const SERVER_ENV: &str = "MQ_TEST_SERVER";

/// The server binary to start: [`SERVER_ENV`] if set and not empty, else `redis-server`.
pub fn server_binary() -> String {
    std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

/// How long a starting server gets to answer `PING`: 10 s.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server` on `127.0.0.1:{port}` with its data in a temporary directory.
#[derive(Debug)]
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    /// The server binary (`redis-server`, or [`SERVER_ENV`]) is not installed.
    #[error("{0} not found on PATH; install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`), set MQ_TEST_SERVER to a server binary, or pass --url")]
    NotInstalled(String),
    /// It started but did not answer in time, or exited.
    #[error("redis-server did not start: {0}")]
    Start(String),
    /// The command-line client (`redis-cli`, or the `-cli` next to [`SERVER_ENV`]) is not
    /// installed; a local cluster needs it to join its nodes.
    #[error(
        "{0} not found on PATH; install it (Debian/Ubuntu: `sudo apt-get install -y redis-tools`)"
    )]
    CliNotInstalled(String),
    /// The nodes of a local cluster started but did not form a healthy cluster in time.
    #[error("local redis cluster: {0}")]
    Cluster(String),
    /// An I/O error (temporary directory, spawning).
    #[error("cannot start redis-server")]
    Io(#[from] std::io::Error),
}

impl LocalRedis {
    /// Starts a server without persistence.
    ///
    /// # Errors
    ///
    /// [`LocalRedisError::NotInstalled`] if there is no `redis-server`; otherwise when it does
    /// not come up within 10 s.
    pub fn start() -> Result<Self, LocalRedisError> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with(args: &[&str]) -> Result<Self, LocalRedisError> {
        let dir = tempfile::Builder::new().prefix("mq-redis-").tempdir()?;
        let args = args.iter().map(|s| s.to_string()).collect();
        Self::start_in(dir, args, free_port)
    }

    /// Starts a server with its data in `dir` on a port from `pick_port`, trying up to five
    /// ports (another process may take a probed port before the server binds it).
    pub(crate) fn start_in(
        dir: tempfile::TempDir,
        extra_args: Vec<String>,
        mut pick_port: impl FnMut() -> std::io::Result<u16>,
    ) -> Result<Self, LocalRedisError> {
        let mut me = LocalRedis {
            child: None,
            port: 0,
            dir,
            extra_args,
        };
        let mut last = String::new();
        for _ in 0..5 {
            me.port = pick_port()?;
            match me.spawn() {
                Ok(()) => return Ok(me),
                // Most likely the port was taken between probing and binding: try another.
                Err(LocalRedisError::Start(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(LocalRedisError::Start(last))
    }

    /// Starts the server on its port and data directory; waits until it answers `PING`.
    pub(crate) fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let log = self.dir.path().join("redis.log");
        let binary = server_binary();
        let mut cmd = Command::new(&binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LocalRedisError::NotInstalled(binary))
            }
            Err(e) => return Err(e.into()),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(LocalRedisError::Start(format!(
                    "exited with {status}: {}",
                    tail(&log)
                )));
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(LocalRedisError::Start(format!(
            "no answer on port {} within {START_TIMEOUT:?}: {}",
            self.port,
            tail(&log)
        )))
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (AOF files, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running (started and not stopped; it may have exited
    /// on its own since).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server gracefully (SIGTERM: it writes its AOF and cluster config, as on
    /// `SHUTDOWN`) and waits up to `timeout` for it to exit; kills it (SIGKILL) after that.
    pub(crate) fn terminate(&mut self, timeout: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + timeout;
        while sent && Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
    }

    /// Kills the server and starts it again on the same port and data directory.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last three lines of a log file, joined with ` | ` (for error messages).
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}
