//! The vectorization pipeline end to end: the demo binary against a test redis, tasks from the
//! Python producer (`examples/python/producer.py`) handled by the Rust text worker, and the
//! per-task outcomes of the pipeline's batch handler.
//!
//! The Python test needs `python3` with `msgpack` and `redis`
//! (`pip install -r examples/python/requirements.txt`; `scripts/test.sh` installs them). It
//! fails, not skips, when they are missing.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use mq_core::{
    batch,
    envelope::{Envelope, PackedTask},
    Producer, Task, Worker,
};
use mq_examples::pipeline::{
    check_vectors, default_data_file, delete_vectors, embed_text, filter_file, vector_key,
    vector_to_bytes, EmbedImage, EmbedStats, EmbedTask, EmbedText, Embedder, Filtered, VectorKind,
    VECTOR_KEY_PREFIX,
};
use mq_tests::{conn, example_bin, redis, wait_until, xlen, ChildGuard, Conn};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn shipped_data() -> Filtered {
    let data = filter_file(&default_data_file()).expect("read the shipped data set");
    // The data set must exercise the filter, or the test proves little.
    assert!(!data.unparseable.is_empty() && data.filtered_parts() > 0);
    data
}

/// Number of keys matching `pattern` (`SCAN`).
async fn count_keys(conn: &mut Conn, pattern: &str) -> usize {
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(conn)
            .await
            .expect("SCAN");
        n += keys.len();
        if next == 0 {
            return n;
        }
        cursor = next;
    }
}

/// `key=value` pairs of a summary line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stores_a_vector_for_every_valid_record_and_counts_every_bad_one() {
    let server = redis();
    let data = shipped_data();
    let bin = example_bin("demo");
    let run = tokio::process::Command::new(&bin)
        .arg("--url")
        .arg(server.url())
        .env_remove("MQ_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("demo finished within 180 s")
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("demo: records="))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let f = fields(line);
    let num = |k: &str| -> u64 {
        f.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {k}= in {line:?}"))
    };
    for key in ["elapsed", "tasks_per_s"] {
        assert!(f.contains_key(key), "{key}= missing in {line:?}");
    }
    let (images, texts) = (data.images.len() as u64, data.texts.len() as u64);
    assert_eq!(num("records"), data.records(), "{line}");
    assert_eq!(num("parsed"), data.parsed(), "{line}");
    assert_eq!(num("unparseable"), data.unparseable.len() as u64, "{line}");
    assert_eq!(num("filtered"), data.filtered_parts(), "{line}");
    assert_eq!(num("images"), images, "{line}");
    assert_eq!(num("texts"), texts, "{line}");
    assert_eq!(num("vectors"), images + texts, "{line}");
    assert_eq!(num("dead"), 0, "{line}");
    // Each product with a task was one flow in the day's run: indexed after its vectors, and
    // counted done by the run, which ended (its completion task ran).
    let products: std::collections::HashSet<u64> = data
        .images
        .iter()
        .map(|t| t.product_id)
        .chain(data.texts.iter().map(|t| t.product_id))
        .collect();
    let products = products.len() as u64;
    assert_eq!(num("indexed"), products, "{line}");
    assert_eq!(
        (num("run_total"), num("run_done"), num("run_dead")),
        (products, products, 0),
        "{line}"
    );
    assert!(
        stdout.contains(&format!("of {products} products done, 0 dead"))
            && stdout.contains("ended"),
        "{stdout}"
    );
    // Nothing lost: every record is parsed or unparseable, every part a task or filtered.
    assert_eq!(num("records"), num("parsed") + num("unparseable"));
    assert_eq!(
        num("images") + num("texts") + num("filtered"),
        2 * num("parsed")
    );
    // The default --fail-every 500 fails the first attempt of those products once.
    let injected = data
        .images
        .iter()
        .filter(|t| t.product_id % 500 == 0)
        .count()
        + data
            .texts
            .iter()
            .filter(|t| t.product_id % 500 == 0)
            .count();
    assert!(injected > 0);
    assert!(num("retries") >= injected as u64, "{line}");
    assert!(
        stdout.contains("filtered parts by reason: image_url missing="),
        "{stdout}"
    );

    // In Redis: exactly the valid records' vectors, each with the expected bytes.
    let mut c = conn(&server).await;
    let image_check = check_vectors(&mut c, &data.images).await.unwrap();
    let text_check = check_vectors(&mut c, &data.texts).await.unwrap();
    assert!(image_check.is_complete(), "{image_check:?}");
    assert!(text_check.is_complete(), "{text_check:?}");
    assert_eq!(image_check.ok, images);
    assert_eq!(text_check.ok, texts);
    let image_keys = count_keys(&mut c, &format!("{VECTOR_KEY_PREFIX}:image:*")).await;
    let text_keys = count_keys(&mut c, &format!("{VECTOR_KEY_PREFIX}:text:*")).await;
    assert_eq!((image_keys as u64, text_keys as u64), (images, texts));
    for queue in [EmbedImage::QUEUE, EmbedText::QUEUE] {
        assert_eq!(xlen(&mut c, &format!("mq:{{{queue}}}:stream")).await, 0);
        assert_eq!(xlen(&mut c, &format!("mq:{{{queue}}}:dead")).await, 0);
    }
}

