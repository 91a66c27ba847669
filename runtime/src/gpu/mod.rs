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
//! * Weights stored as bf16 or f16 can stay 16-bit on the device; compute is f32.
//! * Tensors larger than one storage binding are bound as windows (matmul operands, embedding
//!   tables); anything else too large for the device is a clear error.
//!
//! Each op's dispatch lives beside its CPU reference in `crate::ops::<op>`.

pub mod adapter;
mod context;
pub mod shaders;

use std::string::String;
use std::sync::Arc;
use std::vec::Vec;

pub(crate) use context::{Arg, Buf, Ctx, Kernel};
pub use context::{GpuOptions, GpuStats, MatmulKernel};
/// The wgpu version this backend is built on (for [`GpuOptions::backends`] and adapter infos).
pub use wgpu;

use crate::backend::{AdamW, Attention, Backend, Matmul, Sampling};
use crate::error::{Error, Result};
use crate::ops;
use crate::safetensors_io::DType;
use crate::tensor::{numel, HostTensor};

/// How a tensor's elements are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    F32 = 0,
    Bf16 = 1,
    F16 = 2,
}

impl Format {
    pub fn size(self) -> u64 {
        match self {
            Format::F32 => 4,
            Format::Bf16 | Format::F16 => 2,
        }
    }

    /// The value of the shaders' `*_FORMAT` override.
    pub fn code(self) -> f64 {
        self as u32 as f64
    }
}

/// An `f32` tensor on the GPU (weights may be stored 16-bit).
#[derive(Debug, Clone)]
pub struct GpuTensor {
    pub(crate) buf: Arc<Buf>,
    pub(crate) shape: Vec<usize>,
    pub(crate) format: Format,
}

impl GpuTensor {
    /// The shape.
    pub fn shape_vec(&self) -> Vec<usize> {
        self.shape.clone()
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

    /// Fails unless the tensor is stored as f32 (only matmul weights and embedding tables may
    /// be 16-bit).
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
    pub fn matmul_kernel(&self) -> MatmulKernel {
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

/// A tensor's values from its bytes as stored on the device.
fn host_tensor(t: &GpuTensor, raw: Vec<u8>) -> Result<HostTensor> {
    let data = match t.format {
        Format::F32 => words(raw).into_iter().map(f32::from_bits).collect(),
        Format::Bf16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Format::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    };
    HostTensor::new(&t.shape, data)
}

/// An f32 tensor and token ids from one readback of both.
fn tensor_and_ids(t: &GpuTensor, mut raw: Vec<Vec<u8>>) -> Result<(HostTensor, Vec<u32>)> {
    let ids = words(raw.pop().expect("two parts"));
    let values = host_tensor(t, raw.pop().expect("two parts"))?;
    Ok((values, ids))
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
        })
    }

