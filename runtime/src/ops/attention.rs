//! Multi-head scaled dot-product attention, as Flax's `dot_product_attention`:
//! `q ← q / √D`; scores `q·k` per head; masked keys excluded (the reference fills them with
//! the most negative float, which softmax turns into exact zeros); softmax over keys with a
//! running maximum; weighted sum of values.
//!
//! `q` is `[B, Lq, H·D]`, `k` and `v` are `[B, Lk, H·D]`; the output has `q`'s shape.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::backend::{Attention, Mask};
use crate::error::Result;
use crate::lanes::{max_lanes, sum_lanes};
use crate::math;
use crate::ops::matmul::{gemm_serial, Gemm, View};

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub b: usize,
    /// Queries per batch entry.
    pub lq: usize,
    /// Keys per batch entry.
    pub lk: usize,
    /// Heads.
    pub heads: usize,
    /// Features per head.
    pub head_dim: usize,
}

/// Checks the operands and the mask.
pub fn check(q: &[usize], k: &[usize], v: &[usize], op: &Attention<'_>) -> Result<Checked<Dims>> {
    let err = |m: &str| shape_error("attention", format!("{m} (q {q:?}, k {k:?}, v {v:?})"));
    let ([b, lq, f], [bk, lk, fk]) = (q, k) else {
        return Err(err("q, k and v must be [B, L, H·D]"));
    };
    if k != v || b != bk || f != fk || *lk == 0 {
        return Err(err(
            "k and v must be equal-shaped [B, Lk, F] matching q's B and F",
        ));
    }
    if op.heads == 0 || f % op.heads != 0 {
        return Err(err(&format!("{} heads do not divide width {f}", op.heads)));
    }
    if let Mask::CausalRows(rows) = op.mask {
        if rows.len() != *b {
            return Err(err(&format!("mask has {} rows for batch {b}", rows.len())));
        }
    }
    Ok(Checked::new(Dims {
        b: *b,
        lq: *lq,
        lk: *lk,
        heads: op.heads,
        head_dim: f / op.heads,
    }))
}

/// Number of keys query `i` of batch entry `b` may see (keys `0..visible`).
pub fn visible_keys(mask: &Mask<'_>, b: usize, i: usize, lk: usize) -> usize {
    match mask {
        Mask::None => lk,
        Mask::Causal { offset } => (offset + i + 1).min(lk),
        Mask::CausalRows(rows) if rows[b] => (i + 1).min(lk),
        Mask::CausalRows(_) => lk,
    }
}

/// CPU reference. Each (batch entry, head) is two matrix products around a softmax:
/// scores `S = Q·Kᵀ` (`Lq × Lk`), `P = softmax(S/√D)` row by row over the visible keys (the rest
/// exactly 0), and `O = P·V`; the heads are split over threads, each product on its thread's
/// `gemm`.
pub fn cpu(q: &[f32], k: &[f32], v: &[f32], d: Dims, mask: &Mask<'_>, gemm: Gemm) -> Vec<f32> {
    let (lq, lk, hd) = (d.lq, d.lk, d.head_dim);
    let f = d.heads * hd;
    let scale = 1.0 / math::sqrt(hd as f32);
    let mut out = vec![0.0f32; d.b * lq * f];
    if out.is_empty() {
        return out;
    }
    // Head-major `[B, H, Lq, D]` first, so that each thread owns whole heads.
    let mut by_head = vec![0.0f32; d.b * d.heads * lq * hd];
    crate::threads::for_row_chunks(&mut by_head, lq * hd, 4 * lq * lk * hd, |p0, chunk| {
        let mut scores = vec![0.0f32; lq * lk];
        for (p, o) in chunk.chunks_exact_mut(lq * hd).enumerate() {
            let (b, h) = ((p0 + p) / d.heads, (p0 + p) % d.heads);
            let q_h = View {
                data: &q[b * lq * f + h * hd..],
                rs: f,
                cs: 1,
            };
            // Kᵀ of this head: element (e, j) is feature e of key j.
            let k_t = View {
                data: &k[b * lk * f + h * hd..],
                rs: 1,
                cs: f,
            };
            let v_h = View {
                data: &v[b * lk * f + h * hd..],
                rs: f,
                cs: 1,
            };
            gemm_serial(lq, lk, hd, q_h, k_t, &mut scores, gemm);
            for (i, row) in scores.chunks_exact_mut(lk).enumerate() {
                let n = visible_keys(mask, b, i, lk);
                softmax_scaled(&mut row[..n], scale);
                row[n..].fill(0.0);
            }
            let p_h = View {
                data: &scores,
                rs: lk,
                cs: 1,
            };
            gemm_serial(lq, hd, lk, p_h, v_h, o, gemm);
        }
    });
    for (p, head) in by_head.chunks_exact(lq * hd).enumerate() {
        let (b, h) = (p / d.heads, p % d.heads);
        for (i, row) in head.chunks_exact(hd).enumerate() {
            out[(b * lq + i) * f + h * hd..][..hd].copy_from_slice(row);
        }
    }
    out
}

