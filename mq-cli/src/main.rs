//! `mq`: the command-line tool for operators of mq task queues, built on `mq_core::admin`.
//!
//! ```text
//! mq stats [QUEUE...] [--watch [SECS]] [--sample SECS]
//! mq dead list <queue> [--count N]
//! mq dead show <queue> <dead-id>
//! mq dead replay <queue> (<dead-id>... | --all [--yes])
//! mq dead purge <queue> [--yes]
//! mq workers [--all]
//! mq enqueue <queue> <name> <json>
//! mq pending <queue> [--count N]
//! mq pause <queue>
//! mq resume <queue>
//! mq schedules
//! mq cancel <queue> <id>
//! mq status <queue> <id>
//! mq events <queue> [--follow]
//! mq web [--listen ADDR] [--auth-token T] [--read-only]
//! ```
//!
//! `mq stats` computes its rates from two samples of each stream's counters (`XINFO STREAM`
//! `entries-added`, and entries that left the stream): one-shot it samples twice `--sample`
//! seconds apart (default 1 s, `0` for no rates); with `--watch` each refresh's rates cover the
//! time since the previous refresh.
//!
//! Global flags: `--url` (or `MQ_REDIS_URL`, default `redis://127.0.0.1:6379/`), `--prefix`
//! (default `mq`), `--group` (default `mq`), `--json` for machine-readable output, and for a
//! `rediss://` URL `--tls-ca`, `--tls-cert`, `--tls-key` (or `MQ_TLS_CA`, `MQ_TLS_CERT`,
//! `MQ_TLS_KEY`). Errors are
//! one `error: ...` line on stderr and exit status 1 (2 for a bad command line).

mod cancel;
mod cli;
mod dead;
mod enqueue;
mod error;
mod eta;
mod events;
mod output;
mod pause;
mod pending;
mod runs;
mod schedules;
mod stats;
mod web;
mod workers;

use std::process::ExitCode;

use clap::Parser;
use mq_core::{redis::keys::QueueKeys, Admin, TlsOptions};

use crate::{
    cli::{Cli, Command},
    error::CliError,
};

/// What every command needs: where Redis is and how to print.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// Redis URL.
    pub(crate) url: String,
    /// Key prefix.
    pub(crate) prefix: String,
    /// Consumer group.
    pub(crate) group: String,
    /// JSON output.
    pub(crate) json: bool,
    /// TLS settings for a `rediss://` URL.
    pub(crate) tls: TlsOptions,
}

impl Ctx {
    /// Connects the admin API.
    pub(crate) async fn admin(&self) -> Result<Admin, CliError> {
        Admin::connect_with_tls(&self.url, &self.prefix, &self.group, &self.tls)
            .await
            .map_err(|e| self.connect_error(e))
    }

    /// Turns a failed connect into [`CliError::Unreachable`] (other errors stay as they are).
    pub(crate) fn connect_error(&self, e: mq_core::Error) -> CliError {
        match e {
            e @ (mq_core::Error::Redis { .. } | mq_core::Error::Tls(_)) => CliError::Unreachable {
                url: error::redact_url(&self.url),
                source: e,
            },
            e => e.into(),
        }
    }

    /// The keys of `queue`.
    pub(crate) fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// Fails with [`CliError::NoSuchQueue`] unless `queue` has a stream.
    pub(crate) async fn require_queue(&self, admin: &Admin, queue: &str) -> Result<(), CliError> {
        if admin.exists(queue).await? {
            Ok(())
        } else {
            Err(CliError::NoSuchQueue {
                queue: queue.to_owned(),
                stream: self.keys(queue).stream,
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        url: cli.url,
        prefix: cli.prefix,
        group: cli.group,
        json: cli.json,
        tls: TlsOptions {
            ca_file: cli.tls_ca,
            client_cert: cli.tls_cert,
            client_key: cli.tls_key,
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&ctx, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error::one_line(&e, &ctx.url));
            ExitCode::FAILURE
        }
    }
}

async fn run(ctx: &Ctx, command: Command) -> Result<(), CliError> {
    match command {
        Command::Stats(args) => stats::run(ctx, args).await,
        Command::Dead(cmd) => dead::run(ctx, cmd).await,
        Command::Workers(args) => workers::run(ctx, args).await,
        Command::Enqueue(args) => enqueue::run(ctx, args).await,
        Command::Pending(args) => pending::run(ctx, args).await,
        Command::Pause { queue } => pause::run(ctx, &queue, true).await,
        Command::Resume { queue } => pause::run(ctx, &queue, false).await,
        Command::Schedules => schedules::run(ctx).await,
        Command::Cancel { queue, id } => cancel::run(ctx, &queue, &id).await,
        Command::Status { queue, id } => cancel::status(ctx, &queue, &id).await,
        Command::Events { queue, follow } => events::run(ctx, &queue, follow).await,
        Command::Web(args) => web::run(ctx, args).await,
        Command::Eta(args) => eta::run(ctx, args).await,
        Command::Runs { cmd } => runs::run(ctx, cmd).await,
    }
}
