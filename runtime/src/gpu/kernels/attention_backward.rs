//! `wgsl/attention_backward.wgsl`: [`crate::ops::attention_backward`] — `main_stats`
//! (log-sum-exp and `δ` per query and head), `main_dq` (one invocation per query and head, over
//! its keys), and `main_dkv` twice (one invocation per key and head, over the queries that see
//! it: `dk`, then `dv`). Every sum is in a fixed order; no atomics. The statistics live in the
//! tail of `dq`'s buffer, which keeps the kernel within WebGPU's 8 storage bindings.

use crate::backend::{Backend, Mask};
use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, BOOL, COMMON, FORMATS};
use crate::gpu::{grid_1d, Arg, Format, GpuBackend, GpuTensor, Kernel};
use crate::ops::attention_backward::Dims;

use super::attention::{check_head_dim, scale, DeviceMask};

uniform! {
    /// `Params` of `wgsl/attention_backward.wgsl`.
    Params {
        batch: u32,
        lq: u32,
        lk: u32,
        heads: u32,
        hd: u32,
        offset: u32,
        scale: f32,
        /// Index in `dq`'s buffer of the first statistic (= the number of dq values).
        stats_at: u32,
    }
}

/// `wgsl/attention_backward.wgsl`.
pub static SHADER: Shader = Shader {
    name: "attention_backward",
    parts: &[
        COMMON,
        include_str!("../../../../wgsl/attention_backward.wgsl"),
    ],
    params: &Params::LAYOUT,
    read_only: &[true, true, true, true, true, true, false, false],
    entries: &["main_stats", "main_dq", "main_dkv"],
    overrides: &[("MASK", FORMATS), ("WHICH", BOOL)],
};

/// `(dq, dk, dv)` from the forward's `[q, k, v, o]` and the output gradient `d_o`.
pub(crate) fn attention_backward(
    be: &GpuBackend,
    [q, k, v, o, d_o]: [&GpuTensor; 5],
    mask: &Mask<'_>,
    dims: &Dims,
) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
    let d = &dims.forward;
    check_head_dim("attention_backward", d)?;
    let ctx = be.ctx();
    let f = d.heads * d.head_dim;
    let dq_len = d.b * d.lq * f;
    let stats_len = d.b * d.lq * d.heads * 2;
    let dq = GpuTensor {
        buf: ctx.buffer(((dq_len + stats_len) * 4) as u64, false)?,
        shape: q.shape.clone(),
        format: Format::F32,
        scales: None,
    };
    let dk = be.alloc(&k.shape)?;
    let dv = be.alloc(&k.shape)?;
    if dq_len == 0 || d.lk == 0 {
        return Ok((
            be.zeros(&q.shape)?,
            be.zeros(&k.shape)?,
            be.zeros(&k.shape)?,
        ));
    }
    let mask = DeviceMask::new(be, mask)?;
    let params = Params {
        batch: d.b as u32,
        lq: d.lq as u32,
        lk: d.lk as u32,
        heads: d.heads as u32,
        hd: d.head_dim as u32,
        offset: mask.offset,
        scale: scale(d),
        stats_at: dq_len as u32,
    };
    for t in [q, k, v, o, d_o] {
        t.f32("attention_backward")?;
    }
    let run = |entry, which: f64, out: Option<&GpuTensor>, n: usize| {
        let constants = [("MASK", mask.code), ("WHICH", which)];
        let kernel = Kernel {
            shader: &SHADER,
            entry,
            constants: &constants,
        };
        let args = [
            q.arg(),
            k.arg(),
            v.arg(),
            o.arg(),
            d_o.arg(),
            mask.flags(ctx),
            Arg::whole(&dq.buf),
            out.map_or_else(|| ctx.dummy_rw(), |t| t.arg()),
        ];
        ctx.dispatch(&kernel, &params, &args, grid_1d(n, 64))
    };
    let per_query = d.b * d.lq * d.heads;
    let per_key = d.b * d.lk * d.heads;
    run("main_stats", 0.0, None, per_query)?;
    run("main_dq", 0.0, None, per_query)?;
    run("main_dkv", 0.0, Some(&dk), per_key)?;
    run("main_dkv", 1.0, Some(&dv), per_key)?;
    Ok((dq, dk, dv))
}
