//! A backend chosen at run time: [`Device`] is the CPU backend or (feature `gpu`) the wgpu
//! backend, behind one type, so that programs can pick with a flag or `CAPPA_DEVICE` and still
//! use one `Model<Device>` type.
//!
//! **The one device policy.** [`Device::open`] (and [`Device::open_async`] in web pages) is
//! how the CLI, the trainer, the C API and the web demo choose, with a [`DeviceKind`]:
//!
//! * `Cpu`: the CPU backend.
//! * `Gpu`: the wgpu backend on the best adapter — hardware first, software adapters (lavapipe,
//!   SwiftShader, WARP, a browser's fallback adapter) included — or an error.
//! * `Auto`: what `CAPPA_DEVICE` names (`cpu`, `gpu`, `auto`) when it is set; otherwise a
//!   *hardware* GPU adapter if there is one, else the CPU backend. Software adapters are passed
//!   over: they are slower than the CPU backend (see `docs/benchmarks.md`).
//!
//! The adapters are looked for on Vulkan, Metal, DX12 and WebGPU, OpenGL only when asked for
//! (see [`crate::gpu::adapter`]); the look happens once per process, when a GPU is first asked
//! for. `CAPPA_NUM_THREADS` is checked here too: a value that is not a number is an error.

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "train")]
use crate::backend::TrainBackend;
use crate::backend::{Activation, Backend, Mask, Shaped};
use crate::cpu::{CpuBackend, CpuIds, CpuTensor};
use crate::error::{Error, Result};
use crate::formats::StoredTensor;
#[cfg(feature = "gpu")]
use crate::gpu::{GpuBackend, GpuIds, GpuOptions, GpuTensor};
use crate::ops::{self, Checked};
use crate::tensor::HostTensor;

/// Which device to open (see the [module docs](self) for the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// `CAPPA_DEVICE` if set, else a hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// The GPU backend on the best adapter, software adapters included.
    Gpu,
}

impl core::str::FromStr for DeviceKind {
    type Err = Error;

    /// `auto`, `cpu` or `gpu` (any case; surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceKind::Auto),
            "cpu" => Ok(DeviceKind::Cpu),
            "gpu" => Ok(DeviceKind::Gpu),
            other => Err(Error::InvalidInput(alloc::format!(
                "unknown device `{other}` (cpu, gpu or auto)"
            ))),
        }
    }
}

impl core::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DeviceKind::Auto => "auto",
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        })
    }
}

impl DeviceKind {
    /// The kind `CAPPA_DEVICE` names, `None` when it is unset or empty (an unknown name is an
    /// error naming the variable).
    #[cfg(feature = "std")]
    pub fn from_env() -> Result<Option<DeviceKind>> {
        match std::env::var("CAPPA_DEVICE") {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some).map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(alloc::format!(
                    "the environment variable CAPPA_DEVICE: {m}"
                )),
                other => other,
            }),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidInput(
                "the environment variable CAPPA_DEVICE is not UTF-8 (cpu, gpu or auto)".into(),
            )),
        }
    }

    /// `Auto` replaced by what `CAPPA_DEVICE` names (it may name `auto` itself); other kinds
    /// as they are.
    pub fn resolve(self) -> Result<DeviceKind> {
        #[cfg(feature = "std")]
        if self == DeviceKind::Auto {
            return Ok(Self::from_env()?.unwrap_or(DeviceKind::Auto));
        }
        Ok(self)
    }
}

/// Options of [`Device::open`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DeviceOptions {
    /// Options of the GPU backend (which backends, 16-bit weights, ...).
    #[cfg(feature = "gpu")]
    pub gpu: GpuOptions,
}

/// The CPU backend or the GPU backend.
#[derive(Debug, Clone)]
pub enum Device {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// The wgpu backend.
    #[cfg(feature = "gpu")]
    Gpu(GpuBackend),
}

/// A tensor of a [`Device`].
#[derive(Debug, Clone)]
pub enum DeviceTensor {
    /// On the CPU.
    Cpu(CpuTensor),
    /// On the GPU.
    #[cfg(feature = "gpu")]
    Gpu(GpuTensor),
}

/// Token ids of a [`Device`].
#[derive(Debug, Clone)]
pub enum DeviceIds {
    /// On the CPU.
    Cpu(CpuIds),
    /// On the GPU.
    #[cfg(feature = "gpu")]
    Gpu(GpuIds),
}

