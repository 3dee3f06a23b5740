//! The command line: global flags and one subcommand per operation (clap derive).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Operate mq task queues on Redis: queue sizes and rates, dead letters, workers, pending
/// entries, enqueueing by hand, pausing and resuming queues, cron schedules.
#[derive(Debug, Parser)]
#[command(name = "mq", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Redis URL, e.g. `redis://:password@host:6379/` (the help never shows the value of
    /// MQ_REDIS_URL: it may hold a password).
    #[arg(
        long,
        global = true,
        env = "MQ_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub(crate) url: String,
    /// PEM file of the CA that signed the certificate of a `rediss://` Redis (default: the
    /// system's root certificates).
    #[arg(long, global = true, env = "MQ_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS (with --tls-key).
    #[arg(
        long,
        global = true,
        env = "MQ_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "MQ_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Key prefix (must match the workers' and producers').
    #[arg(long, global = true, default_value = "mq")]
    pub(crate) prefix: String,
    /// Consumer group of the workers.
    #[arg(long, global = true, default_value = "mq")]
    pub(crate) group: String,
    /// Machine-readable JSON on stdout instead of tables (one document; with `stats --watch`
    /// one line per refresh).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Per queue: backlog, pending, delayed, dead, consumers, rates (enqueued/s, done/s), and
    /// whether it is paused.
    ///
    /// Rates come from two samples of the stream's counters: without --watch the command
    /// samples twice, --sample seconds apart (default 1 s; 0 skips the rates), then prints.
    /// With --watch it refreshes every SECS and each refresh's rates cover the time since the
    /// previous one. enq/s counts entries added to the stream (new tasks, promoted delayed
    /// tasks and retries, replays); done/s counts entries that left it (acked, retried or
    /// dead-lettered).
    Stats(StatsArgs),
    /// Dead-lettered tasks: list, show, replay, purge.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Live workers (registered in `{prefix}:workers` with an unexpired heartbeat key).
    Workers(WorkersArgs),
    /// Enqueues one task; the payload is JSON, stored as MessagePack with named fields (what
    /// rmp-serde makes of a struct). Prints the task id.
    Enqueue(EnqueueArgs),
    /// Entries delivered to a worker and not acked yet: id, consumer, idle time, deliveries.
    Pending(PendingArgs),
    /// Pauses a queue: every worker stops starting its tasks within a second (running tasks
    /// finish); producers still enqueue and delayed tasks still become ready. Lasts until
    /// `mq resume`, across worker restarts. A partitioned queue pauses as a whole.
    Pause {
        /// The queue.
        queue: String,
    },
    /// Resumes a paused queue: workers start its tasks again within a second.
    Resume {
        /// The queue.
        queue: String,
    },
    /// Cron schedules the workers run: name, queue, expression, time zone, last and next tick
    /// (as recorded in `{prefix}:{queue}:cron`).
    Schedules,
    /// Cancels a task by id: a queued or delayed task is removed (never runs); a running one
    /// is signalled (its handler sees it within one lease-renewal interval) and settled as
    /// cancelled, never retried. An unknown or finished id is reported, not an error.
    Cancel {
        /// The queue.
        queue: String,
        /// The task id (as `enqueue` returned it).
        id: String,
    },
    /// The event stream of a queue (task types with `#[task(events)]`): every state change
    /// kept (the last ~10,000), oldest first, one line each; with --follow, then new ones as
    /// they come until interrupted (Ctrl-C).
    Events {
        /// The queue.
        queue: String,
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
    },
    /// Serves a web UI for operators at `/` and the JSON API it uses under `/api/`: queues,
    /// tasks by state with paging, task details, dead letters, workers, schedules, and the
    /// actions (replay, delete, purge, pause/resume, cancel, enqueue). See README "Web UI".
    Web(WebArgs),
    /// What is known of a task by id: its status and result (task types with `result_ttl`,
    /// kept for that ttl after each change) and the progress its handler last reported
    /// (`ctx.progress`), kept for an hour after its last report.
    Status {
        /// The queue.
        queue: String,
        /// The task id (as `enqueue` returned it).
        id: String,
    },
    /// How fast a queue drains (entries leaving its streams per second, measured from Redis
    /// over the workers' drain samples of the last few minutes, across all workers), when it
    /// will be empty at that rate, and with --by or --in how many worker processes would
    /// empty it by then at the measured per-worker rate.
    Eta(EtaArgs),
    /// Runs (tasks enqueued with `producer.run(name)`): every run, newest first, with its
    /// progress (done, dead, failed attempts, remaining), drain rate and estimated end; `mq
    /// runs show NAME` for one.
    Runs {
        /// `show NAME`: one run.
        #[command(subcommand)]
        cmd: Option<RunsCmd>,
    },
}

