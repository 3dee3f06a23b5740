//! The two deterministic CPU "models" standing in for GPU ones: the text embedding
//! ([`embed_text`], hashed character 3-grams) and the image embedding ([`embed_image`], the
//! colour histogram of a picture rendered from the URL).
//!
//! Only integer arithmetic until a final `f64` normalization, so every vector is the same bit
//! for bit on every platform: the hash is 64-bit FNV-1a ([`fnv1a64`]), the random generator
//! SplitMix64 ([`SplitMix64`]).

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
pub(crate) fn l2_normalize(counts: &[i64]) -> Vec<f32> {
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
