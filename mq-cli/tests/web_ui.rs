//! The `mq web` page in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` over WebDriver with fantoccini): the operator's dead-letter flow end to end
//! against a real redis-server, from the queue list to a dead letter's details, replaying one,
//! then all. Screenshots of each page go to `target/web-screenshots/` (README's comes from
//! there). CI installs `chromium` and `chromium-driver` with apt (`.ci/run`).

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use mq_core::{redis::keys::QueueKeys, Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{conn, wait_until, xlen};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest wait for anything in this test: 30 s.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Task)]
#[task(queue = "images", max_retries = 0, backoff = "none")]
struct EmbedImage {
    product_id: u64,
    url: String,
}

/// Where the screenshots go.
fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(shots().join(name), png).expect("write screenshot");
}

/// Starts chromedriver on a free port; the guard kills it.
async fn chromedriver() -> (tokio::process::Child, u16) {
    let port = mq_tests::free_port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromedriver ({e}): install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
        });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(WAIT, "chromedriver listens", || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    (child, port)
}

async fn browser(port: u16) -> Client {
    let profile = tempfile::tempdir().expect("profile dir").keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,800", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// Waits until the element at `css` has text containing `what`.
async fn wait_text(c: &Client, css: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.is_ok_and(|t| t.contains(what)) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} never showed {what:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element at `css`, finding it again if the page redrew it meanwhile (every
/// view redraws at each refresh: an element found just before may be gone).
async fn click(c: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "cannot click {css}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_operator_replays_dead_letters_in_the_browser() {
    let server = mq_tests::redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.expect("producer");
    producer
        .enqueue_many((1..=3).map(|i| EmbedImage {
            product_id: i,
            url: format!("https://img.example/{i}.jpg"),
        }))
        .await
        .expect("enqueue");
    let worker = Worker::builder(&url)
        .handle::<EmbedImage, _>(|t: EmbedImage, _ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!("cannot fetch {}", t.url)))
        })
        .block_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("worker");
    let token = worker.shutdown_token();
    let running = tokio::spawn(worker.run());
    let mut c = conn(&server).await;
    let k = QueueKeys::new("mq", "images");
    wait_until(WAIT, "3 dead letters", || {
        let (mut c, dead) = (c.clone(), k.dead.clone());
        async move { xlen(&mut c, &dead).await == 3 }
    })
    .await;
    token.cancel();
    running.await.expect("join").expect("clean stop");

    let mut web = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(["web", "--listen", "127.0.0.1:0", "--refresh", "0.5"])
        .env("MQ_REDIS_URL", &url)
        .env_remove("MQ_WEB_TOKEN")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mq web");
    let line = BufReader::new(web.stdout.take().expect("stdout"))
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("a line");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_owned();

    let (_driver, port) = chromedriver().await;
    let b = browser(port).await;
    b.goto(&base).await.expect("open the page");
    wait_text(&b, "#queues", "images").await;
    screenshot(&b, "queues.png").await;

    // The dead count links to the dead letters, newest first, with their reasons.
    click(&b, "#queues a[href='#/q/images/dead']").await;
    wait_text(&b, "#tasks", "cannot fetch https://img.example/").await;
    screenshot(&b, "dead.png").await;

    // One dead letter's page shows its payload decoded from MessagePack.
    click(&b, "#tasks tr[data-dead-id] td:nth-child(2) a").await;
    wait_text(&b, "#payload", "\"product_id\"").await;
    screenshot(&b, "task.png").await;
    b.back().await.expect("back");
    wait_text(&b, "#tasks", "cannot fetch").await;

    // Select one, replay it: it is back in the stream, two stay dead.
    click(&b, "#tasks input[type=checkbox]").await;
    click(&b, "#replay-selected").await;
    wait_text(&b, "#flash", "replayed 1 of 1").await;
    assert_eq!(xlen(&mut c, &k.dead).await, 2);
    assert_eq!(xlen(&mut c, &k.stream).await, 1);

    // Replay all asks first; accepted, the other two go back.
    click(&b, "#replay-all").await;
    b.accept_alert().await.expect("the confirmation");
    wait_text(&b, "#flash", "replayed 2 of images").await;
    assert_eq!(xlen(&mut c, &k.dead).await, 0);
    assert_eq!(xlen(&mut c, &k.stream).await, 3);
    wait_text(&b, "main", "No dead tasks").await;
    screenshot(&b, "replayed.png").await;
    b.close().await.expect("close the browser");
}
