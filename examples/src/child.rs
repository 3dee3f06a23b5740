//! A benchmark's worker processes: the running binary started again with `--worker-child`
//! (`mq-bench` and `cluster-bench` drain with them, so the worker runs in a process of its own).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

/// The error of a benchmark step.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A worker process of a benchmark: the running binary with `--worker-child`, talking in
/// lines (the parent sends `go`, the child answers `ready`, `done ...`).
pub struct WorkerChild {
    child: Option<Child>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl WorkerChild {
    /// Starts this binary with `--worker-child` and `args`, the Redis URL in `MQ_REDIS_URL`
    /// (in the environment, not the command line: `ps` shows arguments to every user).
    ///
    /// # Errors
    ///
    /// When the process cannot be started.
    pub fn spawn(url: &str, args: &[String]) -> Result<Self, BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--worker-child")
            .env("MQ_REDIS_URL", url)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("worker child has no stdout pipe")?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child: Some(child),
            lines,
        })
    }

    /// The child's process id (0 once it exited).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child's next line of output, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// When it exited or said nothing in time.
    pub async fn next_line(&mut self, timeout: Duration) -> Result<String, BoxError> {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err("worker child exited early (see its errors above)".into()),
            Err(_) => Err(format!("worker child said nothing within {timeout:?}").into()),
        }
    }

    /// Sends the child one line.
    ///
    /// # Errors
    ///
    /// When its stdin is closed.
    pub fn send_line(&mut self, line: &str) -> Result<(), BoxError> {
        let stdin = self
            .child
            .as_mut()
            .and_then(|c| c.stdin.as_mut())
            .ok_or("worker child's stdin is closed")?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closing stdin tells the child to shut down gracefully.
    pub fn close_stdin(&mut self) {
        if let Some(c) = self.child.as_mut() {
            drop(c.stdin.take());
        }
    }

    /// Waits at most `timeout` for the child to exit.
    ///
    /// # Errors
    ///
    /// When it exits with an error or not in time.
    pub async fn wait(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let started = Instant::now();
        loop {
            let Some(child) = self.child.as_mut() else {
                return Ok(());
            };
            if let Some(status) = child.try_wait()? {
                self.child = None;
                if !status.success() {
                    return Err(format!("worker child exited with {status}").into());
                }
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(format!("worker child did not exit within {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for WorkerChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The child's side of the start: reads its stdin on a plain thread (a tokio stdin read would
/// hold up runtime shutdown), prints `ready` and waits for the parent's `go`. Returns the rest
/// of its stdin, which closes when the parent wants the child to stop, or `None` if the parent
/// went away before `go`.
pub async fn ready_then_go() -> Option<mpsc::UnboundedReceiver<String>> {
    let (tx, mut stdin) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    println!("ready");
    match stdin.recv().await {
        Some(l) if l.trim() == "go" => Some(stdin),
        _ => None,
    }
}
