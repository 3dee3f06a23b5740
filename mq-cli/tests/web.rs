//! `mq web` against a real redis-server (one per test): every API view and action, the bounded
//! paging and what the server must refuse (bad input with a 4xx and a clear message, actions
//! without the CSRF header or from another origin, any action in `--read-only`, any API call
//! without the token, a Host that is not an address, a non-loopback listen without a token),
//! and that no answer carries the Redis password.

use std::{collections::HashSet, process::Stdio, time::Duration};

use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, wait_until, xlen};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest wait for anything in these tests: 30 s.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Task)]
#[task(queue = "texts", max_retries = 0, backoff = "none")]
struct Embed {
    n: u64,
    fail: bool,
}

/// A running `mq web` and a client for it (with the token it was started with).
struct Web {
    _child: tokio::process::Child,
    client: Client,
}

impl std::ops::Deref for Web {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// An HTTP client of one `mq web`, sending `token` (if any) as a bearer token.
#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Web {
    /// Starts `mq web --listen 127.0.0.1:0 args...` against `url` and waits for its line.
    async fn start(url: &str, args: &[&str]) -> Web {
        let mut all = vec!["web"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--refresh") {
            all.extend(["--refresh", "0.2"]);
        }
        all.extend(args);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"))
            .args(&all)
            .env("MQ_REDIS_URL", url)
            .env_remove("MQ_WEB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mq web");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("mq web starts in time")
            .expect("read stdout")
            .expect("mq web printed its address");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Web {
            _child: child,
            client: Client {
                base,
                http: reqwest::Client::builder()
                    .timeout(WAIT)
                    .no_proxy()
                    .build()
                    .expect("client"),
                token: args
                    .iter()
                    .position(|a| *a == "--auth-token")
                    .map(|i| args[i + 1].to_owned()),
            },
        }
    }
}

impl Client {
    /// This client with another token.
    fn with_token(&self, token: Option<&str>) -> Client {
        Client {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// `GET path`: status and body (JSON, or the text as a JSON string).
    async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.req(reqwest::Method::GET, path).send().await).await
    }

    /// `GET path`, asserting 200.
    async fn ok(&self, path: &str) -> Value {
        let (status, v) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// `POST path` with the action header and a JSON body.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        answer(
            self.req(reqwest::Method::POST, path)
                .header("X-Requested-By", "mq-web")
                .json(&body)
                .send()
                .await,
        )
        .await
    }

    /// `POST path`, asserting 200.
    async fn act(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 200, "POST {path}: {v}");
        v
    }
}

async fn answer(res: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let res = res.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts a 4xx with a JSON `error` containing `what`.
fn refused(answer: (u16, Value), status: u16, what: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"));
    assert!(message.contains(what), "{message:?} lacks {what:?}");
}

/// Runs a worker with `handler` for `T` until `T`'s queue holds `n` dead letters, then stops
/// it cleanly.
async fn run_until_dead<T: Task, H: mq_core::Handler<T>>(
    server: &mq_tests::LocalRedis,
    n: usize,
    handler: H,
) {
    let worker = Worker::builder(&server.url())
        .handle::<T, _>(handler)
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("worker");
    let token = worker.shutdown_token();
    let running = tokio::spawn(worker.run());
    let c = conn(server).await;
    let dead = QueueKeys::new("mq", T::QUEUE).dead;
    wait_until(WAIT, "dead letters", || {
        let (mut c, dead) = (c.clone(), dead.clone());
        async move { xlen(&mut c, &dead).await >= n }
    })
    .await;
    token.cancel();
    running.await.expect("join").expect("worker stops cleanly");
}

/// Dead-letters `n` tasks of `texts` through a real worker, then leaves `queued` tasks
/// queued, one of them delivered to consumer `ghost` (running), and `delayed` delayed ones.
async fn populate(server: &mq_tests::LocalRedis, dead: u64, queued: u64, delayed: u64) {
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((0..dead).map(|n| Embed { n, fail: true }))
        .await
        .expect("enqueue");
    run_until_dead::<Embed, _>(
        server,
        dead as usize,
        |t: Embed, _ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!("model refused text {}", t.n)))
        },
    )
    .await;
    let mut c = conn(server).await;
    let k = QueueKeys::new("mq", "texts");
    producer
        .enqueue_many((100..100 + queued).map(|n| Embed { n, fail: false }))
        .await
        .expect("enqueue");
    mq_tests::read_as(&mut c, &k.stream, "ghost").await;
    for i in 0..delayed {
        producer
            .enqueue_in(
                Duration::from_secs(3600 * (i + 1)),
                Embed {
                    n: 900 + i,
                    fail: false,
                },
            )
            .await
            .expect("enqueue_in");
    }
}