    fn upload_weight(&self, t: &HostTensor, stored: DType) -> Result<GpuTensor> {
        let format = match stored {
            _ if !self.ctx.options.keep_16bit_weights => Format::F32,
            DType::F32 => Format::F32,
            DType::BF16 => Format::Bf16,
            DType::F16 => Format::F16,
        };
        let bytes: Vec<u8> = match format {
            Format::F32 => return self.upload(t),
            // The values came from 16-bit storage, so converting back is exact.
            Format::Bf16 => t
                .data()
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            Format::F16 => t
                .data()
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        Ok(GpuTensor {
            buf: self.ctx.upload_bytes(&bytes)?,
            shape: t.shape().to_vec(),
            format,
        })
    }

    fn download(&self, t: &GpuTensor) -> Result<HostTensor> {
        let raw = self.ctx.read(&[tensor_part(t)])?.remove(0);
        host_tensor(t, raw)
    }

    async fn download_async(&self, t: &GpuTensor) -> Result<HostTensor> {
        let raw = self.ctx.read_async(&[tensor_part(t)]).await?.remove(0);
        host_tensor(t, raw)
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

    fn shape(&self, t: &GpuTensor) -> Vec<usize> {
        t.shape.clone()
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

    fn matmul(&self, a: &GpuTensor, b: &GpuTensor, op: Matmul<'_, GpuTensor>) -> Result<GpuTensor> {
        let bias_shape = op.bias.map(|t| t.shape.as_slice());
        let d = ops::matmul::dims(
            &a.shape, &b.shape, op.trans_a, op.trans_b, op.batched, bias_shape,
        )?;
        ops::matmul::gpu(self, a, b, op.bias, op.activation, &d)
    }

    fn layer_norm(
        &self,
        x: &GpuTensor,
        scale: &GpuTensor,
        bias: Option<&GpuTensor>,
        eps: f32,
    ) -> Result<GpuTensor> {
        ops::layer_norm::check(&x.shape, &scale.shape, bias.map(|b| b.shape.as_slice()))?;
        ops::layer_norm::gpu(self, x, scale, bias, eps)
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        op: Attention<'_>,
    ) -> Result<GpuTensor> {
        let d = ops::attention::dims(&q.shape, &k.shape, &v.shape, &op)?;
        ops::attention::gpu(self, q, k, v, d, &op.mask)
    }

    fn gelu(&self, x: &GpuTensor) -> Result<GpuTensor> {
        ops::gelu::gpu(self, x)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        ops::add::check(&a.shape, &b.shape)?;
        ops::add::gpu(self, a, b)
    }

    fn embed(&self, table: &GpuTensor, ids: &GpuIds) -> Result<GpuTensor> {
        let shape = ops::embed::check(&table.shape, &ids.shape)?;
        ops::embed::gpu(self, table, ids, &shape)
    }

    fn patchify(&self, images: &GpuTensor, patch: usize) -> Result<GpuTensor> {
        let shape = ops::patchify::check(&images.shape, patch)?;
        ops::patchify::gpu(self, images, patch, &shape)
    }

    fn mean_rows(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let shape = ops::rows::check_mean(&x.shape)?;
        ops::rows::gpu_mean(self, x, &shape)
    }

    fn slice_rows(&self, x: &GpuTensor, start: usize, len: usize) -> Result<GpuTensor> {
        let shape = ops::rows::check_slice(&x.shape, start, len)?;
        let mut out = self.alloc(&shape)?;
        ops::rows::gpu_copy(self, x, start, &mut out, 0)?;
        Ok(out)
    }

    fn write_rows(&self, dst: &mut GpuTensor, src: &GpuTensor, start: usize) -> Result<()> {
        ops::rows::check_write(&dst.shape, &src.shape, start)?;
        if Arc::strong_count(&dst.buf) > 1 {
            // Another tensor shares this buffer (a reshape); write to a copy, as the CPU does.
            let copy = self.alloc(&dst.shape)?;
            self.ctx
                .copy(&dst.buf, 0, &copy.buf, 0, dst.numel() as u64 * 4);
            *dst = copy;
        }
        ops::rows::gpu_copy(self, src, 0, dst, start)
    }

    fn log_softmax(&self, x: &GpuTensor) -> Result<GpuTensor> {
        ops::softmax::gpu_log_softmax(self, x)
    }

    fn argmax(&self, x: &GpuTensor) -> Result<GpuIds> {
        if x.shape.is_empty() || x.shape.last() == Some(&0) {
            return Err(ops::shape_error(
                "argmax",
                std::format!("no classes in {:?}", x.shape),
            ));
        }
        ops::softmax::gpu_argmax(self, x)
    }

    fn sample(&self, logits: &GpuTensor, op: Sampling, seed: u64, step: u32) -> Result<GpuIds> {
        ops::sample::gpu(self, logits, &op, seed, step)
    }

    fn beam_candidates(
        &self,
        logits: &GpuTensor,
        beam_scores: &GpuTensor,
        groups: usize,
        k: usize,
    ) -> Result<(GpuTensor, GpuIds)> {
        let d = ops::beam::dims(&logits.shape, &beam_scores.shape, groups, k)?;
        ops::beam::gpu(self, logits, beam_scores, d)
    }

    fn gather_batch(&self, x: &GpuTensor, index: &GpuIds) -> Result<GpuTensor> {
        let shape = ops::gather::check(&x.shape, &index.shape)?;
        ops::gather::gpu(self, x, index, &shape)
    }

    fn cross_entropy(
        &self,
        logits: &GpuTensor,
        targets: &GpuIds,
        label_smoothing: f32,
    ) -> Result<GpuTensor> {
        let shape = ops::cross_entropy::check(&logits.shape, &targets.shape)?;
        ops::cross_entropy::gpu(self, logits, targets, label_smoothing, &shape)
    }

    fn layer_norm_backward(
        &self,
        x: &GpuTensor,
        scale: &GpuTensor,
        dy: &GpuTensor,
        eps: f32,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        ops::layer_norm_backward::check(&x.shape, &scale.shape, &dy.shape)?;
        ops::layer_norm_backward::gpu(self, x, scale, dy, eps)
    }

    fn attention_backward(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        o: &GpuTensor,
        d_o: &GpuTensor,
        op: Attention<'_>,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        let d =
            ops::attention_backward::dims(&q.shape, &k.shape, &v.shape, &o.shape, &d_o.shape, &op)?;
        ops::attention_backward::gpu(self, q, k, v, o, d_o, d, &op.mask)
    }

    fn gelu_backward(&self, x: &GpuTensor, dy: &GpuTensor) -> Result<GpuTensor> {
        ops::gelu_backward::check(&x.shape, &dy.shape)?;
        ops::gelu_backward::gpu(self, x, dy)
    }

    fn embed_backward(&self, dy: &GpuTensor, ids: &GpuIds, rows: usize) -> Result<GpuTensor> {
        let shape = ops::embed_backward::check(&dy.shape, &ids.shape, rows)?;
        ops::embed_backward::gpu(self, dy, ids, &shape)
    }

    fn sum_axis0(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let shape = ops::sums::check_axis0(&x.shape)?;
        ops::sums::gpu_axis0(self, x, &shape)
    }

    fn sum_squares(&self, xs: &[&GpuTensor]) -> Result<GpuTensor> {
        ops::sums::gpu_squares(self, xs)
    }

    fn cross_entropy_backward(
        &self,
        logits: &GpuTensor,
        targets: &GpuIds,
        pad_id: u32,
        label_smoothing: f32,
    ) -> Result<GpuTensor> {
        ops::cross_entropy_backward::check(&logits.shape, &targets.shape)?;
        ops::cross_entropy_backward::gpu(self, logits, targets, pad_id, label_smoothing)
    }

    fn adamw_update(
        &self,
        param: &mut GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        grad: &GpuTensor,
        op: &AdamW,
    ) -> Result<()> {
        ops::adamw::check(&param.shape, &m.shape, &v.shape, &grad.shape)?;
        ops::adamw::gpu(self, param, m, v, grad, op)
    }
}
