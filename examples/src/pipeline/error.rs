//! Why a text or image model cannot be loaded or run.

use std::path::PathBuf;

/// Why a text or image model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `--model minilm` without `--model-dir` or `MQ_MODEL_DIR`.
    #[error("--model minilm needs the model directory: run scripts/fetch-model.sh and pass the directory it prints as --model-dir or MQ_MODEL_DIR")]
    NoDir,
    /// A model file is missing from the directory.
    #[error("{file} not found in {dir}: run scripts/fetch-model.sh (it downloads the model with pip and prints its directory) and pass that directory as --model-dir or MQ_MODEL_DIR", dir = dir.display())]
    Missing {
        /// The directory given.
        dir: PathBuf,
        /// The first missing file.
        file: String,
    },
    /// The image model's weights are not in the directory given.
    #[error("{file} not found in {dir}: run scripts/fetch-image-model.sh (it downloads the weights with pip, checks and converts them, and prints the directory) and pass that directory as MQ_IMAGE_MODEL_DIR", dir = dir.display())]
    ImageModelMissing {
        /// The directory given.
        dir: PathBuf,
        /// The missing file.
        file: String,
    },
    /// `--image-model mobilenet` without `--image-model-dir` or `MQ_IMAGE_MODEL_DIR`.
    #[error("the mobilenet image model needs its weights directory: run scripts/fetch-image-model.sh and pass the directory it prints as --image-model-dir (image-worker: --model-dir) or MQ_IMAGE_MODEL_DIR")]
    NoImageModelDir,
    /// This build has no MobileNetV2 (built without the cargo feature `mobilenet`).
    #[error("this binary was built without MobileNetV2: rebuild with `--features mobilenet` (cargo build --release -p mq-examples --features mobilenet)")]
    ImageNotBuilt,
    /// This build has no MiniLM (built without the cargo feature `minilm`).
    #[error("this binary was built without MiniLM: rebuild with `--features minilm` (cargo build --release -p mq-examples --features minilm)")]
    NotBuilt,
    /// A model file cannot be read or parsed.
    #[error("loading the model: {0}")]
    Load(String),
    /// Tokenization or the model failed on a batch.
    #[error("running the model: {0}")]
    Inference(String),
}
