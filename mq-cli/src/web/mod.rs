//! `mq web`: a web UI for operators and the JSON API under `/api/` that it runs on, served by
//! the `mq` binary itself (axum; the page's HTML, JS and CSS are embedded with
//! `include_str!`: nothing to build, install or fetch).
//!
//! - `app.rs`: what every request shares (the admin handle, the settings, the overview cache);
//! - `guard.rs`: who may read and act (token, DNS-rebinding and CSRF defences, read-only);
//! - `api.rs`: the reads and actions, each a bounded number of Redis commands;
//! - `view.rs`: the JSON shapes of queues, tasks and dead letters;
//! - `error.rs`: refusals and failures as JSON with a 4xx or 502 status;
//! - `assets/`: the page (one HTML file, one script, one style sheet).

mod api;
mod app;
mod error;
mod guard;
mod view;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    http::{header, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use tokio::sync::{Mutex, OnceCell};

use self::app::{App, CtxCopy, OverviewCache};
use crate::{cli::WebArgs, error::CliError, Ctx};

/// Runs the server until Ctrl-C / SIGTERM.
pub(crate) async fn run(ctx: &Ctx, args: WebArgs) -> Result<(), CliError> {
    let token = args.auth_token.filter(|t| !t.is_empty());
    if token.is_none() && !args.listen.ip().is_loopback() && !args.insecure_no_auth {
        return Err(CliError::Refused(format!(
            "refusing to listen on {} without --auth-token (or MQ_WEB_TOKEN): anyone who can \
             reach it could purge and replay queues; pass --insecure-no-auth to do it anyway",
            args.listen
        )));
    }
    let admin = ctx.admin().await?;
    let app = Arc::new(App {
        admin,
        producer: OnceCell::new(),
        ctx: CtxCopy {
            url: ctx.url.clone(),
            prefix: ctx.prefix.clone(),
            tls: ctx.tls.clone(),
        },
        token,
        read_only: args.read_only,
        refresh: args.refresh.max(Duration::from_millis(200)),
        overview: Mutex::new(OverviewCache::default()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Refused(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr: SocketAddr = listener.local_addr()?;
    // One line, flushed, that scripts and tests wait for.
    crate::output::print(&format!(
        "mq web listening on http://{addr}/{}{}\n",
        if app.read_only { " (read-only)" } else { "" },
        if app.token.is_some() {
            " (token required)"
        } else {
            ""
        },
    ))?;
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Every route: the page, its assets, the API; anything else is a JSON 404.
fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/config", get(api::config))
        .route("/queues", get(api::queues))
        .route("/queues/{queue}/tasks", get(api::tasks))
        .route("/queues/{queue}/task", get(api::task))
        .route("/queues/{queue}/status/{id}", get(api::status))
        .route("/queues/{queue}/keys", get(api::keys))
        .route("/workers", get(api::workers))
        .route("/schedules", get(api::schedules))
        .route("/queues/{queue}/pause", post(api::pause))
        .route("/queues/{queue}/resume", post(api::resume))
        .route("/queues/{queue}/cancel", post(api::cancel))
        .route("/queues/{queue}/enqueue", post(api::enqueue))
        .route("/queues/{queue}/dead/replay", post(api::replay))
        .route("/queues/{queue}/dead/delete", post(api::delete))
        .route("/queues/{queue}/dead/purge", post(api::purge))
        .fallback(|| async { error::ApiError::not_found("no such API path") });
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/app.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .nest("/api", api)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        .with_state(app)
}

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
