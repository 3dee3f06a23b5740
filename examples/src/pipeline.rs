//! The vectorization pipeline example: product records in, vectors in Redis out.
//!
//! Producers read [`Product`] records (JSON lines), [`validate`] them and enqueue an
//! [`EmbedImage`] task (queue `images`) and/or an [`EmbedText`] task (queue `texts`) per record;
//! workers turn the tasks into vectors with a small deterministic CPU "model" standing in for a
//! GPU one ([`embed_image`], [`embed_text`]) and store them in Redis with [`store_vectors`].
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
//!
//! # Batch handlers
//!
//! The workers, the demo and the benchmark share one handler, [`Embedder`], registered as
//! `mq_core::batch(batch_size, batch_wait, embedder)`: up to `batch_size` tasks are embedded in
//! one call on tokio's blocking pool and their vectors stored with one pipeline
//! ([`embed_batch`]). Invalid tasks are dead-lettered at once, a failed store retries the batch.
//! The workers' flags are [`WorkerArgs`].
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

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use mq_core::{BatchHandler, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

/// Key prefix of stored vectors: `mq-demo:vec`.
pub const VECTOR_KEY_PREFIX: &str = "mq-demo:vec";
/// Dimensions of a text vector: 256 hashed character 3-gram buckets.
pub const TEXT_DIM: usize = 256;
/// Dimensions of an image vector: a 4x4x4 RGB colour histogram.
pub const IMAGE_DIM: usize = 64;
/// Side of the generated square image, in pixels: 64.
pub const IMAGE_SIDE: usize = 64;
/// Longest image URL accepted, in bytes: 2,048.
pub const MAX_URL_LEN: usize = 2_048;

/// A product record as read from one JSON line. Fields other than `product_id` may be absent
/// or `null`; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Unique product id.
    pub product_id: u64,
    /// Short product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// URL of the product image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Shop category (not used by the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Price in cents (not used by the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<u64>,
}

/// Turn a product image into a vector (queue `images`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(
    queue = "images",
    max_retries = 3,
    timeout = "2m",
    backoff = "exponential(500ms, 30s)"
)]
pub struct EmbedImage {
    /// The product the image belongs to.
    pub product_id: u64,
    /// An `http`/`https` URL (see [`check_image_url`]).
    pub url: String,
}

/// Turn a product text into a vector (queue `texts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(
    queue = "texts",
    max_retries = 3,
    timeout = "1m",
    backoff = "exponential(500ms, 30s)"
)]
pub struct EmbedText {
    /// The product the text belongs to.
    pub product_id: u64,
    /// Title and description, see [`product_text`].
    pub text: String,
}

/// Why one part of a record (its image or its text) was filtered out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `image_url` absent, `null` or blank.
    ImageUrlMissing,
    /// `image_url` is not an `http://` or `https://` URL (`htp://x`, `not a url`, `ftp://..`).
    ImageUrlNotHttp,
    /// `image_url` has no host (`https://`, `http:///a.jpg`).
    ImageUrlNoHost,
    /// `image_url` is malformed otherwise: whitespace or control characters, a bad host or
    /// port, longer than [`MAX_URL_LEN`].
    ImageUrlMalformed,
    /// Neither `title` nor `description` is present.
    TextMissing,
    /// `title` and `description` are present but empty or whitespace only.
    TextEmpty,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 6] = [
        Reason::ImageUrlMissing,
        Reason::ImageUrlNotHttp,
        Reason::ImageUrlNoHost,
        Reason::ImageUrlMalformed,
        Reason::TextMissing,
        Reason::TextEmpty,
    ];

    /// A short stable label, e.g. `image_url not http(s)`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::ImageUrlMissing => "image_url missing",
            Reason::ImageUrlNotHttp => "image_url not http(s)",
            Reason::ImageUrlNoHost => "image_url without host",
            Reason::ImageUrlMalformed => "image_url malformed",
            Reason::TextMissing => "text missing",
            Reason::TextEmpty => "text empty",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The verdict on one record: a task or the reason against it, for each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The image task, or why there is none.
    pub image: Result<EmbedImage, Reason>,
    /// The text task, or why there is none.
    pub text: Result<EmbedText, Reason>,
}

impl Validated {
    /// Both parts are valid.
    pub fn is_complete(&self) -> bool {
        self.image.is_ok() && self.text.is_ok()
    }
    /// No part is valid: the record gives no task.
    pub fn is_rejected(&self) -> bool {
        self.image.is_err() && self.text.is_err()
    }
    /// The reasons of the invalid parts (none, one or two).
    pub fn reasons(&self) -> impl Iterator<Item = Reason> + '_ {
        [self.image.as_ref().err(), self.text.as_ref().err()]
            .into_iter()
            .flatten()
            .copied()
    }
}

/// Parses one JSON line into a [`Product`].
///
/// # Errors
///
/// Invalid JSON, a missing or non-integer `product_id`, or a field of the wrong type.
pub fn parse_line(line: &str) -> Result<Product, serde_json::Error> {
    serde_json::from_str(line)
}

