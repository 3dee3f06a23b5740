//! `cluster-bench`: the enqueue and drain rate of a (partitioned) queue on one local
//! `redis-server` and on a local Redis Cluster of three masters and three replicas, with the
//! same number of worker processes.
//!
//! Run:
//!
//! ```text
//! cargo run --release -p mq-examples --bin cluster-bench -- [--tasks 200000] [--workers 2] \
//!     [--concurrency 64] [--partitions 1,4]
//! ```
//!
//! For each topology (`single`: one `redis-server`; `cluster`: [`LocalCluster`], 3 masters +
//! 3 replicas, all on this machine) and each `--partitions` value N, under a fresh key prefix:
//!
//! 1. **enqueue**: one `Producer::enqueue_many` call with `--tasks` no-op tasks, spread
//!    round-robin over the queue's N partition streams (`ProducerBuilder::partitions`).
//! 2. **drain**: `--workers` worker processes (this binary with the hidden `--worker-child`
//!    flag; each one tokio worker thread, `--concurrency` tasks in flight, reading all N
//!    partitions) are built and say `ready` before the clock starts; the clock runs from the
//!    `go` line sent to all of them until every partition stream is empty (`XLEN` 0 on each:
//!    every task handled and its ack flushed). The workers' handled counts must add up to
//!    `--tasks`.
//!
//! Each run prints a fixed-form line:
//!
//! ```text
//! cluster-bench topology=single|cluster partitions=N workers=W enqueue_per_s=X drain_per_s=X
//! ```
//!
//! preceded by context lines: on the cluster, which master (port) holds each partition
//! stream and how many tasks it got; and the `redis-server` CPU seconds used during the drain
//! (sum over all nodes of the `used_cpu_sys + used_cpu_user` deltas of `INFO cpu`), next to
//! the worker processes' CPU. At the end one line per partition count gives the ratio:
//!
//! ```text
//! cluster-bench-ratio partitions=N enqueue_ratio=X drain_ratio=X
//! ```
//!
//! (cluster divided by single). All servers, workers and the bench share one machine: read
//! the CPU lines before the rates.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use mq_core::{redis::conn::Conn, redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError};
use mq_examples::child::WorkerChild;
use mq_examples::{LocalCluster, LocalRedis};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BenchResult<T> = Result<T, BoxError>;

/// The bench's queue.
const QUEUE: &str = "cbench";
/// Padding of each task (a payload of about 100 bytes, like mq-bench's).
const BODY: &str = "no-op cluster benchmark task padding so that the msgpack payload is ~100 bytes";
/// How often the drain checks the partition streams' lengths.
const DRAIN_POLL: Duration = Duration::from_millis(2);
/// How long a worker child gets to start and to stop.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The benchmark task.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "cbench")]
struct Noop {
    /// Padding.
    body: String,
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Compares mq's enqueue and drain rate on one redis-server and on a 3-master Redis Cluster"
)]
struct Args {
    /// Tasks per run.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// Worker processes draining each run.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// In-flight limit of each worker process.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Partition counts of the queue, one run per value and topology (`1,4`).
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "1,4")]
    partitions: Vec<u16>,
    /// Longest the enqueue or the drain of a run may take, in seconds, before the bench fails.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Internal (worker child): the Redis URL.
    #[arg(long, env = "MQ_REDIS_URL", hide = true, hide_env_values = true)]
    url: Option<String>,
    /// Internal (worker child): the key prefix.
    #[arg(long, hide = true, default_value = "cbench")]
    prefix: String,
    /// Internal: run a worker with a no-op handler.
    #[arg(long, hide = true)]
    worker_child: bool,
}

fn main() -> BenchResult<()> {
    mq_examples::init_tracing_with("warn");
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.worker_child {
        rt.worker_threads(1);
    }
    let rt = rt.enable_all().build()?;
    if args.worker_child {
        return rt.block_on(worker_child(&args));
    }
    rt.block_on(bench(&args))
}

/// One topology's servers: the URL clients use, each node's own URL (for `INFO cpu`), and
/// the cluster handle (for placement) if it is one.
struct Topology {
    name: &'static str,
    url: String,
    node_urls: Vec<String>,
    ports: Vec<u16>,
    cluster: Option<LocalCluster>,
    _single: Option<LocalRedis>,
}

impl Topology {
    fn single() -> BenchResult<Self> {
        let server = LocalRedis::start()?;
        Ok(Topology {
            name: "single",
            url: server.url(),
            node_urls: vec![server.url()],
            ports: vec![server.port()],
            cluster: None,
            _single: Some(server),
        })
    }

    fn cluster() -> BenchResult<Self> {
        let cluster = LocalCluster::start()?;
        Ok(Topology {
            name: "cluster",
            url: cluster.url(),
            node_urls: cluster.node_urls(),
            ports: cluster.ports(),
            cluster: Some(cluster),
            _single: None,
        })
    }
}