#[tokio::test]
async fn every_view_pages_and_details_tasks_by_state() {
    let server = mq_tests::redis();
    populate(&server, 5, 120, 3).await;
    let web = Web::start(&server.url(), &[]).await;

    let page = web.ok("/").await;
    assert!(
        page.as_str().is_some_and(|p| p.contains("/app.js")),
        "{page}"
    );
    let overview = web.ok("/api/queues").await;
    let texts = &overview["queues"][0];
    assert_eq!(texts["queue"], "texts", "{overview}");
    assert_eq!(texts["total"]["dead"], 5);
    assert_eq!(texts["total"]["delayed"], 3);
    assert_eq!(texts["total"]["pending"], 1);
    assert_eq!(texts["total"]["backlog"], 119);

    // Queued: 119 in pages of 50, each task once, oldest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/queues/texts/tasks?state=queued&count=50&cursor={c}"),
            None => "/api/queues/texts/tasks?state=queued&count=50".to_owned(),
        };
        let page = web.ok(&path).await;
        let rows = page["rows"].as_array().expect("rows");
        assert!(rows.len() <= 50);
        seen.extend(
            rows.iter()
                .map(|r| r["entry_id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 119, "every queued task once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 119);
    let first = web.ok("/api/queues/texts/tasks?state=queued&count=1").await;
    let row = &first["rows"][0];
    assert_eq!(row["name"], "Embed");
    assert_eq!(row["payload_preview"], r#"{"fail":false,"n":101}"#);

    // Running: the entry `ghost` holds.
    let running = web.ok("/api/queues/texts/tasks?state=running").await;
    assert_eq!(running["rows"][0]["consumer"], "ghost", "{running}");
    assert_eq!(running["rows"][0]["deliveries"], 1);
    let entry = running["rows"][0]["entry_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let detail = web
        .ok(&format!(
            "/api/queues/texts/task?state=running&stream=texts&id={entry}"
        ))
        .await;
    assert_eq!(
        detail["payload"],
        json!({"n": 100, "fail": false}),
        "{detail}"
    );
    assert_eq!(detail["consumer"], "ghost");

    // Delayed: earliest first, paged by score.
    let d1 = web
        .ok("/api/queues/texts/tasks?state=delayed&count=2")
        .await;
    let rows = d1["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert!(rows[0]["due_ms"].as_u64() < rows[1]["due_ms"].as_u64());
    let next = d1["next"].as_str().expect("a next page");
    let d2 = web
        .ok(&format!(
            "/api/queues/texts/tasks?state=delayed&count=2&cursor={next}"
        ))
        .await;
    assert_eq!(d2["rows"].as_array().map(Vec::len), Some(1), "{d2}");
    assert_eq!(
        d2["rows"][0]["payload_preview"],
        r#"{"fail":false,"n":902}"#
    );
    let (due, id) = (
        &d2["rows"][0]["due_ms"],
        d2["rows"][0]["task_id"].as_str().expect("id"),
    );
    let detail = web
        .ok(&format!(
            "/api/queues/texts/task?state=delayed&stream=texts&id={id}&due={due}"
        ))
        .await;
    assert_eq!(detail["payload"]["n"], 902);

    // Dead: newest first, with the reason.
    let dead = web.ok("/api/queues/texts/tasks?state=dead").await;
    let rows = dead["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    assert!(
        rows[0]["entry_id"].as_str() > rows[4]["entry_id"].as_str(),
        "newest first"
    );
    let reason = rows[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("model refused text"), "{reason}");
    let dead_id = rows[0]["entry_id"].as_str().expect("id");
    let detail = web
        .ok(&format!(
            "/api/queues/texts/task?state=dead&stream=texts&id={dead_id}"
        ))
        .await;
    assert_eq!(detail["payload"]["fail"], true);
    assert_eq!(detail["dead"]["dead_id"], dead_id);

    // The other views.
    assert!(web.ok("/api/workers").await["workers"].is_array());
    assert!(web.ok("/api/schedules").await["schedules"].is_array());
    let keys = web.ok("/api/queues/texts/keys").await;
    assert_eq!(keys["unique_keys"], 0, "{keys}");
    assert_eq!(web.ok("/api/config").await["read_only"], false);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Task)]
#[task(
    queue = "journal",
    events,
    result_ttl = "1h",
    max_retries = 1,
    backoff = "fixed(10ms)"
)]
struct Journaled {
    n: u64,
}

#[tokio::test]
async fn the_task_view_shows_a_tasks_own_events_oldest_first() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    // Another task's events between ours: the view must show only its own task's.
    producer.enqueue(Journaled { n: 1 }).await.expect("enqueue");
    producer.enqueue(Journaled { n: 2 }).await.expect("enqueue");
    run_until_dead::<Journaled, _>(&server, 2, |t: Journaled, _ctx: TaskContext| async move {
        Err::<(), _>(TaskError::retry(format!("no model for {}", t.n)))
    })
    .await;

    let web = Web::start(&url, &[]).await;
    let page = web.ok("/api/queues/journal/tasks?state=dead").await;
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{page}");
    for row in rows {
        let (entry, task_id) = (
            row["entry_id"].as_str().expect("entry id"),
            row["task_id"].as_str().expect("task id"),
        );
        let detail = web
            .ok(&format!(
                "/api/queues/journal/task?state=dead&stream=journal&id={entry}"
            ))
            .await;
        assert_eq!(detail["events_complete"], true, "{detail}");
        let events = detail["events"].as_array().expect("events");
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().expect("event"))
            .collect();
        assert_eq!(
            names,
            ["enqueued", "started", "retrying", "started", "dead"],
            "{detail}"
        );
        assert!(events.iter().all(|e| e["id"] == task_id), "{detail}");
        let at: Vec<&str> = events
            .iter()
            .map(|e| e["at"].as_str().expect("at"))
            .collect();
        let mut sorted = at.clone();
        sorted.sort_by_key(|a| {
            let (ms, seq) = a.split_once('-').expect("stream id");
            (
                ms.parse::<u64>().expect("ms"),
                seq.parse::<u64>().expect("seq"),
            )
        });
        assert_eq!(at, sorted, "oldest first");
        assert_eq!(detail["status"]["state"], "failed", "{detail}");
    }
    // A task type without events has no events in its view.
    populate(&server, 1, 0, 0).await;
    let page = web.ok("/api/queues/texts/tasks?state=dead").await;
    let entry = page["rows"][0]["entry_id"].as_str().expect("entry id");
    let detail = web
        .ok(&format!(
            "/api/queues/texts/task?state=dead&stream=texts&id={entry}"
        ))
        .await;
    assert!(detail.get("events").is_none(), "{detail}");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_4xx() {
    let server = mq_tests::redis();
    populate(&server, 1, 3, 0).await;
    let web = Web::start(&server.url(), &[]).await;
    let long_id = format!("/api/queues/texts/task?state=queued&id={}", "9".repeat(200));
    let tasks = "/api/queues/texts/tasks";
    let gets: &[(&str, u16, &str)] = &[
        (&format!("{tasks}?count=501"), 400, "out of range: 1 to 500"),
        (&format!("{tasks}?count=0"), 400, "out of range"),
        (
            &format!("{tasks}?count=99999999999999999999999"),
            400,
            "not a number",
        ),
        (&format!("{tasks}?state=stuck"), 400, "unknown task state"),
        (&format!("{tasks}?cursor=zzz"), 400, "bad cursor"),
        (
            &format!("{tasks}?state=dead&cursor=0:1-0%0d%0aFLUSHALL"),
            400,
            "bad cursor",
        ),
        ("/api/queues/nope/tasks", 404, "no such queue \"nope\""),
        ("/api/queues/a%7Bb%7D/tasks", 400, "contains '{'"),
        (
            "/api/queues/texts/task?state=queued&id=nope",
            400,
            "bad entry id",
        ),
        (
            "/api/queues/texts/task?state=queued&id=1-1",
            404,
            "no queued task",
        ),
        (
            "/api/queues/texts/task?state=dead&stream=other&id=1-1",
            400,
            "not one of queue",
        ),
        ("/api/queues/texts/task?state=delayed&id=x", 400, "due time"),
        (&long_id, 400, "bad id"),
        ("/api/nothing", 404, "no such API path"),
    ];
    for &(path, status, what) in gets {
        refused(web.get(path).await, status, what);
    }
    let act = "/api/queues/texts/dead/replay";
    refused(web.post(act, json!({})).await, 400, "expected {\"ids\"");
    refused(
        web.post(act, json!({"ids": ["1-0; DEL x"]})).await,
        400,
        "bad dead-letter id",
    );
    refused(
        web.post(act, json!({"ids": vec!["1-0"; 1001]})).await,
        400,
        "name 1 to 1000",
    );
    refused(
        web.post(act, json!([1, 2])).await,
        400,
        "must be a JSON object",
    );
    let (status, body) = answer(
        web.req(reqwest::Method::POST, act)
            .header("X-Requested-By", "mq-web")
            .body("{nope")
            .send()
            .await,
    )
    .await;
    refused((status, body), 400, "not JSON");
    refused(
        web.post("/api/queues/texts/cancel", json!({"id": ""}))
            .await,
        400,
        "bad id",
    );
    refused(
        web.post("/api/queues/texts/enqueue", json!({"payload": {}}))
            .await,
        400,
        "expected {\"name\"",
    );
    refused(
        web.post("/api/queues/texts%232/enqueue", json!({"name": "Embed"}))
            .await,
        400,
        "contains '#'",
    );
    let (status, _) = answer(
        web.req(reqwest::Method::DELETE, "/api/queues/texts/dead/purge")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 405);
    // Nothing was changed by any of it.
    let overview = web.ok("/api/queues").await;
    assert_eq!(overview["queues"][0]["total"]["dead"], 1, "{overview}");
}