/// Validates both parts of a record and builds its tasks.
pub fn validate(p: &Product) -> Validated {
    let image = match p.image_url.as_deref() {
        None => Err(Reason::ImageUrlMissing),
        Some(u) => check_image_url(u).map(|url| EmbedImage {
            product_id: p.product_id,
            url: url.to_owned(),
        }),
    };
    let text = product_text(p).map(|text| EmbedText {
        product_id: p.product_id,
        text,
    });
    Validated { image, text }
}

/// The text to embed: the trimmed `title` and `description` that are not blank, joined by
/// `"\n"` (Python: `"\n".join(s.strip() for s in (title, description) if s and s.strip())`).
///
/// # Errors
///
/// [`Reason::TextMissing`] if both are absent, [`Reason::TextEmpty`] if what is present is
/// blank.
pub fn product_text(p: &Product) -> Result<String, Reason> {
    if p.title.is_none() && p.description.is_none() {
        return Err(Reason::TextMissing);
    }
    let parts: Vec<&str> = [p.title.as_deref(), p.description.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(Reason::TextEmpty);
    }
    Ok(parts.join("\n"))
}

/// Checks an image URL and returns it trimmed of surrounding whitespace.
///
/// Accepted: `http://` or `https://` (any case), then a host — a DNS name or IPv4 address of
/// letters, digits, `-` and `.` (non-ASCII letters allowed), or an IPv6 address in brackets —,
/// an optional port of 1 to 65535, then anything without whitespace or control characters.
/// An optional `user@` before the host is allowed.
///
/// # Errors
///
/// The [`Reason`] for a blank, non-http(s), hostless or malformed URL.
pub fn check_image_url(url: &str) -> Result<&str, Reason> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Reason::ImageUrlMissing);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Reason::ImageUrlNotHttp);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Reason::ImageUrlNotHttp);
    }
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Reason::ImageUrlMalformed);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(Reason::ImageUrlMalformed);
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(Reason::ImageUrlMalformed);
        }
        match after {
            "" => (addr, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return Err(Reason::ImageUrlMalformed),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(Reason::ImageUrlNoHost);
    }
    if !host_port.starts_with('[') {
        let name = host.strip_suffix('.').unwrap_or(host);
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !name.split('.').all(label_ok) {
            return Err(Reason::ImageUrlMalformed);
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65_535));
        if !valid {
            return Err(Reason::ImageUrlMalformed);
        }
    }
    Ok(url)
}

/// 64-bit FNV-1a of `bytes` (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The SplitMix64 generator (Steele, Lea, Flood 2014): tiny, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift: `(next * n) >> 64`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// L2-normalizes integer feature counts into `f32`s (all zeros stay zeros).
fn l2_normalize(counts: &[i64]) -> Vec<f32> {
    let norm = counts
        .iter()
        .map(|&c| (c as f64) * (c as f64))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| (c as f64 / norm) as f32).collect()
}

/// The text embedding: signed feature hashing of character 3-grams into [`TEXT_DIM`] buckets,
/// L2-normalized.
///
/// 1. Lowercase (`str::to_lowercase`), split on whitespace, join the words with one space and
///    put one space before and after: `"Red  Shoe"` becomes `" red shoe "`.
/// 2. For every window of 3 consecutive `char`s, `h = fnv1a64(utf8 bytes of the window)`;
///    bucket `h % 256` gets `+1` if bit 63 of `h` is 0, else `-1`.
/// 3. Divide the counts by their Euclidean norm (in `f64`), round to `f32`.
///
/// Text without letters or digits still has 3-grams of spaces and punctuation; only the empty
/// string (or whitespace) gives the zero vector.
pub fn embed_text(text: &str) -> Vec<f32> {
    let lower = text.to_lowercase();
    let mut chars: Vec<char> = vec![' '];
    for (i, word) in lower.split_whitespace().enumerate() {
        if i > 0 {
            chars.push(' ');
        }
        chars.extend(word.chars());
    }
    chars.push(' ');
    let mut counts = vec![0i64; TEXT_DIM];
    if chars.len() <= 2 {
        return vec![0.0; TEXT_DIM];
    }
    let mut buf = [0u8; 12];
    for w in chars.windows(3) {
        let mut n = 0;
        for c in w {
            n += c.encode_utf8(&mut buf[n..]).len();
        }
        let h = fnv1a64(&buf[..n]);
        let bucket = (h % TEXT_DIM as u64) as usize;
        counts[bucket] += if h >> 63 == 0 { 1 } else { -1 };
    }
    l2_normalize(&counts)
}

/// A generated RGB image, [`IMAGE_SIDE`] x [`IMAGE_SIDE`] pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `IMAGE_SIDE * IMAGE_SIDE` pixels, row-major.
    pub pixels: Vec<[u8; 3]>,
}

