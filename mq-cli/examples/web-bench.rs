//! `mq web` page loads on a big Redis: 5 queues holding 1,000,000 queued tasks between them
//! (plus dead, delayed and running ones), each view requested over and over through the real
//! server (the `mq` binary) on a local `redis-server`. Prints, per view, the latency
//! percentiles and the Redis commands one request costs (from `INFO commandstats`), beside
//! Redis's own floor measured in the same run: one `XRANGE ... COUNT 50` round trip of a
//! minimal entry, the least any page of 50 rows could cost.
//!
//! ```text
//! cargo run --release -p mq-cli --example web-bench              # 5 x 200,000 queued
//! cargo run --release -p mq-cli --example web-bench -- --per-queue 20000 --requests 50
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
struct Args {
    /// Queued tasks in each of the 5 queues.
    #[arg(long, default_value_t = 200_000)]
    per_queue: u64,
    /// Requests per view.
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

/// The bench's 5 queues, one task type each.
macro_rules! queues {
    ($($t:ident = $q:literal),*) => {
        $(
            #[derive(Debug, Clone, Serialize, Deserialize, Task)]
            #[task(queue = $q, max_retries = 0, backoff = "none")]
            struct $t {
                product_id: u64,
                text: String,
            }
        )*
        const QUEUES: &[&str] = &[$($q),*];

        /// Enqueues `n` tasks into every queue (`first` is the first product id), in chunks.
        async fn fill(producer: &Producer, first: u64, n: u64) -> mq_core::Result<()> {
            const CHUNK: u64 = 5_000;
            for start in (first..first + n).step_by(CHUNK as usize) {
                let end = (start + CHUNK).min(first + n);
                $(producer.enqueue_many((start..end).map(|i| $t { product_id: i, text: text(i) })).await?;)*
            }
            Ok(())
        }

        /// One task due in an hour or more in every queue.
        async fn delay_one(producer: &Producer, i: u64) -> mq_core::Result<()> {
            $(producer.enqueue_in(Duration::from_secs(3600 + i), $t { product_id: i, text: text(i) }).await?;)*
            Ok(())
        }

        /// A worker whose every handler dead-letters its task.
        async fn refusing_worker(url: &str) -> mq_core::Result<Worker> {
            Worker::builder(url)
                $(.handle::<$t, _>(|t: $t, _ctx: TaskContext| async move {
                    Err::<(), _>(TaskError::permanent(format!("no vector for product {}", t.product_id)))
                }))*
                .block_timeout(Duration::from_millis(100))
                .build()
                .await
        }
    };
}

queues!(
    Q0 = "wb-images",
    Q1 = "wb-texts",
    Q2 = "wb-reviews",
    Q3 = "wb-titles",
    Q4 = "wb-ocr"
);

/// A product text of about 60 bytes, as the pipeline's.
fn text(i: u64) -> String {
    format!(
        "red running shoe, size {}, product {i:08}, breathable mesh",
        i % 50
    )
}

/// Dead letters, running (held by a consumer that never acks) and delayed tasks per queue.
const DEAD: u64 = 100;
const RUNNING: u64 = 10;
const DELAYED: u64 = 100;

type Fail = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Fail> {
    let args = Args::parse();
    let server = mq_tests::LocalRedis::start()?;
    let url = server.url();
    let mut conn = mq_tests::conn(&server).await;
    let producer = Producer::connect(&url).await?;

    // Dead letters first (a worker refuses them), then the backlog behind them.
    let t0 = Instant::now();
    fill(&producer, 0, DEAD).await?;
    let worker = refusing_worker(&url).await?;
    let token = worker.shutdown_token();
    let running = tokio::spawn(worker.run());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut dead = 0;
        for q in QUEUES {
            dead += mq_tests::xlen(&mut conn, &QueueKeys::new("mq", q).dead).await as u64;
        }
        if dead >= DEAD * QUEUES.len() as u64 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {dead} dead letters after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    running.await??;
    fill(&producer, DEAD, args.per_queue).await?;
    for q in QUEUES {
        let stream = QueueKeys::new("mq", q).stream;
        for _ in 0..RUNNING {
            mq_tests::read_as(&mut conn, &stream, "ghost-worker").await;
        }
    }
    for i in 0..DELAYED {
        delay_one(&producer, i).await?;
    }
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    let used = field(&used, "used_memory_human").unwrap_or("?").to_owned();
    println!(
        "filled {} queues: {} queued, {RUNNING} running, {DELAYED} delayed, {DEAD} dead each \
         ({} tasks in all) in {:.1} s; Redis holds {used}",
        QUEUES.len(),
        args.per_queue - RUNNING,
        QUEUES.len() as u64 * (args.per_queue + DEAD + DELAYED),
        t0.elapsed().as_secs_f64()
    );

    let floor = redis_floor(&mut conn, args.requests).await?;
    let (_child, base) = start_web(&url).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    // The rows each page needs a cursor or an id from.
    let q = QUEUES[0];
    let get = |path: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = http
                .get(format!("{base}{path}"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            // The page's assets are not JSON: they count as a string.
            Ok::<_, reqwest::Error>(serde_json::from_str(&body).unwrap_or(Value::String(body)))
        }
    };
    let mid = get(format!("/api/queues/{q}/tasks?state=queued&count=500")).await?;
    let deep_cursor = mid["next"].as_str().ok_or("no next page")?.to_owned();
    let queued = get(format!("/api/queues/{q}/tasks?state=queued&count=1")).await?;
    let entry = queued["rows"][0]["entry_id"]
        .as_str()
        .ok_or("no row")?
        .to_owned();
    let dead = get(format!("/api/queues/{q}/tasks?state=dead&count=1")).await?;
    let dead_id = dead["rows"][0]["entry_id"]
        .as_str()
        .ok_or("no row")?
        .to_owned();

    let views: Vec<(&str, String, bool)> = vec![
        ("overview (cached)", "/api/queues".into(), false),
        ("overview (fresh)", "/api/queues".into(), true),
        (
            "queued, first page of 50",
            format!("/api/queues/{q}/tasks?state=queued"),
            false,
        ),
        (
            "queued, a later page of 50",
            format!("/api/queues/{q}/tasks?state=queued&cursor={deep_cursor}"),
            false,
        ),
        (
            "running, page of 50",
            format!("/api/queues/{q}/tasks?state=running"),
            false,
        ),
        (
            "delayed, page of 50",
            format!("/api/queues/{q}/tasks?state=delayed"),
            false,
        ),
        (
            "dead, page of 50",
            format!("/api/queues/{q}/tasks?state=dead"),
            false,
        ),
        (
            "task view (queued)",
            format!("/api/queues/{q}/task?state=queued&id={entry}"),
            false,
        ),
        (
            "task view (dead)",
            format!("/api/queues/{q}/task?state=dead&id={dead_id}"),
            false,
        ),
        ("workers", "/api/workers".into(), false),
        ("page itself (/ and app.js)", "/app.js".into(), false),
    ];
    println!(
        "\nRedis floor (XRANGE COUNT 50 of minimal entries, one round trip): p50 {:.3} ms, p99 {:.3} ms\n",
        ms(floor.0),
        ms(floor.1)
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "view", "p50 ms", "p99 ms", "max ms", "p50/floor", "cmds/request"
    );
    for (name, path, fresh) in views {
        // A fresh overview needs the cache to have aged past the refresh interval (200 ms).
        let n = if fresh {
            args.requests.min(20)
        } else {
            args.requests
        };
        get(path.clone()).await?;
        let before = commands(&mut conn).await?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            if fresh {
                tokio::time::sleep(Duration::from_millis(260)).await;
            }
            let t = Instant::now();
            get(path.clone()).await?;
            times.push(t.elapsed());
        }
        // The INFO of `commands` itself is one command.
        let cost = (commands(&mut conn).await? - before - 1) as f64 / n as f64;
        times.sort();
        let (p50, p99, max) = (pct(&times, 0.50), pct(&times, 0.99), times[n - 1]);
        println!(
            "{name:<30} {:>9.3} {:>9.3} {:>9.3} {:>10.1} {:>12.1}",
            ms(p50),
            ms(p99),
            ms(max),
            p50.as_secs_f64() / floor.0.as_secs_f64(),
            cost
        );
    }
    Ok(())
}

