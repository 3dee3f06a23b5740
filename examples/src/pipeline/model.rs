//! The text model of a text worker: the hashing stand-in ([`embed_text`], the default, 2 µs
//! a text) or all-MiniLM-L6-v2 (`MiniLm`, module `minilm`, cargo feature `minilm`),
//! chosen with `--model` ([`ModelArgs`]) and held as a [`TextModel`].

use std::path::PathBuf;
#[cfg(feature = "minilm")]
use std::sync::Arc;

pub use super::error::ModelError;
use super::standin::{embed_text, TEXT_DIM};

/// Environment variable naming the MiniLM model directory (as `--model-dir`).
pub const MODEL_DIR_ENV: &str = "MQ_MODEL_DIR";

/// Which text model to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// Hashed character 3-grams, 256 values ([`embed_text`]): the fast stand-in.
    #[default]
    Hashed,
    /// all-MiniLM-L6-v2 sentence embeddings, 384 values (cargo feature `minilm`).
    Minilm,
}

/// The flags choosing the text model: `--model hashed|minilm` (`MQ_MODEL`) and
/// `--model-dir DIR` (`MQ_MODEL_DIR`, the directory `scripts/fetch-model.sh` prints).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelArgs {
    /// Text model: `hashed` (the fast stand-in) or `minilm` (all-MiniLM-L6-v2; needs a build
    /// with `--features minilm` and the model directory).
    #[arg(long, env = "MQ_MODEL", value_enum, default_value_t = ModelChoice::Hashed)]
    pub model: ModelChoice,
    /// Directory of the MiniLM files (config.json, tokenizer.json, model.safetensors), as
    /// printed by scripts/fetch-model.sh.
    #[arg(long, env = "MQ_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
}

impl ModelArgs {
    /// Loads the chosen model (MiniLM: from `--model-dir`, reading 90 MB of weights).
    ///
    /// # Errors
    ///
    /// See [`ModelError`]; the messages say what to run.
    pub fn load(&self) -> Result<TextModel, ModelError> {
        match self.model {
            ModelChoice::Hashed => Ok(TextModel::Hashed),
            ModelChoice::Minilm => {
                let dir = self.model_dir.as_deref().ok_or(ModelError::NoDir)?;
                TextModel::minilm(dir)
            }
        }
    }
}

/// A loaded text model, cheap to clone (MiniLM is shared behind an `Arc`).
#[derive(Debug, Clone, Default)]
pub enum TextModel {
    /// [`embed_text`]: hashed character 3-grams.
    #[default]
    Hashed,
    /// all-MiniLM-L6-v2.
    #[cfg(feature = "minilm")]
    MiniLm(Arc<super::minilm::MiniLm>),
}

impl TextModel {
    /// Loads MiniLM from `dir`.
    ///
    /// # Errors
    ///
    /// [`ModelError::NotBuilt`] without the cargo feature `minilm`; otherwise see
    /// `MiniLm::load`.
    pub fn minilm(dir: &std::path::Path) -> Result<Self, ModelError> {
        #[cfg(feature = "minilm")]
        {
            Ok(Self::MiniLm(Arc::new(super::minilm::MiniLm::load(dir)?)))
        }
        #[cfg(not(feature = "minilm"))]
        {
            let _ = dir;
            Err(ModelError::NotBuilt)
        }
    }

    /// `hashed` or `minilm`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hashed => "hashed",
            #[cfg(feature = "minilm")]
            Self::MiniLm(_) => "minilm",
        }
    }

    /// Values per vector: 256 or 384.
    pub fn dim(&self) -> usize {
        match self {
            Self::Hashed => TEXT_DIM,
            #[cfg(feature = "minilm")]
            Self::MiniLm(_) => super::minilm::MINILM_DIM,
        }
    }

    /// Whether a text's vector is the same bit for bit whatever batch it is computed in:
    /// true for the hashed model; MiniLM's floating-point sums depend on the batch's padded
    /// length, so its vectors agree only to rounding (cosine > 0.9999).
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Hashed)
    }

    /// Embeds texts, one vector per text in order, L2-normalized. Blocks: call it from
    /// [`mq_core::blocking`].
    ///
    /// # Errors
    ///
    /// [`ModelError::Inference`] if the model fails (never for the hashed model).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        match self {
            Self::Hashed => Ok(texts.iter().map(|t| embed_text(t)).collect()),
            #[cfg(feature = "minilm")]
            Self::MiniLm(m) => m.embed(texts),
        }
    }

    /// `(model calls, nanoseconds inside the model)` for MiniLM (without the time a batch
    /// waited for its turn); `None` for the hashed model.
    pub fn usage(&self) -> Option<(u64, u64)> {
        match self {
            Self::Hashed => None,
            #[cfg(feature = "minilm")]
            Self::MiniLm(m) => Some(m.usage()),
        }
    }
}

/// The models of a worker, one per kind of task: [`EmbedTask::embed_with`](super::EmbedTask)
/// uses the one of its kind.
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// For [`EmbedText`](super::EmbedText).
    pub text: TextModel,
    /// For [`EmbedImage`](super::EmbedImage).
    pub image: super::image_model::ImageModel,
}

impl Models {
    /// `text_model=.. image_model=..`, for summary lines.
    pub fn names(&self) -> String {
        format!(
            "text_model={} image_model={}",
            self.text.name(),
            self.image.name()
        )
    }
}
