//! `wgsl/cross_entropy_backward.wgsl`: [`crate::ops::cross_entropy_backward`], one workgroup
//! per position. Targets are clamped to the classes on the device (the host checks them before
//! uploading).

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::cross_entropy_backward::Dims;

uniform! {
    /// `Params` of `wgsl/cross_entropy_backward.wgsl`.
    Params {
        rows: u32,
        l: u32,
        v: u32,
        pad: u32,
        ls: f32,
        batch: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// `wgsl/cross_entropy_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "cross_entropy_backward",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../../wgsl/cross_entropy_backward.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// The gradient of the caption loss with respect to `logits [B, L, V]`.
pub(crate) fn cross_entropy_backward(
    be: &GpuBackend,
    logits: &GpuTensor,
    targets: &GpuIds,
    pad_id: u32,
    ls: f32,
    d: &Dims,
) -> Result<GpuTensor> {
    let out = be.alloc(&logits.shape)?;
    let (b, l, v) = (d.b, d.l, d.v);
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &[("WG", 256.0)],
    };
    let params = Params {
        rows: (b * l) as u32,
        l: l as u32,
        v: v as u32,
        pad: pad_id,
        ls,
        batch: b as u32,
        ..Params::default()
    };
    let args = [
        logits.f32("cross_entropy_backward")?.arg(),
        targets.arg(),
        out.arg(),
    ];
    be.ctx()
        .dispatch(&kernel, &params, &args, grid_rows(b * l))?;
    Ok(out)
}
