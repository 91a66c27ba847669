//! Backward of [`super::attention`]. Per batch entry and head, with `P = softmax(s·q·kᵀ)` over
//! the visible keys (`s = 1/√D`), forward output `o` and its gradient `do`:
//! `δᵢ = Σ do_i·o_i`, `dSᵢⱼ = Pᵢⱼ·(do_i·v_j − δᵢ)`, `dq_i = s·Σⱼ dSᵢⱼ·k_j`,
//! `dk_j = Σᵢ dSᵢⱼ·(s·q_i)`, `dv_j = Σᵢ Pᵢⱼ·do_i`. Masked keys carry no gradient (the
//! reference's most-negative fill gives them probability exactly 0). Sums over keys run in key
//! order and sums over queries in query order, as the GPU kernels do.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::attention::{visible_keys, Dims};
use super::shape_error;
use crate::backend::{Attention, Mask};
use crate::error::Result;
use crate::math;

/// Checks the forward operands (as [`super::attention::dims`]) and that `o` and `do` have the
/// shape of `q`.
pub fn dims(
    q: &[usize],
    k: &[usize],
    v: &[usize],
    o: &[usize],
    d_o: &[usize],
    op: &Attention<'_>,
) -> Result<Dims> {
    let d = super::attention::dims(q, k, v, op)?;
    if o != q || d_o != q {
        return Err(shape_error(
            "attention_backward",
            format!("o {o:?} and do {d_o:?} must have the shape of q {q:?}"),
        ));
    }
    Ok(d)
}

/// CPU reference: `(dq, dk, dv)`.
pub fn cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    d_o: &[f32],
    d: Dims,
    mask: &Mask<'_>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (hd, f) = (d.head_dim, d.heads * d.head_dim);
    let scale = 1.0 / math::sqrt(hd as f32);
    let mut dq = vec![0.0f32; d.b * d.lq * f];
    let mut dk = vec![0.0f32; d.b * d.lk * f];
    let mut dv = vec![0.0f32; d.b * d.lk * f];
    let mut p = vec![0.0f32; d.lk];
    let mut qs = vec![0.0f32; hd];
    for b in 0..d.b {
        for h in 0..d.heads {
            let at = |row: usize| row * f + h * hd..row * f + (h + 1) * hd;
            for i in 0..d.lq {
                let qi = b * d.lq + i;
                let n = visible_keys(mask, b, i, d.lk);
                for (s, &x) in qs.iter_mut().zip(&q[at(qi)]) {
                    *s = x * scale;
                }
                let mut max = f32::NEG_INFINITY;
                for (j, pj) in p[..n].iter_mut().enumerate() {
                    let kr = &k[at(b * d.lk + j)];
                    *pj = qs.iter().zip(kr).map(|(a, c)| a * c).sum();
                    max = max.max(*pj);
                }
                let mut total = 0.0f32;
                for pj in &mut p[..n] {
                    *pj = math::exp(*pj - max);
                    total += *pj;
                }
                let doi = &d_o[at(qi)];
                let delta: f32 = doi.iter().zip(&o[at(qi)]).map(|(a, c)| a * c).sum();
                for (j, pj) in p[..n].iter().enumerate() {
                    let pj = pj / total;
                    let kj = b * d.lk + j;
                    let dp: f32 = doi.iter().zip(&v[at(kj)]).map(|(a, c)| a * c).sum();
                    let ds = pj * (dp - delta);
                    for (x, &kv) in dq[at(qi)].iter_mut().zip(&k[at(kj)]) {
                        *x += ds * kv;
                    }
                    for (x, &qv) in dk[at(kj)].iter_mut().zip(&qs) {
                        *x += ds * qv;
                    }
                    for (x, &g) in dv[at(kj)].iter_mut().zip(doi) {
                        *x += pj * g;
                    }
                }
                for x in &mut dq[at(qi)] {
                    *x *= scale;
                }
            }
        }
    }
    (dq, dk, dv)
}

