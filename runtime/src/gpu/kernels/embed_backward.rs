//! `wgsl/embed_backward.wgsl`: [`crate::ops::embed_backward`]. Ids past the table (which the
//! host never sends) are skipped.

use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::tensor::numel;

uniform! {
    /// `Params` of `wgsl/embed_backward.wgsl`.
    Params {
        n: u32,
        d: u32,
        rows: u32,
        _pad: u32,
    }
}

/// `wgsl/embed_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "embed_backward",
    parts: &[COMMON, include_str!("../../../../wgsl/embed_backward.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// The table gradient of the checked shape `shape` (`[rows, D]`).
pub(crate) fn embed_backward(
    be: &GpuBackend,
    dy: &GpuTensor,
    ids: &GpuIds,
    shape: &[usize],
) -> Result<GpuTensor> {
    let out = be.zeros(shape)?;
    let (rows, d) = (shape[0], shape[1]);
    let n = numel(&ids.shape);
    let args = [ids.arg(), dy.f32("embed_backward")?.arg(), out.arg()];
    let params = Params {
        n: n as u32,
        d: d as u32,
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
