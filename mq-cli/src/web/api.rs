//! The API's reads and actions. Every read is bounded: the queue overview reads the queue
//! registry and one `MULTI` of plain reads for all queues, at most once per refresh interval
//! whatever the number of viewers (cached); a page of tasks reads at most
//! [`MAX_PAGE`](mq_core::admin::MAX_PAGE) entries from a cursor; no view scans a stream or the
//! keyspace, but for the key-slot view, whose scan is capped and says so.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    Json,
};
use mq_core::{admin::TaskState, redis::keys, CancelOutcome, Producer};
use serde_json::{json, Value};

use super::{
    app::{App, Snapshot},
    error::ApiError,
    view,
};

type Answer = Result<Json<Value>, ApiError>;
type Params = Query<HashMap<String, String>>;

/// Rows of a task page when the request does not say.
const DEFAULT_PAGE: usize = 50;
/// The most dead-letter ids one replay or delete names.
const MAX_IDS: usize = 1000;

impl App {
    fn fail(&self, e: &mq_core::Error) -> ApiError {
        ApiError::core(e, &self.ctx.url)
    }

    /// Checks `queue`'s name (400) and that it is a queue of this prefix: in the queue
    /// registry or with a stream (404 otherwise).
    async fn require_queue(&self, queue: &str) -> Result<(), ApiError> {
        let name = queue.rsplit_once('@').map_or(queue, |(q, _)| q);
        keys::validate_queue_or_partition(name).map_err(ApiError::bad_request)?;
        let base = keys::base_queue(name);
        if self
            .admin
            .queues()
            .await
            .map_err(|e| self.fail(&e))?
            .iter()
            .any(|q| q == base)
            || self.admin.exists(queue).await.map_err(|e| self.fail(&e))?
        {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no such queue {queue:?}")))
        }
    }

    /// The producer for "enqueue", connected on first use.
    async fn producer(&self) -> Result<&Producer, ApiError> {
        self.producer
            .get_or_try_init(|| async {
                Producer::builder(&self.ctx.url)
                    .prefix(&self.ctx.prefix)
                    .tls(self.ctx.tls.clone())
                    .connect()
                    .await
            })
            .await
            .map_err(|e| self.fail(&e))
    }
}

/// `GET /api/config`: what the page needs to know of the server.
pub(crate) async fn config(State(app): State<Arc<App>>) -> Answer {
    Ok(Json(json!({
        "read_only": app.read_only,
        "refresh_ms": app.refresh.as_millis() as u64,
        "prefix": app.ctx.prefix,
        "redis": crate::error::redact_url(&app.ctx.url),
        "version": env!("CARGO_PKG_VERSION"),
        "max_page": mq_core::admin::MAX_PAGE,
    })))
}

/// `GET /api/queues`: every queue with its partitions and levels, sizes and rates.
pub(crate) async fn queues(State(app): State<Arc<App>>) -> Answer {
    let mut cache = app.overview.lock().await;
    let fresh = cache
        .last
        .as_ref()
        .is_some_and(|s| s.at.elapsed() + Duration::from_millis(50) < app.refresh);
    if !fresh {
        let names = app.admin.queues().await.map_err(|e| app.fail(&e))?;
        let queues = app.admin.overview(&names).await.map_err(|e| app.fail(&e))?;
        if let Some(old) = cache.last.take() {
            cache.prev_info = old
                .queues
                .iter()
                .flat_map(|q| {
                    std::iter::once(&q.total)
                        .chain(&q.partitions)
                        .chain(&q.levels)
                })
                .filter_map(|s| Some((s.stats.queue.clone(), s.info.clone()?)))
                .collect();
            cache.prev_at = Some(old.at);
        }
        cache.last = Some(Snapshot {
            at: Instant::now(),
            at_ms: crate::output::now_ms(),
            queues,
        });
    }
    let Some(last) = &cache.last else {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "no overview",
        ));
    };
    let secs = cache
        .prev_at
        .map_or(0.0, |p| last.at.duration_since(p).as_secs_f64());
    let queues: Vec<Value> = last
        .queues
        .iter()
        .map(|q| {
            json!({
                "queue": q.total.stats.queue,
                "total": view::sample(&q.total, &cache.prev_info, secs),
                "duplicates_refused": q.duplicates,
                "partitions": q.partitions.iter().map(|s| view::sample(s, &cache.prev_info, secs)).collect::<Vec<_>>(),
                "levels": q.levels.iter().map(|s| view::sample(s, &cache.prev_info, secs)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "at_ms": last.at_ms,
        "rate_window_secs": (secs > 0.0).then_some(secs),
        "queues": queues,
    })))
}