/// GPU dispatch (`wgsl/attention_backward.wgsl`): `main_stats` (log-sum-exp and `δ` per query
/// and head), `main_dq` (one invocation per query and head, over its keys), and `main_dkv` twice
/// (one invocation per key and head, over the queries that see it: `dk`, then `dv`). Every sum
/// is in a fixed order; no atomics. The statistics live in the tail of `dq`'s buffer, which
/// keeps the kernel within WebGPU's 8 storage bindings.
#[cfg(feature = "gpu")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gpu(
    be: &crate::gpu::GpuBackend,
    q: &crate::gpu::GpuTensor,
    k: &crate::gpu::GpuTensor,
    v: &crate::gpu::GpuTensor,
    o: &crate::gpu::GpuTensor,
    d_o: &crate::gpu::GpuTensor,
    d: Dims,
    mask: &Mask<'_>,
) -> Result<(
    crate::gpu::GpuTensor,
    crate::gpu::GpuTensor,
    crate::gpu::GpuTensor,
)> {
    use crate::gpu::{grid_1d, shaders, Arg, Format, GpuTensor, Kernel};
    const MAX_HEAD_DIM: usize = 256;
    if d.head_dim > MAX_HEAD_DIM {
        return Err(shape_error(
            "attention_backward",
            format!(
                "head dimension {} exceeds the GPU kernel's {MAX_HEAD_DIM}",
                d.head_dim
            ),
        ));
    }
    let ctx = be.ctx();
    let f = d.heads * d.head_dim;
    let dq_len = d.b * d.lq * f;
    let stats_len = d.b * d.lq * d.heads * 2;
    let dq = GpuTensor {
        buf: ctx.buffer(((dq_len + stats_len) * 4) as u64, false)?,
        shape: q.shape.clone(),
        format: Format::F32,
    };
    let dk = be.alloc(&k.shape)?;
    let dv = be.alloc(&k.shape)?;
    if dq_len == 0 || d.lk == 0 {
        return Ok((
            crate::backend::Backend::zeros(be, &q.shape)?,
            crate::backend::Backend::zeros(be, &k.shape)?,
            crate::backend::Backend::zeros(be, &k.shape)?,
        ));
    }
    let (code, offset, flags) = match mask {
        Mask::None => (0.0, 0, None),
        Mask::Causal { offset } => (1.0, *offset, None),
        Mask::CausalRows(rows) => {
            let words: Vec<u32> = rows.iter().map(|&c| u32::from(c)).collect();
            (2.0, 0, Some(be.upload_words(&words)?))
        }
    };
    let scale = 1.0 / math::sqrt(d.head_dim as f32);
    let params = [
        d.b as u32,
        d.lq as u32,
        d.lk as u32,
        d.heads as u32,
        d.head_dim as u32,
        offset as u32,
        scale.to_bits(),
        dq_len as u32,
    ];
    let name = "attention_backward";
    let inputs = [q, k, v, o, d_o];
    for t in inputs {
        t.f32(name)?;
    }
    let flags_arg = || match &flags {
        Some(buf) => Arg::whole(buf),
        None => ctx.dummy(),
    };
    let run = |entry, which: f64, out: Option<&GpuTensor>, n: usize| {
        let constants = [("MASK", code), ("WHICH", which)];
        let kernel = Kernel {
            shader: &shaders::ATTENTION_BACKWARD,
            entry,
            constants: &constants,
        };
        let args = [
            q.arg(),
            k.arg(),
            v.arg(),
            o.arg(),
            d_o.arg(),
            flags_arg(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::Gemm;
    use crate::ops::{attention, fd};

    #[test]
    fn matches_finite_differences_for_every_mask() {
        let rows = [true, false, true];
        for (lq, lk, mask) in [
            (4, 4, Mask::None),
            (4, 4, Mask::Causal { offset: 0 }),
            (2, 5, Mask::Causal { offset: 3 }),
            (3, 3, Mask::CausalRows(&rows)),
            (3, 6, Mask::None),
        ] {
            let (b, heads, hd) = (3, 2, 3);
            let f = heads * hd;
            let op = Attention { heads, mask };
            let d = dims(
                &[b, lq, f],
                &[b, lk, f],
                &[b, lk, f],
                &[b, lq, f],
                &[b, lq, f],
                &op,
            )
            .unwrap();
            let q = fd::normal(b * lq * f, 5);
            let k = fd::normal(b * lk * f, 6);
            let v = fd::normal(b * lk * f, 7);
            let w = fd::normal(b * lq * f, 8);
            let o = attention::cpu(&q, &k, &v, d, &mask, Gemm::Blocked);
            let (dq, dk, dv) = cpu(&q, &k, &v, &o, &w, d, &mask);
            let loss = |q: &[f32], k: &[f32], v: &[f32]| {
                fd::dot(&w, &attention::cpu(q, k, v, d, &mask, Gemm::Blocked))
            };
            let what = alloc::format!("{mask:?}");
            fd::check(&what, &q, &dq, 1e-2, 2e-3, |q| loss(q, &k, &v));
            fd::check(&what, &k, &dk, 1e-2, 2e-3, |k| loss(&q, k, &v));
            fd::check(&what, &v, &dv, 1e-2, 2e-3, |v| loss(&q, &k, v));
        }
    }
}