/// Fails when `CAPPA_NUM_THREADS` is set to something that is not a number of threads.
fn check_threads() -> Result<()> {
    #[cfg(feature = "std")]
    crate::threads::num_threads_setting()?;
    Ok(())
}

#[cfg(not(feature = "gpu"))]
fn no_gpu() -> Error {
    Error::Backend("this build of cappa has no GPU backend (feature `gpu`)".into())
}

impl Device {
    /// Opens the device `kind` names, by the [one policy](self): `Auto` follows
    /// `CAPPA_DEVICE`, else takes a hardware GPU if there is one, else the CPU. Blocking; in a
    /// web page use [`Device::open_async`].
    pub fn open(kind: DeviceKind, options: &DeviceOptions) -> Result<Self> {
        check_threads()?;
        #[cfg(not(feature = "gpu"))]
        let _ = options;
        match kind.resolve()? {
            DeviceKind::Cpu => Ok(Self::cpu()),
            #[cfg(feature = "gpu")]
            DeviceKind::Gpu => Ok(Device::Gpu(GpuBackend::with_options(options.gpu.clone())?)),
            #[cfg(feature = "gpu")]
            DeviceKind::Auto => Ok(match GpuBackend::hardware(options.gpu.clone())? {
                Some(g) => Device::Gpu(g),
                None => Self::cpu(),
            }),
            #[cfg(not(feature = "gpu"))]
            DeviceKind::Gpu => Err(no_gpu()),
            #[cfg(not(feature = "gpu"))]
            DeviceKind::Auto => Ok(Self::cpu()),
        }
    }

    /// [`Device::open`] without blocking (in a web page: the browser's WebGPU adapter, if it
    /// offers a hardware one for `Auto`).
    pub async fn open_async(kind: DeviceKind, options: &DeviceOptions) -> Result<Self> {
        check_threads()?;
        #[cfg(not(feature = "gpu"))]
        let _ = options;
        match kind.resolve()? {
            DeviceKind::Cpu => Ok(Self::cpu()),
            #[cfg(feature = "gpu")]
            DeviceKind::Gpu => Ok(Device::Gpu(
                GpuBackend::with_options_async(options.gpu.clone()).await?,
            )),
            #[cfg(feature = "gpu")]
            DeviceKind::Auto => Ok(
                match GpuBackend::hardware_async(options.gpu.clone()).await? {
                    Some(g) => Device::Gpu(g),
                    None => Self::cpu(),
                },
            ),
            #[cfg(not(feature = "gpu"))]
            DeviceKind::Gpu => Err(no_gpu()),
            #[cfg(not(feature = "gpu"))]
            DeviceKind::Auto => Ok(Self::cpu()),
        }
    }

    /// The CPU backend.
    pub fn cpu() -> Self {
        Device::Cpu(CpuBackend::new())
    }

    /// The GPU backend on the best adapter (any adapter, CPU implementations included).
    #[cfg(feature = "gpu")]
    pub fn gpu() -> Result<Self> {
        Ok(Device::Gpu(GpuBackend::new()?))
    }

    /// The GPU backend on the best adapter, opened without blocking (in a web page: the
    /// browser's WebGPU adapter, if it offers one).
    #[cfg(feature = "gpu")]
    pub async fn gpu_async() -> Result<Self> {
        Ok(Device::Gpu(GpuBackend::new_async().await?))
    }

    /// `cpu`, `gpu` or `auto`, opened with [`Device::open`] and default options.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::open(name.parse()?, &DeviceOptions::default())
    }

    /// [`Device::open`] of [`DeviceKind::Auto`] with default options: what `CAPPA_DEVICE`
    /// names, else a hardware GPU if there is one, else the CPU.
    #[cfg(feature = "std")]
    pub fn best() -> Result<Self> {
        Self::open(DeviceKind::Auto, &DeviceOptions::default())
    }

    /// Whether this is the GPU backend.
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Device::Cpu(_))
    }
}

fn mixed() -> Error {
    Error::Backend("a tensor of one device was given to another".into())
}

impl DeviceTensor {
    /// Bytes its elements take on the device (16-bit and q8 weights take fewer).
    pub fn byte_len(&self) -> usize {
        match self {
            DeviceTensor::Cpu(t) => t.byte_len(),
            #[cfg(feature = "gpu")]
            DeviceTensor::Gpu(t) => t.byte_len(),
        }
    }

