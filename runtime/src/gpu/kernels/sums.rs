//! `wgsl/sums.wgsl`: the reductions of [`crate::ops::sums`] — the sum over the first axis
//! (`main_axis0`, one invocation per column) and sums of squares (`main_squares`, one
//! workgroup per tensor).

use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::sums::{Axis0, Squares, LANES};

uniform! {
    /// `Params` of `wgsl/sums.wgsl`.
    Params {
        n: u32,
        m: u32,
        /// The element of the output `main_squares` writes.
        slot: u32,
        _pad: u32,
    }
}

/// `wgsl/sums.wgsl`.
pub static SHADER: Shader = Shader {
    name: "sums",
    parts: &[COMMON, REDUCE, include_str!("../../../../wgsl/sums.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, false],
    entries: &["main_axis0", "main_squares"],
    overrides: &[("WG", &[256.0])],
};

const CONSTANTS: &[(&str, f64)] = &[("WG", LANES as f64)];

/// The sum over the first axis.
pub(crate) fn axis0(be: &GpuBackend, x: &GpuTensor, d: &Axis0) -> Result<GpuTensor> {
    let out = be.alloc(&d.out_shape)?;
    let m = d.m;
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main_axis0",
        constants: CONSTANTS,
    };
    let params = Params {
        n: d.n as u32,
        m: m as u32,
        ..Params::default()
    };
    let args = [x.f32("sum_axis0")?.arg(), out.arg()];
    be.ctx().dispatch(&kernel, &params, &args, grid_1d(m, 64))?;
    Ok(out)
}

/// The sum of squares of each tensor, element `i` of the result for tensor `i`.
pub(crate) fn squares(be: &GpuBackend, xs: &[&GpuTensor], d: &Squares) -> Result<GpuTensor> {
    let out = be.zeros(&[xs.len()])?;
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main_squares",
        constants: CONSTANTS,
    };
    for (i, (x, &n)) in xs.iter().zip(&d.lens).enumerate() {
        let args = [x.f32("sum_squares")?.arg(), out.arg()];
        let params = Params {
            n: n as u32,
            slot: i as u32,
            ..Params::default()
        };
        be.ctx().dispatch(&kernel, &params, &args, [1, 1, 1])?;
    }
    Ok(out)
}
