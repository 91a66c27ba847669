//! The wgpu backend: the [`Backend`] ops as WGSL compute kernels (`wgsl/` at the repository
//! root) on any adapter wgpu supports — Vulkan, Metal, DX12, GL, and WebGPU in browsers.
//!
//! * Every op of a pass is recorded into one command encoder; nothing is submitted until the
//!   host asks for data ([`Backend::download`], [`Backend::download_ids`]), which submits once.
//!   The `_async` forms ([`Backend::download_async`], ...) await the device instead of blocking,
//!   the only way to read back in a web page; there the device is opened with
//!   [`GpuBackend::new_async`].
//! * Buffers come from a pool keyed by size, so a warmed-up pass allocates nothing; pipelines
//!   are compiled once per (shader, entry point, specialisation).
//! * Weights reach the device as the model file stores them — bf16 and f16 16-bit, q8 as packed
//!   bytes with a buffer of f32 scales — and are widened in the shaders; compute is f32.
//! * Tensors larger than one storage binding are bound as windows (matmul operands, embedding
//!   tables); anything else too large for the device is a clear error.
//!
//! The launchers of the kernels live in `kernels/` (one module per shader file, with its
//! binding table and its typed uniform block); the device context is split over `device.rs`
//! (adapter, limits, errors), `pool.rs`, `pipelines.rs`, `recorder.rs` and `readback.rs`.

pub mod adapter;
mod device;
mod kernels;
mod pipelines;
mod pool;
mod readback;
mod recorder;
pub mod shaders;

use std::borrow::Cow;
use std::string::String;
use std::sync::Arc;
use std::vec::Vec;

pub(crate) use device::Ctx;
pub use device::{GpuOptions, GpuStats, MatmulKernel};
pub(crate) use pipelines::Kernel;
pub(crate) use pool::Buf;
pub(crate) use recorder::Arg;
/// The wgpu version this backend is built on (for [`GpuOptions::backends`] and adapter infos).
pub use wgpu;

#[cfg(feature = "train")]
use crate::backend::TrainBackend;
use crate::backend::{Activation, Backend, Mask, Shaped};
use crate::error::{Error, Result};
use crate::formats::{Channels, Stored, StoredTensor};
use crate::ops::{self, Checked};
use crate::safetensors_io::DType;
use crate::tensor::{numel, HostTensor};

/// How a tensor's elements are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    F32 = 0,
    Bf16 = 1,
    F16 = 2,
    /// Signed bytes, four to a word; the scales are in [`GpuTensor::scales`].
    Q8 = 3,
}

impl Format {
    pub fn size(self) -> u64 {
        match self {
            Format::F32 => 4,
            Format::Bf16 | Format::F16 => 2,
            Format::Q8 => 1,
        }
    }

    /// The value of the shaders' `*_FORMAT` override (`wgsl/common.wgsl`); for q8, `per_k` says
    /// that the scales run along the reduction (or gathered row) rather than the output column.
    pub fn code(self, per_k: bool) -> f64 {
        match (self, per_k) {
            (Format::Q8, true) => 4.0,
            (f, _) => f as u32 as f64,
        }
    }
}

/// An `f32` tensor on the GPU (weights may be stored 16-bit or q8).
#[derive(Debug, Clone)]
pub struct GpuTensor {
    pub(crate) buf: Arc<Buf>,
    pub(crate) shape: Vec<usize>,
    pub(crate) format: Format,
    /// q8: the scales.
    pub(crate) scales: Option<Scales>,
}

/// The scales of a q8 tensor on the device.
#[derive(Debug, Clone)]
pub(crate) struct Scales {
    /// One f32 per channel.
    pub buf: Arc<Buf>,
    /// Which way the channels run.
    pub channels: Channels,
    /// The matrix `[rows, cols]` they belong to.
    pub matrix: [usize; 2],
}

impl Scales {
    /// Whether they run along the reduction of a product whose right operand is this matrix,
    /// transposed or not (rather than along its output columns).
    pub fn along_k(&self, trans_b: bool) -> bool {
        (self.channels == Channels::Columns) == trans_b
    }

