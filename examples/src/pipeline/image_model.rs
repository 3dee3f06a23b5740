//! The image model of an image worker: the colour-histogram stand-in ([`embed_image`] of the
//! picture [`render_image`](super::render_image) draws from the URL, the default, a few µs an
//! image) or MobileNetV2 (`MobileNet`, module `mobilenet`, cargo feature `mobilenet`) over the
//! real pictures of an image mirror (`ImageMirror`), chosen with [`ImageModelArgs`] and held
//! as an [`ImageModel`].
//!
//! # The image mirror
//!
//! The example's tasks carry image URLs of shops that do not exist, and the tests and CI reach
//! no network, so a worker running the real model reads its pictures from a local directory
//! standing in for the CDN (`--image-dir`, default `examples/data/images/`): every PNG and
//! JPEG file in it, decoded once at start, sorted by file name. The picture of a URL is file
//! number `fnv1a64(url) % files` ([`fnv1a64`](super::fnv1a64) of the URL's bytes, trimmed),
//! so a URL always gets the same picture and every other language can tell which. A worker
//! that fetches over HTTP would replace only this lookup.

use std::path::PathBuf;
#[cfg(feature = "mobilenet")]
use std::{path::Path, sync::Arc};

use super::error::ModelError;
use super::standin::{embed_image, IMAGE_DIM};

/// Environment variable naming the MobileNetV2 weights directory (`--image-model-dir`).
pub const IMAGE_MODEL_DIR_ENV: &str = "MQ_IMAGE_MODEL_DIR";

/// Which image model to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageModelChoice {
    /// Colour histogram of a picture drawn from the URL, 64 values ([`embed_image`]).
    #[default]
    Hashed,
    /// MobileNetV2 (ImageNet) features, 1280 values (cargo feature `mobilenet`).
    Mobilenet,
}

/// The flags choosing the image model: `--image-model hashed|mobilenet` (`MQ_IMAGE_MODEL`),
/// `--image-model-dir DIR` (`MQ_IMAGE_MODEL_DIR`, what `scripts/fetch-image-model.sh`
/// prints) and `--image-dir DIR` (`MQ_IMAGE_DIR`, the image mirror; see the module docs).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImageModelArgs {
    /// Image model: `hashed` (the fast stand-in) or `mobilenet` (MobileNetV2; needs a build
    /// with `--features mobilenet` and the weights directory).
    #[arg(long, env = "MQ_IMAGE_MODEL", value_enum, default_value_t = ImageModelChoice::Hashed)]
    pub image_model: ImageModelChoice,
    /// Directory of mobilenet_v2.safetensors, as printed by scripts/fetch-image-model.sh.
    #[arg(long, env = "MQ_IMAGE_MODEL_DIR")]
    pub image_model_dir: Option<PathBuf>,
    /// The image mirror: a directory of PNG/JPEG files standing in for the image URLs' CDN
    /// [default: examples/data/images in the source tree].
    #[arg(long, env = "MQ_IMAGE_DIR")]
    pub image_dir: Option<PathBuf>,
}

/// The example images (`examples/data/images/` in the source tree): the default image mirror.
pub fn default_image_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/images")
}

impl ImageModelArgs {
    /// Loads the chosen model (MobileNetV2: 14 MB of weights, and the mirror's pictures).
    ///
    /// # Errors
    ///
    /// See [`ModelError`]; the messages say what to run.
    pub fn load(&self) -> Result<ImageModel, ModelError> {
        match self.image_model {
            ImageModelChoice::Hashed => Ok(ImageModel::Hashed),
            ImageModelChoice::Mobilenet => {
                let dir = self
                    .image_model_dir
                    .as_deref()
                    .ok_or(ModelError::NoImageModelDir)?;
                let images = self.image_dir.clone().unwrap_or_else(default_image_dir);
                ImageModel::mobilenet(dir, &images)
            }
        }
    }
}

/// The pictures a URL stands for: see the module docs.
#[cfg(feature = "mobilenet")]
pub struct ImageMirror {
    dir: PathBuf,
    images: Vec<(String, image::DynamicImage)>,
}

#[cfg(feature = "mobilenet")]
impl std::fmt::Debug for ImageMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageMirror")
            .field("dir", &self.dir)
            .field("images", &self.images.len())
            .finish()
    }
}

