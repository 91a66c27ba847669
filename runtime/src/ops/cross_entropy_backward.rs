//! Backward of the reference caption loss (`crate::loss::caption_loss`): for logits
//! `[B, L, V]` and targets `[B, L]`, position `(b, i)` with target `t` has weight
//! `w = [t ≠ PAD] / max(n_b, 2e-38) / B` (`n_b` the caption's non-PAD count) and soft targets
//! `y_c = 1 − ls` at `t`, `ls / (V − 1)` elsewhere. The loss there is `−w·Σ_c y_c·log p_c`, so
//! `dlogits_c = w·(p_c·Σ y − y_c)` with `p = softmax(logits)` — softmax, label smoothing and
//! the per-caption normalisation fused in one pass.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::softmax::log_softmax_row;
use super::{shape_error, Checked};
use crate::error::Result;
use crate::math;

/// The sizes of one caption-loss gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Captions.
    pub b: usize,
    /// Positions per caption.
    pub l: usize,
    /// Classes.
    pub v: usize,
}

/// Checks `logits` is `[B, L, V]` (`V ≥ 1`) and `targets` `[B, L]`.
pub fn check(logits: &[usize], targets: &[usize]) -> Result<Checked<Dims>> {
    match logits {
        [b, l, v] if *v > 0 && targets == [*b, *l] => Ok(Checked::new(Dims {
            b: *b,
            l: *l,
            v: *v,
        })),
        _ => Err(shape_error(
            "cross_entropy_backward",
            format!("needs logits [B, L, V] and targets [B, L], got {logits:?} and {targets:?}"),
        )),
    }
}

/// The weight of every position: `[t ≠ pad] / max(n_b, 2e-38) / B`.
pub fn weights(targets: &[u32], l: usize, pad_id: u32) -> Vec<f32> {
    let b = targets.len().checked_div(l).unwrap_or(0);
    targets
        .chunks_exact(l.max(1))
        .flat_map(|row| {
            let n = row.iter().filter(|&&t| t != pad_id).count() as f32;
            let w = 1.0 / n.max(2e-38) / b as f32;
            row.iter().map(move |&t| if t != pad_id { w } else { 0.0 })
        })
        .collect()
}

/// CPU reference (targets already checked against `V`).
pub fn cpu(logits: &[f32], shape: &[usize], targets: &[u32], pad_id: u32, ls: f32) -> Vec<f32> {
    let (l, v) = (shape[1], shape[2]);
    let w = weights(targets, l, pad_id);
    let off = if v > 1 { ls / (v - 1) as f32 } else { 0.0 };
    let on = 1.0 - ls;
    let total = on + off * (v - 1) as f32;
    let mut out = vec![0.0f32; logits.len()];
    let mut lp = vec![0.0f32; v];
    for ((row, o), (&t, &w)) in logits
        .chunks_exact(v)
        .zip(out.chunks_exact_mut(v))
        .zip(targets.iter().zip(&w))
    {
        if w == 0.0 {
            continue;
        }
        log_softmax_row(row, &mut lp);
        for (c, (o, &lpc)) in o.iter_mut().zip(&lp).enumerate() {
            let y = if c == t as usize { on } else { off };
            *o = w * (math::exp(lpc) * total - y);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{cross_entropy, fd};

    /// The reference loss, as `crate::loss::caption_loss` computes it.
    fn loss(logits: &[f32], shape: &[usize], targets: &[u32], pad: u32, ls: f32) -> f64 {
        let ce = cross_entropy::cpu(logits, shape, targets, ls);
        let w = weights(targets, shape[1], pad);
        fd::dot(&w, &ce)
    }

    #[test]
    fn matches_finite_differences_with_padding_and_smoothing() {
        let shape = [3, 4, 6];
        // Caption 0 has two PAD targets, caption 2 is all PAD (weight 0, no division by 0).
        let targets = [4u32, 1, 0, 0, 2, 3, 5, 1, 0, 0, 0, 0];
        let logits = fd::normal(3 * 4 * 6, 17);
        for ls in [0.0, 0.1] {
            let grad = cpu(&logits, &shape, &targets, 0, ls);
            assert!(grad[8 * 6..].iter().all(|&g| g == 0.0));
            fd::check("xent", &logits, &grad, 1e-2, 1e-3, |x| {
                loss(x, &shape, &targets, 0, ls)
            });
        }
        let w = weights(&targets, 4, 0);
        assert_eq!(&w[..4], &[1.0 / 2.0 / 3.0, 1.0 / 2.0 / 3.0, 0.0, 0.0]);
        assert!(check(&[3, 4, 6], &[3, 4]).is_ok() && check(&[12, 6], &[12]).is_err());
    }
}
