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
use super::matmul::Gemm;
#[cfg(feature = "std")]
use super::matmul::{gemm_serial, View};
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

/// CPU reference: `(dq, dk, dv)`. Batch entries run in parallel (each exactly as alone). With
/// the plain GEMM the sums run one query and one key at a time, as written above; with the fast
/// GEMM each head's sums are five matrix products (`S = q·kᵀ`, `dP = do·vᵀ`, `dq = dS·k`,
/// `dk = dSᵀ·q`, `dv = Pᵀ·do`), equal within f32 rounding.
#[allow(clippy::too_many_arguments)]
pub fn cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    d_o: &[f32],
    d: super::attention::Dims,
    mask: &Mask<'_>,
    gemm: Gemm,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let f = d.heads * d.head_dim;
    let (q_len, k_len) = (d.lq * f, d.lk * f);
    let mut dq = vec![0.0f32; d.b * q_len];
    let mut dk = vec![0.0f32; d.b * k_len];
    let mut dv = vec![0.0f32; d.b * k_len];
    let items: Vec<_> = dq
        .chunks_mut(q_len.max(1))
        .zip(dk.chunks_mut(k_len.max(1)))
        .zip(dv.chunks_mut(k_len.max(1)))
        .enumerate()
        .collect();
    crate::threads::for_each(items, d.lq * d.lk * f * 4, |(b, ((dq, dk), dv))| {
        let (qr, kr) = (b * q_len..(b + 1) * q_len, b * k_len..(b + 1) * k_len);
        let grads = Grads { dq, dk, dv };
        let inputs = [
            &q[qr.clone()],
            &k[kr.clone()],
            &v[kr],
            &o[qr.clone()],
            &d_o[qr],
        ];
        match gemm {
            Gemm::Blocked => one_entry(inputs, grads, &d, mask, b),
            #[cfg(feature = "std")]
            Gemm::Fast => one_entry_by_products(inputs, grads, &d, mask, b, gemm),
        }
    });
    (dq, dk, dv)
}

/// [`one_entry`] as matrix products on `gemm`, one head at a time.
#[cfg(feature = "std")]
fn one_entry_by_products(
    [q, k, v, o, d_o]: [&[f32]; 5],
    g: Grads<'_>,
    d: &super::attention::Dims,
    mask: &Mask<'_>,
    b: usize,
    gemm: Gemm,
) {
    let (lq, lk, hd, f) = (d.lq, d.lk, d.head_dim, d.heads * d.head_dim);
    let scale = 1.0 / math::sqrt(hd as f32);
    // Per head: `qs` (scaled queries), `P`, `dS` and each gradient, contiguous.
    let mut qs = vec![0.0f32; lq * hd];
    let mut p = vec![0.0f32; lq * lk];
    let mut ds = vec![0.0f32; lq * lk];
    let mut out = vec![0.0f32; lq.max(lk) * hd];
    for h in 0..d.heads {
        // One head's `[L, D]` block of `[L, H·D]` rows starts at column `c`; `(1, f)` strides
        // read it transposed.
        let c = h * hd;
        for (i, row) in qs.chunks_exact_mut(hd).enumerate() {
            for (s, &x) in row.iter_mut().zip(&q[i * f + h * hd..][..hd]) {
                *s = x * scale;
            }
        }
        gemm_serial(
            lq,
            lk,
            hd,
            view(&qs, hd, 1),
            view(&k[c..], 1, f),
            &mut p,
            gemm,
        );
        gemm_serial(
            lq,
            lk,
            hd,
            view(&d_o[c..], f, 1),
            view(&v[c..], 1, f),
            &mut ds,
            gemm,
        );
        for i in 0..lq {
            let n = visible_keys(mask, b, i, lk);
            let (p_row, ds_row) = (&mut p[i * lk..][..lk], &mut ds[i * lk..][..lk]);
            let max = p_row[..n].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            for x in &mut p_row[..n] {
                *x = math::exp_vec(*x - max);
            }
            let inv = 1.0 / p_row[..n].iter().sum::<f32>();
            p_row[n..].fill(0.0);
            let at = i * f + h * hd..i * f + (h + 1) * hd;
            let delta: f32 = d_o[at.clone()].iter().zip(&o[at]).map(|(a, c)| a * c).sum();
            for (x, dp) in p_row.iter_mut().zip(ds_row.iter_mut()) {
                *x *= inv;
                *dp = *x * (*dp - delta);
            }
        }
        // dq = s·dS·k, dk = dSᵀ·(s·q), dv = Pᵀ·do, each written into its head's columns.
        let write = |out: &[f32], len: usize, dst: &mut [f32], factor: f32| {
            for (r, row) in out[..len * hd].chunks_exact(hd).enumerate() {
                for (x, &y) in dst[r * f + h * hd..][..hd].iter_mut().zip(row) {
                    *x = y * factor;
                }
            }
        };
        gemm_serial(
            lq,
            hd,
            lk,
            view(&ds, lk, 1),
            view(&k[c..], f, 1),
            &mut out[..lq * hd],
            gemm,
        );
        write(&out, lq, g.dq, scale);
        let ds_t = view(&ds, 1, lk);
        gemm_serial(
            lk,
            hd,
            lq,
            ds_t,
            view(&qs, hd, 1),
            &mut out[..lk * hd],
            gemm,
        );
        write(&out, lk, g.dk, 1.0);
        gemm_serial(
            lk,
            hd,
            lq,
            view(&p, 1, lk),
            view(&d_o[c..], f, 1),
            &mut out[..lk * hd],
            gemm,
        );
        write(&out, lk, g.dv, 1.0);
    }
}

