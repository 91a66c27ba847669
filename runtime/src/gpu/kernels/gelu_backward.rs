//! `wgsl/gelu_backward.wgsl`: [`crate::ops::gelu_backward`].

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::gelu_backward::Dims;

uniform! {
    /// `Params` of `wgsl/gelu_backward.wgsl`.
    Params {
        n: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// `wgsl/gelu_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gelu_backward",
    parts: &[COMMON, include_str!("../../../../wgsl/gelu_backward.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// `dy · gelu'(x)`.
pub(crate) fn gelu_backward(
    be: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    d: &Dims,
) -> Result<GpuTensor> {
    let out = be.alloc(&x.shape)?;
    let n = d.len;
    let args = [
        x.f32("gelu_backward")?.arg(),
        dy.f32("gelu_backward")?.arg(),
        out.arg(),
    ];
    let params = Params {
        n: n as u32,
        ..Params::default()
    };
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main"),
        &params,
        &args,
        grid_1d(n, 64),
    )?;
    Ok(out)
}
