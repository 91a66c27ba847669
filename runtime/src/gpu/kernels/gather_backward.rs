//! `wgsl/gather_backward.wgsl`: [`crate::ops::gather_backward`]. Ids past the rows (which the
//! host never sends) are skipped.

use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::gather_backward::Dims;

uniform! {
    /// `Params` of `wgsl/gather_backward.wgsl`.
    Params {
        n: u32,
        row_len: u32,
        rows: u32,
        _pad: u32,
    }
}

/// `wgsl/gather_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gather_backward",
    parts: &[
        COMMON,
        include_str!("../../../../wgsl/gather_backward.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// The gradient of the forward's `x`.
pub(crate) fn gather_backward(
    be: &GpuBackend,
    dy: &GpuTensor,
    ids: &GpuIds,
    dims: &Dims,
) -> Result<GpuTensor> {
    let out = be.zeros(&dims.out_shape)?;
    let (rows, d, n) = (dims.rows, dims.row_len, dims.ids);
    let args = [ids.arg(), dy.f32("gather_backward")?.arg(), out.arg()];
    let params = Params {
        n: n as u32,
        row_len: d as u32,
        rows: rows as u32,
        _pad: 0,
    };
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main"),
        &params,
        &args,
        grid_1d(n * d, 64),
    )?;
    Ok(out)
}
