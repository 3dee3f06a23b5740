//! The Grafana dashboard is not broken: a real Prometheus scrapes a real worker under traffic,
//! and every PromQL expression of `docker/grafana/dashboards/mq.json` returns data for the
//! test queue through Prometheus' HTTP API. Also checks `docker/prometheus.yml` with promtool.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{free_port, http_get, redis, run_worker, ChildGuard};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "promtest", max_retries = 1, backoff = "none")]
struct Scraped {
    n: u32,
}

/// Rate-limited to 5/s while the test enqueues 10/s: held back steadily.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "promtest", rate = "5/s")]
struct Limited {
    n: u32,
}

/// Unique for an hour: re-enqueueing a key is refused as a duplicate.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "promtest", unique = "key", unique_for = "1h")]
struct Deduped {
    key: u32,
}

/// One task of a key at a time, each running 50 ms while the test enqueues 3 per 100 ms of
/// one key: the others wait for the key's slot all along.
#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "promtest", key_concurrency = 1, concurrency_key = "key")]
struct KeyLimited {
    key: u32,
}

/// Panels whose query must show more than zeros: the workload rate-limits, snoozes and
/// refuses duplicates all along, so these must not just exist but move.
const MOVING: &[&str] = &[
    "mq_tasks_rate_limited_total",
    "outcome=\"snoozed\"",
    "mq_unique_duplicates_refused",
    "mq_tasks_key_slot_waits_total",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn need(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "{tool} not found: install Debian's `prometheus` package (`apt-get install -y prometheus`; .ci/run does)");
}

/// Every `expr` string anywhere in the dashboard JSON.
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn docker_prometheus_config_passes_promtool() {
    need("promtool");
    let out = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(repo().join("docker/prometheus.yml"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    need("prometheus");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docker/grafana/dashboards/mq.json")).unwrap(),
    )
    .expect("dashboard is JSON");
    let mut queries = Vec::new();
    exprs(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 10, "dashboard has its panels: {queries:?}");
    for m in MOVING {
        assert!(
            queries.iter().any(|q| q.contains(m)),
            "no dashboard panel shows {m}"
        );
    }

    let server = redis();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Tasks with n % 10 == 3 snooze once (a snooze keeps the attempt, so remember them).
    let snoozed = Arc::new(Mutex::new(HashSet::new()));
    let worker = Worker::builder(&server.url())
        .metrics_addr(metrics_addr)
        .eta_deadline_utc(6, 0)
        .handle::<Scraped, _>(move |t: Scraped, ctx: TaskContext| {
            let snoozed = snoozed.clone();
            async move {
                match (t.n % 10, ctx.attempt()) {
                    (3, _) if snoozed.lock().unwrap().insert(t.n) => {
                        Err(TaskError::snooze(Duration::from_millis(100)))
                    }
                    (7, 0) => Err(TaskError::retry("flaky")),
                    (9, _) => Err(TaskError::permanent("bad record")),
                    _ => Ok(()),
                }
            }
        })
        .handle::<Limited, _>(|_: Limited, _: TaskContext| async { Ok(()) })
        .handle::<Deduped, _>(|_: Deduped, _: TaskContext| async { Ok(()) })
        .handle::<KeyLimited, _>(|_: KeyLimited, _: TaskContext| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);

    let dir = tempfile_dir();
    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mq-test\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    )
    .unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    let mut prom = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    // Steady traffic for a while so that rate() over [1m] windows has several samples.
    let producer = Producer::connect(&server.url()).await.unwrap();
    let traffic_until = Instant::now() + Duration::from_secs(8);
    let mut n = 0;
    while Instant::now() < traffic_until {
        producer
            .enqueue_many((n..n + 50).map(|n| Scraped { n }))
            .await
            .unwrap();
        producer.enqueue(Limited { n }).await.unwrap();
        producer.submit(Deduped { key: n % 3 }).await.unwrap();
        producer
            .enqueue_many((0..3).map(|_| KeyLimited { key: 1 }))
            .await
            .unwrap();
        n += 50;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut failures = Vec::new();
    for q in &queries {
        let promql = q.replace("$queue", "promtest");
        let path = format!("/api/v1/query?query={}", urlencode(&promql));
        let mut last = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let ok = loop {
            if let Ok((200, body)) = http_get(prom_addr, &path).await {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let result = v["data"]["result"].as_array();
                let moving = !MOVING.iter().any(|m| promql.contains(m))
                    || result.is_some_and(|r| r.iter().any(|s| positive(&s["value"][1])));
                let has_data =
                    v["status"] == "success" && result.is_some_and(|r| !r.is_empty()) && moving;
                if has_data {
                    break true;
                }
                last = body;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if !ok {
            failures.push(format!("{promql}\n    -> {last}"));
        }
    }
    running.stop().await;
    prom.0.kill().ok();
    prom.wait_exit(Duration::from_secs(10)).await;
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        failures.is_empty(),
        "queries without data:\n{}",
        failures.join("\n")
    );
    eprintln!("{} dashboard queries returned data", queries.len());
}

/// Whether a sample value of Prometheus' API (a string) is above 0.
fn positive(v: &serde_json::Value) -> bool {
    v.as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|v| v > 0.0)
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mq-prom-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