    fn count(&self) -> usize {
        self.channels.count(self.matrix)
    }
}

impl Shaped for GpuTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl GpuTensor {
    /// The shape.
    pub fn shape_vec(&self) -> Vec<usize> {
        self.shape.clone()
    }

    /// Bytes its elements take on the device (a q8 weight's scales included).
    pub fn byte_len(&self) -> usize {
        let scales = self.scales.as_ref().map_or(0, |s| s.count() * 4);
        self.numel() * self.format.size() as usize + scales
    }

    pub(crate) fn numel(&self) -> usize {
        numel(&self.shape)
    }

    pub(crate) fn arg(&self) -> Arg<'_> {
        // Whole 16-byte units: kernels may bind a buffer as an array of vec4.
        Arg::window(
            &self.buf,
            0,
            (self.numel() as u64 * self.format.size())
                .next_multiple_of(16)
                .max(16),
        )
    }

    /// The scales of a q8 tensor (`None` for the other formats); an error for one reshaped away
    /// from its matrix, whose channels are no longer its rows or columns.
    pub(crate) fn q8_scales(&self, op: &str) -> Result<Option<&Scales>> {
        match &self.scales {
            Some(s) if self.shape != s.matrix => Err(Error::Backend(std::format!(
                "{op}: a q8 tensor {:?} reshaped from {:?}",
                self.shape,
                s.matrix
            ))),
            s => Ok(s.as_ref()),
        }
    }

    /// Fails unless the tensor is stored as f32 (only matmul weights and embedding tables may
    /// be 16-bit or q8).
    pub(crate) fn f32(&self, op: &str) -> Result<&Self> {
        match self.format {
            Format::F32 => Ok(self),
            f => Err(Error::Backend(std::format!(
                "{op} needs an f32 tensor, got {f:?}"
            ))),
        }
    }

    /// A window over elements `[lo, hi)`, bound from a 256-byte-aligned offset; returns the
    /// binding and the index of element `lo` inside it.
    pub(crate) fn window(&self, lo: usize, hi: usize) -> (Arg<'_>, u32) {
        let esz = self.format.size();
        let start = lo as u64 * esz;
        let aligned = start / 256 * 256;
        let end = ((hi.max(lo + 1)) as u64 * esz)
            .next_multiple_of(16)
            .min(self.buf.size);
        (
            Arg::window(&self.buf, aligned, end - aligned),
            ((start - aligned) / esz) as u32,
        )
    }
}

/// Token ids on the GPU.
#[derive(Debug, Clone)]
pub struct GpuIds {
    pub(crate) buf: Arc<Buf>,
    pub(crate) shape: Vec<usize>,
}

impl Shaped for GpuIds {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl GpuIds {
    pub(crate) fn arg(&self) -> Arg<'_> {
        Arg::window(&self.buf, 0, (numel(&self.shape) as u64 * 4).max(4))
    }
}

/// A 2-D grid of workgroups covering `n` invocations in groups of `wg`.
pub(crate) fn grid_1d(n: usize, wg: u32) -> [u32; 3] {
    grid_rows(n.div_ceil(wg as usize))
}

/// A 2-D grid of `groups` workgroups (one dimension holds at most 65535).
pub(crate) fn grid_rows(groups: usize) -> [u32; 3] {
    let x = groups.clamp(1, 65535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// The wgpu backend. Cloning is cheap and shares the device.
#[derive(Clone)]
pub struct GpuBackend {
    ctx: Arc<Ctx>,
}

impl core::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "GpuBackend({})", self.name())
    }
}