fn state_of(params: &HashMap<String, String>) -> Result<TaskState, ApiError> {
    params
        .get("state")
        .map_or(Ok(TaskState::Queued), |s| s.parse())
        .map_err(|e: mq_core::Error| {
            ApiError::bad_request(e.to_string().replace("invalid configuration: ", ""))
        })
}

/// `GET /api/queues/{queue}/tasks?state=&cursor=&count=`: one page of the queue's tasks in a
/// state (`queued`, `running`, `delayed`, `dead`).
pub(crate) async fn tasks(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = state_of(&params)?;
    let count = match params.get("count") {
        None => DEFAULT_PAGE,
        Some(c) => c.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "count {c:?} is not a number (1 to {})",
                mq_core::admin::MAX_PAGE
            ))
        })?,
    };
    if count == 0 || count > mq_core::admin::MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "count {count} is out of range: 1 to {}",
            mq_core::admin::MAX_PAGE
        )));
    }
    app.require_queue(&queue).await?;
    let page = app
        .admin
        .browse(
            &queue,
            state,
            params.get("cursor").map(String::as_str),
            count,
        )
        .await
        .map_err(|e| app.fail(&e))?;
    Ok(Json(json!({
        "queue": queue,
        "state": state.as_str(),
        "rows": page.rows.iter().map(|r| view::row(r, false)).collect::<Vec<_>>(),
        "next": page.next,
    })))
}

/// `GET /api/queues/{queue}/task?state=&stream=&id=&due=`: one task in full, as a page row
/// named it (`stream` and `id`; for a delayed task `due` and the task id as `id`), with its
/// status, result and progress when its type is tracked.
pub(crate) async fn task(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = state_of(&params)?;
    let stream = params
        .get("stream")
        .cloned()
        .unwrap_or_else(|| queue.clone());
    let id = params
        .get("id")
        .ok_or_else(|| ApiError::bad_request("the task view needs an id"))?;
    check_task_id(id)?;
    let base = |s: &str| keys::base_queue(s.rsplit_once('@').map_or(s, |(q, _)| q)).to_owned();
    if base(&stream) != base(&queue) {
        return Err(ApiError::bad_request(format!(
            "stream {stream:?} is not one of queue {queue:?}'s"
        )));
    }
    app.require_queue(&stream).await?;
    let row = match state {
        TaskState::Queued | TaskState::Running => app.admin.entry(&stream, id).await,
        TaskState::Delayed => {
            let due = params
                .get("due")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("a delayed task needs its due time (due=<unix ms>)")
                })?;
            app.admin.delayed_entry(&stream, due, id).await
        }
        TaskState::Dead => app.admin.dead_entry(&stream, id).await,
    }
    .map_err(|e| app.fail(&e))?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "no {state} task {id:?} in {stream:?} (it may have moved on)"
        ))
    })?;
    let mut v = view::row(&row, true);
    if let Ok(t) = &row.task {
        if t.track.is_some() {
            let own = stream.rsplit_once('@').map_or(stream.as_str(), |(q, _)| q);
            let status = tracked(&app, own, &t.id).await?;
            if let Some(obj) = v.as_object_mut() {
                obj.extend(status);
            }
        }
        if t.events {
            let own = stream.rsplit_once('@').map_or(stream.as_str(), |(q, _)| q);
            let (events, complete) = app
                .admin
                .task_events(own, &t.id)
                .await
                .map_err(|e| app.fail(&e))?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "events".into(),
                    events.iter().map(crate::events::to_json).collect(),
                );
                obj.insert("events_complete".into(), complete.into());
            }
        }
    }
    Ok(Json(v))
}

