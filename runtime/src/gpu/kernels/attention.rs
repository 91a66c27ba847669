//! `wgsl/attention.wgsl`: [`crate::ops::attention`], one invocation per (batch, query, head).
//! The mask helpers here serve the backward kernels too.

use std::format;
use std::sync::Arc;
use std::vec::Vec;

use crate::backend::Mask;
use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, BOOL, COMMON, FORMATS};
use crate::gpu::{grid_1d, Arg, Buf, Ctx, GpuBackend, GpuTensor, Kernel};
use crate::math;
use crate::ops::attention::Dims;
use crate::ops::shape_error;

uniform! {
    /// `Params` of `wgsl/attention.wgsl`.
    Params {
        batch: u32,
        lq: u32,
        lk: u32,
        heads: u32,
        hd: u32,
        offset: u32,
        scale: f32,
        _pad: u32,
    }
}

/// `wgsl/attention.wgsl`.
pub static SHADER: Shader = Shader {
    name: "attention",
    parts: &[COMMON, include_str!("../../../../wgsl/attention.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, true, true, false],
    entries: &["main"],
    overrides: &[("MASK", FORMATS), ("VEC4", BOOL)],
};

/// The largest head dimension the attention kernels hold in registers.
const MAX_HEAD_DIM: usize = 256;

/// Fails if the head dimension exceeds what the kernels of `op` hold.
pub(crate) fn check_head_dim(op: &str, d: &Dims) -> Result<()> {
    if d.head_dim > MAX_HEAD_DIM {
        return Err(shape_error(
            op,
            format!(
                "head dimension {} exceeds the GPU kernel's {MAX_HEAD_DIM}",
                d.head_dim
            ),
        ));
    }
    Ok(())
}

/// A mask as the kernels take it: the `MASK` override, the causal offset, and the per-row
/// causal flags (uploaded) of [`Mask::CausalRows`].
pub(crate) struct DeviceMask {
    pub code: f64,
    pub offset: u32,
    flags: Option<Arc<Buf>>,
}

impl DeviceMask {
    pub fn new(be: &GpuBackend, mask: &Mask<'_>) -> Result<Self> {
        Ok(match mask {
            Mask::None => DeviceMask {
                code: 0.0,
                offset: 0,
                flags: None,
            },
            Mask::Causal { offset } => DeviceMask {
                code: 1.0,
                offset: *offset as u32,
                flags: None,
            },
            Mask::CausalRows(rows) => {
                let words: Vec<u32> = rows.iter().map(|&c| u32::from(c)).collect();
                DeviceMask {
                    code: 2.0,
                    offset: 0,
                    flags: Some(be.upload_words(&words)?),
                }
            }
        })
    }

    /// The flags' binding (a dummy unless the mask is per row).
    pub fn flags<'a>(&'a self, ctx: &'a Ctx) -> Arg<'a> {
        match &self.flags {
            Some(buf) => Arg::whole(buf),
            None => ctx.dummy(),
        }
    }
}

/// `1/√D`, as the CPU reference scales.
pub(crate) fn scale(d: &Dims) -> f32 {
    1.0 / math::sqrt(d.head_dim as f32)
}

/// Attention of the checked sizes `d`.
pub(crate) fn attention(
    be: &GpuBackend,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    mask: &Mask<'_>,
    d: &Dims,
) -> Result<GpuTensor> {
    check_head_dim("attention", d)?;
    let out = be.alloc(&q.shape)?;
    let ctx = be.ctx();
    let mask = DeviceMask::new(be, mask)?;
    let vec4 = if d.head_dim.is_multiple_of(4) {
        1.0
    } else {
        0.0
    };
    let constants = [("MASK", mask.code), ("VEC4", vec4)];
    let kernel = Kernel {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
    };
    let params = Params {
        batch: d.b as u32,
        lq: d.lq as u32,
        lk: d.lk as u32,
        heads: d.heads as u32,
        hd: d.head_dim as u32,
        offset: mask.offset,
        scale: scale(d),
        _pad: 0,
    };
    let args = [
        q.f32("attention")?.arg(),
        k.f32("attention")?.arg(),
        v.f32("attention")?.arg(),
        mask.flags(ctx),
        out.arg(),
    ];
    ctx.dispatch(&kernel, &params, &args, grid_1d(d.b * d.lq * d.heads, 64))?;
    Ok(out)
}
