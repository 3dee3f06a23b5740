//! The MiniLM text model (mq-examples feature `minilm`; run with `cargo test -p mq-tests
//! --features minilm --test minilm` and `MQ_MODEL_DIR` from `scripts/fetch-model.sh`, as
//! scripts/test.sh does): a text worker embeds 200 tasks from the queue with the real model,
//! and each stored vector (`mq-demo:vec:text:{id}`, 384 little-endian `f32`s) matches the
//! reference vector that `sentence-transformers` computed for the same text
//! (examples/data/minilm-reference.json, made by examples/python/minilm_reference.py) to
//! cosine ≥ 0.999; near-synonym product texts score higher than unrelated ones; a missing model
//! directory says which script to run.

use std::{path::PathBuf, time::Duration};

use mq_core::{batch, Producer, Worker};
use mq_examples::pipeline::{
    cosine, vector_from_bytes, vector_key, EmbedStats, EmbedText, Embedder, TextModel, VectorKind,
    MINILM_DIM, MODEL_DIR_ENV,
};
use mq_tests::{redis, run_worker, wait_until};

/// Longest wait for the 200 tasks (debug build, 2 cores): 300 s.
const WAIT: Duration = Duration::from_secs(300);

fn model() -> TextModel {
    let dir = std::env::var_os(MODEL_DIR_ENV).unwrap_or_else(|| {
        panic!("{MODEL_DIR_ENV} is not set: run `export {MODEL_DIR_ENV}=\"$(scripts/fetch-model.sh)\"` first")
    });
    TextModel::minilm(&PathBuf::from(dir)).unwrap_or_else(|e| panic!("{e}"))
}

struct Reference {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/minilm-reference.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the reference"))
            .expect("reference JSON");
    let texts: Vec<String> = serde_json::from_value(json["texts"].clone()).expect("texts");
    let vectors: Vec<Vec<f32>> = serde_json::from_value(json["vectors"].clone()).expect("vectors");
    assert_eq!(texts.len(), 200);
    assert_eq!(vectors.len(), 200);
    Reference { texts, vectors }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_embeds_200_tasks_like_sentence_transformers() {
    let reference = reference();
    let model = model();
    let server = redis();
    let url = server.url();
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection_manager().await.unwrap();

    let producer = Producer::connect(&url).await.unwrap();
    let first_id = 500_000u64;
    producer
        .enqueue_many(reference.texts.iter().enumerate().map(|(i, t)| EmbedText {
            product_id: first_id + i as u64,
            text: t.clone(),
        }))
        .await
        .unwrap();

    // As text-worker runs it: the pipeline's batch handler with MiniLM, batches of up to 32.
    let embedder = Embedder::new(conn.clone()).text_model(model.clone());
    let stats = embedder.stats();
    let worker = Worker::builder(&url)
        .concurrency(64)
        .handle::<EmbedText, _>(batch(32, Duration::from_millis(20), embedder))
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    wait_until(WAIT, "200 vectors stored", || {
        let stats = stats.clone();
        async move { EmbedStats::get(&stats.stored) >= 200 }
    })
    .await;
    running.stop().await;
    let (calls, _) = model.usage().expect("MiniLM usage");
    assert!(
        calls < 200,
        "one model call per batch, not per task: {calls} calls"
    );

    let mut worst = (1.0f64, 0usize);
    for (i, want) in reference.vectors.iter().enumerate() {
        let key = vector_key(VectorKind::Text, first_id + i as u64);
        let bytes: Option<Vec<u8>> = ::redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let bytes = bytes.unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(bytes.len(), 4 * MINILM_DIM, "{key}");
        let got = vector_from_bytes(&bytes);
        let norm: f64 = got.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{key}: squared norm {norm}");
        let c = cosine(&got, want);
        if c < worst.0 {
            worst = (c, i);
        }
    }
    println!(
        "minilm: 200 vectors, {calls} model calls, lowest cosine with sentence-transformers {:.7} (text {})",
        worst.0, worst.1
    );
    assert!(
        worst.0 >= 0.999,
        "text {} ({:?}): cosine {} with the reference",
        worst.1,
        reference.texts[worst.1],
        worst.0
    );
}

#[test]
fn near_synonyms_score_higher_than_unrelated_texts() {
    let model = model();
    // (text, near-synonym, unrelated)
    let triples = [
        (
            "Stainless steel electric kettle, 1.7 litres",
            "Electric water boiler in brushed steel, 1.7 l",
            "Wool winter scarf in navy blue",
        ),
        (
            "Waterproof red hiking backpack",
            "Water-resistant crimson trekking rucksack",
            "Ergonomic oak chef knife",
        ),
        (
            "Wireless noise-cancelling headphones",
            "Bluetooth over-ear headset with active noise cancellation",
            "Ceramic flower pot for indoor plants",
        ),
        (
            "Men's leather running shoes",
            "Leather sneakers for men, made for jogging",
            "Fountain pen with blue ink cartridges",
        ),
    ];
    for (a, near, far) in triples {
        let v = model.embed(&[a, near, far]).unwrap();
        let (s_near, s_far) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
        println!("{a:?}: near {s_near:.3}, unrelated {s_far:.3}");
        assert!(
            s_near > s_far + 0.2,
            "{a:?}: near-synonym {near:?} {s_near:.3}, unrelated {far:?} {s_far:.3}"
        );
    }
}

#[test]
fn a_missing_model_dir_names_the_fetch_script() {
    let empty = tempfile::tempdir().unwrap();
    let err = TextModel::minilm(empty.path()).unwrap_err().to_string();
    assert!(err.contains("scripts/fetch-model.sh"), "{err}");
    assert!(err.contains("config.json"), "{err}");
}