impl GpuBackend {
    /// Opens the best adapter with default options (blocking; on the web, use
    /// [`GpuBackend::new_async`]).
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// Opens the best adapter with `options` (blocking; on the web, use
    /// [`GpuBackend::with_options_async`]).
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        Ok(GpuBackend {
            ctx: Ctx::new(options)?,
        })
    }

    /// Opens the best adapter with default options without blocking (in a web page: the
    /// browser's WebGPU adapter).
    pub async fn new_async() -> Result<Self> {
        Self::with_options_async(GpuOptions::default()).await
    }

    /// Opens the best adapter with `options` without blocking.
    pub async fn with_options_async(options: GpuOptions) -> Result<Self> {
        Ok(GpuBackend {
            ctx: Ctx::new_async(options).await?,
        })
    }

    /// The GPU backend on the best *hardware* adapter of the backends `options` allows, or
    /// `None` where there is none (no adapter, or only software ones such as lavapipe): the
    /// choice [`DeviceKind::Auto`](crate::DeviceKind::Auto) makes. Blocking; see
    /// [`GpuBackend::hardware_async`].
    pub fn hardware(options: GpuOptions) -> Result<Option<Self>> {
        #[cfg(target_arch = "wasm32")]
        {
            let _ = options;
            Err(Error::Backend(
                "opening a GPU device cannot block in a web page; use GpuBackend::hardware_async"
                    .into(),
            ))
        }
        #[cfg(not(target_arch = "wasm32"))]
        pollster::block_on(Self::hardware_async(options))
    }

    /// [`GpuBackend::hardware`] without blocking.
    pub async fn hardware_async(options: GpuOptions) -> Result<Option<Self>> {
        let backends = adapter::backends(options.backends)?;
        match adapter::pick(backends, true).await? {
            Some(a) => Ok(Some(GpuBackend {
                ctx: Ctx::on_adapter(a, options).await?,
            })),
            None => Ok(None),
        }
    }

    /// The adapter, as wgpu describes it.
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.ctx.info.clone()
    }

    /// Whether the adapter is a CPU implementation (lavapipe, SwiftShader, WARP).
    pub fn is_cpu_adapter(&self) -> bool {
        adapter::is_software(&self.ctx.info)
    }

    /// The matmul kernel in use.
    pub fn matmul_variant(&self) -> MatmulKernel {
        self.ctx.matmul
    }

    /// What the backend has done so far.
    pub fn stats(&self) -> GpuStats {
        self.ctx.stats()
    }

    /// Submits everything recorded so far without reading anything back.
    pub fn flush(&self) -> Result<()> {
        self.ctx.flush()
    }

    pub(crate) fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// An uninitialised f32 tensor of `shape`.
    pub(crate) fn alloc(&self, shape: &[usize]) -> Result<GpuTensor> {
        Ok(GpuTensor {
            buf: self.ctx.buffer(numel(shape) as u64 * 4, false)?,
            shape: shape.to_vec(),
            format: Format::F32,
            scales: None,
        })
    }

    /// An uninitialised id tensor of `shape`.
    pub(crate) fn alloc_ids(&self, shape: &[usize]) -> Result<GpuIds> {
        Ok(GpuIds {
            buf: self.ctx.buffer(numel(shape) as u64 * 4, false)?,
            shape: shape.to_vec(),
        })
    }

    /// Gives `t` a buffer of its own (a copy) if another tensor shares its buffer (a reshape),
    /// so that an in-place write changes `t` alone, as the CPU backend's copy-on-write does.
    pub(crate) fn make_unique(&self, t: &mut GpuTensor) -> Result<()> {
        if Arc::strong_count(&t.buf) > 1 {
            let copy = self.alloc(&t.shape)?;
            self.ctx
                .copy(&t.buf, 0, &copy.buf, 0, t.numel() as u64 * t.format.size());
            *t = GpuTensor {
                format: t.format,
                scales: t.scales.clone(),
                ..copy
            };
        }
        Ok(())
    }

    /// Uploads `u32` words (ids, flags).
    pub(crate) fn upload_words(&self, words: &[u32]) -> Result<Arc<Buf>> {
        self.ctx.upload_bytes(bytemuck::cast_slice(words))
    }
}

/// The bytes of a tensor, as a part of a readback.
fn tensor_part(t: &GpuTensor) -> (&Buf, u64, u64) {
    (&t.buf, 0, t.numel() as u64 * t.format.size())
}

