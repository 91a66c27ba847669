//! Backward of [`super::attention`]. Per batch entry and head, with `P = softmax(s·q·kᵀ)` over
//! the visible keys (`s = 1/√D`), forward output `o` and its gradient `do`:
//! `δᵢ = Σ do_i·o_i`, `dSᵢⱼ = Pᵢⱼ·(do_i·v_j − δᵢ)`, `dq_i = s·Σⱼ dSᵢⱼ·k_j`,
//! `dk_j = Σᵢ dSᵢⱼ·(s·q_i)`, `dv_j = Σᵢ Pᵢⱼ·do_i`. Masked keys carry no gradient (the
//! reference's most-negative fill gives them probability exactly 0). Sums over keys run in key
//! order and sums over queries in query order, as the GPU kernels do.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::attention::visible_keys;
use super::{shape_error, Checked};
use crate::backend::{Attention, Mask};
use crate::error::Result;
use crate::math;

/// The sizes of one attention backward (those of its forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// The forward's sizes.
    pub forward: super::attention::Dims,
}

/// Checks the forward operands (as [`super::attention::check`]) and that `o` and `do` have the
/// shape of `q`.
pub fn check(
    q: &[usize],
    k: &[usize],
    v: &[usize],
    o: &[usize],
    d_o: &[usize],
    op: &Attention<'_>,
) -> Result<Checked<Dims>> {
    let forward = *super::attention::check(q, k, v, op)?;
    if o != q || d_o != q {
        return Err(shape_error(
            "attention_backward",
            format!("o {o:?} and do {d_o:?} must have the shape of q {q:?}"),
        ));
    }
    Ok(Checked::new(Dims { forward }))
}

/// CPU reference: `(dq, dk, dv)`.
pub fn cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    d_o: &[f32],
    d: super::attention::Dims,
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
            let d = check(
                &[b, lq, f],
                &[b, lk, f],
                &[b, lk, f],
                &[b, lq, f],
                &[b, lq, f],
                &op,
            )
            .unwrap()
            .forward;
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