    fn cpu(&self) -> Result<&CpuTensor> {
        match self {
            DeviceTensor::Cpu(t) => Ok(t),
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    #[cfg(feature = "gpu")]
    fn gpu(&self) -> Result<&GpuTensor> {
        match self {
            DeviceTensor::Gpu(t) => Ok(t),
            _ => Err(mixed()),
        }
    }
}

impl DeviceIds {
    fn cpu(&self) -> Result<&CpuIds> {
        match self {
            DeviceIds::Cpu(t) => Ok(t),
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    #[cfg(feature = "gpu")]
    fn gpu(&self) -> Result<&GpuIds> {
        match self {
            DeviceIds::Gpu(t) => Ok(t),
            _ => Err(mixed()),
        }
    }
}

/// Runs `$body` with `$be` bound to the active backend and `$t` converting a tensor argument
/// to that backend's type, wrapping a tensor result back.
macro_rules! on_device {
    ($self:expr, |$be:ident, $t:ident, $ids:ident, $wrap:ident, $wrap_ids:ident| $body:expr) => {
        match $self {
            Device::Cpu($be) => {
                let $t = DeviceTensor::cpu;
                let $ids = DeviceIds::cpu;
                let $wrap = DeviceTensor::Cpu;
                let $wrap_ids = DeviceIds::Cpu;
                $body
            }
            #[cfg(feature = "gpu")]
            Device::Gpu($be) => {
                let $t = DeviceTensor::gpu;
                let $ids = DeviceIds::gpu;
                let $wrap = DeviceTensor::Gpu;
                let $wrap_ids = DeviceIds::Gpu;
                $body
            }
        }
    };
}

impl Shaped for DeviceTensor {
    fn shape(&self) -> &[usize] {
        match self {
            DeviceTensor::Cpu(t) => t.shape(),
            #[cfg(feature = "gpu")]
            DeviceTensor::Gpu(t) => t.shape(),
        }
    }
}

impl Shaped for DeviceIds {
    fn shape(&self) -> &[usize] {
        match self {
            DeviceIds::Cpu(t) => t.shape(),
            #[cfg(feature = "gpu")]
            DeviceIds::Gpu(t) => t.shape(),
        }
    }
}

impl Backend for Device {
    type Tensor = DeviceTensor;
    type Ids = DeviceIds;

    fn name(&self) -> String {
        on_device!(self, |be, _t, _i, _w, _wi| be.name())
    }

    fn upload(&self, x: &HostTensor) -> Result<DeviceTensor> {
        on_device!(self, |be, _t, _i, w, _wi| Ok(w(be.upload(x)?)))
    }

    fn upload_weight(&self, x: &StoredTensor<'_>) -> Result<DeviceTensor> {
        on_device!(self, |be, _t, _i, w, _wi| Ok(w(be.upload_weight(x)?)))
    }

    fn download(&self, x: &DeviceTensor) -> Result<HostTensor> {
        on_device!(self, |be, t, _i, _w, _wi| be.download(t(x)?))
    }

    fn download_with_ids(
        &self,
        x: &DeviceTensor,
        ids: &DeviceIds,
    ) -> Result<(HostTensor, Vec<u32>)> {
        on_device!(self, |be, t, i, _w, _wi| be
            .download_with_ids(t(x)?, i(ids)?))
    }

    fn upload_ids(&self, shape: &[usize], ids: &[u32]) -> Result<DeviceIds> {
        on_device!(self, |be, _t, _i, _w, wi| Ok(
            wi(be.upload_ids(shape, ids)?)
        ))
    }

    fn download_ids(&self, ids: &DeviceIds) -> Result<Vec<u32>> {
        on_device!(self, |be, _t, i, _w, _wi| be.download_ids(i(ids)?))
    }

    async fn download_async(&self, x: &DeviceTensor) -> Result<HostTensor> {
        on_device!(self, |be, t, _i, _w, _wi| be.download_async(t(x)?).await)
    }

    async fn download_ids_async(&self, ids: &DeviceIds) -> Result<Vec<u32>> {
        on_device!(self, |be, _t, i, _w, _wi| be
            .download_ids_async(i(ids)?)
            .await)
    }

    async fn download_with_ids_async(
        &self,
        x: &DeviceTensor,
        ids: &DeviceIds,
    ) -> Result<(HostTensor, Vec<u32>)> {
        on_device!(self, |be, t, i, _w, _wi| be
            .download_with_ids_async(t(x)?, i(ids)?)
            .await)
    }

    fn reshape(&self, x: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(be.reshape(t(x)?, shape)?)))
    }

    fn zeros(&self, shape: &[usize]) -> Result<DeviceTensor> {
        on_device!(self, |be, _t, _i, w, _wi| Ok(w(be.zeros(shape)?)))
    }

    fn matmul_kernel(
        &self,
        a: &DeviceTensor,
        b: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        act: Activation,
        d: &Checked<ops::matmul::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| {
            let bias = bias.map(t).transpose()?;
            Ok(w(be.matmul_kernel(t(a)?, t(b)?, bias, act, d)?))
        })
    }

    fn layer_norm_kernel(
        &self,
        x: &DeviceTensor,
        scale: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        eps: f32,
        d: &Checked<ops::layer_norm::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| {
            let bias = bias.map(t).transpose()?;
            Ok(w(be.layer_norm_kernel(t(x)?, t(scale)?, bias, eps, d)?))
        })
    }

