//! `wgsl/elementwise.wgsl`: [`crate::ops::add`] (`OP = 0`) and, with `train`, the trainer's
//! standalone [`crate::ops::gelu`] (`OP = 1`).

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::add;

uniform! {
    /// `Params` of `wgsl/elementwise.wgsl`.
    Params {
        n: u32,
        b_len: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// `wgsl/elementwise.wgsl`.
pub static SHADER: Shader = Shader {
    name: "elementwise",
    parts: &[COMMON, include_str!("../../../../wgsl/elementwise.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("OP", OPS)],
};

/// The `OP` values: `a + b`, and the standalone GELU only for the trainer.
#[cfg(feature = "train")]
const OPS: &[f64] = crate::gpu::shaders::BOOL;
#[cfg(not(feature = "train"))]
const OPS: &[f64] = &[0.0];

/// `a + b`, `b` repeated over `a`.
pub(crate) fn add(
    be: &GpuBackend,
    a: &GpuTensor,
    b: &GpuTensor,
    d: &add::Dims,
) -> Result<GpuTensor> {
    elementwise(be, 0, a, Some((b, d.b_len)))
}

/// Elementwise tanh-GELU.
#[cfg(feature = "train")]
pub(crate) fn gelu(
    be: &GpuBackend,
    x: &GpuTensor,
    _: &crate::ops::gelu::Dims,
) -> Result<GpuTensor> {
    elementwise(be, 1, x, None)
}

/// Runs op `op` of the shader over `a` (and `b` of `b_len` elements).
fn elementwise(
    be: &GpuBackend,
    op: u32,
    a: &GpuTensor,
    b: Option<(&GpuTensor, usize)>,
) -> Result<GpuTensor> {
    let out = be.alloc(&a.shape)?;
    let ctx = be.ctx();
    let n = a.numel();
    let (b_arg, b_len) = match b {
        Some((b, len)) => (b.f32("add")?.arg(), len.max(1)),
        None => (ctx.dummy(), 1),
    };
    let constants = [("OP", op as f64)];
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
    };
    let params = Params {
        n: n as u32,
        b_len: b_len as u32,
        ..Params::default()
    };
    ctx.dispatch(
        &kernel,
        &params,
        &[a.f32("elementwise")?.arg(), b_arg, out.arg()],
        grid_1d(n, 64),
    )?;
    Ok(out)
}
