//! Vectors in Redis: one string per vector under [`vector_key`], written with one pipeline per
//! batch ([`store_vectors`]), read back and compared ([`check_vectors`]) and deleted
//! ([`delete_vectors`]).

use super::{
    embed::{EmbedTask, VectorKind},
    model::{ModelError, Models},
};

/// Key prefix of stored vectors: `mq-demo:vec`.
pub const VECTOR_KEY_PREFIX: &str = "mq-demo:vec";

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

/// Cosine similarity of two vectors (0 if either is all zeros), computed in `f64`.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum::<f64>()
    };
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        dot(a, b) / norms
    }
}

/// Smallest cosine between a stored vector and the recomputed one that [`check_vectors_with`]
/// accepts for a model whose vectors depend on the batch to rounding (MiniLM): 0.999.
pub const MIN_COSINE: f64 = 0.999;

/// How the stored vectors of some tasks compare with what the embedding gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorCheck {
    /// Tasks whose vector is stored with exactly the expected bytes.
    pub ok: u64,
    /// Product ids without a stored vector.
    pub missing: Vec<u64>,
    /// Product ids whose stored bytes differ from the embedding (for a model that is not
    /// bit-exact, [`TextModel::is_exact`](super::TextModel::is_exact): whose cosine with it is below [`MIN_COSINE`], or
    /// whose length differs).
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
/// with the embedding computed here, byte for byte: [`check_vectors_with`] and the hashed
/// stand-in models.
///
/// # Errors
///
/// A Redis error (the hashed model does not fail).
pub async fn check_vectors<T: EmbedTask, C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    tasks: &[T],
) -> Result<VectorCheck, CheckError> {
    check_vectors_with(conn, tasks, &Models::default()).await
}

/// Why [`check_vectors`] or [`check_vectors_with`] could not check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading the vectors failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// The model failed recomputing them.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Reads the stored vectors of `tasks` (`MGET`, 1,000 keys per round trip) and compares each
/// with the embedding computed here with the model of `models` for their kind (1,000 tasks a
/// call, on the calling thread): byte for byte when the model is bit-exact
/// ([`TextModel::is_exact`](super::TextModel::is_exact), [`EmbedTask::is_exact`]), else same length and cosine ≥
/// [`MIN_COSINE`].
///
/// # Errors
///
/// A Redis error, or the model failed.
pub async fn check_vectors_with<T: EmbedTask, C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    tasks: &[T],
    models: &Models,
) -> Result<VectorCheck, CheckError> {
    let mut check = VectorCheck::default();
    for chunk in tasks.chunks(1_000) {
        let expected = T::embed_with(chunk, models)?;
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
                    let same = if T::is_exact(models) {
                        vector_to_bytes(&v) == bytes
                    } else {
                        let got = vector_from_bytes(&bytes);
                        got.len() == v.len() && cosine(&got, &v) >= MIN_COSINE
                    };
                    if same {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