    fn attention_kernel(
        &self,
        q: &DeviceTensor,
        k: &DeviceTensor,
        v: &DeviceTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(be.attention_kernel(
            t(q)?,
            t(k)?,
            t(v)?,
            mask,
            d
        )?)))
    }

    fn add_kernel(
        &self,
        a: &DeviceTensor,
        b: &DeviceTensor,
        d: &Checked<ops::add::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(be.add_kernel(
            t(a)?,
            t(b)?,
            d
        )?)))
    }

    fn gather_kernel(
        &self,
        x: &DeviceTensor,
        ids: &DeviceIds,
        d: &Checked<ops::gather::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, i, w, _wi| Ok(w(be.gather_kernel(
            t(x)?,
            i(ids)?,
            d
        )?)))
    }

    fn patchify_kernel(
        &self,
        images: &DeviceTensor,
        d: &Checked<ops::patchify::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(
            be.patchify_kernel(t(images)?, d)?
        )))
    }

    fn mean_rows_kernel(
        &self,
        x: &DeviceTensor,
        d: &Checked<ops::rows::Mean>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(
            be.mean_rows_kernel(t(x)?, d)?
        )))
    }

    fn slice_rows_kernel(
        &self,
        x: &DeviceTensor,
        d: &Checked<ops::rows::Slice>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(
            be.slice_rows_kernel(t(x)?, d)?
        )))
    }

    fn write_rows_kernel(
        &self,
        dst: &mut DeviceTensor,
        src: &DeviceTensor,
        d: &Checked<ops::rows::Write>,
    ) -> Result<()> {
        match (self, dst) {
            (Device::Cpu(be), DeviceTensor::Cpu(dst)) => be.write_rows_kernel(dst, src.cpu()?, d),
            #[cfg(feature = "gpu")]
            (Device::Gpu(be), DeviceTensor::Gpu(dst)) => be.write_rows_kernel(dst, src.gpu()?, d),
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    fn argmax_kernel(
        &self,
        x: &DeviceTensor,
        d: &Checked<ops::softmax::Argmax>,
    ) -> Result<DeviceIds> {
        on_device!(self, |be, t, _i, _w, wi| Ok(
            wi(be.argmax_kernel(t(x)?, d)?)
        ))
    }

    fn sample_kernel(
        &self,
        logits: &DeviceTensor,
        seed: u64,
        step: u32,
        d: &Checked<ops::sample::Dims>,
    ) -> Result<DeviceIds> {
        on_device!(self, |be, t, _i, _w, wi| Ok(wi(be.sample_kernel(
            t(logits)?,
            seed,
            step,
            d
        )?)))
    }

    fn beam_candidates_kernel(
        &self,
        logits: &DeviceTensor,
        beam_scores: &DeviceTensor,
        d: &Checked<ops::beam::Dims>,
    ) -> Result<(DeviceTensor, DeviceIds)> {
        on_device!(self, |be, t, _i, w, wi| {
            let (s, ids) = be.beam_candidates_kernel(t(logits)?, t(beam_scores)?, d)?;
            Ok((w(s), wi(ids)))
        })
    }

    fn cross_entropy_kernel(
        &self,
        logits: &DeviceTensor,
        targets: &DeviceIds,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, i, w, _wi| Ok(w(be.cross_entropy_kernel(
            t(logits)?,
            i(targets)?,
            label_smoothing,
            d
        )?)))
    }
}

