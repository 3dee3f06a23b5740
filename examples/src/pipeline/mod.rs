//! The vectorization pipeline example: product records in, vectors in Redis out.
//!
//! **Producer side** ([`records`], [`producer`]): read [`Product`] records (JSON lines),
//! [`validate`] them and enqueue an [`EmbedImage`] task (queue `images`) and/or an
//! [`EmbedText`] task (queue `texts`) per record ([`enqueue_records`]).
//!
//! **Consumer side** ([`worker`], [`embed`], [`store`]): workers turn the tasks into vectors
//! with a small deterministic CPU "model" standing in for a GPU one ([`embed_image`],
//! [`embed_text`]) and store them in Redis with [`store_vectors`]. The workers' flags are
//! [`WorkerArgs`] ([`args`]). Both workers can run a real model instead of the stand-in
//! ([`Models`]): the text worker all-MiniLM-L6-v2 sentence embeddings with candle (`--model
//! minilm`, cargo feature `minilm`, the weights from `scripts/fetch-model.sh`; [`model`],
//! `minilm`), the image worker MobileNetV2 over the pictures of an image mirror (`--model
//! mobilenet`, cargo feature `mobilenet`, the weights from `scripts/fetch-image-model.sh`;
//! [`image_model`], `mobilenet`).
//!
//! | piece | command (from the workspace root) |
//! |---|---|
//! | everything in one process | `cargo run --release -p mq-examples --bin demo` (`scripts/demo.sh`) |
//! | make the data file | `cargo run -p mq-examples --bin gen-products` |
//! | filter + enqueue | `cargo run -p mq-examples --bin producer -- --url redis://127.0.0.1:6379/` |
//! | image worker | `cargo run --release -p mq-examples --bin image-worker -- --url redis://127.0.0.1:6379/` |
//! | text worker | `cargo run --release -p mq-examples --bin text-worker -- --url redis://127.0.0.1:6379/` |
//! | Python producer | `python3 examples/python/producer.py --url redis://127.0.0.1:6379/ --count 100` |
//! | text worker throughput by batch size | `cargo run --release -p mq-examples --bin text-bench` |
//! | image model by batch size, alone and through the queue | `cargo run --release -p mq-examples --features mobilenet --bin image-bench` |
//!
//! # Records and the filter
//!
//! A record gives up to two tasks, judged separately:
//!
//! * image: `image_url` must be present, non-blank and an `http`/`https` URL with a host (see
//!   [`check_image_url`]); the task carries the URL trimmed of surrounding whitespace;
//! * text: [`product_text`] joins the trimmed, non-blank `title` and `description` with a
//!   newline; it must not be empty.
//!
//! A record with only one valid part enqueues that part; the other is counted as filtered
//! with its [`Reason`]. A record with no valid part enqueues nothing.
//!
//! # Batch handlers
//!
//! The workers, the demo and the benchmark share one handler, [`Embedder`], registered as
//! `mq_core::batch(batch_size, batch_wait, embedder)`: up to `batch_size` tasks are embedded in
//! one call on tokio's blocking pool and their vectors stored with one pipeline
//! ([`embed_batch`]). Invalid tasks are dead-lettered at once, a failed store retries the batch.
//!
//! # Vectors
//!
//! Each vector is stored under [`vector_key`]: `mq-demo:vec:{image|text}:{product_id}`, a
//! Redis string holding the vector as little-endian `f32`s (`4 * dim` bytes:
//! [`TEXT_DIM`] = 256, [`IMAGE_DIM`] = 64). Storing is a plain `SET`, so handling a task twice
//! (at-least-once delivery) writes the same bytes twice. Every vector is L2-normalized, so the
//! dot product of two vectors of one kind is their cosine similarity.
//!
//! The embeddings use only integer arithmetic until a final `f64` normalization, so they are the
//! same bit for bit on every platform and can be reproduced in other languages: the hash is
//! 64-bit FNV-1a ([`fnv1a64`]) and the random generator SplitMix64 ([`SplitMix64`]).
//!
//! The modules read downward: [`records`] and [`args`] depend on nothing here, [`embed`] on
//! [`records`], [`store`] on [`embed`], [`worker`] on all three below it.

pub mod args;
pub mod bench;
pub mod embed;
pub mod error;
pub mod image_model;
pub mod index;
#[cfg(feature = "minilm")]
pub mod minilm;
#[cfg(feature = "mobilenet")]
pub mod mobilenet;
pub mod model;
pub mod producer;
pub mod records;
pub mod standin;
pub mod store;
pub mod worker;

pub use args::WorkerArgs;
pub use embed::{
    embed_images, embed_images_with, embed_texts, embed_texts_with, EmbedTask, Embedded, Invalid,
    VectorKind,
};
#[cfg(feature = "mobilenet")]
pub use image_model::ImageMirror;
pub use image_model::{
    default_image_dir, ImageModel, ImageModelArgs, ImageModelChoice, IMAGE_MODEL_DIR_ENV,
};
#[cfg(feature = "minilm")]
pub use minilm::{MiniLm, MINILM_DIM, MINILM_FILES, MINILM_MAX_TOKENS};
#[cfg(feature = "mobilenet")]
pub use mobilenet::{
    decode as decode_image, MobileNet, CPU_CHUNK, MOBILENET_DIM, MOBILENET_FILE, MOBILENET_SIDE,
};
pub use model::{ModelArgs, ModelChoice, ModelError, Models, TextModel, MODEL_DIR_ENV};
pub use producer::{enqueue_records, Enqueued, ProduceError};
pub use records::{
    check_image_url, default_data_file, filter_file, filter_records, parse_line, product_text,
    validate, EmbedImage, EmbedText, Filtered, Product, Reason, Validated, MAX_URL_LEN,
};
pub use standin::{
    colour_histogram, embed_image, embed_text, fnv1a64, render_image, Image, SplitMix64, IMAGE_DIM,
    IMAGE_SIDE, TEXT_DIM,
};
pub use store::{
    check_vectors, check_vectors_with, cosine, delete_vectors, store_vectors, vector_from_bytes,
    vector_key, vector_to_bytes, CheckError, VectorCheck, MIN_COSINE, VECTOR_KEY_PREFIX,
};
pub use worker::{embed_batch, run_embed_worker, EmbedStats, Embedder};