/// `mq runs` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCmd {
    /// One run's progress, rate and estimated end.
    Show {
        /// The run's name.
        name: String,
    },
}

/// `mq eta`.
#[derive(Debug, Args)]
pub(crate) struct EtaArgs {
    /// The queue.
    #[arg(long)]
    pub(crate) queue: String,
    /// The deadline: HH:MM (the next such time, in this machine's time zone) or an RFC 3339
    /// time (2026-12-08T06:00:00+01:00).
    #[arg(long)]
    pub(crate) by: Option<String>,
    /// The deadline as a duration from now (`2h`, `90m`).
    #[arg(long = "in", value_parser = humantime::parse_duration, conflicts_with = "by")]
    pub(crate) within: Option<std::time::Duration>,
}

/// `mq stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Queues to show [default: every queue under the prefix].
    pub(crate) queues: Vec<String>,
    /// Refresh every SECS (default 2) until interrupted, e.g. `--watch`, `--watch 5`,
    /// `--watch 500ms`.
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "2",
        value_parser = parse_secs
    )]
    pub(crate) watch: Option<Duration>,
    /// Time between the two samples the rates are computed from when not watching; 0 shows
    /// no rates.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub(crate) sample: Duration,
    /// Also count the unique keys held and the per-key concurrency slots in use. These scan
    /// the keyspace (`SCAN`, at most 100 calls of 1,000 keys per queue and node; beyond that
    /// the counts say they are partial): leave it off on a large Redis, above all with
    /// `--watch`.
    #[arg(long)]
    pub(crate) keys: bool,
}

/// `mq web`.
#[derive(Debug, Args)]
pub(crate) struct WebArgs {
    /// Address to listen on. Anything but a loopback address needs --auth-token (or
    /// --insecure-no-auth).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Require this token: API calls must send `Authorization: Bearer <token>`, and the page
    /// asks for it in a login form (the help never shows the value of MQ_WEB_TOKEN).
    #[arg(
        long,
        env = "MQ_WEB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) auth_token: Option<String>,
    /// Disable every action (replay, delete, purge, pause, resume, cancel, enqueue): the API
    /// answers them 403.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Listen on a non-loopback address without a token.
    #[arg(long)]
    pub(crate) insecure_no_auth: bool,
    /// How often the page refreshes (the queue overview is read from Redis at most once per
    /// interval, whatever the number of viewers).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub(crate) refresh: Duration,
}

/// `mq dead ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// Lists dead tasks, oldest first.
    List {
        /// The queue.
        queue: String,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Shows one dead task with all its fields and the payload as JSON.
    Show {
        /// The queue.
        queue: String,
        /// Its id in the dead stream (first column of `mq dead list`).
        dead_id: String,
    },
    /// Moves dead tasks back to the queue with attempt 0.
    ///
    /// Dead entries that are not tasks (no id, name, payload or enqueued_at, e.g. the `raw`
    /// entries written for undecodable delayed members) are skipped and listed. --all replays
    /// the tasks dead when it starts, not those that die again meanwhile, and asks first.
    Replay {
        /// The queue.
        queue: String,
        /// Ids in the dead stream.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        dead_ids: Vec<String>,
        /// Replay every dead task of the queue.
        #[arg(long)]
        all: bool,
        /// With --all: do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Deletes every dead task of the queue.
    Purge {
        /// The queue.
        queue: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `mq workers`.
#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    /// Also list registered workers whose heartbeat expired (they died without
    /// unregistering).
    #[arg(long)]
    pub(crate) all: bool,
}

/// `mq enqueue`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The queue.
    pub(crate) queue: String,
    /// The task name (selects the handler, e.g. `EmbedText`).
    pub(crate) name: String,
    /// The task as JSON, e.g. `'{"product_id": 7, "text": "red shoe"}'`.
    pub(crate) payload: String,
}

/// `mq pending`.
#[derive(Debug, Args)]
pub(crate) struct PendingArgs {
    /// The queue.
    pub(crate) queue: String,
    /// How many entries to show, oldest first.
    #[arg(long, default_value_t = 100)]
    pub(crate) count: usize,
}

/// Parses `5`, `2.5` (seconds) or a humantime duration such as `500ms` or `1m`.
fn parse_secs(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a valid number of seconds"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is neither seconds nor a duration like 500ms: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_and_durations_parse() {
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