/// `softmax(x · scale)` in place, with a running maximum (`scale > 0`).
fn softmax_scaled(x: &mut [f32], scale: f32) {
    let max = max_lanes(x);
    // Exponentials first, then their sum: a loop doing both would run one add at a time.
    for v in x.iter_mut() {
        *v = math::exp_vec((*v - max) * scale);
    }
    let inv = 1.0 / sum_lanes(x, |v| v);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_offset_limits_keys() {
        assert_eq!(visible_keys(&Mask::Causal { offset: 0 }, 0, 0, 5), 1);
        assert_eq!(visible_keys(&Mask::Causal { offset: 3 }, 0, 0, 5), 4);
        assert_eq!(visible_keys(&Mask::Causal { offset: 3 }, 0, 4, 5), 5);
        assert_eq!(visible_keys(&Mask::CausalRows(&[false, true]), 1, 2, 5), 3);
        assert_eq!(visible_keys(&Mask::CausalRows(&[false, true]), 0, 2, 5), 5);
    }

    #[test]
    fn one_key_returns_its_value() {
        let d = *check(
            &[1, 2, 4],
            &[1, 1, 4],
            &[1, 1, 4],
            &Attention {
                heads: 2,
                mask: Mask::None,
            },
        )
        .unwrap();
        let out = cpu(
            &[1.0; 8],
            &[0.5; 4],
            &[1.0, 2.0, 3.0, 4.0],
            d,
            &Mask::None,
            Gemm::Blocked,
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    }

    /// Attention written out one query at a time, in f64.
    fn naive(q: &[f32], k: &[f32], v: &[f32], d: Dims, mask: &Mask<'_>) -> Vec<f32> {
        let (f, hd) = (d.heads * d.head_dim, d.head_dim);
        let mut out = vec![0.0f32; d.b * d.lq * f];
        for b in 0..d.b {
            for i in 0..d.lq {
                let n = visible_keys(mask, b, i, d.lk);
                for h in 0..d.heads {
                    let at = |x: &[f32], row: usize, e: usize| x[row * f + h * hd + e] as f64;
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..hd)
                                .map(|e| at(q, b * d.lq + i, e) * at(k, b * d.lk + j, e))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for e in 0..hd {
                        let o: f64 = (0..n).map(|j| w[j] * at(v, b * d.lk + j, e)).sum();
                        out[(b * d.lq + i) * f + h * hd + e] = (o / total) as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_loop_for_every_mask_and_gemm() {
        let mut rng = crate::rng::Rng::new(5);
        let gemms = [
            Gemm::Blocked,
            #[cfg(feature = "std")]
            Gemm::Fast,
        ];
        // (batch, lq, lk, heads, head_dim): odd sizes, one query (a decoding step), one key, and
        // enough work to be split over threads.
        for (b, lq, lk, heads, hd) in [
            (2, 0, 3, 2, 4),
            (2, 5, 7, 3, 4),
            (1, 1, 9, 2, 8),
            (3, 4, 1, 1, 5),
            (2, 64, 70, 4, 16),
        ] {
            let f = heads * hd;
            let mut t = |n: usize| -> Vec<f32> { (0..n).map(|_| 2.0 * rng.normal()).collect() };
            let (q, k, v) = (t(b * lq * f), t(b * lk * f), t(b * lk * f));
            let rows: Vec<bool> = (0..b).map(|i| i % 2 == 1).collect();
            for mask in [
                Mask::None,
                Mask::Causal { offset: 0 },
                Mask::Causal { offset: 2 },
                Mask::CausalRows(&rows),
            ] {
                let op = Attention { heads, mask };
                let d = *check(&[b, lq, f], &[b, lk, f], &[b, lk, f], &op).unwrap();
                let want = naive(&q, &k, &v, d, &op.mask);
                for &g in &gemms {
                    let got = cpu(&q, &k, &v, d, &op.mask, g);
                    for (x, y) in got.iter().zip(&want) {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                            "{g:?} {d:?} {x} {y}"
                        );
                    }
                }
            }
        }
    }
}
