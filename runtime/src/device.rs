//! A backend chosen at run time: [`Device`] is the CPU backend or (feature `gpu`) the wgpu
//! backend, behind one type, so that programs can pick with a flag or `CAPPA_DEVICE` and still
//! use one `Model<Device>` type.

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "train")]
use crate::backend::TrainBackend;
use crate::backend::{Activation, Backend, Mask, Shaped};
use crate::cpu::{CpuBackend, CpuIds, CpuTensor};
use crate::error::{Error, Result};
use crate::formats::StoredTensor;
#[cfg(feature = "gpu")]
use crate::gpu::{GpuBackend, GpuIds, GpuTensor};
use crate::ops::{self, Checked};
use crate::tensor::HostTensor;

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

impl Device {
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

    /// `cpu`, `gpu` or `auto` (see [`Device::best`]).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(Self::cpu()),
            #[cfg(feature = "gpu")]
            "gpu" => Self::gpu(),
            #[cfg(not(feature = "gpu"))]
            "gpu" => Err(Error::Backend(
                "this build of cappa has no GPU backend (feature `gpu`)".into(),
            )),
            "auto" => Self::auto(),
            other => Err(Error::InvalidInput(alloc::format!(
                "unknown device `{other}` (cpu, gpu or auto)"
            ))),
        }
    }

    /// The device `CAPPA_DEVICE` names (`cpu`, `gpu`, `auto`), else `auto`: a hardware GPU
    /// adapter of any wgpu backend (Vulkan, Metal, DX12, GL) if there is one, else the CPU
    /// backend. Software adapters (lavapipe, SwiftShader, WARP) are slower than the CPU backend,
    /// so `auto` passes them over; `gpu` takes them.
    #[cfg(feature = "std")]
    pub fn best() -> Result<Self> {
        match std::env::var("CAPPA_DEVICE") {
            Ok(name) if !name.is_empty() => Self::from_name(&name),
            _ => Self::auto(),
        }
    }

    fn auto() -> Result<Self> {
        #[cfg(feature = "gpu")]
        if let Ok(g) = GpuBackend::new() {
            if !g.is_cpu_adapter() {
                return Ok(Device::Gpu(g));
            }
        }
        Ok(Self::cpu())
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
