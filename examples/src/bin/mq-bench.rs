//! `mq-bench`: how fast mq moves no-op tasks through Redis on this machine, next to what Redis
//! itself can do with the same stream entries.
//!
//! Run:
//!
//! ```text
//! cargo run --release -p mq-examples --bin mq-bench -- [--tasks 200000] [--producers 64] \
//!     [--concurrency 64[,128,...]] [--rate 2000] [--rate-secs 10] [--url redis://127.0.0.1:6379/]
//! ```
//!
//! Without `--url` it starts its own `redis-server` on a free loopback port and flushes its
//! database at the start. With `--url` it never flushes anything: it only touches keys under
//! its own prefix (`--prefix`, default `mqbench`) and `{prefix}-own` (the own-shape ceiling's
//! scratch queue) and deletes them at the end.
//!
//! One run has these phases, each bounded by `--timeout-secs` (default 300):
//!
//! 1. **Redis ceiling** (plain `redis` crate calls on scratch keys that are deleted afterwards;
//!    no mq code in the loops). The ceiling is the *ideal* client over *minimal* entries of 2
//!    fields, `id` (26 bytes) and `payload` (the same 100 bytes of MessagePack the bench's
//!    tasks carry): whatever mq adds on top, its entry shape included, counts against mq.
//!    - `redis_xadd_per_s`: pipelined `XADD`s of 2-field entries on one connection, 1,000 per
//!      pipeline, measured with one pipeline in flight and with as many as `enqueue_many`
//!      keeps (4); the faster of the two is the ceiling.
//!    - `redis_drain_2field_per_s` (also printed as `redis_drain_per_s`): one connection
//!      looping `XREADGROUP COUNT 256`, then one round trip that acks and deletes the ids
//!      read, until the stream is empty. The round trip is measured three ways over a fresh
//!      stream each: `MULTI XACK XDEL EXEC`, a plain pipeline `XACK` + `XDEL`, and `EVALSHA`
//!      of a Lua ack script (XACK then XDEL; mq's ack before it moved to a plain `XDEL` + `XACK`
//!      pipeline); the fastest is the ceiling
//!      and its name is printed (`ack=`).
//!    - `redis_drain_own_per_s`: the same loop with that fastest ack, over entries of mq's own
//!      shape: written by the real `Producer::enqueue_many` into the scratch queue, so the
//!      shape follows the code when the wire format changes (one entry's fields are printed).
//! 2. **enqueue_single**: `--producers` tokio tasks call `Producer::enqueue` concurrently
//!    until `--tasks` tasks are in the stream. The stream is then deleted.
//! 3. **enqueue_many**: one `Producer::enqueue_many` call with `--tasks` tasks (with `--run`,
//!    one `Run::enqueue_many` call: the tasks of this and the drain phases are then counted in
//!    one run, checked after the drains, to measure what a run's task costs).
//! 4. **drain**, once per `--concurrency` value (a comma-separated list; the stream is
//!    refilled with `enqueue_many` before each value after the first): a worker (no-op
//!    handler) drains `--tasks` tasks. By default it runs in a *child process* (this binary
//!    with the hidden `--worker-child` flag) so that its peak RSS (`VmHWM`) is the worker's
//!    alone; the child builds the worker, says `ready`, and the clock starts when the parent
//!    tells it to go. `drain_per_s` is tasks divided by the time from that start until the
//!    stream is empty (`XLEN` 0: every task handled and its ack flushed). `--drain-in-process`
//!    runs the worker in this process instead; `rss_mb` is then the whole bench process's
//!    `VmHWM`. Each value prints a fixed-form line:
//!
//!    ```text
//!    mq-bench-drain concurrency=C drain_per_s=X drain_ratio=X drain_ratio_own=X rss_mb=X
//!    ```
//! 5. **wait latency**: a paced producer enqueues single tasks at `--rate` per second for
//!    `--rate-secs`; each payload carries its send time (unix ns) and the handler of an
//!    in-process worker (the first `--concurrency` value) records `now - sent` (enqueue to
//!    handler start) in a histogram.
//!
//! Under each phase line an indented line shows where the time went on the server: the
//! `redis-server` CPU used (from `INFO cpu`) and, per command, calls, entries per call and
//! server time per call (from `INFO commandstats` deltas; read-only), plus this process's CPU.
//!
//! The last line has a fixed form for scripts:
//!
//! ```text
//! mq-bench tasks=N enqueue_many_per_s=X enqueue_single_per_s=X drain_per_s=X redis_xadd_per_s=X redis_drain_per_s=X enqueue_ratio=X drain_ratio=X wait_p50_ms=X wait_p99_ms=X rss_mb=X concurrency=C redis_drain_2field_per_s=X redis_drain_own_per_s=X drain_ratio_own=X ack=A
//! ```
//!
//! with
//! - `enqueue_ratio = enqueue_many_per_s / redis_xadd_per_s`: against pipelined `XADD` of
//!   2-field entries, not of mq's own entries;
//! - `drain_ratio = drain_per_s / redis_drain_2field_per_s`: against the ideal loop over
//!   2-field entries (`redis_drain_per_s` is the same number as `redis_drain_2field_per_s`);
//! - `drain_ratio_own = drain_per_s / redis_drain_own_per_s`: against the ideal loop over
//!   mq's own entries, i.e. the share of the ceiling lost in mq's code rather than its shape
//!   (the ideal loop keeps one request in flight; a worker at high concurrency overlaps reads
//!   and acks, so both drain ratios can pass 1);
//! - `drain_per_s`, `rss_mb` and the ratios for the first `--concurrency` value (`concurrency=`);
//! - `ack=` the fastest ack round trip of the ceiling (`multi`, `pipeline` or `script`).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use hdrhistogram::Histogram;
use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::child::WorkerChild;
use redis::{aio::MultiplexedConnection, Value};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