/// "Downloads" the image at `url`: renders a deterministic picture seeded by
/// `fnv1a64(url)`. A vertical, horizontal or diagonal gradient between two random colours,
/// 3 to 6 random rectangles and discs in random colours on top, then per-pixel noise of -16 to
/// +15 per channel. Integer arithmetic only.
pub fn render_image(url: &str) -> Image {
    let mut rng = SplitMix64::new(fnv1a64(url.as_bytes()));
    let side = IMAGE_SIDE as i64;
    let colour = |rng: &mut SplitMix64| -> [i64; 3] {
        let v = rng.next_u64();
        [
            (v & 0xff) as i64,
            ((v >> 8) & 0xff) as i64,
            ((v >> 16) & 0xff) as i64,
        ]
    };
    let from = colour(&mut rng);
    let to = colour(&mut rng);
    let direction = rng.below(3);
    let span = if direction == 2 {
        2 * (side - 1)
    } else {
        side - 1
    };
    let mut px = vec![[0i64; 3]; IMAGE_SIDE * IMAGE_SIDE];
    for y in 0..side {
        for x in 0..side {
            let t = match direction {
                0 => x,
                1 => y,
                _ => x + y,
            };
            let p = &mut px[(y * side + x) as usize];
            for c in 0..3 {
                p[c] = from[c] + (to[c] - from[c]) * t / span;
            }
        }
    }
    let shapes = 3 + rng.below(4);
    for _ in 0..shapes {
        let fill = colour(&mut rng);
        let cx = rng.below(IMAGE_SIDE as u64) as i64;
        let cy = rng.below(IMAGE_SIDE as u64) as i64;
        let r = 4 + rng.below(IMAGE_SIDE as u64 / 4) as i64;
        let disc = rng.chance(1, 2);
        for y in (cy - r).max(0)..(cy + r).min(side) {
            for x in (cx - r).max(0)..(cx + r).min(side) {
                let (dx, dy) = (x - cx, y - cy);
                if !disc || dx * dx + dy * dy <= r * r {
                    px[(y * side + x) as usize] = fill;
                }
            }
        }
    }
    let pixels = px
        .into_iter()
        .map(|p| {
            let noise = rng.next_u64();
            let mut out = [0u8; 3];
            for c in 0..3 {
                let n = ((noise >> (8 * c)) & 31) as i64 - 16;
                out[c] = (p[c] + n).clamp(0, 255) as u8;
            }
            out
        })
        .collect();
    Image { pixels }
}

/// The colour histogram of an image: 4 levels per channel (`value >> 6`), bin
/// `r * 16 + g * 4 + b`, L2-normalized.
pub fn colour_histogram(image: &Image) -> Vec<f32> {
    let mut counts = vec![0i64; IMAGE_DIM];
    for [r, g, b] in &image.pixels {
        let bin = usize::from(r >> 6) * 16 + usize::from(g >> 6) * 4 + usize::from(b >> 6);
        counts[bin] += 1;
    }
    l2_normalize(&counts)
}

/// The image embedding: [`colour_histogram`] of [`render_image`]`(url)`, [`IMAGE_DIM`] values.
pub fn embed_image(url: &str) -> Vec<f32> {
    colour_histogram(&render_image(url))
}

/// The two kinds of stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorKind {
    /// From [`EmbedImage`].
    Image,
    /// From [`EmbedText`].
    Text,
}

impl VectorKind {
    /// `image` or `text`, as in the key.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorKind::Image => "image",
            VectorKind::Text => "text",
        }
    }
}

/// `mq-demo:vec:{image|text}:{product_id}`.
pub fn vector_key(kind: VectorKind, product_id: u64) -> String {
    format!("{VECTOR_KEY_PREFIX}:{}:{product_id}", kind.as_str())
}

/// A vector as little-endian `f32` bytes.
pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`vector_to_bytes`]; trailing bytes that do not make a whole `f32` are
/// ignored.
pub fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Stores vectors `(product_id, vector)` of one kind with one pipelined round trip of `SET`s
/// (nothing is sent for an empty slice).
///
/// # Errors
///
/// The Redis error; then some of the vectors may have been stored.
pub async fn store_vectors<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    kind: VectorKind,
    vectors: &[(u64, Vec<f32>)],
) -> redis::RedisResult<()> {
    if vectors.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (id, v) in vectors {
        pipe.cmd("SET")
            .arg(vector_key(kind, *id))
            .arg(vector_to_bytes(v))
            .ignore();
    }
    pipe.query_async(conn).await
}

/// Why a task cannot be embedded at all (retrying will not help): the handler dead-letters it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("product {product_id}: {reason}")]
pub struct Invalid {
    /// The task's product.
    pub product_id: u64,
    /// What is wrong with it.
    pub reason: Reason,
}

/// Embeds a batch of image tasks: per task, in order, its vector or why it is invalid (the
/// URL is checked again: tasks may come from producers that do not filter).
pub fn embed_images(tasks: &[EmbedImage]) -> Vec<Result<(u64, Vec<f32>), Invalid>> {
    tasks
        .iter()
        .map(|t| match check_image_url(&t.url) {
            Ok(url) => Ok((t.product_id, embed_image(url))),
            Err(reason) => Err(Invalid {
                product_id: t.product_id,
                reason,
            }),
        })
        .collect()
}

/// Embeds a batch of text tasks: per task, in order, its vector or why it is invalid (blank
/// text).
pub fn embed_texts(tasks: &[EmbedText]) -> Vec<Result<(u64, Vec<f32>), Invalid>> {
    tasks
        .iter()
        .map(|t| {
            if t.text.trim().is_empty() {
                Err(Invalid {
                    product_id: t.product_id,
                    reason: Reason::TextEmpty,
                })
            } else {
                Ok((t.product_id, embed_text(&t.text)))
            }
        })
        .collect()
}