/// Status, result and progress of tracked task `id`.
async fn tracked(
    app: &App,
    queue: &str,
    id: &str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let status = app
        .admin
        .status(queue, id)
        .await
        .map_err(|e| app.fail(&e))?;
    let result = app
        .admin
        .result(queue, id)
        .await
        .map_err(|e| app.fail(&e))?;
    let progress = app
        .admin
        .progress(queue, id)
        .await
        .map_err(|e| app.fail(&e))?;
    let mut m = serde_json::Map::new();
    m.insert("status".into(), crate::cancel::status_json(&status));
    m.insert("result".into(), result.unwrap_or(Value::Null));
    m.insert("progress".into(), progress.unwrap_or(Value::Null));
    Ok(m)
}

/// A task id or stream id as the API takes it: 1 to 128 printable ASCII characters.
fn check_task_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "bad id {:?}: expected 1 to 128 printable ASCII characters",
            id.chars().take(140).collect::<String>()
        )));
    }
    Ok(())
}

/// `GET /api/queues/{queue}/status/{id}`: a task's status, result and progress by task id.
pub(crate) async fn status(
    State(app): State<Arc<App>>,
    Path((queue, id)): Path<(String, String)>,
) -> Answer {
    check_task_id(&id)?;
    app.require_queue(&queue).await?;
    let mut m = tracked(&app, &queue, &id).await?;
    m.insert("task_id".into(), id.into());
    m.insert("queue".into(), queue.into());
    Ok(Json(m.into()))
}

/// `GET /api/queues/{queue}/keys`: unique keys held and per-key concurrency slots in use
/// (these scan the keyspace, capped at `SCAN_MAX_CALLS`; `partial` says when the cap cut
/// them short).
pub(crate) async fn keys(State(app): State<Arc<App>>, Path(queue): Path<String>) -> Answer {
    app.require_queue(&queue).await?;
    let unique = app
        .admin
        .unique_stats(&queue)
        .await
        .map_err(|e| app.fail(&e))?;
    let slots = app
        .admin
        .key_slots(&queue)
        .await
        .map_err(|e| app.fail(&e))?;
    Ok(Json(json!({
        "queue": queue,
        "unique_keys": unique.held,
        "unique_keys_partial": unique.partial,
        "key_slots": slots.keys.iter().map(|k| json!({"key": k.name, "running": k.running})).collect::<Vec<_>>(),
        "key_slots_partial": slots.partial,
    })))
}