/// p50 and p99 of one `XRANGE key - + COUNT 50` over a stream of minimal entries.
async fn redis_floor(conn: &mut mq_tests::Conn, n: usize) -> Result<(Duration, Duration), Fail> {
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("XADD")
            .arg("floor")
            .arg("*")
            .arg("f")
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query_async(conn).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let _: redis::Value = redis::cmd("XRANGE")
            .arg("floor")
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(50)
            .query_async(conn)
            .await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((pct(&times, 0.5), pct(&times, 0.99)))
}

/// Starts `mq web` (the release `mq` binary, built if needed) on a free port; its child and
/// base URL.
async fn start_web(url: &str) -> Result<(tokio::process::Child, String), Fail> {
    let mut child = tokio::process::Command::new(mq_tests::workspace_bin("mq-cli", "mq"))
        .args(["web", "--listen", "127.0.0.1:0", "--refresh", "0.2"])
        .env("MQ_REDIS_URL", url)
        .env_remove("MQ_WEB_TOKEN")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).lines().next_line(),
    )
    .await??
    .ok_or("mq web printed nothing")?;
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| format!("no address in {line:?}"))?
        .trim_end_matches('/')
        .to_owned();
    Ok((child, base))
}

/// Commands Redis has run so far (the sum of `INFO commandstats` calls).
async fn commands(conn: &mut mq_tests::Conn) -> Result<u64, Fail> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum())
}

/// The value of `name:` in an `INFO` answer.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