/// A strided matrix view of `data`.
#[cfg(feature = "std")]
fn view(data: &[f32], rs: usize, cs: usize) -> View<'_> {
    View { data, rs, cs }
}

/// The gradients of one batch entry, written into.
struct Grads<'a> {
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

/// [`cpu`] for batch entry `b`: `[q, k, v, o, do]` are its rows.
fn one_entry(
    [q, k, v, o, d_o]: [&[f32]; 5],
    g: Grads<'_>,
    d: &super::attention::Dims,
    mask: &Mask<'_>,
    b: usize,
) {
    let (hd, f) = (d.head_dim, d.heads * d.head_dim);
    let scale = 1.0 / math::sqrt(hd as f32);
    let mut p = vec![0.0f32; d.lk];
    let mut qs = vec![0.0f32; hd];
    for h in 0..d.heads {
        let at = |row: usize| row * f + h * hd..row * f + (h + 1) * hd;
        for i in 0..d.lq {
            let n = visible_keys(mask, b, i, d.lk);
            for (s, &x) in qs.iter_mut().zip(&q[at(i)]) {
                *s = x * scale;
            }
            let mut max = f32::NEG_INFINITY;
            for (j, pj) in p[..n].iter_mut().enumerate() {
                *pj = qs.iter().zip(&k[at(j)]).map(|(a, c)| a * c).sum();
                max = max.max(*pj);
            }
            let mut total = 0.0f32;
            for pj in &mut p[..n] {
                *pj = math::exp(*pj - max);
                total += *pj;
            }
            let doi = &d_o[at(i)];
            let delta: f32 = doi.iter().zip(&o[at(i)]).map(|(a, c)| a * c).sum();
            for (j, pj) in p[..n].iter().enumerate() {
                let pj = pj / total;
                let dp: f32 = doi.iter().zip(&v[at(j)]).map(|(a, c)| a * c).sum();
                let ds = pj * (dp - delta);
                for (x, &kv) in g.dq[at(i)].iter_mut().zip(&k[at(j)]) {
                    *x += ds * kv;
                }
                for (x, &qv) in g.dk[at(j)].iter_mut().zip(&qs) {
                    *x += ds * qv;
                }
                for (x, &gv) in g.dv[at(j)].iter_mut().zip(doi) {
                    *x += pj * gv;
                }
            }
            for x in &mut g.dq[at(i)] {
                *x *= scale;
            }
        }
    }
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
            let (dq, dk, dv) = cpu(&q, &k, &v, &o, &w, d, &mask, Gemm::Blocked);
            let loss = |q: &[f32], k: &[f32], v: &[f32]| {
                fd::dot(&w, &attention::cpu(q, k, v, d, &mask, Gemm::Blocked))
            };
            let what = alloc::format!("{mask:?}");
            fd::check(&what, &q, &dq, 1e-2, 2e-3, |q| loss(q, &k, &v));
            fd::check(&what, &k, &dk, 1e-2, 2e-3, |k| loss(&q, k, &v));
            fd::check(&what, &v, &dv, 1e-2, 2e-3, |v| loss(&q, &k, v));
            // The matrix-product form on the fast GEMM gives the same gradients (f32 rounding:
            // 1e-5 of the largest magnitude).
            #[cfg(feature = "std")]
            {
                let fast = cpu(&q, &k, &v, &o, &w, d, &mask, Gemm::Fast);
                for (name, a, b) in [
                    ("dq", &dq, &fast.0),
                    ("dk", &dk, &fast.1),
                    ("dv", &dv, &fast.2),
                ] {
                    let max = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-5 * max,
                            "{what} {name}[{i}]: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}