/// A Lua ack (XACK then XDEL of ARGV[2..]), measured as one of the ceiling's ack modes.
static ACK_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2)) \
         redis.call('XDEL', KEYS[1], unpack(ARGV, 2)) return n",
    )
});

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BenchResult<T> = Result<T, BoxError>;

/// 75 characters: with the timestamp the MessagePack payload is exactly 100 bytes.
const BODY: &str = "no-op benchmark task padding so that the msgpack payload is about 100 bytes";
/// Entries per pipeline of the `XADD` ceiling run (mq's `ENQUEUE_BATCH` is the same).
const CEILING_XADD_BATCH: usize = 1_000;
/// `COUNT` of the ceiling drain loop's `XREADGROUP`.
const CEILING_READ_COUNT: usize = 256;
/// Consumer group of the ceiling drain loop.
const CEILING_GROUP: &str = "ceiling";
/// Suffix of the prefix under which the real `Producer` writes the own-shape ceiling's entries.
const OWN_PREFIX_SUFFIX: &str = "-own";
/// How often the drain phase checks `XLEN`.
const DRAIN_POLL: Duration = Duration::from_millis(2);
/// How long the worker child gets to start and to stop.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The benchmark task: a send timestamp and padding.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "bench")]
struct Noop {
    /// Unix time in nanoseconds when the task was enqueued.
    sent_ns: u64,
    /// Padding.
    body: String,
}

impl Noop {
    fn now() -> Self {
        Noop {
            sent_ns: now_ns(),
            body: BODY.to_owned(),
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Measures mq's enqueue and drain throughput and wait latency against Redis's own ceiling"
)]
struct Args {
    /// Redis URL; without it the bench starts its own redis-server on a free port.
    #[arg(long, env = "MQ_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// Tasks per throughput phase.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// Concurrent tokio tasks calling `enqueue` in the enqueue_single phase.
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// The drain worker's global in-flight limit: one value or a comma-separated list
    /// (`16,32,50,64,128,256`), one drain per value. The first value is the final line's and
    /// the wait-latency phase's.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "64")]
    concurrency: Vec<usize>,
    /// Tasks per second of the wait-latency phase.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Duration of the wait-latency phase in seconds.
    #[arg(long, default_value_t = 10)]
    rate_secs: u64,
    /// Key prefix of the bench's queue and ceiling keys.
    #[arg(long, default_value = "mqbench")]
    prefix: String,
    /// Enqueue the enqueue_many and drain phases' tasks in a run (`Producer::run`): what a
    /// run's task costs beside a plain one (`rn` field, the count in each `MULTI`, the report
    /// in the ack script).
    #[arg(long)]
    run: bool,
    /// Run the drain phase's worker in this process instead of a child process.
    #[arg(long)]
    drain_in_process: bool,
    /// Longest any phase may take, in seconds, before the bench fails.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Tokio worker threads of the drain phase's worker process. The default, 1, leaves the
    /// other core of a 2-core machine to redis-server; see README "Sizing a worker".
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
    /// Internal: run a worker with a no-op handler (used by the drain phase).
    #[arg(long, hide = true)]
    worker_child: bool,
}

fn main() -> BenchResult<()> {
    // Default `warn`, so that the bench's own lines stand out.
    mq_examples::init_tracing_with("warn");
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.worker_child {
        rt.worker_threads(args.worker_threads.max(1));
    }
    let rt = rt.enable_all().build()?;
    if args.worker_child {
        return rt.block_on(worker_child(&args));
    }
    rt.block_on(bench(args))
}

/// How the ideal drain loop acks and deletes the ids it read, in one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    /// `MULTI XACK XDEL EXEC`.
    Multi,
    /// `XACK` and `XDEL` in one plain (non-transactional) pipeline.
    Pipeline,
    /// `EVALSHA` of a Lua ack script ([`ACK_SCRIPT`]).
    Script,
}

impl AckMode {
    const ALL: [AckMode; 3] = [AckMode::Multi, AckMode::Pipeline, AckMode::Script];

