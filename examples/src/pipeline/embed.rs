//! The two deterministic CPU "models" standing in for GPU ones: the text embedding
//! ([`embed_text`], hashed character 3-grams) and the image embedding ([`embed_image`], the
//! colour histogram of a picture rendered from the URL), and their batch form for tasks
//! ([`EmbedTask`]).
//!
//! Only integer arithmetic until a final `f64` normalization, so every vector is the same bit
//! for bit on every platform: the hash is 64-bit FNV-1a ([`fnv1a64`]), the random generator
//! SplitMix64 ([`SplitMix64`]).

use mq_core::Task;

use super::{
    model::{ModelError, TextModel},
    records::{check_image_url, EmbedImage, EmbedText, Reason},
};

/// Dimensions of a text vector: 256 hashed character 3-gram buckets.
pub const TEXT_DIM: usize = 256;

/// Dimensions of an image vector: a 4x4x4 RGB colour histogram.
pub const IMAGE_DIM: usize = 64;

/// Side of the generated square image, in pixels: 64.
pub const IMAGE_SIDE: usize = 64;

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

/// Per task of a batch, in order: `(product_id, vector)`, or why the task is invalid.
pub type Embedded = Vec<Result<(u64, Vec<f32>), Invalid>>;

/// Embeds a batch of text tasks with `model` (one model call for the valid ones): per task,
/// in order, its vector or why it is invalid (blank text). [`embed_texts`] is this with the
/// hashed model.
///
/// # Errors
///
/// The model failed on the batch ([`ModelError::Inference`]).
pub fn embed_texts_with(tasks: &[EmbedText], model: &TextModel) -> Result<Embedded, ModelError> {
    let valid: Vec<&str> = tasks
        .iter()
        .filter(|t| !t.text.trim().is_empty())
        .map(|t| t.text.as_str())
        .collect();
    let vectors = model.embed(&valid)?;
    if vectors.len() != valid.len() {
        return Err(ModelError::Inference(format!(
            "{} vectors for {} texts",
            vectors.len(),
            valid.len()
        )));
    }
    let mut vectors = vectors.into_iter();
    Ok(tasks
        .iter()
        .map(|t| {
            if t.text.trim().is_empty() {
                return Err(Invalid {
                    product_id: t.product_id,
                    reason: Reason::TextEmpty,
                });
            }
            Ok((t.product_id, vectors.next().unwrap_or_default()))
        })
        .collect())
}

/// A task the workers turn into one vector: [`EmbedImage`] or [`EmbedText`].
pub trait EmbedTask: Task + Clone {
    /// The kind of vector it gives.
    const KIND: VectorKind;
    /// The product it belongs to (the vector's key).
    fn product_id(&self) -> u64;
    /// Embeds a batch (CPU only): per task, in order, its vector or why it is invalid.
    fn embed_all(tasks: &[Self]) -> Vec<Result<(u64, Vec<f32>), Invalid>>;
    /// [`embed_all`](Self::embed_all) with the text model `model` (only text tasks use it).
    ///
    /// # Errors
    ///
    /// The model failed on the batch.
    fn embed_with(tasks: &[Self], model: &TextModel) -> Result<Embedded, ModelError>;
}

impl EmbedTask for EmbedImage {
    const KIND: VectorKind = VectorKind::Image;
    fn product_id(&self) -> u64 {
        self.product_id
    }
    fn embed_all(tasks: &[Self]) -> Vec<Result<(u64, Vec<f32>), Invalid>> {
        embed_images(tasks)
    }
    fn embed_with(tasks: &[Self], _model: &TextModel) -> Result<Embedded, ModelError> {
        Ok(embed_images(tasks))
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
    fn embed_with(tasks: &[Self], model: &TextModel) -> Result<Embedded, ModelError> {
        embed_texts_with(tasks, model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::store::vector_to_bytes;

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
}
