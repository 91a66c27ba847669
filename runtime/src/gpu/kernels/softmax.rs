//! `wgsl/softmax.wgsl`: the row kernels over `[rows, V]` — log-softmax and argmax
//! ([`crate::ops::softmax`]) and the cross-entropy ([`crate::ops::cross_entropy`]), one
//! workgroup per row.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::rows_and_last;

uniform! {
    /// `Params` of `wgsl/softmax.wgsl`.
    Params {
        rows: u32,
        v: u32,
        /// Label smoothing of the cross-entropy.
        ls: f32,
        _pad: u32,
    }
}

/// `wgsl/softmax.wgsl`.
pub static SHADER: Shader = Shader {
    name: "softmax",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../../wgsl/softmax.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, false, false],
    entries: &["main_log_softmax", "main_argmax", "main_xent"],
    overrides: &[("WG", &[256.0])],
};

/// Entry `entry` over `x [rows, V]`, with optional targets, writing `out` (f32 per element or
/// per row) or `ids`.
fn rows(
    be: &GpuBackend,
    entry: &'static str,
    x: &GpuTensor,
    targets: Option<&GpuIds>,
    out: Option<&GpuTensor>,
    ids: Option<&GpuIds>,
    ls: f32,
) -> Result<()> {
    let ctx = be.ctx();
    let (rows, v) = rows_and_last(&x.shape);
    let kernel = Kernel {
        shader: &SHADER,
        entry,
        constants: &[("WG", 256.0)],
    };
    let args = [
        x.f32(entry)?.arg(),
        targets.map_or_else(|| ctx.dummy(), |t| t.arg()),
        out.map_or_else(|| ctx.dummy_rw(), |t| t.arg()),
        ids.map_or_else(|| ctx.dummy_rw(), |t| t.arg()),
    ];
    let params = Params {
        rows: rows as u32,
        v: v as u32,
        ls,
        _pad: 0,
    };
    ctx.dispatch(&kernel, &params, &args, grid_rows(rows))
}

/// Log-softmax of every row.
pub(crate) fn log_softmax(be: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let out = be.alloc(&x.shape)?;
    rows(be, "main_log_softmax", x, None, Some(&out), None, 0.0)?;
    Ok(out)
}

/// The first maximum of every row.
pub(crate) fn argmax(be: &GpuBackend, x: &GpuTensor) -> Result<GpuIds> {
    let ids = be.alloc_ids(&x.shape[..x.shape.len() - 1])?;
    rows(be, "main_argmax", x, None, None, Some(&ids), 0.0)?;
    Ok(ids)
}

/// Cross-entropy of every row against its target, a tensor of the checked shape `shape`.
/// Targets on the device are not checked against the class count here (the model checks ids
/// before uploading them); the kernel clamps them so nothing is read out of bounds.
pub(crate) fn cross_entropy(
    be: &GpuBackend,
    logits: &GpuTensor,
    targets: &GpuIds,
    ls: f32,
    shape: &[usize],
) -> Result<GpuTensor> {
    let out = be.alloc(shape)?;
    rows(be, "main_xent", logits, Some(targets), Some(&out), None, ls)?;
    Ok(out)
}