#[tokio::test]
async fn actions_replay_delete_purge_pause_cancel_and_enqueue() {
    let server = mq_tests::redis();
    populate(&server, 6, 2, 1).await;
    let web = Web::start(&server.url(), &[]).await;
    let dead = web.ok("/api/queues/texts/tasks?state=dead").await;
    let ids: Vec<String> = dead["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["entry_id"].as_str().expect("id").to_owned())
        .collect();
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "texts");

    let r = web
        .act("/api/queues/texts/dead/replay", json!({"ids": [ids[0]]}))
        .await;
    assert_eq!(r["replayed"], 1, "{r}");
    assert_eq!(xlen(&mut c, &k.dead).await, 5);
    assert_eq!(
        xlen(&mut c, &k.stream).await,
        3,
        "the replayed task is queued again"
    );
    let r = web
        .act(
            "/api/queues/texts/dead/delete",
            json!({"ids": [ids[1], ids[2]]}),
        )
        .await;
    assert_eq!(r["deleted"], 2, "{r}");
    let r = web
        .act("/api/queues/texts/dead/replay", json!({"all": true}))
        .await;
    assert_eq!(r["replayed"], 3, "{r}");
    populate_dead_one(&server).await;
    let r = web.act("/api/queues/texts/dead/purge", json!({})).await;
    assert_eq!(r["purged"], 1, "{r}");
    assert_eq!(xlen(&mut c, &k.dead).await, 0);

    web.act("/api/queues/texts/pause", json!({})).await;
    wait_until(WAIT, "overview shows paused", || async {
        web.ok("/api/queues").await["queues"][0]["total"]["paused"] == true
    })
    .await;
    web.act("/api/queues/texts/resume", json!({})).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&k.paused)
        .query_async(&mut c)
        .await
        .expect("EXISTS");
    assert!(!exists);

    let r = web
        .act(
            "/api/queues/texts/enqueue",
            json!({"name": "Embed", "payload": {"n": 7, "fail": false}}),
        )
        .await;
    let id = r["id"].as_str().expect("id").to_owned();
    let queued = web
        .ok("/api/queues/texts/tasks?state=queued&count=500")
        .await;
    let row = queued["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["task_id"] == id.as_str())
        .cloned()
        .expect("the enqueued task is listed");
    assert_eq!(row["payload_preview"], r#"{"fail":false,"n":7}"#);
    let r = web.act("/api/queues/texts/cancel", json!({"id": id})).await;
    assert_eq!(r["outcome"], "queued", "{r}");
    let r = web.act("/api/queues/texts/cancel", json!({"id": id})).await;
    assert_eq!(r["outcome"], "not_found", "{r}");
    let delayed = web.ok("/api/queues/texts/tasks?state=delayed").await;
    let did = delayed["rows"][0]["task_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = web
        .act("/api/queues/texts/cancel", json!({"id": did}))
        .await;
    assert_eq!(r["outcome"], "delayed", "{r}");
}

/// One more dead letter of `texts` (the dead stream is empty before), through a real worker
/// that also runs the replayed tasks.
async fn populate_dead_one(server: &mq_tests::LocalRedis) {
    let producer = Producer::connect(&server.url()).await.expect("producer");
    producer
        .enqueue(Embed {
            n: 5000,
            fail: true,
        })
        .await
        .expect("enqueue");
    run_until_dead::<Embed, _>(server, 1, |t: Embed, _ctx: TaskContext| async move {
        if t.n == 5000 {
            Err(TaskError::permanent("refused"))
        } else {
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn actions_need_the_csrf_header_and_this_origin() {
    let server = mq_tests::redis();
    populate(&server, 2, 0, 0).await;
    let web = Web::start(&server.url(), &[]).await;
    let path = "/api/queues/texts/dead/purge";
    // A cross-site form post: no custom header.
    let plain = web.req(reqwest::Method::POST, path).body("{}").send().await;
    refused(answer(plain).await, 403, "X-Requested-By");
    let other = web
        .req(reqwest::Method::POST, path)
        .header("X-Requested-By", "mq-web")
        .header("Origin", "http://evil.example")
        .send()
        .await;
    refused(answer(other).await, 403, "cross-site request refused");
    let site = web
        .req(reqwest::Method::POST, path)
        .header("X-Requested-By", "mq-web")
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await;
    refused(answer(site).await, 403, "cross-site");
    // DNS rebinding: a name that resolves here, but is not ours.
    let rebound = web
        .req(reqwest::Method::GET, "/api/queues")
        .header("Host", "evil.example")
        .send()
        .await;
    refused(answer(rebound).await, 403, "DNS rebinding");
    let mut c = conn(&server).await;
    assert_eq!(
        xlen(&mut c, &QueueKeys::new("mq", "texts").dead).await,
        2,
        "nothing purged"
    );
    // The page's own origin is accepted.
    let own = web
        .req(reqwest::Method::POST, path)
        .header("X-Requested-By", "mq-web")
        .header("Origin", &web.base)
        .send()
        .await;
    assert_eq!(answer(own).await.0, 200);
}

#[tokio::test]
async fn read_only_refuses_every_action() {
    let server = mq_tests::redis();
    populate(&server, 2, 1, 1).await;
    let web = Web::start(&server.url(), &["--read-only"]).await;
    assert_eq!(web.ok("/api/config").await["read_only"], true);
    assert_eq!(
        web.ok("/api/queues/texts/tasks?state=dead").await["rows"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let dead = web.ok("/api/queues/texts/tasks?state=dead").await;
    let id = dead["rows"][0]["entry_id"].clone();
    for (path, body) in [
        ("/api/queues/texts/dead/replay", json!({"ids": [id]})),
        ("/api/queues/texts/dead/replay", json!({"all": true})),
        ("/api/queues/texts/dead/delete", json!({"ids": [id]})),
        ("/api/queues/texts/dead/purge", json!({})),
        ("/api/queues/texts/pause", json!({})),
        ("/api/queues/texts/resume", json!({})),
        ("/api/queues/texts/cancel", json!({"id": "x"})),
        (
            "/api/queues/texts/enqueue",
            json!({"name": "Embed", "payload": {}}),
        ),
    ] {
        refused(web.post(path, body).await, 403, "--read-only");
    }
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "texts");
    assert_eq!(xlen(&mut c, &k.dead).await, 2);
    assert_eq!(xlen(&mut c, &k.stream).await, 1);
}

#[tokio::test]
async fn the_token_is_required_and_the_password_never_shown() {
    let server = mq_tests::redis();
    let mut c = conn(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("hunter2-secret")
        .query_async(&mut c)
        .await
        .expect("requirepass");
    let url = server.url().replace("redis://", "redis://:hunter2-secret@");
    let web = Web::start(&url, &["--auth-token", "tok-123"]).await;
    // The page itself loads (it holds the login form), the API does not without the token.
    let anonymous = web.with_token(None);
    let (status, page) = anonymous.get("/").await;
    assert_eq!(status, 200);
    assert!(!page.to_string().contains("hunter2"));
    refused(anonymous.get("/api/queues").await, 401, "token");
    let wrong = web.with_token(Some("tok-12"));
    refused(wrong.get("/api/queues").await, 401, "token");
    refused(
        wrong.post("/api/queues/texts/pause", json!({})).await,
        401,
        "token",
    );
    let config = web.ok("/api/config").await;
    assert_eq!(
        config["redis"].as_str().map(|u| u.contains("***")),
        Some(true),
        "{config}"
    );
    for path in [
        "/api/config",
        "/api/queues",
        "/api/queues/nope/tasks",
        "/api/workers",
        "/",
    ] {
        let (_, body) = web.get(path).await;
        assert!(!body.to_string().contains("hunter2"), "{path}: {body}");
    }
    // With a token, a Host name is served (remote access through a proxy's name).
    let named = web
        .req(reqwest::Method::GET, "/api/config")
        .header("Host", "mq.internal.example")
        .send()
        .await;
    assert_eq!(answer(named).await.0, 200);
}

#[tokio::test]
async fn a_non_loopback_listen_without_a_token_is_refused() {
    let server = mq_tests::redis();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(["web", "--listen", "0.0.0.0:0"])
        .env("MQ_REDIS_URL", server.url())
        .env_remove("MQ_WEB_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("exits")
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without --auth-token"),
        "{stderr}"
    );
    // Told so, it starts (and is stopped by the drop).
    let web = Web::start(
        &server.url(),
        &["--listen", "0.0.0.0:0", "--insecure-no-auth"],
    )
    .await;
    assert!(web.base.starts_with("http://0.0.0.0:"), "{}", web.base);
}

/// Redis commands since the last `CONFIG RESETSTAT`, but for `INFO` and `CONFIG`.
async fn commands(c: &mut mq_tests::Conn) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO");
    let total = info
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info")
                && !l.starts_with("cmdstat_config")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(c)
        .await
        .expect("RESETSTAT");
    total
}

#[tokio::test]
async fn views_cost_a_bounded_number_of_commands_whatever_the_queue_size() {
    let server = mq_tests::redis();
    populate(&server, 3, 20_000, 2).await;
    let web = Web::start(&server.url(), &["--refresh", "3"]).await;
    let mut c = conn(&server).await;
    web.ok("/api/queues").await;
    commands(&mut c).await;
    // More viewers within the refresh interval are served from the cache: no Redis read.
    web.ok("/api/queues").await;
    web.ok("/api/queues").await;
    assert_eq!(commands(&mut c).await, 0, "cached overview");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    web.ok("/api/queues").await;
    // SMEMBERS, HGETALL, and one MULTI of six reads: three round trips, ten commands.
    let overview = commands(&mut c).await;
    let mut costs = vec![("overview", overview)];
    for state in ["queued", "running", "delayed", "dead"] {
        let page = web
            .ok(&format!("/api/queues/texts/tasks?state={state}&count=500"))
            .await;
        assert!(
            page["rows"].as_array().is_some_and(|r| !r.is_empty()),
            "{state}"
        );
        costs.push((state, commands(&mut c).await));
    }
    eprintln!("Redis commands per view on a queue of 20,000 tasks: {costs:?}");
    assert!(costs[0].1 <= 10, "overview: {costs:?}");
    for (view, n) in &costs[1..] {
        // The queue check (SMEMBERS), its streams (HGET, EXISTS), then the page: XINFO
        // GROUPS + XRANGE, XPENDING + one pipelined XRANGE per running row (here 1), ZRANGE,
        // XREVRANGE.
        assert!(*n <= 6, "{view} cost {n} commands: {costs:?}");
    }
}
