//! `wgsl/layer_norm_backward.wgsl`: [`crate::ops::layer_norm_backward`] — `main_dx` (one
//! workgroup per row, also writing each row's statistics), then `main_dparams` (one invocation
//! per feature, summing the rows in order; no atomics).

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_1d, grid_rows, GpuBackend, GpuTensor, Kernel};
use crate::ops::layer_norm_backward::Dims;

// The uniform block is the forward's (`rows`, `d`, `eps`); tests/shaders.rs checks both WGSL files.
use super::layer_norm::Params;

/// `wgsl/layer_norm_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "layer_norm_backward",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../../wgsl/layer_norm_backward.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, true, false, false, false, false],
    entries: &["main_dx", "main_dparams"],
    overrides: &[("WG", &[64.0])],
};

/// `(dx, dscale, dbias)`.
pub(crate) fn layer_norm_backward(
    be: &GpuBackend,
    x: &GpuTensor,
    scale: &GpuTensor,
    dy: &GpuTensor,
    eps: f32,
    dims: &Dims,
) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
    let (rows, d) = (dims.forward.rows, dims.forward.d);
    let dx = be.alloc(&x.shape)?;
    let dscale = be.alloc(&[d])?;
    let dbias = be.alloc(&[d])?;
    let stats = be.alloc(&[rows.max(1), 2])?;
    let ctx = be.ctx();
    let params = Params {
        rows: rows as u32,
        d: d as u32,
        eps,
        _pad: 0,
    };
    let args = [
        x.f32("layer_norm_backward")?.arg(),
        scale.f32("layer_norm_backward")?.arg(),
        dy.f32("layer_norm_backward")?.arg(),
        dx.arg(),
        stats.arg(),
        dscale.arg(),
        dbias.arg(),
    ];
    let kernel = |entry| Kernel {
        shader: &SHADER,
        entry,
        constants: &[("WG", 64.0)],
    };
    ctx.dispatch(&kernel("main_dx"), &params, &args, grid_rows(rows))?;
    ctx.dispatch(&kernel("main_dparams"), &params, &args, grid_1d(d, 64))?;
    Ok((dx, dscale, dbias))
}