#[cfg(feature = "mobilenet")]
impl ImageMirror {
    /// Reads and decodes every `.png`, `.jpg` and `.jpeg` file of `dir`.
    ///
    /// # Errors
    ///
    /// [`ModelError::Load`] if the directory cannot be read, holds no image, or a file does not
    /// decode (named in the message).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let load = |e: &dyn std::fmt::Display| ModelError::Load(format!("{}: {e}", dir.display()));
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| load(&e))? {
            let path = entry.map_err(|e| load(&e))?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(load(&"no .png, .jpg or .jpeg file in the image mirror"));
        }
        let mut images = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path).map_err(|e| load(&e))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let img =
                super::mobilenet::decode(&bytes).map_err(|e| load(&format!("{name}: {e}")))?;
            images.push((name, img));
        }
        Ok(Self {
            dir: dir.to_owned(),
            images,
        })
    }

    /// The file name and picture of `url`: file `fnv1a64(url.trim()) % files`.
    pub fn fetch(&self, url: &str) -> (&str, &image::DynamicImage) {
        let n = self.images.len() as u64;
        let i = (super::standin::fnv1a64(url.trim().as_bytes()) % n.max(1)) as usize;
        let (name, img) = &self.images[i];
        (name, img)
    }

    /// How many pictures it holds.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Never true: [`load`](Self::load) refuses an empty directory.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// A loaded image model, cheap to clone (MobileNetV2 and its mirror are behind `Arc`s).
#[derive(Debug, Clone, Default)]
pub enum ImageModel {
    /// [`embed_image`]: the colour histogram of a picture drawn from the URL.
    #[default]
    Hashed,
    /// MobileNetV2 over the mirror's picture of each URL.
    #[cfg(feature = "mobilenet")]
    MobileNet(Arc<super::mobilenet::MobileNet>, Arc<ImageMirror>),
}

impl ImageModel {
    /// Loads MobileNetV2 from `model_dir` and the image mirror from `image_dir`.
    ///
    /// # Errors
    ///
    /// [`ModelError::ImageNotBuilt`] without the cargo feature `mobilenet`; otherwise see
    /// `MobileNet::load` and `ImageMirror::load`.
    pub fn mobilenet(
        model_dir: &std::path::Path,
        image_dir: &std::path::Path,
    ) -> Result<Self, ModelError> {
        #[cfg(feature = "mobilenet")]
        {
            let net = super::mobilenet::MobileNet::load(model_dir)?;
            Ok(Self::MobileNet(
                Arc::new(net),
                Arc::new(ImageMirror::load(image_dir)?),
            ))
        }
        #[cfg(not(feature = "mobilenet"))]
        {
            let _ = (model_dir, image_dir);
            Err(ModelError::ImageNotBuilt)
        }
    }

    /// `hashed` or `mobilenet`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hashed => "hashed",
            #[cfg(feature = "mobilenet")]
            Self::MobileNet(..) => "mobilenet",
        }
    }

    /// Values per vector: 64 or 1280.
    pub fn dim(&self) -> usize {
        match self {
            Self::Hashed => IMAGE_DIM,
            #[cfg(feature = "mobilenet")]
            Self::MobileNet(..) => super::mobilenet::MOBILENET_DIM,
        }
    }

    /// Whether an image's vector is the same bit for bit whatever batch it is computed in:
    /// true for the stand-in; MobileNetV2's sums depend on the batch to rounding.
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Hashed)
    }

    /// Embeds the images of valid URLs, one vector per URL in order (one model call for
    /// MobileNetV2). Blocks: call it from [`mq_core::blocking`].
    ///
    /// # Errors
    ///
    /// [`ModelError::Inference`] if the model fails (never for the stand-in).
    pub fn embed(&self, urls: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        match self {
            Self::Hashed => Ok(urls.iter().map(|u| embed_image(u)).collect()),
            #[cfg(feature = "mobilenet")]
            Self::MobileNet(net, mirror) => {
                let images: Vec<_> = urls.iter().map(|u| mirror.fetch(u).1.clone()).collect();
                net.embed(&images)
            }
        }
    }

    /// `(model calls, nanoseconds inside the model)` for MobileNetV2; `None` for the
    /// stand-in.
    pub fn usage(&self) -> Option<(u64, u64)> {
        match self {
            Self::Hashed => None,
            #[cfg(feature = "mobilenet")]
            Self::MobileNet(net, _) => Some(net.usage()),
        }
    }
}
