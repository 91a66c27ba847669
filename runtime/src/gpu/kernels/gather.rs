//! `wgsl/gather.wgsl`: [`crate::ops::gather`]. Indices live on the device, so they are not
//! checked here; the kernel clamps them so nothing is read out of bounds.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::tensor::numel;

uniform! {
    /// `Params` of `wgsl/gather.wgsl`.
    Params {
        m: u32,
        n: u32,
        row_len: u32,
        _pad: u32,
    }
}

/// `wgsl/gather.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gather",
    parts: &[COMMON, include_str!("../../../../wgsl/gather.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// Rows of axis 0 of `x` picked by `index`, a tensor of the checked shape `shape`.
pub(crate) fn gather_batch(
    be: &GpuBackend,
    x: &GpuTensor,
    index: &GpuIds,
    shape: &[usize],
) -> Result<GpuTensor> {
    let out = be.alloc(shape)?;
    let (m, n, row_len) = (shape[0], x.shape[0], numel(&x.shape[1..]));
    let params = Params {
        m: m as u32,
        n: n as u32,
        row_len: row_len as u32,
        _pad: 0,
    };
    let args = [x.f32("gather_batch")?.arg(), index.arg(), out.arg()];
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main"),
        &params,
        &args,
        grid_1d(m * row_len, 64),
    )?;
    Ok(out)
}