/// A task the workers turn into one vector: [`EmbedImage`] or [`EmbedText`].
pub trait EmbedTask: Task + Clone {
    /// The kind of vector it gives.
    const KIND: VectorKind;
    /// The product it belongs to (the vector's key).
    fn product_id(&self) -> u64;
    /// Embeds a batch (CPU only): per task, in order, its vector or why it is invalid.
    fn embed_all(tasks: &[Self]) -> Vec<Result<(u64, Vec<f32>), Invalid>>;
}

impl EmbedTask for EmbedImage {
    const KIND: VectorKind = VectorKind::Image;
    fn product_id(&self) -> u64 {
        self.product_id
    }
    fn embed_all(tasks: &[Self]) -> Vec<Result<(u64, Vec<f32>), Invalid>> {
        embed_images(tasks)
    }
}

impl EmbedTask for EmbedText {
    const KIND: VectorKind = VectorKind::Text;
    fn product_id(&self) -> u64 {
        self.product_id
    }
    fn embed_all(tasks: &[Self]) -> Vec<Result<(u64, Vec<f32>), Invalid>> {
        embed_texts(tasks)
    }
}

/// Counters of a batch handler, shared with whoever watches it (progress bars, summaries).
/// All are cumulative; a task handled twice (at-least-once delivery) counts twice.
#[derive(Debug, Default)]
pub struct EmbedStats {
    /// Batches handled.
    pub batches: AtomicU64,
    /// Tasks handed to the handler (all attempts).
    pub tasks: AtomicU64,
    /// Vectors stored.
    pub stored: AtomicU64,
    /// Tasks rejected as invalid (dead-lettered).
    pub invalid: AtomicU64,
    /// Tasks whose first attempt was failed on purpose ([`Embedder::fail_first_attempt_every`]).
    pub injected: AtomicU64,
    /// Batches whose vectors could not be stored (their tasks were retried).
    pub store_errors: AtomicU64,
    /// Time spent computing embeddings, in nanoseconds (summed over batches).
    pub embed_nanos: AtomicU64,
}

impl EmbedStats {
    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `stored=.. invalid=.. batches=.. avg_batch=.. embed_us_per_task=..`, for end-of-run
    /// lines.
    pub fn summary(&self) -> String {
        let batches = Self::get(&self.batches);
        let tasks = Self::get(&self.tasks);
        let embedded = Self::get(&self.stored) + Self::get(&self.invalid);
        format!(
            "stored={} invalid={} batches={batches} avg_batch={:.1} embed_us_per_task={:.1}",
            Self::get(&self.stored),
            Self::get(&self.invalid),
            tasks as f64 / batches.max(1) as f64,
            Self::get(&self.embed_nanos) as f64 / 1e3 / embedded.max(1) as f64,
        )
    }
}

