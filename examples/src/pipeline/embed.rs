//! The batch form of the text and image embeddings for tasks ([`EmbedTask`]): the stand-ins
//! of `standin.rs` or real models ([`TextModel`], [`ImageModel`], together [`Models`]), per
//! task its vector or why it is invalid.

use mq_core::Task;

use super::{
    image_model::ImageModel,
    model::{ModelError, Models, TextModel},
    records::{check_image_url, EmbedImage, EmbedText, Reason},
};

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

/// Embeds a batch of image tasks with the stand-in: per task, in order, its vector or why it
/// is invalid (the URL is checked again: tasks may come from producers that do not filter).
pub fn embed_images(tasks: &[EmbedImage]) -> Embedded {
    // The stand-in never fails.
    embed_images_with(tasks, &ImageModel::Hashed).unwrap_or_default()
}

/// Embeds a batch of text tasks with the hashed model: per task, in order, its vector or why
/// it is invalid (blank text).
pub fn embed_texts(tasks: &[EmbedText]) -> Embedded {
    // The hashed model never fails.
    embed_texts_with(tasks, &TextModel::Hashed).unwrap_or_default()
}

/// Per task of a batch, in order: `(product_id, vector)`, or why the task is invalid.
pub type Embedded = Vec<Result<(u64, Vec<f32>), Invalid>>;

/// Checks each task with `input` (its model input, or why it is invalid), embeds the valid
/// ones with one call of `embed`, and gives per task, in order, its vector or why not.
fn embed_valid<'a, T: EmbedTask>(
    tasks: &'a [T],
    input: impl Fn(&'a T) -> Result<&'a str, Reason>,
    embed: impl FnOnce(&[&'a str]) -> Result<Vec<Vec<f32>>, ModelError>,
) -> Result<Embedded, ModelError> {
    let inputs: Vec<Result<&str, Reason>> = tasks.iter().map(&input).collect();
    let valid: Vec<&str> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok().copied())
        .collect();
    let vectors = embed(&valid)?;
    if vectors.len() != valid.len() {
        return Err(ModelError::Inference(format!(
            "{} vectors for {} inputs",
            vectors.len(),
            valid.len()
        )));
    }
    let mut vectors = vectors.into_iter();
    Ok(tasks
        .iter()
        .zip(inputs)
        .map(|(t, i)| match i {
            Ok(_) => Ok((t.product_id(), vectors.next().unwrap_or_default())),
            Err(reason) => Err(Invalid {
                product_id: t.product_id(),
                reason,
            }),
        })
        .collect())
}

/// Embeds a batch of text tasks with `model` (one model call for the valid ones): per task,
/// in order, its vector or why it is invalid (blank text). [`embed_texts`] is this with the
/// hashed model.
///
/// # Errors
///
/// The model failed on the batch ([`ModelError::Inference`]).
pub fn embed_texts_with(tasks: &[EmbedText], model: &TextModel) -> Result<Embedded, ModelError> {
    embed_valid(
        tasks,
        |t| {
            if t.text.trim().is_empty() {
                Err(Reason::TextEmpty)
            } else {
                Ok(t.text.as_str())
            }
        },
        |texts| model.embed(texts),
    )
}

/// Embeds a batch of image tasks with `model` (one model call for the valid ones): per task,
/// in order, its vector or why it is invalid (the URL is checked again: tasks may come from
/// producers that do not filter). [`embed_images`] is this with the stand-in.
///
/// # Errors
///
/// The model failed on the batch ([`ModelError::Inference`]).
pub fn embed_images_with(tasks: &[EmbedImage], model: &ImageModel) -> Result<Embedded, ModelError> {
    embed_valid(tasks, |t| check_image_url(&t.url), |urls| model.embed(urls))
}

/// A task the workers turn into one vector: [`EmbedImage`] or [`EmbedText`].
pub trait EmbedTask: Task + Clone {
    /// The kind of vector it gives.
    const KIND: VectorKind;
    /// The product it belongs to (the vector's key).
    fn product_id(&self) -> u64;
    /// Embeds a batch with the stand-in models: per task, in order, its vector or why it is
    /// invalid.
    fn embed_all(tasks: &[Self]) -> Embedded;
    /// [`embed_all`](Self::embed_all) with the model of `models` for this kind (one model
    /// call for the batch).
    ///
    /// # Errors
    ///
    /// The model failed on the batch.
    fn embed_with(tasks: &[Self], models: &Models) -> Result<Embedded, ModelError>;
    /// Whether the model of `models` for this kind gives the same bytes whatever the batch
    /// ([`TextModel::is_exact`], [`ImageModel::is_exact`]).
    fn is_exact(models: &Models) -> bool;
}

impl EmbedTask for EmbedImage {
    const KIND: VectorKind = VectorKind::Image;
    fn product_id(&self) -> u64 {
        self.product_id
    }
    fn embed_all(tasks: &[Self]) -> Embedded {
        embed_images(tasks)
    }
    fn embed_with(tasks: &[Self], models: &Models) -> Result<Embedded, ModelError> {
        embed_images_with(tasks, &models.image)
    }
    fn is_exact(models: &Models) -> bool {
        models.image.is_exact()
    }
}

impl EmbedTask for EmbedText {
    const KIND: VectorKind = VectorKind::Text;
    fn product_id(&self) -> u64 {
        self.product_id
    }
    fn embed_all(tasks: &[Self]) -> Embedded {
        embed_texts(tasks)
    }
    fn embed_with(tasks: &[Self], models: &Models) -> Result<Embedded, ModelError> {
        embed_texts_with(tasks, &models.text)
    }
    fn is_exact(models: &Models) -> bool {
        models.text.is_exact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::standin::*;
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
