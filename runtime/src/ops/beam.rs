//! Beam-search candidates: for `G` groups (images) of `W` beams each, every continuation
//! `(beam w, token t)` scores `beam_scores[g·W + w] + log_softmax(logits[g·W + w])[t]`, and each
//! group keeps its `k` best continuations.
//!
//! Inputs: `logits` `[G·W, V]` or `[G·W, 1, V]`, `beam_scores` `[G·W]`. Outputs: scores
//! `[G, k]` (best first) and ids `[G, k]` holding the continuation's index within its group,
//! `w·V + t`.
//!
//! Exact rules: the log-softmax is [`super::softmax::log_softmax_row`] (`x − (m + ln Σ exp(x − m))`,
//! `m` the row maximum, the sum in increasing index); the candidate is that value added to the
//! beam's score in `f32`. A NaN candidate counts as `−∞` (and is reported as `−∞`), `−0` as `+0`.
//! Candidates are ranked by value, larger first; equal values by index, lower first. A beam
//! score of `−∞` marks an empty beam: its candidates rank last.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::softmax::log_softmax_row;
use super::{shape_error, Checked};
use crate::error::Result;

/// Sizes of one `beam_candidates` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Groups (`G`).
    pub groups: usize,
    /// Beams per group (`W`).
    pub width: usize,
    /// Classes (`V`).
    pub vocab: usize,
    /// Continuations kept per group.
    pub k: usize,
}

/// Checks the operands: `logits` `[G·W, V]` or `[G·W, 1, V]`, `beam_scores` `[G·W]`, `G ≥ 1`
/// dividing the rows, `1 ≤ k ≤ W·V`, and `W·V` ids addressable by a `u32`.
pub fn check(
    logits: &[usize],
    beam_scores: &[usize],
    groups: usize,
    k: usize,
) -> Result<Checked<Dims>> {
    let err = |m: &str| {
        shape_error(
            "beam_candidates",
            format!("{m} (logits {logits:?}, beam_scores {beam_scores:?}, groups {groups}, k {k})"),
        )
    };
    let (rows, vocab) = match logits {
        [n, v] | [n, 1, v] if *n > 0 && *v > 0 => (*n, *v),
        _ => return Err(err("logits must be [G·W, V] or [G·W, 1, V], non-empty")),
    };
    if beam_scores != [rows] {
        return Err(err("beam_scores must hold one score per logits row"));
    }
    if groups == 0 || rows % groups != 0 {
        return Err(err("groups must divide the number of rows"));
    }
    let width = rows / groups;
    let candidates = (width as u64).saturating_mul(vocab as u64);
    if candidates > u32::MAX as u64 {
        return Err(err("a group has more than u32::MAX candidates"));
    }
    if k == 0 || k as u64 > candidates {
        return Err(err(&format!(
            "k must be in 1..={candidates} (beams × vocabulary)"
        )));
    }
    Ok(Checked::new(Dims {
        groups,
        width,
        vocab,
        k,
    }))
}

/// The ranking key of a candidate value: NaN → `−∞`, `−0` → `+0`, so that `total_cmp` orders
/// keys exactly as `<` does.
#[inline]
fn key(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// CPU reference: `(scores [G·k], ids [G·k])`.
pub fn cpu(logits: &[f32], beam_scores: &[f32], d: Dims) -> (Vec<f32>, Vec<u32>) {
    let (w, v) = (d.width, d.vocab);
    let mut lp = vec![0.0f32; v];
    let mut cand: Vec<(f32, u32)> = Vec::with_capacity(w * v);
    let mut scores = Vec::with_capacity(d.groups * d.k);
    let mut ids = Vec::with_capacity(d.groups * d.k);
    for g in 0..d.groups {
        cand.clear();
        for b in 0..w {
            let row = g * w + b;
            log_softmax_row(&logits[row * v..(row + 1) * v], &mut lp);
            let s = beam_scores[row];
            cand.extend(
                lp.iter()
                    .enumerate()
                    .map(|(t, &l)| (key(s + l), (b * v + t) as u32)),
            );
        }
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if d.k < cand.len() {
            cand.select_nth_unstable_by(d.k - 1, order);
        }
        let best = &mut cand[..d.k];
        best.sort_unstable_by(order);
        scores.extend(best.iter().map(|c| c.0));
        ids.extend(best.iter().map(|c| c.1));
    }
    (scores, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_add_the_beam_score_and_rank_per_group() {
        // Two groups of two beams, V = 3. Uniform logits: log-softmax = −ln 3 everywhere.
        let logits = [0.0f32; 12];
        let beam = [0.0, -1.0, -0.5, f32::NEG_INFINITY];
        let d = *check(&[4, 1, 3], &[4], 2, 4).unwrap();
        let (s, ids) = cpu(&logits, &beam, d);
        let l3 = -(3.0f32).ln();
        // Group 0: beam 0's three tokens tie (lower index first), then beam 1's first token.
        assert_eq!(ids[..4], [0, 1, 2, 3]);
        assert!((s[0] - l3).abs() < 1e-6 && (s[3] - (l3 - 1.0)).abs() < 1e-6);
        // Group 1: the empty beam ranks last.
        assert_eq!(ids[4..], [0, 1, 2, 3]);
        assert_eq!(s[7], f32::NEG_INFINITY);
    }

    #[test]
    fn log_softmax_is_per_row_and_ties_go_to_the_lower_index() {
        let logits = [0.0, 2.0, 1.0, 2.0, 0.0, 0.0];
        let d = *check(&[2, 3], &[2], 1, 3).unwrap();
        let (s, ids) = cpu(&logits, &[0.0, 0.0], d);
        assert_eq!(ids, [3, 1, 2]);
        let mut lp0 = [0.0f32; 3];
        log_softmax_row(&logits[..3], &mut lp0);
        assert_eq!(s[1], lp0[1]);
        // NaN candidates count as −∞.
        let d = *check(&[2, 2], &[2], 1, 4).unwrap();
        let (s, ids) = cpu(&[0.0; 4], &[f32::NAN, 0.0], d);
        assert_eq!(ids, [2, 3, 0, 1]);
        assert_eq!(s[2..], [f32::NEG_INFINITY; 2]);
    }

    #[test]
    fn shape_rules() {
        assert_eq!(
            *check(&[6, 5], &[6], 2, 15).unwrap(),
            Dims {
                groups: 2,
                width: 3,
                vocab: 5,
                k: 15
            }
        );
        assert!(check(&[6, 5], &[6], 2, 16).is_err(), "k > W·V");
        assert!(check(&[6, 5], &[6], 2, 0).is_err(), "k = 0");
        assert!(
            check(&[6, 5], &[6], 4, 1).is_err(),
            "groups must divide rows"
        );
        assert!(check(&[6, 5], &[6], 0, 1).is_err());
        assert!(check(&[6, 5], &[5], 2, 1).is_err(), "one score per row");
        assert!(check(&[6, 2, 5], &[6], 2, 1).is_err());
        assert!(check(&[6, 0], &[6], 2, 1).is_err());
    }
}
