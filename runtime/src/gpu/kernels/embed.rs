//! `wgsl/embed.wgsl`: [`crate::ops::embed`]. A table larger than one binding is read in row
//! windows, one dispatch each.

use std::format;

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, FORMATS};
use crate::gpu::{grid_1d, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::shape_error;
use crate::tensor::numel;

uniform! {
    /// `Params` of `wgsl/embed.wgsl`.
    Params {
        n: u32,
        d: u32,
        row_start: u32,
        rows: u32,
        total_rows: u32,
        table_off: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// `wgsl/embed.wgsl`.
pub static SHADER: Shader = Shader {
    name: "embed",
    parts: &[COMMON, include_str!("../../../../wgsl/embed.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("FORMAT", FORMATS)],
};

/// Rows of `table` picked by `ids`, as a tensor of the checked shape `shape`.
pub(crate) fn embed(
    be: &GpuBackend,
    table: &GpuTensor,
    ids: &GpuIds,
    shape: &[usize],
) -> Result<GpuTensor> {
    let out = be.alloc(shape)?;
    let ctx = be.ctx();
    let (rows, d) = (table.shape[0], table.shape[1]);
    let n = numel(&ids.shape);
    if n == 0 || d == 0 {
        return Ok(out);
    }
    if rows == 0 {
        return Err(shape_error("embed", "empty table".into()));
    }
    let room = (ctx.max_binding.saturating_sub(256) / table.format.size()) as usize;
    let step = (room / d).min(rows);
    if step == 0 {
        return Err(shape_error(
            "embed",
            format!("a table row of {d} values exceeds one binding"),
        ));
    }
    let constants = [("FORMAT", table.format.code())];
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
    };
    for r0 in (0..rows).step_by(step) {
        let r1 = (r0 + step).min(rows);
        let (t_arg, t_off) = table.window(r0 * d, r1 * d);
        let params = Params {
            n: n as u32,
            d: d as u32,
            row_start: r0 as u32,
            rows: (r1 - r0) as u32,
            total_rows: rows as u32,
            table_off: t_off,
            ..Params::default()
        };
        ctx.dispatch(
            &kernel,
            &params,
            &[ids.arg(), t_arg, out.arg()],
            grid_1d(n * d, 64),
        )?;
    }
    Ok(out)
}