/// The result of one (topology, partitions) run.
struct Run {
    enqueue_per_s: f64,
    drain_per_s: f64,
}

async fn bench(args: &Args) -> BenchResult<()> {
    if args.tasks == 0 || args.workers == 0 || args.concurrency == 0 || args.partitions.is_empty() {
        return Err("--tasks, --workers, --concurrency and --partitions must be at least 1".into());
    }
    println!(
        "cluster-bench: {} tasks, {} worker process(es) x 1 tokio thread x concurrency {}, partitions {:?}; {} cpu(s), load average {}",
        args.tasks,
        args.workers,
        args.concurrency,
        args.partitions,
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let mut results: BTreeMap<(u16, &'static str), Run> = BTreeMap::new();
    for make in [Topology::single, Topology::cluster] {
        let started = Instant::now();
        let topo = make()?;
        println!(
            "topology={}: {} redis-server node(s) up in {:.1} s ({})",
            topo.name,
            topo.node_urls.len(),
            started.elapsed().as_secs_f64(),
            match &topo.cluster {
                Some(c) => format!("masters on ports {:?}", c.master_ports()),
                None => topo.url.clone(),
            }
        );
        for &n in &args.partitions {
            let run = run_one(args, &topo, n).await?;
            println!(
                "cluster-bench topology={} partitions={n} workers={} enqueue_per_s={:.0} drain_per_s={:.0}",
                topo.name, args.workers, run.enqueue_per_s, run.drain_per_s
            );
            results.insert((n, topo.name), run);
        }
    }
    for &n in &args.partitions {
        if let (Some(s), Some(c)) = (results.get(&(n, "single")), results.get(&(n, "cluster"))) {
            println!(
                "cluster-bench-ratio partitions={n} enqueue_ratio={:.3} drain_ratio={:.3}",
                c.enqueue_per_s / s.enqueue_per_s,
                c.drain_per_s / s.drain_per_s
            );
        }
    }
    Ok(())
}

/// Enqueues `--tasks` tasks over `n` partitions and drains them with `--workers` processes.
async fn run_one(args: &Args, topo: &Topology, n: u16) -> BenchResult<Run> {
    let limit = Duration::from_secs(args.timeout_secs);
    // A fresh prefix per partition count: a queue's recorded partition count may not shrink.
    let prefix = format!("cbench-p{n}");
    let parts = QueueKeys::partitions(&prefix, QUEUE, n);
    let mut conn = Conn::connect(&topo.url).await?;
    let producer = Producer::builder(&topo.url)
        .prefix(&prefix)
        .partitions(QUEUE, n)
        .connect()
        .await?;

    let tasks = (0..args.tasks).map(|_| Noop {
        body: BODY.to_owned(),
    });
    let started = Instant::now();
    let ids = tokio::time::timeout(limit, producer.enqueue_many(tasks))
        .await
        .map_err(|_| format!("enqueue did not finish within {limit:?}"))??;
    let enqueue_time = started.elapsed();
    if ids.len() as u64 != args.tasks {
        return Err(format!("enqueue_many returned {} ids", ids.len()).into());
    }
    let mut lens = Vec::new();
    for p in &parts {
        lens.push(xlen(&mut conn, &p.stream).await?);
    }
    if lens.iter().sum::<u64>() != args.tasks {
        return Err(format!("partition streams hold {lens:?} tasks, not {}", args.tasks).into());
    }
    if let Some(cluster) = &topo.cluster {
        let placement: Vec<String> = parts
            .iter()
            .zip(&lens)
            .map(|(p, len)| format!("{}@{} ({len})", p.stream, cluster.master_for_key(&p.stream)))
            .collect();
        let mut masters: Vec<u16> = parts
            .iter()
            .map(|p| cluster.master_for_key(&p.stream))
            .collect();
        masters.sort_unstable();
        masters.dedup();
        println!(
            "  placement partitions={n}: {} -> {} of {} masters",
            placement.join(" "),
            masters.len(),
            cluster.master_ports().len()
        );
    }

    // Workers are built and ready before the clock starts.
    let mut children = Vec::new();
    for _ in 0..args.workers {
        children.push(WorkerChild::spawn(
            &topo.url,
            &[
                "--prefix".into(),
                prefix.clone(),
                "--partitions".into(),
                n.to_string(),
                "--concurrency".into(),
                args.concurrency.to_string(),
            ],
        )?);
    }
    for child in &mut children {
        let line = child.next_line(CHILD_TIMEOUT).await?;
        if line != "ready" {
            return Err(format!("worker child said {line:?} instead of ready").into());
        }
    }
    let cpu_before = servers_cpu(&topo.node_urls).await?;
    let started = Instant::now();
    for child in &mut children {
        child.send_line("go")?;
    }
    let mut left: Vec<&str> = parts.iter().map(|p| p.stream.as_str()).collect();
    while !left.is_empty() {
        if started.elapsed() > limit {
            return Err(format!("drain did not finish within {limit:?}").into());
        }
        let mut still = Vec::new();
        for key in left {
            if xlen(&mut conn, key).await? > 0 {
                still.push(key);
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
    let drain_time = started.elapsed();
    let cpu_after = servers_cpu(&topo.node_urls).await?;

    let (mut handled, mut worker_cpu_ms) = (0, 0);
    for child in &mut children {
        child.close_stdin();
    }
    for child in &mut children {
        let line = child.next_line(CHILD_TIMEOUT).await?;
        child.wait(CHILD_TIMEOUT).await?;
        handled += field(&line, "handled")?;
        worker_cpu_ms += field(&line, "cpu_ms")?;
    }
    let mut left_over = 0;
    for p in &parts {
        left_over += xlen(&mut conn, &p.stream).await? + xlen(&mut conn, &p.dead).await?;
        left_over += redis::cmd("ZCARD")
            .arg(&p.delayed)
            .query_async::<u64>(&mut conn)
            .await?;
    }
    if handled != args.tasks || left_over != 0 {
        return Err(format!(
            "handled {handled} of {} tasks; {left_over} left in streams, delayed or dead sets",
            args.tasks
        )
        .into());
    }
    let cpu: Vec<f64> = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a - b)
        .collect();
    let total: f64 = cpu.iter().sum();
    let secs = drain_time.as_secs_f64();
    println!(
        "  drain {} partitions={n}: {} tasks in {secs:.3} s; redis-server cpu {total:.2} s = {:.0} % of a core over {} node(s) (per node: {}); worker processes cpu {:.2} s (whole life); load average {}",
        topo.name,
        args.tasks,
        100.0 * total / secs,
        cpu.len(),
        per_node(topo, &cpu),
        worker_cpu_ms as f64 / 1000.0,
        load_average()
    );
    Ok(Run {
        enqueue_per_s: args.tasks as f64 / enqueue_time.as_secs_f64(),
        drain_per_s: args.tasks as f64 / secs,
    })
}

/// Each node's CPU seconds as `port=s`, masters of a cluster marked `(m)`, replicas `(r)`.
fn per_node(topo: &Topology, cpu: &[f64]) -> String {
    let masters = topo.cluster.as_ref().map(LocalCluster::master_ports);
    topo.ports
        .iter()
        .zip(cpu)
        .map(|(port, c)| match &masters {
            Some(m) if m.contains(port) => format!("{port}(m)={c:.2}"),
            Some(_) => format!("{port}(r)={c:.2}"),
            None => format!("{port}={c:.2}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn xlen(conn: &mut Conn, key: &str) -> BenchResult<u64> {
    Ok(redis::cmd("XLEN").arg(key).query_async(conn).await?)
}

/// `used_cpu_sys + used_cpu_user` of each node, in the order of `urls`.
async fn servers_cpu(urls: &[String]) -> BenchResult<Vec<f64>> {
    let mut out = Vec::new();
    for url in urls {
        let mut c = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut c).await?;
        out.push(
            info.lines()
                .filter_map(|l| {
                    l.strip_prefix("used_cpu_sys:")
                        .or_else(|| l.strip_prefix("used_cpu_user:"))
                })
                .filter_map(|v| v.trim().parse::<f64>().ok())
                .sum(),
        );
    }
    Ok(out)
}

/// The number after `name=` in a `done ...` line of a worker child.
fn field(line: &str, name: &str) -> BenchResult<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("worker child said {line:?}, no {name}=").into())
}

/// `--worker-child`: builds a worker with a no-op handler on all partitions of the queue,
/// prints `ready`, runs from a `go` line until stdin closes, then prints
/// `done handled=N cpu_ms=M`.
async fn worker_child(args: &Args) -> BenchResult<()> {
    let url = args
        .url
        .as_deref()
        .ok_or("--worker-child needs MQ_REDIS_URL")?;
    let partitions = *args
        .partitions
        .first()
        .ok_or("--worker-child needs --partitions")?;
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    let worker = mq_core::Worker::builder(url)
        .prefix(&args.prefix)
        .concurrency(args.concurrency)
        .queue_partitions(QUEUE, partitions)
        .handle::<Noop, _>(move |_task: Noop, _ctx: TaskContext| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await?;
    let token = worker.shutdown_token();
    let Some(mut stdin) = mq_examples::child::ready_then_go().await else {
        return Ok(()); // the parent went away before the start
    };
    let run = tokio::spawn(worker.run());
    while stdin.recv().await.is_some() {}
    token.cancel();
    run.await??;
    println!(
        "done handled={} cpu_ms={}",
        handled.load(Ordering::Relaxed),
        cpu_ms().unwrap_or(0)
    );
    Ok(())
}

/// CPU time (user + system) of this process in ms, from /proc/self/stat (USER_HZ = 100).
fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