/// The bytes of token ids, as a part of a readback.
fn ids_part(ids: &GpuIds) -> (&Buf, u64, u64) {
    (&ids.buf, 0, numel(&ids.shape) as u64 * 4)
}

/// Little-endian 32-bit words.
fn words(raw: Vec<u8>) -> Vec<u32> {
    raw.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The bytes of a q8 tensor's scales, as a part of a readback.
fn scales_part(t: &GpuTensor) -> Option<(&Buf, u64, u64)> {
    let s = t.scales.as_ref()?;
    Some((&s.buf, 0, s.count() as u64 * 4))
}

/// A tensor's values from its bytes as stored on the device (and, for q8, its scales').
fn host_tensor(t: &GpuTensor, mut raw: Vec<Vec<u8>>) -> Result<HostTensor> {
    let mut take = || raw.remove(0);
    let bytes = take();
    let stored = match (t.format, &t.scales) {
        (Format::Q8, Some(s)) => {
            let scales = words(take()).into_iter().map(f32::from_bits).collect();
            let values = Cow::Borrowed(&bytes[..t.numel()]);
            StoredTensor::q8("download", s.matrix, values, scales, s.channels)?.to_f32()
        }
        (Format::Q8, None) => return Err(Error::Backend("a q8 tensor without scales".into())),
        (f, _) => {
            let dtype = match f {
                Format::Bf16 => DType::BF16,
                Format::F16 => DType::F16,
                _ => DType::F32,
            };
            let len = t.numel() * dtype.size();
            StoredTensor::float(&t.shape, dtype, Cow::Borrowed(&bytes[..len]))?.to_f32()
        }
    };
    HostTensor::new(&t.shape, stored)
}

/// An f32 tensor and token ids from one readback of both.
fn tensor_and_ids(t: &GpuTensor, mut raw: Vec<Vec<u8>>) -> Result<(HostTensor, Vec<u32>)> {
    let ids = words(raw.pop().expect("two parts"));
    let values = host_tensor(t, raw)?;
    Ok((values, ids))
}

/// The parts of a readback of tensor `t` (its bytes, and a q8 tensor's scales).
fn parts(t: &GpuTensor) -> Vec<(&Buf, u64, u64)> {
    core::iter::once(tensor_part(t))
        .chain(scales_part(t))
        .collect()
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Ids = GpuIds;

    fn name(&self) -> String {
        let i = &self.ctx.info;
        std::format!("{} ({:?})", i.name, i.backend)
    }

    fn upload(&self, t: &HostTensor) -> Result<GpuTensor> {
        Ok(GpuTensor {
            buf: self.ctx.upload_bytes(bytemuck::cast_slice(t.data()))?,
            shape: t.shape().to_vec(),
            format: Format::F32,
            scales: None,
        })
    }

    /// The file's bytes go to the device as they are: f32, bf16 and f16 elements, or q8 values
    /// (four to a word) with a buffer of their f32 scales.
    fn upload_weight(&self, t: &StoredTensor<'_>) -> Result<GpuTensor> {
        let (format, bytes, scales) = match t.stored() {
            Stored::Float(DType::F32, b) => (Format::F32, b, None),
            Stored::Float(DType::BF16, b) => (Format::Bf16, b, None),
            Stored::Float(DType::F16, b) => (Format::F16, b, None),
            Stored::Q8 {
                values,
                scales,
                channels,
            } => {
                let scales = Scales {
                    buf: self.ctx.upload_bytes(bytemuck::cast_slice(scales))?,
                    channels: *channels,
                    matrix: [t.shape()[0], t.shape()[1]],
                };
                (Format::Q8, values, Some(scales))
            }
        };
        Ok(GpuTensor {
            buf: self.ctx.upload_bytes(bytes)?,
            shape: t.shape().to_vec(),
            format,
            scales,
        })
    }

    fn download(&self, t: &GpuTensor) -> Result<HostTensor> {
        host_tensor(t, self.ctx.read(&parts(t))?)
    }

    async fn download_async(&self, t: &GpuTensor) -> Result<HostTensor> {
        host_tensor(t, self.ctx.read_async(&parts(t)).await?)
    }

    fn download_with_ids(&self, t: &GpuTensor, ids: &GpuIds) -> Result<(HostTensor, Vec<u32>)> {
        let t = t.f32("download_with_ids")?;
        let raw = self.ctx.read(&[tensor_part(t), ids_part(ids)])?;
        tensor_and_ids(t, raw)
    }

    async fn download_with_ids_async(
        &self,
        t: &GpuTensor,
        ids: &GpuIds,
    ) -> Result<(HostTensor, Vec<u32>)> {
        let t = t.f32("download_with_ids")?;
        let raw = self
            .ctx
            .read_async(&[tensor_part(t), ids_part(ids)])
            .await?;
        tensor_and_ids(t, raw)
    }

    fn upload_ids(&self, shape: &[usize], ids: &[u32]) -> Result<GpuIds> {
        if numel(shape) != ids.len() {
            return Err(ops::shape_error(
                "upload_ids",
                std::format!("{} ids for shape {shape:?}", ids.len()),
            ));
        }
        Ok(GpuIds {
            buf: self.upload_words(ids)?,
            shape: shape.to_vec(),
        })
    }

    fn download_ids(&self, ids: &GpuIds) -> Result<Vec<u32>> {
        Ok(words(self.ctx.read(&[ids_part(ids)])?.remove(0)))
    }

    async fn download_ids_async(&self, ids: &GpuIds) -> Result<Vec<u32>> {
        Ok(words(
            self.ctx.read_async(&[ids_part(ids)]).await?.remove(0),
        ))
    }

    fn reshape(&self, t: &GpuTensor, shape: &[usize]) -> Result<GpuTensor> {
        if numel(shape) != t.numel() {
            return Err(ops::shape_error(
                "reshape",
                std::format!("cannot reshape {:?} to {shape:?}", t.shape),
            ));
        }
        Ok(GpuTensor {
            shape: shape.to_vec(),
            ..t.clone()
        })
    }

    fn zeros(&self, shape: &[usize]) -> Result<GpuTensor> {
        let t = self.alloc(shape)?;
        self.ctx.clear(&t.buf);
        Ok(t)
    }

    fn matmul_kernel(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        act: Activation,
        d: &Checked<ops::matmul::Dims>,
    ) -> Result<GpuTensor> {
        kernels::matmul::matmul(self, a, b, bias, act, d)
    }

    fn layer_norm_kernel(
        &self,
        x: &GpuTensor,
        scale: &GpuTensor,
        bias: Option<&GpuTensor>,
        eps: f32,
        d: &Checked<ops::layer_norm::Dims>,
    ) -> Result<GpuTensor> {
        kernels::layer_norm::layer_norm(self, x, scale, bias, eps, d)
    }

    fn attention_kernel(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention::Dims>,
    ) -> Result<GpuTensor> {
        kernels::attention::attention(self, q, k, v, mask, d)
    }

    fn add_kernel(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        d: &Checked<ops::add::Dims>,
    ) -> Result<GpuTensor> {
        kernels::elementwise::add(self, a, b, d)
    }

    fn gather_kernel(
        &self,
        x: &GpuTensor,
        ids: &GpuIds,
        d: &Checked<ops::gather::Dims>,
    ) -> Result<GpuTensor> {
        kernels::gather::gather(self, x, ids, d)
    }

    fn patchify_kernel(
        &self,
        images: &GpuTensor,
        d: &Checked<ops::patchify::Dims>,
    ) -> Result<GpuTensor> {
        kernels::patchify::patchify(self, images, d)
    }

    fn mean_rows_kernel(&self, x: &GpuTensor, d: &Checked<ops::rows::Mean>) -> Result<GpuTensor> {
        kernels::rows::mean(self, x, d)
    }

    fn slice_rows_kernel(&self, x: &GpuTensor, d: &Checked<ops::rows::Slice>) -> Result<GpuTensor> {
        let mut out = self.alloc(&d.out_shape())?;
        kernels::rows::copy(self, x, d.start, &mut out, 0, d.len)?;
        Ok(out)
    }

    fn write_rows_kernel(
        &self,
        dst: &mut GpuTensor,
        src: &GpuTensor,
        d: &Checked<ops::rows::Write>,
    ) -> Result<()> {
        dst.f32("write_rows")?;
        // Another tensor may share this buffer (a reshape); write to a copy, as the CPU does.
        self.make_unique(dst)?;
        kernels::rows::copy(self, src, 0, dst, d.start, d.src.l)
    }

    fn argmax_kernel(&self, x: &GpuTensor, d: &Checked<ops::softmax::Argmax>) -> Result<GpuIds> {
        kernels::softmax::argmax(self, x, d)
    }

    fn sample_kernel(
        &self,
        logits: &GpuTensor,
        seed: u64,
        step: u32,
        d: &Checked<ops::sample::Dims>,
    ) -> Result<GpuIds> {
        kernels::sample::sample(self, logits, seed, step, d)
    }

    fn beam_candidates_kernel(
        &self,
        logits: &GpuTensor,
        beam_scores: &GpuTensor,
        d: &Checked<ops::beam::Dims>,
    ) -> Result<(GpuTensor, GpuIds)> {
        kernels::beam::beam_candidates(self, logits, beam_scores, d)
    }

    fn cross_entropy_kernel(
        &self,
        logits: &GpuTensor,
        targets: &GpuIds,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy::Dims>,
    ) -> Result<GpuTensor> {
        kernels::softmax::cross_entropy(self, logits, targets, label_smoothing, d)
    }
}

#[cfg(feature = "train")]
impl TrainBackend for GpuBackend {
    fn gelu_kernel(&self, x: &GpuTensor, d: &Checked<ops::gelu::Dims>) -> Result<GpuTensor> {
        kernels::elementwise::gelu(self, x, d)
    }

    fn layer_norm_backward_kernel(
        &self,
        x: &GpuTensor,
        scale: &GpuTensor,
        dy: &GpuTensor,
        eps: f32,
        d: &Checked<ops::layer_norm_backward::Dims>,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        kernels::layer_norm_backward::layer_norm_backward(self, x, scale, dy, eps, d)
    }

    fn attention_backward_kernel(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        o: &GpuTensor,
        d_o: &GpuTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention_backward::Dims>,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        kernels::attention_backward::attention_backward(self, [q, k, v, o, d_o], mask, d)
    }

    fn gelu_backward_kernel(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        d: &Checked<ops::gelu_backward::Dims>,
    ) -> Result<GpuTensor> {
        kernels::gelu_backward::gelu_backward(self, x, dy, d)
    }

    fn gather_backward_kernel(
        &self,
        dy: &GpuTensor,
        ids: &GpuIds,
        d: &Checked<ops::gather_backward::Dims>,
    ) -> Result<GpuTensor> {
        kernels::gather_backward::gather_backward(self, dy, ids, d)
    }

    fn sum_axis0_kernel(&self, x: &GpuTensor, d: &Checked<ops::sums::Axis0>) -> Result<GpuTensor> {
        kernels::sums::axis0(self, x, d)
    }

    fn sum_squares_kernel(
        &self,
        xs: &[&GpuTensor],
        d: &Checked<ops::sums::Squares>,
    ) -> Result<GpuTensor> {
        kernels::sums::squares(self, xs, d)
    }

    fn cross_entropy_backward_kernel(
        &self,
        logits: &GpuTensor,
        targets: &GpuIds,
        pad_id: u32,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy_backward::Dims>,
    ) -> Result<GpuTensor> {
        kernels::cross_entropy_backward::cross_entropy_backward(
            self,
            logits,
            targets,
            pad_id,
            label_smoothing,
            d,
        )
    }

    fn adamw_update_kernel(
        &self,
        param: &mut GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        grad: &GpuTensor,
        op: &ops::adamw::AdamW,
        d: &Checked<ops::adamw::Dims>,
    ) -> Result<()> {
        kernels::adamw::adamw_update(self, [param, m, v], grad, op, d)
    }
}
