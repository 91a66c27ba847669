//! `wgsl/gather.wgsl`: [`crate::ops::gather`]. An `x` larger than one binding is read in row
//! windows, one dispatch each. Ids live on the device, so they are not checked here; the kernel
//! clamps them so nothing is read out of bounds.

use std::format;

use crate::error::Result;
use crate::formats::Channels;
use crate::gpu::shaders::{Shader, Uniform, COMMON, WEIGHT_FORMATS};
use crate::gpu::{grid_1d, Arg, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::gather::Dims;
use crate::ops::shape_error;

uniform! {
    /// `Params` of `wgsl/gather.wgsl`.
    Params {
        /// Number of ids.
        n: u32,
        row_len: u32,
        /// The window: rows `row_start..row_start + rows` of `x`.
        row_start: u32,
        rows: u32,
        total_rows: u32,
        /// Element of the window's binding where row `row_start` begins.
        x_off: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// `wgsl/gather.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gather",
    parts: &[COMMON, include_str!("../../../../wgsl/gather.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, false, true],
    entries: &["main"],
    overrides: &[("FORMAT", WEIGHT_FORMATS)],
};

/// Rows of `x` picked by `ids`.
pub(crate) fn gather(be: &GpuBackend, x: &GpuTensor, ids: &GpuIds, d: &Dims) -> Result<GpuTensor> {
    let out = be.alloc(&d.out_shape)?;
    let ctx = be.ctx();
    let (rows, row_len, n) = (d.rows, d.row_len, d.ids);
    if n == 0 || row_len == 0 {
        return Ok(out);
    }
    let room = (ctx.max_binding.saturating_sub(256) / x.format.size()) as usize;
    let step = (room / row_len).min(rows);
    if step == 0 {
        return Err(shape_error(
            "gather",
            format!("a row of {row_len} values exceeds one binding"),
        ));
    }
    // q8 scales per row of a table run along the gathered row.
    let scales = x.q8_scales("gather")?;
    let per_row = scales.is_some_and(|s| s.channels == Channels::Rows);
    let constants = [("FORMAT", x.format.code(per_row))];
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
    };
    for r0 in (0..rows).step_by(step) {
        let r1 = (r0 + step).min(rows);
        let (x_arg, x_off) = x.window(r0 * row_len, r1 * row_len);
        let params = Params {
            n: n as u32,
            row_len: row_len as u32,
            row_start: r0 as u32,
            rows: (r1 - r0) as u32,
            total_rows: rows as u32,
            x_off,
            ..Params::default()
        };
        let scales_arg = match scales {
            Some(s) => Arg::window(&s.buf, 0, s.buf.size),
            None => ctx.dummy(),
        };
        ctx.dispatch(
            &kernel,
            &params,
            &[ids.arg(), x_arg, out.arg(), scales_arg],
            grid_1d(n * row_len, 64),
        )?;
    }
    Ok(out)
}
