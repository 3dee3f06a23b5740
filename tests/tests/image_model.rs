//! The MobileNetV2 image model (mq-examples feature `mobilenet`; run with `cargo test -p
//! mq-tests --features mobilenet --test image_model` and `MQ_IMAGE_MODEL_DIR` from
//! `scripts/fetch-image-model.sh`, as scripts/test.sh does).
//!
//! The example images (examples/data/images/*.png) go through an mq queue to a worker whose
//! batch handler decodes them and runs the candle network, one model call per batch; each
//! vector matches the one torchvision computed for the same image with the same weights
//! (examples/data/mobilenet-reference.json, made by examples/python/mobilenet_reference.py) to
//! cosine ≥ 0.999. Also: images of the same product kind are closer than others, a file that
//! is not an image is dead-lettered with the decoder's reason (the rest of its batch is
//! embedded), and a missing model names the fetch script.
//!
//! The image worker's own path (`image-worker --model mobilenet`: the pipeline's `Embedder`
//! with `ImageModel::MobileNet`) stores, for each `EmbedImage` URL, the vector of the image
//! mirror's picture of that URL; an image mirror that holds no image or a file that is not
//! one is refused at load, naming it.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use mq_core::{batch, BatchHandler, Producer, Task, TaskContext, TaskError, Worker};
use mq_examples::pipeline::{
    check_vectors_with, cosine, decode_image, default_image_dir, vector_from_bytes, vector_key,
    EmbedImage, Embedder, ImageMirror, ImageModel, ImageModelArgs, ImageModelChoice, MobileNet,
    ModelError, Models, VectorKind, MOBILENET_DIM,
};
use mq_tests::{conn, redis, run_worker, wait_until};
use serde::{Deserialize, Serialize};

/// Longest wait for the tasks (debug build, 2 cores): 300 s.
const WAIT: Duration = Duration::from_secs(300);

/// An image to embed: its bytes, as a producer that read the file would send them.
#[derive(Debug, Clone, Serialize, Deserialize, Task)]
#[task(queue = "images-model", max_retries = 0)]
struct EmbedImageBytes {
    name: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

fn model_dir() -> PathBuf {
    let var = "MQ_IMAGE_MODEL_DIR";
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run `export {var}=\"$(scripts/fetch-image-model.sh)\"` first")
    })
}

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data")
}

/// The reference vectors by image file name.
fn reference() -> HashMap<String, Vec<f32>> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data().join("mobilenet-reference.json")).expect("reference"),
    )
    .expect("reference JSON");
    let images = json["images"].as_object().expect("images");
    images
        .iter()
        .map(|(name, v)| {
            let vector: Vec<f32> = serde_json::from_value(v["vector"].clone()).expect("vector");
            assert_eq!(vector.len(), MOBILENET_DIM);
            (name.clone(), vector)
        })
        .collect()
}

