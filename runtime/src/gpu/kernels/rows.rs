//! `wgsl/rows.wgsl`: the row ops of [`crate::ops::rows`] on `[B, L, D]` tensors — the mean over
//! `L` (`main_mean`), and one copy (`main_copy`) for both slicing and writing rows.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::rows::Mean;

uniform! {
    /// `Params` of `wgsl/rows.wgsl`.
    Params {
        batch: u32,
        d: u32,
        src_rows: u32,
        dst_rows: u32,
        src_start: u32,
        dst_start: u32,
        len: u32,
        _pad: u32,
    }
}

/// `wgsl/rows.wgsl`.
pub static SHADER: Shader = Shader {
    name: "rows",
    parts: &[COMMON, include_str!("../../../../wgsl/rows.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, false],
    entries: &["main_copy", "main_mean"],
    overrides: &[],
};

/// The mean over the middle axis.
pub(crate) fn mean(be: &GpuBackend, x: &GpuTensor, m: &Mean) -> Result<GpuTensor> {
    let out = be.alloc(&m.out_shape())?;
    let (b, l, d) = (m.x.b, m.x.l, m.x.d);
    let params = Params {
        batch: b as u32,
        d: d as u32,
        src_rows: l as u32,
        dst_rows: 1,
        len: 1,
        ..Params::default()
    };
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main_mean"),
        &params,
        &[x.f32("mean_rows")?.arg(), out.arg()],
        grid_1d(b * d, 64),
    )?;
    Ok(out)
}

/// Copies `len` rows of `src` from `src_start` into `dst` from `dst_start` (both `[B, ·, D]`,
/// the ranges checked by the op).
pub(crate) fn copy(
    be: &GpuBackend,
    src: &GpuTensor,
    src_start: usize,
    dst: &mut GpuTensor,
    dst_start: usize,
    len: usize,
) -> Result<()> {
    let (b, ls, d) = (src.shape[0], src.shape[1], src.shape[2]);
    let ld = dst.shape[1];
    let params = Params {
        batch: b as u32,
        d: d as u32,
        src_rows: ls as u32,
        dst_rows: ld as u32,
        src_start: src_start as u32,
        dst_start: dst_start as u32,
        len: len as u32,
        _pad: 0,
    };
    let args = [src.f32("rows")?.arg(), dst.arg()];
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main_copy"),
        &params,
        &args,
        grid_1d(b * len * d, 64),
    )
}