/// `GET /api/workers`: registered workers, live or not.
pub(crate) async fn workers(State(app): State<Arc<App>>) -> Answer {
    let workers = app.admin.workers().await.map_err(|e| app.fail(&e))?;
    Ok(Json(json!({
        "workers": workers.iter().map(crate::workers::to_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/schedules`: the cron schedules the workers recorded.
pub(crate) async fn schedules(State(app): State<Arc<App>>) -> Answer {
    let schedules = app.admin.schedules().await.map_err(|e| app.fail(&e))?;
    Ok(Json(json!({
        "schedules": schedules.iter().map(crate::schedules::to_json).collect::<Vec<_>>(),
    })))
}

/// The JSON object of a POST body (an empty body is `{}`).
fn body(bytes: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// The `ids` of a body: 1 to [`MAX_IDS`] strings.
fn ids(m: &serde_json::Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let Some(Value::Array(list)) = m.get("ids") else {
        return Err(ApiError::bad_request(
            "expected {\"ids\": [\"<dead id>\", ...]}",
        ));
    };
    if list.is_empty() || list.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "{} ids given: name 1 to {MAX_IDS}",
            list.len()
        )));
    }
    list.iter()
        .map(|v| match v.as_str() {
            Some(id)
                if id.split_once('-').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && (a.len() + b.len()) <= 40
                        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                }) =>
            {
                Ok(id.to_owned())
            }
            _ => Err(ApiError::bad_request(format!(
                "bad dead-letter id {v}: expected \"<unix-ms>-<seq>\""
            ))),
        })
        .collect()
}

/// `POST /api/queues/{queue}/pause`.
pub(crate) async fn pause(State(app): State<Arc<App>>, Path(queue): Path<String>) -> Answer {
    app.require_queue(&queue).await?;
    app.admin.pause(&queue).await.map_err(|e| app.fail(&e))?;
    Ok(Json(json!({ "queue": queue, "paused": true })))
}

/// `POST /api/queues/{queue}/resume`.
pub(crate) async fn resume(State(app): State<Arc<App>>, Path(queue): Path<String>) -> Answer {
    app.require_queue(&queue).await?;
    app.admin.resume(&queue).await.map_err(|e| app.fail(&e))?;
    Ok(Json(json!({ "queue": queue, "paused": false })))
}

/// `POST /api/queues/{queue}/cancel` `{"id": "<task id>"}`.
pub(crate) async fn cancel(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    bytes: Bytes,
) -> Answer {
    let m = body(&bytes)?;
    let id = m
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("expected {\"id\": \"<task id>\"}"))?;
    check_task_id(id)?;
    app.require_queue(&queue).await?;
    let outcome = app
        .admin
        .cancel(&queue, id)
        .await
        .map_err(|e| app.fail(&e))?;
    let (name, consumer) = match outcome {
        CancelOutcome::Queued => ("queued", None),
        CancelOutcome::Delayed => ("delayed", None),
        CancelOutcome::Running { consumer } => ("running", Some(consumer)),
        CancelOutcome::NotFound => ("not_found", None),
    };
    Ok(Json(
        json!({ "queue": queue, "id": id, "outcome": name, "consumer": consumer }),
    ))
}

/// `POST /api/queues/{queue}/enqueue` `{"name": "<task name>", "payload": {...}}`: one task,
/// the payload stored as MessagePack with named fields (as `mq enqueue`).
pub(crate) async fn enqueue(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    bytes: Bytes,
) -> Answer {
    let m = body(&bytes)?;
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= 200)
        .ok_or_else(|| {
            ApiError::bad_request("expected {\"name\": \"<task name>\", \"payload\": {...}}")
        })?;
    let payload = m.get("payload").cloned().unwrap_or(Value::Null);
    let payload = rmp_serde::to_vec_named(&payload).map_err(|e| {
        ApiError::bad_request(format!("cannot encode the payload as MessagePack: {e}"))
    })?;
    // A partition or level is not where tasks are enqueued: the queue's own name is.
    keys::validate_queue_name(&queue).map_err(ApiError::bad_request)?;
    app.require_queue(&queue).await?;
    let id = app
        .producer()
        .await?
        .enqueue_raw(&queue, name, payload)
        .await
        .map_err(|e| app.fail(&e))?;
    Ok(Json(json!({ "queue": queue, "name": name, "id": id })))
}

/// `POST /api/queues/{queue}/dead/replay` `{"ids": [...]}` or `{"all": true}` (in batches of
/// 500 per script call, the tasks dead when it starts, as `mq dead replay --all`).
pub(crate) async fn replay(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    bytes: Bytes,
) -> Answer {
    let m = body(&bytes)?;
    let all = m.get("all").and_then(Value::as_bool) == Some(true);
    let ids = if all { Vec::new() } else { ids(&m)? };
    app.require_queue(&queue).await?;
    let report = if all {
        app.admin.dead_replay_all(&queue).await
    } else {
        app.admin.dead_replay(&queue, &ids).await
    }
    .map_err(|e| app.fail(&e))?;
    Ok(Json(json!({
        "queue": queue,
        "requested": if all { None } else { Some(ids.len()) },
        "replayed": report.replayed,
        "skipped": report.skipped,
        "duplicates": report.duplicates,
    })))
}

/// `POST /api/queues/{queue}/dead/delete` `{"ids": [...]}`.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    bytes: Bytes,
) -> Answer {
    let ids = ids(&body(&bytes)?)?;
    app.require_queue(&queue).await?;
    let deleted = app
        .admin
        .dead_delete(&queue, &ids)
        .await
        .map_err(|e| app.fail(&e))?;
    Ok(Json(
        json!({ "queue": queue, "requested": ids.len(), "deleted": deleted }),
    ))
}

/// `POST /api/queues/{queue}/dead/purge`: deletes every dead letter of the queue.
pub(crate) async fn purge(State(app): State<Arc<App>>, Path(queue): Path<String>) -> Answer {
    app.require_queue(&queue).await?;
    let purged = app
        .admin
        .dead_purge(&queue)
        .await
        .map_err(|e| app.fail(&e))?;
    Ok(Json(json!({ "queue": queue, "purged": purged })))
}
