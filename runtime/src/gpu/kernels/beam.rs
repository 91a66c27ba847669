//! `wgsl/beam.wgsl`: [`crate::ops::beam`], one workgroup per group.

use std::format;

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::beam::Dims;
use crate::ops::shape_error;

uniform! {
    /// `Params` of `wgsl/beam.wgsl`.
    Params {
        groups: u32,
        width: u32,
        v: u32,
        k: u32,
    }
}

/// `wgsl/beam.wgsl`.
pub static SHADER: Shader = Shader {
    name: "beam",
    parts: &[COMMON, REDUCE, include_str!("../../../../wgsl/beam.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// The most beams per group the kernel ranks.
const MAX_WIDTH: usize = 256;

/// The best `k` continuations of every group: scores and ids, each `[groups, k]`.
pub(crate) fn beam_candidates(
    be: &GpuBackend,
    logits: &GpuTensor,
    beam_scores: &GpuTensor,
    d: &Dims,
) -> Result<(GpuTensor, GpuIds)> {
    if d.width > MAX_WIDTH {
        return Err(shape_error(
            "beam_candidates",
            format!(
                "{} beams per group exceed the GPU kernel's {MAX_WIDTH}",
                d.width
            ),
        ));
    }
    let scores = be.alloc(&[d.groups, d.k])?;
    let ids = be.alloc_ids(&[d.groups, d.k])?;
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &[("WG", 256.0)],
    };
    let params = Params {
        groups: d.groups as u32,
        width: d.width as u32,
        v: d.vocab as u32,
        k: d.k as u32,
    };
    let args = [
        logits.f32("beam_candidates")?.arg(),
        beam_scores.f32("beam_candidates")?.arg(),
        scores.arg(),
        ids.arg(),
    ];
    be.ctx()
        .dispatch(&kernel, &params, &args, grid_rows(d.groups))?;
    Ok((scores, ids))
}