    /// The name printed as `ack=`.
    fn name(self) -> &'static str {
        match self {
            AckMode::Multi => "multi",
            AckMode::Pipeline => "pipeline",
            AckMode::Script => "script",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            AckMode::Multi => "MULTI XACK XDEL EXEC",
            AckMode::Pipeline => "pipelined XACK + XDEL",
            AckMode::Script => "EVALSHA of a Lua XACK+XDEL script",
        }
    }

    /// Acks and deletes `ids` of `key` (group [`CEILING_GROUP`]) in one round trip.
    async fn ack(
        self,
        conn: &mut MultiplexedConnection,
        key: &str,
        ids: &[String],
    ) -> BenchResult<()> {
        match self {
            AckMode::Multi | AckMode::Pipeline => {
                let mut pipe = redis::pipe();
                if self == AckMode::Multi {
                    pipe.atomic();
                }
                pipe.cmd("XACK")
                    .arg(key)
                    .arg(CEILING_GROUP)
                    .arg(ids)
                    .ignore()
                    .cmd("XDEL")
                    .arg(key)
                    .arg(ids)
                    .ignore();
                pipe.query_async::<()>(conn).await?;
            }
            AckMode::Script => {
                let _: i64 = ACK_SCRIPT
                    .key(key)
                    .arg(CEILING_GROUP)
                    .arg(ids)
                    .invoke_async(conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Redis's ceilings of one run.
struct Ceiling {
    /// Pipelined `XADD` of 2-field entries, the faster of 1 and 4 pipelines in flight.
    xadd_per_s: f64,
    /// The ideal drain loop over 2-field entries with the fastest ack.
    drain_2field_per_s: f64,
    /// The ideal drain loop over entries written by `Producer::enqueue_many`, same ack.
    drain_own_per_s: f64,
    /// The fastest ack of the 2-field drain loop.
    ack: AckMode,
}

/// One drain phase.
struct DrainResult {
    concurrency: usize,
    per_s: f64,
    rss_mb: f64,
}

impl DrainResult {
    /// The fixed-form line of one `--concurrency` value.
    fn line(&self, c: &Ceiling) -> String {
        format!(
            "mq-bench-drain concurrency={} drain_per_s={:.0} drain_ratio={:.3} drain_ratio_own={:.3} rss_mb={:.1}",
            self.concurrency,
            self.per_s,
            self.per_s / c.drain_2field_per_s,
            self.per_s / c.drain_own_per_s,
            self.rss_mb,
        )
    }
}

struct Results {
    ceiling: Ceiling,
    enqueue_single_per_s: f64,
    enqueue_many_per_s: f64,
    /// One per `--concurrency` value, in the order given (at least one).
    drains: Vec<DrainResult>,
    wait_p50_ms: f64,
    wait_p99_ms: f64,
}

async fn bench(args: Args) -> BenchResult<()> {
    if args.tasks == 0
        || args.producers == 0
        || args.rate == 0
        || args.concurrency.is_empty()
        || args.concurrency.contains(&0)
    {
        return Err("--tasks, --producers, --concurrency and --rate must be at least 1".into());
    }
    let redis = mq_examples::Redis::url_or_local(args.url.as_deref())?;
    let (url, own_server) = (redis.url.clone(), redis.is_local());
    if own_server {
        println!("started redis-server on {url}");
    }
    let mut admin = connect(&url).await?;
    let keys = mq_core::redis::keys::QueueKeys::new(&args.prefix, Noop::QUEUE);
    let own_prefix = format!("{}{OWN_PREFIX_SUFFIX}", args.prefix);
    let own_keys = mq_core::redis::keys::QueueKeys::new(&own_prefix, Noop::QUEUE);
    let ceiling_key = format!("{}:{{ceiling}}:stream", args.prefix);
    let our_keys = [
        keys.stream.clone(),
        keys.delayed.clone(),
        keys.dead.clone(),
        ceiling_key.clone(),
        own_keys.stream.clone(),
        mq_core::redis::keys::workers_key(&args.prefix),
    ];
    if own_server {
        let _: () = redis::cmd("FLUSHDB").query_async(&mut admin).await?;
    } else {
        // A user's server: only our own keys, left over from an earlier run.
        let _: () = redis::cmd("DEL")
            .arg(&our_keys[..])
            .query_async(&mut admin)
            .await?;
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut admin)
        .await?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let payload = rmp_serde::to_vec_named(&Noop::now())?;
    let concurrency = args
        .concurrency
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "mq-bench: redis {version} at {}, {} cores, tasks={} producers={} concurrency={concurrency} rate={}/s for {} s, payload {} bytes of msgpack, prefix {:?}, load average {}",
        mq_examples::redact_url(&url),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.tasks,
        args.producers,
        args.rate,
        args.rate_secs,
        payload.len(),
        args.prefix,
        load_average(),
    );

    let limit = Duration::from_secs(args.timeout_secs);
    let n = args.tasks;
    let ceiling = ceilings(
        &url,
        &mut admin,
        &ceiling_key,
        &own_prefix,
        &own_keys.stream,
        &payload,
        n,
        limit,
    )
    .await?;

    let producer = Producer::connect_with_prefix(&url, &args.prefix).await?;
    let probe = Probe::start(&mut admin).await?;
    let enqueue_single_per_s = enqueue_single(&args, &producer, &mut admin, &keys, limit).await?;
    probe.print(&mut admin, n, enqueue_single_per_s).await?;
    let _: () = redis::cmd("DEL")
        .arg(&keys.stream)
        .query_async(&mut admin)
        .await?;
    let probe = Probe::start(&mut admin).await?;
    let run = if args.run {
        Some(producer.run(&format!("mq-bench-{}", now_ns())).await?)
    } else {
        None
    };
    let enqueue_many_per_s =
        enqueue_many(&args, &producer, run.as_ref(), &mut admin, &keys, limit).await?;
    probe.print(&mut admin, n, enqueue_many_per_s).await?;
    let mut drains = Vec::new();
    for (i, &c) in args.concurrency.iter().enumerate() {
        if i > 0 {
            // The stream is empty after a drain: refill it the same way, untimed.
            let tasks = (0..n).map(|_| Noop::now());
            let refill = async {
                match &run {
                    Some(run) => run.enqueue_many(tasks).await,
                    None => producer.enqueue_many(tasks).await,
                }
            };
            tokio::time::timeout(limit, refill)
                .await
                .map_err(|_| format!("refilling the stream took longer than {limit:?}"))??;
        }
        let probe = Probe::start(&mut admin).await?;
        let (per_s, rss_mb) = drain(&args, c, &url, &mut admin, &keys, limit).await?;
        probe.print(&mut admin, n, per_s).await?;
        drains.push(DrainResult {
            concurrency: c,
            per_s,
            rss_mb,
        });
    }
    if let Some(run) = &run {
        let info =
            mq_core::Admin::connect_with(&url, &args.prefix, mq_core::redis::keys::DEFAULT_GROUP)
                .await?
                .run(run.name())
                .await?
                .ok_or("the bench's run is gone")?;
        let want = n * args.concurrency.len() as u64;
        println!(
            "run {}: total {} done {} dead {} (every drained task counted: {})",
            run.name(),
            info.total,
            info.done,
            info.dead,
            info.total == want && info.done == want
        );
    }
    let (wait_p50_ms, wait_p99_ms) =
        wait_latency(&args, args.concurrency[0], &url, &producer, limit).await?;

    if !own_server {
        let _: () = redis::cmd("DEL")
            .arg(&our_keys[..])
            .query_async(&mut admin)
            .await?;
    }
    report(
        args.tasks,
        &Results {
            ceiling,
            enqueue_single_per_s,
            enqueue_many_per_s,
            drains,
            wait_p50_ms,
            wait_p99_ms,
        },
    );
    Ok(())
}

fn report(tasks: u64, r: &Results) {
    let c = &r.ceiling;
    let Some(first) = r.drains.first() else {
        return;
    };
    let enqueue_ratio = r.enqueue_many_per_s / c.xadd_per_s;
    let drain_ratio = first.per_s / c.drain_2field_per_s;
    let drain_ratio_own = first.per_s / c.drain_own_per_s;
    println!(
        "load average at the end: {} (other busy processes on this machine make every number noisy)",
        load_average()
    );
    println!(
        "ceilings: xadd {:.0}/s, drain {:.0}/s over 2-field entries and {:.0}/s over mq's own entries ({:.0} %), ack {}",
        c.xadd_per_s,
        c.drain_2field_per_s,
        c.drain_own_per_s,
        100.0 * c.drain_own_per_s / c.drain_2field_per_s,
        c.ack.describe(),
    );
    println!(
        "summary: enqueue_many is {:.0} % of pipelined XADD of 2-field entries; drain at concurrency {} is {:.0} % of the ideal loop over 2-field entries and {:.0} % over mq's own entries",
        enqueue_ratio * 100.0,
        first.concurrency,
        drain_ratio * 100.0,
        drain_ratio_own * 100.0,
    );
    for d in &r.drains {
        println!("{}", d.line(c));
    }
    println!(
        "mq-bench tasks={tasks} enqueue_many_per_s={:.0} enqueue_single_per_s={:.0} drain_per_s={:.0} redis_xadd_per_s={:.0} redis_drain_per_s={:.0} enqueue_ratio={enqueue_ratio:.3} drain_ratio={drain_ratio:.3} wait_p50_ms={:.3} wait_p99_ms={:.3} rss_mb={:.1} concurrency={} redis_drain_2field_per_s={:.0} redis_drain_own_per_s={:.0} drain_ratio_own={drain_ratio_own:.3} ack={}",
        r.enqueue_many_per_s,
        r.enqueue_single_per_s,
        first.per_s,
        c.xadd_per_s,
        c.drain_2field_per_s,
        r.wait_p50_ms,
        r.wait_p99_ms,
        first.rss_mb,
        first.concurrency,
        c.drain_2field_per_s,
        c.drain_own_per_s,
        c.ack.name(),
    );
}

/// Phase 1: Redis's ceilings (see the module docs). Leaves no keys behind.
#[allow(clippy::too_many_arguments)]
async fn ceilings(
    url: &str,
    admin: &mut MultiplexedConnection,
    key: &str,
    own_prefix: &str,
    own_key: &str,
    payload: &[u8],
    n: u64,
    limit: Duration,
) -> BenchResult<Ceiling> {
    let mut conn = connect(url).await?;
    let mut xadd_per_s = 0f64;
    for in_flight in [1, mq_core::producer::ENQUEUE_PIPELINES_IN_FLIGHT] {
        let probe = Probe::start(admin).await?;
        let t = xadd_minimal(&mut conn, key, n, payload, limit, in_flight).await?;
        let rate = per_s(n, t);
        println!(
            "redis ceiling xadd: {n} 2-field entries in {:.3} s = {rate:.0}/s (pipelines of {CEILING_XADD_BATCH} XADDs, one connection, {in_flight} pipeline(s) in flight)",
            t.as_secs_f64()
        );
        probe.print(admin, n, rate).await?;
        xadd_per_s = xadd_per_s.max(rate);
    }

    // The script is loaded before its run is timed, as a worker has it loaded after its first ack.
    ACK_SCRIPT.load_async(&mut conn).await?;
    let mut best: Option<(AckMode, f64)> = None;
    for ack in AckMode::ALL {
        xadd_minimal(
            &mut conn,
            key,
            n,
            payload,
            limit,
            mq_core::producer::ENQUEUE_PIPELINES_IN_FLIGHT,
        )
        .await?;
        let probe = Probe::start(admin).await?;
        let rate = ceiling_drain(&mut conn, key, n, ack, "2-field entries", limit).await?;
        probe.print(admin, n, rate).await?;
        if best.is_none_or(|(_, r)| rate > r) {
            best = Some((ack, rate));
        }
    }
    let (ack, drain_2field_per_s) = best.ok_or("no ack mode was measured")?;
    let _: () = redis::cmd("DEL").arg(key).query_async(admin).await?;

    // Entries of mq's own shape, written by the real producer into a scratch queue.
    let own = Producer::connect_with_prefix(url, own_prefix).await?;
    let _: () = redis::cmd("DEL").arg(own_key).query_async(admin).await?;
    tokio::time::timeout(limit, own.enqueue_many((0..n).map(|_| Noop::now())))
        .await
        .map_err(|_| format!("writing the own-shape entries took longer than {limit:?}"))??;
    println!(
        "mq's own entries as Producer::enqueue_many writes them: {}",
        describe_entry(admin, own_key).await?
    );
    let probe = Probe::start(admin).await?;
    let drain_own_per_s =
        ceiling_drain(&mut conn, own_key, n, ack, "mq's own entries", limit).await?;
    probe.print(admin, n, drain_own_per_s).await?;
    let _: () = redis::cmd("DEL").arg(own_key).query_async(admin).await?;
    println!(
        "redis ceiling drain: fastest ack {} ({}); mq's own entries drain at {:.0} % of 2-field entries",
        ack.name(),
        ack.describe(),
        100.0 * drain_own_per_s / drain_2field_per_s
    );
    Ok(Ceiling {
        xadd_per_s,
        drain_2field_per_s,
        drain_own_per_s,
        ack,
    })
}

/// The fields of the first entry of `key` with their sizes, e.g.
/// `2 fields, 140 bytes: id (26 B), payload (100 B)`.
async fn describe_entry(conn: &mut MultiplexedConnection, key: &str) -> BenchResult<String> {
    /// One stream entry: its id and its (field, value) pairs.
    type Entry = (String, Vec<(String, Vec<u8>)>);
    let reply: Vec<Entry> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let (_, fields) = reply.into_iter().next().ok_or("the stream is empty")?;
    let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    let list = fields
        .iter()
        .map(|(k, v)| format!("{k} ({} B)", v.len()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "{} fields, {bytes} bytes of names and values: {list}",
        fields.len()
    ))
}

/// A multiplexed connection with generous timeouts (a `DEL` of a big stream is not instant).
async fn connect(url: &str) -> BenchResult<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> BenchResult<u64> {
    Ok(redis::cmd("XLEN").arg(key).query_async(conn).await?)
}

fn check_deadline(started: Instant, limit: Duration, what: &str) -> BenchResult<()> {
    if started.elapsed() > limit {
        return Err(format!("{what} did not finish within {limit:?}").into());
    }
    Ok(())
}

fn per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Replaces `key` with `n` minimal 2-field entries (`id`, `payload`) written by pipelined
/// `XADD`s on one connection, [`CEILING_XADD_BATCH`] per pipeline, `in_flight` pipelines in
/// flight; returns the time the writes took.
async fn xadd_minimal(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: u64,
    payload: &[u8],
    limit: Duration,
    in_flight: usize,
) -> BenchResult<Duration> {
    let _: () = redis::cmd("DEL").arg(key).query_async(conn).await?;
    let mut pending = JoinSet::new();

    let started = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        check_deadline(started, limit, "the XADD ceiling run")?;
        let batch = (n - sent).min(CEILING_XADD_BATCH as u64);
        let mut pipe = redis::pipe();
        for i in sent..sent + batch {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("id")
                .arg(format!("{i:026}"))
                .arg("payload")
                .arg(payload)
                .ignore();
        }
        if pending.len() >= in_flight {
            if let Some(r) = pending.join_next().await {
                r??;
            }
        }
        let mut c = conn.clone();
        pending.spawn(async move { pipe.query_async::<()>(&mut c).await });
        sent += batch;
    }
    while let Some(r) = pending.join_next().await {
        r??;
    }
    let t = started.elapsed();
    let len = xlen(conn, key).await?;
    if len != n {
        return Err(format!("XADD ceiling: stream has {len} entries, expected {n}").into());
    }
    Ok(t)
}

/// Redis's ceiling for draining `key` (`n` entries, `what` they are): one connection looping
/// `XREADGROUP COUNT 256` and one round trip that acks and deletes the ids read (`ack`),
/// until the stream is empty.
async fn ceiling_drain(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: u64,
    ack: AckMode,
    what: &str,
    limit: Duration,
) -> BenchResult<f64> {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(CEILING_GROUP)
        .arg("0")
        .query_async(conn)
        .await?;
    let started = Instant::now();
    let mut drained = 0u64;
    loop {
        check_deadline(started, limit, "the drain ceiling run")?;
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(CEILING_GROUP)
            .arg("c")
            .arg("COUNT")
            .arg(CEILING_READ_COUNT)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(conn)
            .await?;
        let ids = entry_ids(reply);
        if ids.is_empty() {
            break;
        }
        ack.ack(conn, key, &ids).await?;
        drained += ids.len() as u64;
    }
    let drain_time = started.elapsed();
    let len = xlen(conn, key).await?;
    if drained != n || len != 0 {
        return Err(format!(
            "drain ceiling: read {drained} of {n} entries, {len} left in the stream"
        )
        .into());
    }
    let drain_per_s = per_s(n, drain_time);
    println!(
        "redis ceiling drain, {what}: {n} entries in {:.3} s = {drain_per_s:.0}/s (XREADGROUP COUNT {CEILING_READ_COUNT}, then {}, one connection)",
        drain_time.as_secs_f64(),
        ack.describe(),
    );
    Ok(drain_per_s)
}

/// The entry ids of an `XREADGROUP` reply for one stream (RESP2 arrays or RESP3 map).
fn entry_ids(reply: Value) -> Vec<String> {
    // RESP2: [[key, entries]]; RESP3: {key: entries}.
    let per_stream: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) => kv.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m.into_iter().map(|(_, v)| v).collect(),
        _ => return Vec::new(),
    };
    let mut ids = Vec::new();
    for entries in per_stream {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            if let Value::Array(parts) = entry {
                if let Some(Value::BulkString(id)) = parts.into_iter().next() {
                    if let Ok(id) = String::from_utf8(id) {
                        ids.push(id);
                    }
                }
            }
        }
    }
    ids
}