/// Embeds a batch of tasks and stores their vectors: the body of the pipeline's batch
/// handlers (image worker, text worker, demo, text benchmark).
///
/// 1. With `fail_every > 0`, the first attempt of every task whose product id is a multiple
///    of `fail_every` fails with a retryable error (chaos to show retries; 0 = off).
/// 2. The others are embedded together with [`EmbedTask::embed_all`] inside
///    [`mq_core::blocking`], off the async threads.
/// 3. The valid tasks' vectors are stored with one pipeline ([`store_vectors`]).
///
/// Outcomes, one per task in order: `Ok` once its vector is stored; an invalid task (from a
/// producer that does not filter) is [`TaskError::permanent`], dead-lettered at once; if the
/// embedding panics or the store fails, every valid task of the batch is retried (storing is
/// idempotent: the same bytes under the same key).
pub async fn embed_batch<T, C>(
    conn: &mut C,
    stats: &EmbedStats,
    fail_every: u64,
    tasks: Vec<(T, TaskContext)>,
) -> Vec<Result<(), TaskError>>
where
    T: EmbedTask,
    C: redis::aio::ConnectionLike + Send,
{
    let n = tasks.len();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.tasks.fetch_add(n as u64, Ordering::Relaxed);
    let mut outcomes: Vec<Option<Result<(), TaskError>>> = vec![None; n];
    let mut todo = Vec::with_capacity(n);
    let mut to_embed = Vec::with_capacity(n);
    for (i, (task, ctx)) in tasks.into_iter().enumerate() {
        if fail_every > 0 && task.product_id() % fail_every == 0 && ctx.attempt() == 0 {
            stats.injected.fetch_add(1, Ordering::Relaxed);
            outcomes[i] = Some(Err(TaskError::retry(format!(
                "injected failure: first attempt of product {} (every {fail_every}th)",
                task.product_id()
            ))));
            continue;
        }
        todo.push(i);
        to_embed.push(task);
    }
    if !to_embed.is_empty() {
        let started = Instant::now();
        match mq_core::blocking(move || T::embed_all(&to_embed)).await {
            Err(e) => {
                for &i in &todo {
                    outcomes[i] = Some(Err(e.clone()));
                }
            }
            Ok(results) => {
                stats
                    .embed_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let mut vectors = Vec::with_capacity(results.len());
                let mut valid = Vec::with_capacity(results.len());
                for (&i, result) in todo.iter().zip(results) {
                    match result {
                        Ok(v) => {
                            vectors.push(v);
                            valid.push(i);
                        }
                        Err(invalid) => {
                            stats.invalid.fetch_add(1, Ordering::Relaxed);
                            outcomes[i] = Some(Err(TaskError::permanent(invalid)));
                        }
                    }
                }
                let stored = store_vectors(conn, T::KIND, &vectors).await;
                let outcome = match stored {
                    Ok(()) => {
                        stats
                            .stored
                            .fetch_add(vectors.len() as u64, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => {
                        stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        Err(TaskError::retry(format!(
                            "storing {} {} vectors: {e}",
                            vectors.len(),
                            T::KIND.as_str()
                        )))
                    }
                };
                for i in valid {
                    outcomes[i] = Some(outcome.clone());
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(TaskError::retry("no outcome"))))
        .collect()
}

/// [`embed_batch`] for text tasks, without injected failures.
pub async fn embed_text_batch<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    stats: &EmbedStats,
    tasks: Vec<(EmbedText, TaskContext)>,
) -> Vec<Result<(), TaskError>> {
    embed_batch(conn, stats, 0, tasks).await
}

/// [`embed_batch`] for image tasks, without injected failures.
pub async fn embed_image_batch<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    stats: &EmbedStats,
    tasks: Vec<(EmbedImage, TaskContext)>,
) -> Vec<Result<(), TaskError>> {
    embed_batch(conn, stats, 0, tasks).await
}

/// The pipeline's batch handler: [`embed_batch`] with a Redis connection and [`EmbedStats`].
/// It handles [`EmbedImage`] and [`EmbedText`]; use one per worker (or per task type) to keep
/// their counters apart.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mq_core::{batch, Worker};
/// use mq_examples::pipeline::{EmbedText, Embedder};
///
/// let url = "redis://127.0.0.1:6379/";
/// let embedder = Embedder::connect(url).await?;
/// Worker::builder(url)
///     .concurrency(128)
///     .handle::<EmbedText, _>(batch(32, Duration::from_millis(20), embedder))
///     .build()
///     .await?
///     .run_until_signal()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Embedder {
    conn: redis::aio::ConnectionManager,
    stats: Arc<EmbedStats>,
    fail_every: u64,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("stats", &self.stats)
            .field("fail_every", &self.fail_every)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// An embedder storing vectors through `conn`.
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self {
            conn,
            stats: Arc::default(),
            fail_every: 0,
        }
    }

    /// Connects to `url` (a reconnecting connection) for storing vectors.
    ///
    /// # Errors
    ///
    /// A bad URL or an unreachable Redis.
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let conn = redis::Client::open(url)?.get_connection_manager().await?;
        Ok(Self::new(conn))
    }

    /// Fails the first attempt of every task whose product id is a multiple of `n`, so it is
    /// retried (0: never). For demos.
    pub fn fail_first_attempt_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    /// The counters, shared with the clones of this embedder.
    pub fn stats(&self) -> Arc<EmbedStats> {
        self.stats.clone()
    }
}

#[async_trait::async_trait]
impl<T: EmbedTask> BatchHandler<T> for Embedder {
    async fn handle_batch(&self, tasks: Vec<(T, TaskContext)>) -> Vec<Result<(), TaskError>> {
        let mut conn = self.conn.clone();
        embed_batch(&mut conn, &self.stats, self.fail_every, tasks).await
    }
}

/// What reading and filtering a file of product records gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Lines read.
    pub lines: u64,
    /// Blank lines (skipped, not records).
    pub blank_lines: u64,
    /// Lines that are not a record: (1-based line number, parse error).
    pub unparseable: Vec<(u64, String)>,
    /// Parsed records with both parts valid.
    pub complete: u64,
    /// Parsed records with one valid part.
    pub partial: u64,
    /// Parsed records with no valid part.
    pub rejected: u64,
    /// Filtered parts by reason.
    pub filtered: BTreeMap<Reason, u64>,
    /// The image tasks of the valid parts, in file order.
    pub images: Vec<EmbedImage>,
    /// The text tasks of the valid parts, in file order.
    pub texts: Vec<EmbedText>,
}

impl Filtered {
    /// Non-blank lines: parsed records plus unparseable lines.
    pub fn records(&self) -> u64 {
        self.parsed() + self.unparseable.len() as u64
    }
    /// Records that parsed.
    pub fn parsed(&self) -> u64 {
        self.complete + self.partial + self.rejected
    }
    /// Filtered parts (images and texts), all reasons.
    pub fn filtered_parts(&self) -> u64 {
        self.filtered.values().sum()
    }
    /// Every part of every parsed record is either a task or a filtered part:
    /// `images + texts + filtered == 2 * parsed`.
    pub fn is_accounted(&self) -> bool {
        self.images.len() as u64 + self.texts.len() as u64 + self.filtered_parts()
            == 2 * self.parsed()
    }
    /// `image_url missing=3, image_url not http(s)=5, ...` (every reason, in report order).
    pub fn reasons_line(&self) -> String {
        Reason::ALL
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r.label(),
                    self.filtered.get(r).copied().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads product records (JSON lines) and filters them, as the producer does.
///
/// # Errors
///
/// A read error.
pub fn filter_records(reader: impl std::io::BufRead) -> std::io::Result<Filtered> {
    let mut f = Filtered::default();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        f.lines += 1;
        if line.trim().is_empty() {
            f.blank_lines += 1;
            continue;
        }
        let product = match parse_line(&line) {
            Ok(p) => p,
            Err(e) => {
                f.unparseable.push((i as u64 + 1, e.to_string()));
                continue;
            }
        };
        let v = validate(&product);
        if v.is_complete() {
            f.complete += 1;
        } else if v.is_rejected() {
            f.rejected += 1;
        } else {
            f.partial += 1;
        }
        for reason in v.reasons() {
            *f.filtered.entry(reason).or_default() += 1;
        }
        if let Ok(t) = v.image {
            f.images.push(t);
        }
        if let Ok(t) = v.text {
            f.texts.push(t);
        }
    }
    Ok(f)
}

/// Reads and filters a file of product records ([`filter_records`]).
///
/// # Errors
///
/// The file cannot be opened or read; the message names it.
pub fn filter_file(path: &std::path::Path) -> std::io::Result<Filtered> {
    let file = std::fs::File::open(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
    })?;
    filter_records(std::io::BufReader::new(file))
}