/// Panics with the fix if Python or its packages are missing.
fn require_python_deps() {
    let requirements = workspace_root().join("examples/python/requirements.txt");
    match Command::new("python3")
        .args(["-c", "import msgpack, redis"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import msgpack and redis ({}): run `pip install -r {}` \
             (scripts/test.sh does it)",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim(),
            requirements.display()
        ),
        Err(e) => panic!(
            "python3 not found ({e}): install Python 3, then run `pip install -r {}`",
            requirements.display()
        ),
    }
}

fn run_python_producer(url: &str, args: &[&str]) {
    let root = workspace_root();
    let out = Command::new("python3")
        .arg(root.join("examples/python/producer.py"))
        .arg("--url")
        .arg(url)
        .args(args)
        .current_dir(&root)
        .env_remove("MQ_REDIS_URL")
        .output()
        .expect("run python3 examples/python/producer.py");
    assert!(
        out.status.success(),
        "producer.py {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python producer's generated text (see `generated_texts` in producer.py).
fn python_generated_text(pid: u64) -> String {
    let colours = ["red", "blue", "green", "black", "white"];
    let things = ["mug", "scarf", "lamp", "backpack", "notebook", "sneaker"];
    format!(
        "Generated {} {} #{pid}\nEnqueued from Python.",
        colours[(pid % 5) as usize],
        things[(pid % 6) as usize]
    )
}

/// Payloads of the entries of a stream (first attempts in wire format v2: one field `t`),
/// decoded as `EmbedText`, with their raw bytes. Each `t` is byte for byte what the Rust
/// producer writes for the same id, name, enqueue time and payload.
async fn stream_tasks(conn: &mut Conn, stream: &str) -> Vec<(EmbedText, Vec<u8>)> {
    let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(id, f)| {
            assert_eq!(f.keys().collect::<Vec<_>>(), ["t"], "entry {id}: one field");
            let t = &f["t"];
            let packed = PackedTask::decode(t)
                .unwrap_or_else(|e| panic!("entry {id}: `t` does not decode: {e}"));
            assert_eq!(packed.name, "EmbedText");
            let env = Envelope {
                id: packed.id.to_owned(),
                name: packed.name.to_owned(),
                payload: packed.payload.to_vec(),
                attempt: 0,
                enqueued_at: packed.enqueued_at,
                traceparent: packed.traceparent.map(str::to_owned),
                error: None,
                unique: None,
                rate_key: None,
                rate_slot: None,
                concurrency_key: None,
                track: None,
                events: false,
                flow: None,
            };
            assert_eq!(
                &env.encode_task(),
                t,
                "entry {id}: `t` as the Rust producer writes it"
            );
            let task: EmbedText = rmp_serde::from_slice(packed.payload)
                .unwrap_or_else(|e| panic!("entry {id}: payload does not decode: {e}"));
            (task, env.payload)
        })
        .collect()
}

/// Waits until the worker stored a vector for every task and both queue keys are empty, then
/// returns the stored bytes by product id.
async fn wait_for_vectors(conn: &mut Conn, tasks: &[EmbedText]) -> BTreeMap<u64, Vec<u8>> {
    let keys: Vec<String> = tasks
        .iter()
        .map(|t| vector_key(VectorKind::Text, t.product_id))
        .collect();
    let read = |mut c: Conn, keys: Vec<String>| async move {
        let mut all: Vec<Option<Vec<u8>>> = Vec::new();
        for chunk in keys.chunks(1_000) {
            let part: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(chunk)
                .query_async(&mut c)
                .await
                .expect("MGET");
            all.extend(part);
        }
        all
    };
    wait_until(Duration::from_secs(120), "every text vector stored", || {
        let (mut c, keys) = (conn.clone(), keys.clone());
        async move {
            let stream = xlen(&mut c, "mq:{texts}:stream").await;
            let delayed: usize = redis::cmd("ZCARD")
                .arg("mq:{texts}:delayed")
                .query_async(&mut c)
                .await
                .expect("ZCARD");
            stream == 0 && delayed == 0 && read(c, keys).await.iter().all(Option::is_some)
        }
    })
    .await;
    let values = read(conn.clone(), keys).await;
    tasks
        .iter()
        .zip(values)
        .map(|(t, v)| (t.product_id, v.expect("stored")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tasks_give_the_same_vectors_as_rust_tasks() {
    require_python_deps();
    let server = redis();
    let url = server.url();
    let mut c = conn(&server).await;
    let data = shipped_data();

    // 1. Python enqueues a task per record with text (immediately) and 25 generated ones
    //    (delayed 300 ms, through the delayed set and the promoter).
    let input = default_data_file();
    run_python_producer(&url, &["--input", input.to_str().expect("utf-8 path")]);
    let from_python = stream_tasks(&mut c, "mq:{texts}:stream").await;
    // Same records, same texts, same payload bytes as the Rust producer would write.
    assert_eq!(from_python.len(), data.texts.len());
    for ((task, payload), want) in from_python.iter().zip(&data.texts) {
        assert_eq!(task, want);
        assert_eq!(payload, &rmp_serde::to_vec_named(want).unwrap());
    }
    let generated: Vec<EmbedText> = (9_000_000..9_000_025)
        .map(|pid| EmbedText {
            product_id: pid,
            text: python_generated_text(pid),
        })
        .collect();
    run_python_producer(
        &url,
        &[
            "--count",
            "25",
            "--start-id",
            "9000000",
            "--delay-ms",
            "300",
        ],
    );
    let delayed: usize = redis::cmd("ZCARD")
        .arg("mq:{texts}:delayed")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(delayed, 25);
    let mut tasks = data.texts.clone();
    tasks.extend(generated);

    // 2. The Rust text worker (the real binary) handles them.
    let mut worker = ChildGuard::spawn(
        &example_bin("text-worker"),
        &url,
        &["--batch-size", "16", "--batch-wait-ms", "5"],
    );
    let python_vectors = wait_for_vectors(&mut c, &tasks).await;

    // 3. The same tasks from the Rust producer, after deleting the vectors.
    let deleted = delete_vectors(&mut c, EmbedText::KIND, tasks.iter().map(|t| t.product_id))
        .await
        .unwrap();
    assert_eq!(deleted, tasks.len() as u64);
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many(tasks.iter().cloned()).await.unwrap();
    let rust_vectors = wait_for_vectors(&mut c, &tasks).await;

    // 4. Byte for byte the same, and what embed_text gives for the text.
    for t in &tasks {
        let want = vector_to_bytes(&embed_text(&t.text));
        assert_eq!(want.len(), 4 * mq_examples::pipeline::TEXT_DIM);
        assert_eq!(
            python_vectors[&t.product_id], rust_vectors[&t.product_id],
            "product {}",
            t.product_id
        );
        assert_eq!(
            python_vectors[&t.product_id], want,
            "product {}",
            t.product_id
        );
    }
    assert_eq!(xlen(&mut c, "mq:{texts}:dead").await, 0);

    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "text-worker exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_handler_outcomes_are_per_task_and_store_errors_retry_the_batch() {
    // Tasks come from `server`; vectors go to `store`, which is down at first.
    let server = redis();
    let mut store = redis();
    let mut c = conn(&server).await;
    let mut s = conn(&store).await;
    let Conn::Single(store_conn) = s.clone() else {
        unreachable!("the store is one server")
    };
    let embedder = Embedder::new(store_conn).fail_first_attempt_every(10);
    let stats = embedder.stats();
    let tasks: Vec<EmbedText> = (1..=40u64)
        .map(|id| EmbedText {
            product_id: id,
            // 7 and 13 are invalid: a producer that does not filter sent blank text.
            text: if id == 7 || id == 13 {
                " \n".into()
            } else {
                format!("product {id}: red leather shoe")
            },
        })
        .collect();
    store.stop();

    let worker = Worker::builder(&server.url())
        .concurrency(64)
        .handle::<EmbedText, _>(batch(16, Duration::from_millis(20), embedder))
        .build()
        .await
        .unwrap();
    let token = worker.shutdown_token();
    let running = tokio::spawn(worker.run());
    Producer::connect(&server.url())
        .await
        .unwrap()
        .enqueue_many(tasks.iter().cloned())
        .await
        .unwrap();

    wait_until(Duration::from_secs(30), "a failed store", || {
        let stats = stats.clone();
        async move { EmbedStats::get(&stats.store_errors) > 0 }
    })
    .await;
    store.restart().unwrap();
    wait_until(Duration::from_secs(60), "queue drained", || {
        let mut c = c.clone();
        async move {
            let delayed: usize = redis::cmd("ZCARD")
                .arg("mq:{texts}:delayed")
                .query_async(&mut c)
                .await
                .unwrap();
            xlen(&mut c, "mq:{texts}:stream").await == 0 && delayed == 0
        }
    })
    .await;
    token.cancel();
    running.await.unwrap().unwrap();

    // Invalid tasks were dead-lettered at once with the reason; nothing else was.
    let dead: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
        .arg("mq:{texts}:dead")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut dead_ids: Vec<u64> = dead
        .iter()
        .map(|(_, f)| {
            let error = String::from_utf8_lossy(&f["error"]).into_owned();
            assert!(error.contains("text empty"), "{error}");
            assert_eq!(&f["attempts"][..], b"1", "dead-lettered on the first run");
            rmp_serde::from_slice::<EmbedText>(PackedTask::decode(&f["t"]).unwrap().payload)
                .unwrap()
                .product_id
        })
        .collect();
    dead_ids.sort_unstable();
    assert_eq!(dead_ids, [7, 13]);
    // Every valid task got its vector despite the store errors and injected failures.
    let check = check_vectors(&mut s, &tasks).await.unwrap();
    assert!(check.is_complete(), "{check:?}");
    assert_eq!((check.ok, check.invalid), (38, 2));
    assert_eq!(EmbedStats::get(&stats.invalid), 2);
    assert!(EmbedStats::get(&stats.injected) >= 4);
    assert_eq!(
        count_keys(&mut c, &format!("{VECTOR_KEY_PREFIX}:*")).await,
        0
    );
}