#[cfg(feature = "train")]
impl TrainBackend for Device {
    fn gelu_kernel(&self, x: &DeviceTensor, d: &Checked<ops::gelu::Dims>) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(be.gelu_kernel(t(x)?, d)?)))
    }

    fn layer_norm_backward_kernel(
        &self,
        x: &DeviceTensor,
        scale: &DeviceTensor,
        dy: &DeviceTensor,
        eps: f32,
        d: &Checked<ops::layer_norm_backward::Dims>,
    ) -> Result<(DeviceTensor, DeviceTensor, DeviceTensor)> {
        on_device!(self, |be, t, _i, w, _wi| {
            let (dx, ds, db) = be.layer_norm_backward_kernel(t(x)?, t(scale)?, t(dy)?, eps, d)?;
            Ok((w(dx), w(ds), w(db)))
        })
    }

    fn attention_backward_kernel(
        &self,
        q: &DeviceTensor,
        k: &DeviceTensor,
        v: &DeviceTensor,
        o: &DeviceTensor,
        d_o: &DeviceTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention_backward::Dims>,
    ) -> Result<(DeviceTensor, DeviceTensor, DeviceTensor)> {
        on_device!(self, |be, t, _i, w, _wi| {
            let (dq, dk, dv) =
                be.attention_backward_kernel(t(q)?, t(k)?, t(v)?, t(o)?, t(d_o)?, mask, d)?;
            Ok((w(dq), w(dk), w(dv)))
        })
    }

    fn gelu_backward_kernel(
        &self,
        x: &DeviceTensor,
        dy: &DeviceTensor,
        d: &Checked<ops::gelu_backward::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(be.gelu_backward_kernel(
            t(x)?,
            t(dy)?,
            d
        )?)))
    }

    fn gather_backward_kernel(
        &self,
        dy: &DeviceTensor,
        ids: &DeviceIds,
        d: &Checked<ops::gather_backward::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, i, w, _wi| Ok(w(be.gather_backward_kernel(
            t(dy)?,
            i(ids)?,
            d
        )?)))
    }

    fn sum_axis0_kernel(
        &self,
        x: &DeviceTensor,
        d: &Checked<ops::sums::Axis0>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| Ok(w(
            be.sum_axis0_kernel(t(x)?, d)?
        )))
    }

    fn sum_squares_kernel(
        &self,
        xs: &[&DeviceTensor],
        d: &Checked<ops::sums::Squares>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, _i, w, _wi| {
            let xs = xs.iter().map(|x| t(x)).collect::<Result<Vec<_>>>()?;
            Ok(w(be.sum_squares_kernel(&xs, d)?))
        })
    }

    fn cross_entropy_backward_kernel(
        &self,
        logits: &DeviceTensor,
        targets: &DeviceIds,
        pad_id: u32,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy_backward::Dims>,
    ) -> Result<DeviceTensor> {
        on_device!(self, |be, t, i, w, _wi| Ok(w(be
            .cross_entropy_backward_kernel(
                t(logits)?,
                i(targets)?,
                pad_id,
                label_smoothing,
                d
            )?)))
    }

    fn adamw_update_kernel(
        &self,
        param: &mut DeviceTensor,
        m: &mut DeviceTensor,
        v: &mut DeviceTensor,
        grad: &DeviceTensor,
        op: &ops::adamw::AdamW,
        d: &Checked<ops::adamw::Dims>,
    ) -> Result<()> {
        match (self, param, m, v) {
            (Device::Cpu(be), DeviceTensor::Cpu(p), DeviceTensor::Cpu(m), DeviceTensor::Cpu(v)) => {
                be.adamw_update_kernel(p, m, v, grad.cpu()?, op, d)
            }
            #[cfg(feature = "gpu")]
            (Device::Gpu(be), DeviceTensor::Gpu(p), DeviceTensor::Gpu(m), DeviceTensor::Gpu(v)) => {
                be.adamw_update_kernel(p, m, v, grad.gpu()?, op, d)
            }
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }
}
