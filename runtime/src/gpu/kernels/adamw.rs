//! `wgsl/adamw.wgsl`: [`crate::ops::adamw`], in place on the three tensors' buffers (each made
//! its own first if another tensor shares it, as the CPU backend's copy-on-write does).

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::adamw::{AdamW, Dims};

uniform! {
    /// `Params` of `wgsl/adamw.wgsl`.
    Params {
        n: u32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        wd: f32,
        schedule: f32,
        clip: f32,
        bc1: f32,
        bc2: f32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// `wgsl/adamw.wgsl`.
pub static SHADER: Shader = Shader {
    name: "adamw",
    parts: &[COMMON, include_str!("../../../../wgsl/adamw.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[false, false, false, true],
    entries: &["main"],
    overrides: &[],
};

/// One AdamW step on `[param, m, v]`.
pub(crate) fn adamw_update(
    be: &GpuBackend,
    [param, m, v]: [&mut GpuTensor; 3],
    grad: &GpuTensor,
    op: &AdamW,
    d: &Dims,
) -> Result<()> {
    for t in [&mut *param, &mut *m, &mut *v] {
        t.f32("adamw_update")?;
        be.make_unique(t)?;
    }
    let n = d.len;
    let params = Params {
        n: n as u32,
        lr: op.lr,
        beta1: op.beta1,
        beta2: op.beta2,
        eps: op.eps,
        wd: op.weight_decay,
        schedule: op.schedule,
        clip: op.clip,
        bc1: op.bias_correction1,
        bc2: op.bias_correction2,
        ..Params::default()
    };
    let args = [
        param.arg(),
        m.arg(),
        v.arg(),
        grad.f32("adamw_update")?.arg(),
    ];
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main"),
        &params,
        &args,
        grid_1d(n, 64),
    )
}