/// How the stored vectors of some tasks compare with what the embedding gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorCheck {
    /// Tasks whose vector is stored with exactly the expected bytes.
    pub ok: u64,
    /// Product ids without a stored vector.
    pub missing: Vec<u64>,
    /// Product ids whose stored bytes differ from the embedding.
    pub wrong: Vec<u64>,
    /// Tasks that are invalid (no vector expected).
    pub invalid: u64,
}

impl VectorCheck {
    /// Every valid task has its exact vector.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.wrong.is_empty()
    }
}

/// Reads the stored vectors of `tasks` (`MGET`, 1,000 keys per round trip) and compares each
/// with the embedding computed here, byte for byte.
///
/// # Errors
///
/// A Redis error.
pub async fn check_vectors<T: EmbedTask, C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    tasks: &[T],
) -> redis::RedisResult<VectorCheck> {
    let mut check = VectorCheck::default();
    for chunk in tasks.chunks(1_000) {
        let expected = T::embed_all(chunk);
        let keys: Vec<String> = chunk
            .iter()
            .map(|t| vector_key(T::KIND, t.product_id()))
            .collect();
        let stored: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
        for (want, got) in expected.into_iter().zip(stored) {
            match (want, got) {
                (Err(_), _) => check.invalid += 1,
                (Ok((id, _)), None) => check.missing.push(id),
                (Ok((id, v)), Some(bytes)) => {
                    if vector_to_bytes(&v) == bytes {
                        check.ok += 1;
                    } else {
                        check.wrong.push(id);
                    }
                }
            }
        }
    }
    Ok(check)
}

/// Deletes the stored vectors of `kind` for these products (`DEL`, 1,000 keys per round
/// trip); returns how many existed.
///
/// # Errors
///
/// A Redis error.
pub async fn delete_vectors<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    kind: VectorKind,
    product_ids: impl IntoIterator<Item = u64>,
) -> redis::RedisResult<u64> {
    let ids: Vec<u64> = product_ids.into_iter().collect();
    let mut deleted = 0;
    for chunk in ids.chunks(1_000) {
        let keys: Vec<String> = chunk.iter().map(|&id| vector_key(kind, id)).collect();
        let n: u64 = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
        deleted += n;
    }
    Ok(deleted)
}

/// Command-line options of the image and text workers (`--url`, `--concurrency`,
/// `--batch-size`, `--batch-wait-ms`, `--grace-ms`, `--metrics-addr`).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Redis URL.
    #[arg(
        long,
        env = "MQ_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub url: String,
    /// Global in-flight limit of this process (tasks, not batches).
    #[arg(long, env = "MQ_CONCURRENCY", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Largest batch handed to the model.
    #[arg(long, env = "MQ_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Longest time a batch waits to fill after its first task arrived, in milliseconds.
    #[arg(long, env = "MQ_BATCH_WAIT_MS", default_value_t = 20)]
    pub batch_wait_ms: u64,
    /// Grace period at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub grace_ms: u64,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (e.g. `0.0.0.0:9464`).
    #[arg(long, env = "MQ_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs an image or text worker until SIGINT/SIGTERM: a [`Worker`](mq_core::Worker) with
/// [`Embedder`] as the batch handler of `T`, then prints `{name}: stored=.. invalid=..` with
/// the batch statistics.
///
/// # Errors
///
/// Redis cannot be reached, or the worker fails.
pub async fn run_embed_worker<T: EmbedTask>(
    name: &str,
    args: WorkerArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let embedder = Embedder::connect(&args.url).await?;
    let stats = embedder.stats();
    let batch_size = usize::try_from(args.batch_size)?;
    let mut builder = mq_core::Worker::builder(&args.url)
        .concurrency(usize::try_from(args.concurrency)?)
        .grace_period(std::time::Duration::from_millis(args.grace_ms))
        .handle::<T, _>(mq_core::batch(
            batch_size,
            std::time::Duration::from_millis(args.batch_wait_ms),
            embedder,
        ));
    if let Some(addr) = args.metrics_addr {
        builder = builder.metrics_addr(addr);
    }
    let worker = builder.build().await?;
    tracing::info!(
        consumer = worker.consumer(),
        queue = T::QUEUE,
        concurrency = args.concurrency,
        batch_size,
        batch_wait_ms = args.batch_wait_ms,
        metrics_addr = ?args.metrics_addr,
        "{name} started"
    );
    let result = worker.run_until_signal().await;
    println!("{name}: {}", stats.summary());
    result?;
    Ok(())
}