/// `--producers` tokio tasks calling `Producer::enqueue` until `--tasks` are enqueued.
async fn enqueue_single(
    args: &Args,
    producer: &Producer,
    admin: &mut MultiplexedConnection,
    keys: &mq_core::redis::keys::QueueKeys,
    limit: Duration,
) -> BenchResult<f64> {
    let n = args.tasks;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..args.producers {
        let producer = producer.clone();
        let next = next.clone();
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                producer.enqueue(Noop::now()).await?;
            }
            Ok::<(), mq_core::Error>(())
        });
    }
    let joined = tokio::time::timeout(limit, async {
        while let Some(r) = set.join_next().await {
            r??;
        }
        Ok::<(), BoxError>(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => return Err(format!("enqueue_single did not finish within {limit:?}").into()),
    }
    let t = started.elapsed();
    let len = xlen(admin, &keys.stream).await?;
    if len != n {
        return Err(format!("enqueue_single: stream has {len} entries, expected {n}").into());
    }
    let rate = per_s(n, t);
    println!(
        "enqueue_single: {n} tasks in {:.3} s = {rate:.0}/s ({} tokio tasks calling Producer::enqueue on one Producer)",
        t.as_secs_f64(),
        args.producers
    );
    Ok(rate)
}

/// One `Producer::enqueue_many` call with `--tasks` tasks.
async fn enqueue_many(
    args: &Args,
    producer: &Producer,
    run: Option<&mq_core::Run>,
    admin: &mut MultiplexedConnection,
    keys: &mq_core::redis::keys::QueueKeys,
    limit: Duration,
) -> BenchResult<f64> {
    let n = args.tasks;
    let task = Noop::now();
    let rss_before = vmhwm_kb().unwrap_or(0);
    let started = Instant::now();
    let tasks = (0..n).map(|_| task.clone());
    let many = async {
        match run {
            Some(run) => run.enqueue_many(tasks).await,
            None => producer.enqueue_many(tasks).await,
        }
    };
    let ids = tokio::time::timeout(limit, many)
        .await
        .map_err(|_| format!("enqueue_many did not finish within {limit:?}"))??;
    let t = started.elapsed();
    let len = xlen(admin, &keys.stream).await?;
    if ids.len() as u64 != n || len != n {
        return Err(format!(
            "enqueue_many: {} ids returned, stream has {len} entries, expected {n}",
            ids.len()
        )
        .into());
    }
    let rate = per_s(n, t);
    println!(
        "enqueue_many: {n} tasks in {:.3} s = {rate:.0}/s (one Producer::enqueue_many call; bench process peak RSS {:.1} MB before, {:.1} MB after)",
        t.as_secs_f64(),
        rss_before as f64 / 1024.0,
        vmhwm_kb().unwrap_or(0) as f64 / 1024.0,
    );
    Ok(rate)
}

/// Drains the stream filled by `enqueue_many` with one worker of `concurrency`; returns
/// (tasks/s, peak RSS MB).
async fn drain(
    args: &Args,
    concurrency: usize,
    url: &str,
    admin: &mut MultiplexedConnection,
    keys: &mq_core::redis::keys::QueueKeys,
    limit: Duration,
) -> BenchResult<(f64, f64)> {
    let n = args.tasks;
    let mut poll = connect(url).await?;
    let (t, handled, rss_kb, where_) = if args.drain_in_process {
        let (worker, handled) = noop_worker(url, &args.prefix, concurrency).await?;
        let token = worker.shutdown_token();
        let started = Instant::now();
        let run = tokio::spawn(worker.run());
        loop {
            check_deadline(started, limit, "the drain")?;
            if handled.load(Ordering::Relaxed) >= n && xlen(&mut poll, &keys.stream).await? == 0 {
                break;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let t = started.elapsed();
        token.cancel();
        run.await??;
        (
            t,
            handled.load(Ordering::Relaxed),
            vmhwm_kb().unwrap_or(0),
            "in this process; rss is the whole bench process's VmHWM".to_owned(),
        )
    } else {
        let mut child = WorkerChild::spawn(
            url,
            &[
                "--prefix".into(),
                args.prefix.clone(),
                "--concurrency".into(),
                concurrency.to_string(),
                "--worker-threads".into(),
                args.worker_threads.to_string(),
            ],
        )?;
        let line = child.next_line(CHILD_TIMEOUT).await?;
        if line != "ready" {
            return Err(format!("worker child said {line:?} instead of ready").into());
        }
        let started = Instant::now();
        child.send_line("go")?;
        loop {
            check_deadline(started, limit, "the drain")?;
            if xlen(&mut poll, &keys.stream).await? == 0 {
                break;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let t = started.elapsed();
        let pid = child.pid();
        child.close_stdin();
        let line = child.next_line(CHILD_TIMEOUT).await?;
        child.wait(CHILD_TIMEOUT).await?;
        let field = |name: &str| -> BenchResult<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("worker child said {line:?}, no {name}=").into())
        };
        (
            t,
            field("handled")?,
            field("vmhwm_kb")?,
            format!(
                "in child process {pid} with {} tokio worker thread(s) (cpu {:.2} s in its whole life); rss is that worker process's VmHWM",
                args.worker_threads,
                field("cpu_ms")? as f64 / 1000.0
            ),
        )
    };
    let dead = xlen(admin, &keys.dead).await?;
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(&keys.delayed)
        .query_async(admin)
        .await?;
    if handled != n || dead != 0 || delayed != 0 {
        return Err(format!(
            "drain: handled {handled} of {n} tasks, {dead} dead-lettered, {delayed} retrying"
        )
        .into());
    }
    let rate = per_s(n, t);
    let rss_mb = rss_kb as f64 / 1024.0;
    println!(
        "drain: {n} tasks in {:.3} s = {rate:.0}/s (one worker, concurrency {}, no-op handler, {where_}: {rss_mb:.1} MB)",
        t.as_secs_f64(),
        concurrency
    );
    Ok((rate, rss_mb))
}

/// Enqueue to handler start at a steady `--rate`, one in-process worker of `concurrency`;
/// returns (p50, p99) in ms.
async fn wait_latency(
    args: &Args,
    concurrency: usize,
    url: &str,
    producer: &Producer,
    limit: Duration,
) -> BenchResult<(f64, f64)> {
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let handled = Arc::new(AtomicU64::new(0));
    let (h, count) = (hist.clone(), handled.clone());
    let worker = Worker::builder(url)
        .prefix(&args.prefix)
        .concurrency(concurrency)
        .handle::<Noop, _>(move |task: Noop, _ctx: TaskContext| {
            let waited_us = now_ns().saturating_sub(task.sent_ns) / 1_000;
            let (h, count) = (h.clone(), count.clone());
            async move {
                h.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .saturating_record(waited_us.max(1));
                count.fetch_add(1, Ordering::Relaxed);
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await?;
    let token = worker.shutdown_token();
    let run = tokio::spawn(worker.run());
    // Let the fetcher reach its blocking read on the empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let total = args.rate * args.rate_secs;
    let started = tokio::time::Instant::now();
    let wall = Instant::now();
    let mut sends = JoinSet::new();
    for i in 0..total {
        check_deadline(wall, limit, "the wait-latency phase")?;
        let at = started + Duration::from_nanos(i * 1_000_000_000 / args.rate);
        tokio::time::sleep_until(at).await;
        // Each enqueue is its own task, so a slow reply does not delay later sends.
        let p = producer.clone();
        sends.spawn(async move { p.enqueue(Noop::now()).await });
        while let Some(r) = sends.try_join_next() {
            r??;
        }
    }
    let send_time = started.elapsed();
    while let Some(r) = sends.join_next().await {
        r??;
    }
    while handled.load(Ordering::Relaxed) < total {
        check_deadline(wall, limit, "the wait-latency phase")?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    token.cancel();
    run.await??;

    let hist = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    let (p50, p99, p999) = (ms(0.50), ms(0.99), ms(0.999));
    println!(
        "wait latency (enqueue -> handler start, in-process worker): {total} tasks at {:.0}/s over {:.2} s: p50={p50:.3} ms p99={p99:.3} ms p999={p999:.3} ms max={:.3} ms mean={:.3} ms",
        per_s(total, send_time),
        send_time.as_secs_f64(),
        hist.max() as f64 / 1_000.0,
        hist.mean() / 1_000.0,
    );
    Ok((p50, p99))
}

/// A worker on the bench queue with a no-op handler that counts the tasks it handled.
async fn noop_worker(
    url: &str,
    prefix: &str,
    concurrency: usize,
) -> BenchResult<(Worker, Arc<AtomicU64>)> {
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    let worker = Worker::builder(url)
        .prefix(prefix)
        .concurrency(concurrency)
        .handle::<Noop, _>(move |_task: Noop, _ctx: TaskContext| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                Ok::<(), TaskError>(())
            }
        })
        .build()
        .await?;
    Ok((worker, handled))
}

/// `--worker-child`: builds a worker with a no-op handler, prints `ready`, starts on a `go`
/// line, runs until stdin closes or SIGTERM, then prints `done handled=N vmhwm_kb=K`.
async fn worker_child(args: &Args) -> BenchResult<()> {
    let url = args
        .url
        .as_deref()
        .ok_or("--worker-child needs --url or MQ_REDIS_URL")?;
    let concurrency = *args
        .concurrency
        .first()
        .ok_or("--worker-child needs --concurrency")?;
    let (worker, handled) = noop_worker(url, &args.prefix, concurrency).await?;
    let token = worker.shutdown_token();
    let Some(mut stdin) = mq_examples::child::ready_then_go().await else {
        return Ok(()); // the parent went away before the start
    };
    let run = tokio::spawn(worker.run());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = async { while stdin.recv().await.is_some() {} } => {}
        _ = term.recv() => {}
    }
    token.cancel();
    run.await??;
    println!(
        "done handled={} vmhwm_kb={} cpu_ms={}",
        handled.load(Ordering::Relaxed),
        vmhwm_kb().unwrap_or(0),
        cpu_ms().unwrap_or(0)
    );
    Ok(())
}

/// Where a phase's time went on the server: `INFO cpu` and `INFO commandstats` deltas, plus
/// this process's CPU time. Read-only, so safe on a user's server too.
struct Probe {
    at: Instant,
    server: ServerStats,
    own_cpu_ms: u64,
}

#[derive(Default)]
struct ServerStats {
    cpu_s: f64,
    /// Command name -> (calls, total µs).
    commands: std::collections::BTreeMap<String, (u64, u64)>,
}

impl Probe {
    async fn start(conn: &mut MultiplexedConnection) -> BenchResult<Self> {
        Ok(Probe {
            server: server_stats(conn).await?,
            own_cpu_ms: cpu_ms().unwrap_or(0),
            at: Instant::now(),
        })
    }

    /// Prints one indented line: server CPU and per-command calls, items per call for the
    /// stream commands (`n` items in the phase) and mean server time per call.
    /// `rate` is the phase's result (`n` per second): CPU shares are of the phase's time,
    /// not of the probe's window (which also holds setup, checks and the worker's stop).
    async fn print(self, conn: &mut MultiplexedConnection, n: u64, rate: f64) -> BenchResult<()> {
        let window = self.at.elapsed().as_secs_f64();
        let phase = n as f64 / rate.max(1e-9);
        let own = cpu_ms().unwrap_or(0).saturating_sub(self.own_cpu_ms) as f64 / 1000.0;
        let after = server_stats(conn).await?;
        let cpu = after.cpu_s - self.server.cpu_s;
        let mut parts = Vec::new();
        for (name, (calls, usec)) in &after.commands {
            let (c0, u0) = self.server.commands.get(name).copied().unwrap_or((0, 0));
            let (calls, usec) = (calls - c0, usec - u0);
            if calls == 0 || name == "info" {
                continue;
            }
            let per_call = usec as f64 / calls as f64;
            if matches!(name.as_str(), "xreadgroup" | "xack" | "xdel") {
                parts.push(format!(
                    "{name} {calls}x ({:.1}/call, {per_call:.1} us)",
                    n as f64 / calls as f64
                ));
            } else {
                parts.push(format!("{name} {calls}x ({per_call:.1} us)"));
            }
        }
        println!(
            "    redis-server cpu {cpu:.2} s ({:.0} % of a core over the {phase:.2} s phase; probe window {window:.2} s); bench process cpu {own:.2} s; {}",
            100.0 * cpu / phase.max(1e-9),
            parts.join(", ")
        );
        Ok(())
    }
}

async fn server_stats(conn: &mut MultiplexedConnection) -> BenchResult<ServerStats> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut stats = ServerStats::default();
    for line in info.lines() {
        if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            stats.cpu_s += v.trim().parse::<f64>().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("cmdstat_") {
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let field = |key: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            stats
                .commands
                .insert(name.to_owned(), (field("calls"), field("usec")));
        }
    }
    Ok(stats)
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

/// Peak resident set size of this process in kB (`VmHWM` in /proc/self/status).
fn vmhwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
