//! `wgsl/layer_norm.wgsl`: [`crate::ops::layer_norm`], one workgroup per row.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, BOOL, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuTensor, Kernel};
use crate::ops::layer_norm::Dims;

uniform! {
    /// `Params` of `wgsl/layer_norm.wgsl`.
    Params {
        rows: u32,
        d: u32,
        eps: f32,
        _pad: u32,
    }
}

/// `wgsl/layer_norm.wgsl`.
pub static SHADER: Shader = Shader {
    name: "layer_norm",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../../wgsl/layer_norm.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, true, false],
    entries: &["main"],
    overrides: &[("WG", &[64.0]), ("HAS_BIAS", BOOL)],
};

/// LayerNorm of every row of `x`.
pub(crate) fn layer_norm(
    be: &GpuBackend,
    x: &GpuTensor,
    scale: &GpuTensor,
    bias: Option<&GpuTensor>,
    eps: f32,
    d: &Dims,
) -> Result<GpuTensor> {
    let out = be.alloc(&x.shape)?;
    let ctx = be.ctx();
    let bias_arg = match bias {
        Some(b) => b.f32("layer_norm")?.arg(),
        None => ctx.dummy(),
    };
    let constants = [
        ("WG", 64.0),
        ("HAS_BIAS", if bias.is_some() { 1.0 } else { 0.0 }),
    ];
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
    };
    let params = Params {
        rows: d.rows as u32,
        d: d.d as u32,
        eps,
        ..Params::default()
    };
    let args = [
        x.f32("layer_norm")?.arg(),
        scale.f32("layer_norm")?.arg(),
        bias_arg,
        out.arg(),
    ];
    ctx.dispatch(&kernel, &params, &args, grid_rows(d.rows))?;
    Ok(out)
}
