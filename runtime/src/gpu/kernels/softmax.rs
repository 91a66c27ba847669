//! `wgsl/softmax.wgsl`: the row kernels over `[rows, V]` — argmax ([`crate::ops::softmax`]) and
//! the cross-entropy ([`crate::ops::cross_entropy`]), one workgroup per row.

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON, REDUCE};
use crate::gpu::{grid_rows, GpuBackend, GpuIds, GpuTensor, Kernel};
use crate::ops::{cross_entropy, softmax};

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
    entries: &["main_argmax", "main_xent"],
    overrides: &[("WG", &[256.0])],
};

/// Entry `entry` over `x`, `rows` rows of `v` values, with optional targets, writing `out` (an
/// f32 per row) or `ids`.
#[allow(clippy::too_many_arguments)]
fn rows(
    be: &GpuBackend,
    entry: &'static str,
    x: &GpuTensor,
    (rows, v): (usize, usize),
    targets: Option<&GpuIds>,
    out: Option<&GpuTensor>,
    ids: Option<&GpuIds>,
    ls: f32,
) -> Result<()> {
    let ctx = be.ctx();
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

/// The first maximum of every row.
pub(crate) fn argmax(be: &GpuBackend, x: &GpuTensor, d: &softmax::Argmax) -> Result<GpuIds> {
    let ids = be.alloc_ids(&d.out_shape)?;
    let sizes = (d.rows, d.classes);
    rows(be, "main_argmax", x, sizes, None, None, Some(&ids), 0.0)?;
    Ok(ids)
}

/// Cross-entropy of every row against its target. Targets on the device are not checked
/// against the class count here (the model checks ids before uploading them); the kernel clamps
/// them so nothing is read out of bounds.
pub(crate) fn cross_entropy(
    be: &GpuBackend,
    logits: &GpuTensor,
    targets: &GpuIds,
    ls: f32,
    d: &cross_entropy::Dims,
) -> Result<GpuTensor> {
    let out = be.alloc(&d.out_shape)?;
    let sizes = (d.rows, d.classes);
    rows(
        be,
        "main_xent",
        logits,
        sizes,
        Some(targets),
        Some(&out),
        None,
        ls,
    )?;
    Ok(out)
}