/// The worker's batch handler: decode each image (a bad one fails alone), one model call
/// for the batch on tokio's blocking pool, vectors kept by name.
struct Embed {
    model: Arc<MobileNet>,
    vectors: Arc<Mutex<HashMap<String, Vec<f32>>>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl BatchHandler<EmbedImageBytes> for Embed {
    async fn handle_batch(
        &self,
        tasks: Vec<(EmbedImageBytes, TaskContext)>,
    ) -> Vec<Result<(), TaskError>> {
        let decoded: Vec<_> = tasks.iter().map(|(t, _)| decode_image(&t.bytes)).collect();
        let images: Vec<_> = decoded
            .iter()
            .filter_map(|d| d.as_ref().ok())
            .cloned()
            .collect();
        let model = self.model.clone();
        let vectors = match mq_core::blocking(move || model.embed(&images)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return tasks.iter().map(|_| Err(TaskError::retry(&e))).collect(),
            Err(e) => return tasks.iter().map(|_| Err(TaskError::retry(&e))).collect(),
        };
        if !vectors.is_empty() {
            self.batches.lock().unwrap().push(vectors.len());
        }
        let mut vectors = vectors.into_iter();
        tasks
            .iter()
            .zip(decoded)
            .map(|((task, _), d)| match d {
                Ok(_) => {
                    let v = vectors.next().unwrap_or_default();
                    self.vectors.lock().unwrap().insert(task.name.clone(), v);
                    Ok(())
                }
                Err(e) => Err(TaskError::permanent(e)),
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_through_the_queue_get_torchvisions_vectors() {
    let reference = reference();
    assert_eq!(reference.len(), 8);
    let model = Arc::new(MobileNet::load(&model_dir()).unwrap_or_else(|e| panic!("{e}")));
    let server = redis();
    let url = server.url();
    let producer = Producer::connect(&url).await.unwrap();
    let mut names: Vec<_> = reference.keys().cloned().collect();
    names.sort();
    let mut tasks = Vec::new();
    for name in &names {
        let bytes = std::fs::read(data().join("images").join(name)).unwrap();
        tasks.push(EmbedImageBytes {
            name: name.clone(),
            bytes,
        });
    }
    // Not an image: dead-lettered with the decoder's reason, its batch embedded.
    tasks.push(EmbedImageBytes {
        name: "not-an-image.png".into(),
        bytes: b"GIF89a? no, plain text".to_vec(),
    });
    producer.enqueue_many(tasks).await.unwrap();

    let vectors = Arc::new(Mutex::new(HashMap::new()));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let handler = Embed {
        model: model.clone(),
        vectors: vectors.clone(),
        batches: batches.clone(),
    };
    let worker = Worker::builder(&url)
        .concurrency(16)
        .handle::<EmbedImageBytes, _>(batch(4, Duration::from_millis(50), handler))
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    wait_until(WAIT, "8 vectors and 1 dead letter", || {
        let (vectors, admin) = (vectors.clone(), admin.clone());
        async move {
            vectors.lock().unwrap().len() == 8
                && admin.stats("images-model").await.is_ok_and(|s| s.dead == 1)
        }
    })
    .await;
    running.stop().await;

    let dead = admin.dead_list("images-model", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let error = dead[0].error().unwrap_or_default();
    assert!(error.contains("cannot decode the image"), "{error}");
    let batches = batches.lock().unwrap().clone();
    assert!(
        batches.len() < 8 && batches.iter().all(|&n| n <= 4) && batches.iter().sum::<usize>() == 8,
        "one model call per batch of at most 4 images: {batches:?}"
    );
    let (calls, _) = model.usage();
    assert_eq!(calls as usize, batches.len());

    let vectors = vectors.lock().unwrap();
    let mut worst = (1.0f64, String::new());
    for (name, want) in &reference {
        let got = &vectors[name];
        assert_eq!(got.len(), MOBILENET_DIM);
        let c = cosine(got, want);
        if c < worst.0 {
            worst = (c, name.clone());
        }
    }
    println!(
        "mobilenet: 8 vectors in {} model calls {batches:?}, lowest cosine with torchvision {:.7} ({})",
        batches.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 >= 0.999, "{}: cosine {}", worst.1, worst.0);
}

#[test]
fn images_of_one_kind_are_closer_than_other_kinds() {
    let model = MobileNet::load(&model_dir()).unwrap_or_else(|e| panic!("{e}"));
    let load =
        |n: &str| decode_image(&std::fs::read(data().join("images").join(n)).unwrap()).unwrap();
    let names = [
        "red-mug.png",
        "navy-mug.png",
        "red-backpack.png",
        "green-backpack.png",
    ];
    let v = model
        .embed(&names.iter().map(|n| load(n)).collect::<Vec<_>>())
        .unwrap();
    let (mugs, backpacks) = (cosine(&v[0], &v[1]), cosine(&v[2], &v[3]));
    let across = cosine(&v[0], &v[2]);
    println!(
        "mug-mug {mugs:.3}, backpack-backpack {backpacks:.3}, red mug-red backpack {across:.3}"
    );
    assert!(
        mugs > across && backpacks > across,
        "{mugs} {backpacks} {across}"
    );
}

#[test]
fn a_missing_model_names_the_fetch_script() {
    let empty = tempfile::tempdir().unwrap();
    let err = MobileNet::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("mobilenet_v2.safetensors"), "{err}");
    assert!(err.contains("scripts/fetch-image-model.sh"), "{err}");
}

/// `image-worker --model mobilenet`'s handler: `EmbedImage` tasks (URLs) through the
/// pipeline's `Embedder` with the real model; each stored vector is torchvision's for the
/// mirror's picture of its URL, a bad URL is dead-lettered, and `check_vectors_with` (the
/// demo's check) accepts the stored vectors.
#[tokio::test(flavor = "multi_thread")]
async fn the_image_workers_model_stores_the_vectors_of_the_mirrors_pictures() {
    let reference = reference();
    let image = ImageModelArgs {
        image_model: ImageModelChoice::Mobilenet,
        image_model_dir: Some(model_dir()),
        image_dir: None,
    }
    .load()
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((image.name(), image.dim()), ("mobilenet", MOBILENET_DIM));
    let mirror = ImageMirror::load(&default_image_dir()).unwrap();
    assert_eq!(mirror.len(), 8);
    let server = redis();
    let url = server.url();
    let tasks: Vec<EmbedImage> = (1..=24)
        .map(|id| EmbedImage {
            product_id: id,
            url: format!("https://img.example-shop.com/products/{id}/item.jpg"),
        })
        .collect();
    // The URLs reach several pictures, not one.
    let pictures: std::collections::HashSet<_> =
        tasks.iter().map(|t| mirror.fetch(&t.url).0).collect();
    assert!(pictures.len() >= 4, "{pictures:?}");
    let producer = Producer::connect(&url).await.unwrap();
    producer.enqueue_many(tasks.clone()).await.unwrap();
    producer
        .enqueue(EmbedImage {
            product_id: 99,
            url: "ftp://files.example.com/1.jpg".into(),
        })
        .await
        .unwrap();
    let embedder = Embedder::connect(&url)
        .await
        .unwrap()
        .image_model(image.clone());
    let stats = embedder.stats();
    let worker = Worker::builder(&url)
        .concurrency(32)
        .handle::<EmbedImage, _>(batch(8, Duration::from_millis(50), embedder))
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);
    let admin = mq_core::Admin::connect(&url).await.unwrap();
    wait_until(WAIT, "24 vectors stored and 1 dead letter", || {
        let (stats, admin) = (stats.clone(), admin.clone());
        async move {
            stats.stored.load(std::sync::atomic::Ordering::Relaxed) == 24
                && admin
                    .stats(<EmbedImage as Task>::QUEUE)
                    .await
                    .is_ok_and(|s| s.dead == 1)
        }
    })
    .await;
    running.stop().await;

    let dead = admin
        .dead_list(<EmbedImage as Task>::QUEUE, 10)
        .await
        .unwrap();
    let error = dead[0].error().unwrap_or_default();
    assert!(error.contains("not http"), "{error}");
    let mut conn = conn(&server).await;
    let mut worst = 1.0f64;
    for t in &tasks {
        let bytes: Vec<u8> = ::redis::cmd("GET")
            .arg(vector_key(VectorKind::Image, t.product_id))
            .query_async(&mut conn)
            .await
            .unwrap();
        let got = vector_from_bytes(&bytes);
        assert_eq!(got.len(), MOBILENET_DIM);
        worst = worst.min(cosine(&got, &reference[mirror.fetch(&t.url).0]));
    }
    println!("image worker (mobilenet): 24 vectors, lowest cosine with torchvision {worst:.7}");
    assert!(worst >= 0.999, "{worst}");
    let models = Models {
        image,
        ..Models::default()
    };
    let check = check_vectors_with(&mut conn, &tasks, &models)
        .await
        .unwrap();
    assert!(check.is_complete() && check.ok == 24, "{check:?}");
    // The stand-in's vectors are not the model's: the check can fail.
    let check = check_vectors_with(&mut conn, &tasks, &Models::default())
        .await
        .unwrap();
    assert_eq!(check.wrong.len(), 24, "{check:?}");
}

#[test]
fn an_image_mirror_without_images_or_with_a_bad_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let err = ImageMirror::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no .png, .jpg or .jpeg file"), "{err}");
    std::fs::copy(
        default_image_dir().join("red-mug.png"),
        dir.path().join("a.png"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.jpg"), "GIF89a, not a JPEG").unwrap();
    let err = ImageMirror::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("b.jpg") && err.contains("cannot decode"),
        "{err}"
    );
    let missing = ImageModelArgs {
        image_model: ImageModelChoice::Mobilenet,
        image_model_dir: None,
        image_dir: None,
    }
    .load()
    .unwrap_err();
    assert!(matches!(missing, ModelError::NoImageModelDir), "{missing}");
    assert!(missing.to_string().contains("scripts/fetch-image-model.sh"));
    let wrong_dir = ImageModel::mobilenet(&model_dir(), dir.path()).unwrap_err();
    assert!(wrong_dir.to_string().contains("b.jpg"), "{wrong_dir}");
}
