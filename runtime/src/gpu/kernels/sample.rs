//! `wgsl/sample.wgsl`: [`crate::ops::sample`], one workgroup per row.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::sample::Dims;

uniform! {
    /// `Params` of `wgsl/sample.wgsl`.
    Params {
        rows: u32,
        v: u32,
        temperature: f32,
        top_k: u32,
        top_p: f32,
        seed_lo: u32,
        seed_hi: u32,
        step: u32,
    }
}

/// `wgsl/sample.wgsl`.
pub static SHADER: Shader = Shader {
    name: "sample",
    parts: &[COMMON, REDUCE, include_str!("../../../../wgsl/sample.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// One token drawn per row of `logits`.
pub(crate) fn sample(
    be: &GpuBackend,
    logits: &GpuTensor,
    seed: u64,
    step: u32,
    d: &Dims,
) -> Result<GpuIds> {
    let (n, v, op) = (d.rows, d.vocab, &d.sampling);
    let ids = be.alloc_ids(&d.out_shape)?;
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &[("WG", 256.0)],
    };
    let params = Params {
        rows: n as u32,
        v: v as u32,
        temperature: op.temperature,
        top_k: op.top_k.min(u32::MAX as usize) as u32,
        top_p: op.top_p,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        step,
    };
    let args = [logits.f32("sample")?.arg(), ids.arg()];
    be.ctx().dispatch(&kernel, &params, &args, grid_rows(n))?;
    Ok(ids)
}