/// The default data file: `examples/data/products.jsonl` in this crate's source tree.
pub fn default_data_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/products.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(title: Option<&str>, desc: Option<&str>, url: Option<&str>) -> Product {
        Product {
            product_id: 7,
            title: title.map(Into::into),
            description: desc.map(Into::into),
            image_url: url.map(Into::into),
            ..Product::default()
        }
    }

    #[test]
    fn good_urls_pass_and_are_trimmed() {
        for u in [
            "https://img.example.com/p/1.jpg",
            "http://cdn3.example.net/i/ab12.png?w=512&h=512#top",
            "HTTPS://Example.COM",
            "https://images.example.org:8443/p/1.webp",
            "http://user@example.com/a.jpg",
            "http://[2001:db8::1]:8080/a.jpg",
            "http://127.0.0.1/a.jpg",
            "https://bücher.example/cover.jpg",
            "https://example.com./a.jpg",
        ] {
            assert_eq!(check_image_url(u), Ok(u), "{u}");
        }
        assert_eq!(
            check_image_url("  https://a.example/x.jpg\n"),
            Ok("https://a.example/x.jpg")
        );
    }

    #[test]
    fn bad_urls_are_rejected_with_their_reason() {
        use Reason::*;
        for (u, why) in [
            ("", ImageUrlMissing),
            ("   ", ImageUrlMissing),
            ("htp://x", ImageUrlNotHttp),
            ("not a url", ImageUrlNotHttp),
            ("ftp://files.example.com/a.jpg", ImageUrlNotHttp),
            ("//cdn.example.com/a.jpg", ImageUrlNotHttp),
            ("img.example.com/a.jpg", ImageUrlNotHttp),
            ("javascript:alert(1)", ImageUrlNotHttp),
            ("https://", ImageUrlNoHost),
            ("http:///a.jpg", ImageUrlNoHost),
            ("https://:443/a.jpg", ImageUrlNoHost),
            ("https://user@/a.jpg", ImageUrlNoHost),
            ("https://exa mple.com/a.jpg", ImageUrlMalformed),
            ("https://example.com/a b.jpg", ImageUrlMalformed),
            ("https://example..com/a.jpg", ImageUrlMalformed),
            ("https://-example.com/", ImageUrlMalformed),
            ("https://exa_mple.com/", ImageUrlMalformed),
            ("https://example.com:99999/", ImageUrlMalformed),
            ("https://example.com:0/", ImageUrlMalformed),
            ("https://example.com:/", ImageUrlMalformed),
            ("https://example.com:8o/", ImageUrlMalformed),
            ("http://[::1/a.jpg", ImageUrlMalformed),
            ("http://[zz]/a.jpg", ImageUrlMalformed),
        ] {
            assert_eq!(check_image_url(u), Err(why), "{u:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check_image_url(&long), Err(Reason::ImageUrlMalformed));
    }

    #[test]
    fn text_joins_trimmed_non_blank_parts() {
        let p = product(Some("  Red shoe "), Some("\tLeather, size 42\n"), None);
        assert_eq!(product_text(&p).unwrap(), "Red shoe\nLeather, size 42");
        let p = product(None, Some("only a description"), None);
        assert_eq!(product_text(&p).unwrap(), "only a description");
        let p = product(Some("only a title"), Some("   "), None);
        assert_eq!(product_text(&p).unwrap(), "only a title");
        assert_eq!(
            product_text(&product(None, None, None)),
            Err(Reason::TextMissing)
        );
        assert_eq!(
            product_text(&product(Some(""), Some(" \t\n"), None)),
            Err(Reason::TextEmpty)
        );
        assert_eq!(
            product_text(&product(Some(" "), None, None)),
            Err(Reason::TextEmpty)
        );
    }

    #[test]
    fn validate_judges_each_part_on_its_own() {
        let v = validate(&product(
            Some("Shoe"),
            None,
            Some("https://a.example/1.jpg"),
        ));
        assert!(v.is_complete() && !v.is_rejected());
        assert_eq!(
            v.image,
            Ok(EmbedImage {
                product_id: 7,
                url: "https://a.example/1.jpg".into()
            })
        );
        assert_eq!(v.reasons().count(), 0);

        let v = validate(&product(Some("Shoe"), None, Some("htp://x")));
        assert!(!v.is_complete() && !v.is_rejected());
        assert!(v.text.is_ok());
        assert_eq!(v.reasons().collect::<Vec<_>>(), [Reason::ImageUrlNotHttp]);

        let v = validate(&product(Some(" "), None, None));
        assert!(v.is_rejected());
        assert_eq!(
            v.reasons().collect::<Vec<_>>(),
            [Reason::ImageUrlMissing, Reason::TextEmpty]
        );
    }

    #[test]
    fn lines_parse_with_absent_null_and_unknown_fields() {
        let p = parse_line(
            r#"{"product_id":3,"title":null,"extra":[1,2],"image_url":"https://a.b/c"}"#,
        )
        .unwrap();
        assert_eq!(p.product_id, 3);
        assert_eq!(p.title, None);
        assert_eq!(p.image_url.as_deref(), Some("https://a.b/c"));
        assert!(parse_line(r#"{"title":"no id"}"#).is_err());
        assert!(parse_line(r#"{"product_id":-1}"#).is_err());
        assert!(parse_line(r#"{"product_id":1,"title":"#).is_err());
    }

    fn norm(v: &[f32]) -> f64 {
        v.iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn fnv1a_and_splitmix_match_reference_values() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo reference).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // SplitMix64 seeded with 0 (reference sequence).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut r = SplitMix64::new(9);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }

    #[test]
    fn text_embedding_is_deterministic_and_normalized() {
        let a = embed_text("Red leather shoe");
        assert_eq!(a.len(), TEXT_DIM);
        assert_eq!(
            vector_to_bytes(&a),
            vector_to_bytes(&embed_text("Red leather shoe"))
        );
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        // Case and whitespace runs do not matter.
        assert_eq!(a, embed_text("  red   LEATHER\n\tshoe "));
        // Similar texts are closer than unrelated ones.
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let similar = dot(&a, &embed_text("red leather shoes"));
        let other = dot(&a, &embed_text("stainless steel kettle 1.7l"));
        assert!(similar > 0.7 && similar > other + 0.3, "{similar} {other}");
        // Non-ASCII text is fine, blank text is the zero vector.
        assert!((norm(&embed_text("Bücher über Äpfel")) - 1.0).abs() < 1e-5);
        assert!(embed_text(" \n").iter().all(|&x| x == 0.0));
        assert!((norm(&embed_text("a")) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn text_embedding_matches_a_hand_computation() {
        // " ab " has the 3-grams " ab" and "ab ".
        let mut want = [0i64; TEXT_DIM];
        for g in [" ab", "ab "] {
            let h = fnv1a64(g.as_bytes());
            want[(h % TEXT_DIM as u64) as usize] += if h >> 63 == 0 { 1 } else { -1 };
        }
        assert_eq!(embed_text("AB"), l2_normalize(&want));
    }

    #[test]
    fn image_embedding_is_deterministic_normalized_and_url_dependent() {
        let url = "https://img.example.com/p/1.jpg";
        let img = render_image(url);
        assert_eq!(img.pixels.len(), IMAGE_SIDE * IMAGE_SIDE);
        assert_eq!(img, render_image(url));
        // Structure: many distinct colours, not noise around one value.
        let mut distinct = img.pixels.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 500, "{}", distinct.len());
        let a = embed_image(url);
        assert_eq!(a.len(), IMAGE_DIM);
        assert_eq!(vector_to_bytes(&a), vector_to_bytes(&embed_image(url)));
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        assert!(a.iter().all(|&x| x >= 0.0));
        assert!(a.iter().filter(|&&x| x > 0.0).count() >= 2);
        assert_ne!(a, embed_image("https://img.example.com/p/2.jpg"));
    }

    #[test]
    fn vectors_round_trip_through_bytes_and_keys_are_stable() {
        let v = vec![0.5f32, -1.25, 3.0e-7];
        let b = vector_to_bytes(&v);
        assert_eq!(b.len(), 12);
        assert_eq!(&b[..4], &0.5f32.to_le_bytes());
        assert_eq!(vector_from_bytes(&b), v);
        assert_eq!(vector_key(VectorKind::Image, 42), "mq-demo:vec:image:42");
        assert_eq!(vector_key(VectorKind::Text, 42), "mq-demo:vec:text:42");
    }

    #[test]
    fn batches_embed_valid_tasks_and_list_invalid_ones() {
        let out = embed_texts(&[
            EmbedText {
                product_id: 1,
                text: "shoe".into(),
            },
            EmbedText {
                product_id: 2,
                text: "  ".into(),
            },
        ]);
        assert_eq!(out[0].as_ref().unwrap().0, 1);
        assert_eq!(
            out[1],
            Err(Invalid {
                product_id: 2,
                reason: Reason::TextEmpty
            })
        );
        let out = embed_images(&[EmbedImage {
            product_id: 3,
            url: "htp://x".into(),
        }]);
        assert_eq!(
            out[0],
            Err(Invalid {
                product_id: 3,
                reason: Reason::ImageUrlNotHttp
            })
        );
    }

    #[test]
    fn payload_is_the_msgpack_map_other_languages_write() {
        // What Python's msgpack.packb({"product_id": 42, "text": "red shoe"}) produces.
        let mut want = vec![0x82, 0xaa];
        want.extend_from_slice(b"product_id");
        want.extend_from_slice(&[0x2a, 0xa4]);
        want.extend_from_slice(b"text");
        want.push(0xa8);
        want.extend_from_slice(b"red shoe");
        let task = EmbedText {
            product_id: 42,
            text: "red shoe".into(),
        };
        assert_eq!(rmp_serde::to_vec_named(&task).unwrap(), want);
        assert_eq!(rmp_serde::from_slice::<EmbedText>(&want).unwrap(), task);
        assert_eq!(EmbedText::QUEUE, "texts");
        assert_eq!(EmbedImage::QUEUE, "images");
        assert_eq!(EmbedImage::OPTIONS.max_retries, 3);
    }
}
